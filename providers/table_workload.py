"""A recorded workload: learning curves and step times read from a CSV table instead of a function.

Record a real sweep once (each trial's metric and seconds per step, per instance type), then replay
it on the simulator as often as you like: a tabular benchmark of your own workload. Columns:

    step, value, seconds        required: the step (0, 1, ...), the metric it reached, how long it took
    instance_type               optional: rows per instance type (without it, every type runs alike)
    anything else               a parameter of the configuration

A proposed configuration is matched to the recorded one with the same categorical values that is
nearest in its numeric parameters (each scaled by its recorded range), so any sampler can run on it;
a grid or manual sweep over the recorded configurations replays them exactly. Past its last
recorded step a curve stays at its last value and step time.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from costtune.errors import SpecError

FIELD = "resources.simulation.workload"
REQUIRED = ("step", "value", "seconds")


@dataclass
class _Curve:
    values: dict[int, tuple[float, float]] = field(default_factory=dict)  # step -> (value, seconds)

    def at(self, step: int) -> tuple[float, float]:
        if step in self.values:
            return self.values[step]
        return self.values[max(self.values)]  # past the recording: a plateau


class TableWorkload:
    """``workload(params, step, instance_type) -> (value, seconds)`` over a recorded table."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        rows = _read(self.path)
        header = list(rows[0].keys())
        self.by_type = "instance_type" in header
        self.params = [c for c in header if c not in (*REQUIRED, "instance_type")]
        self.numeric = {p: all(_is_number(r[p]) for r in rows) for p in self.params}
        self._curves: dict[tuple[Any, ...], dict[str, _Curve]] = {}
        for i, row in enumerate(rows, start=2):  # line 1 is the header
            try:
                step, value, seconds = int(row["step"]), float(row["value"]), float(row["seconds"])
            except ValueError:
                raise SpecError(FIELD, f"{self.path} line {i}: step must be an integer, value and seconds "
                                "numbers", dict(row)) from None
            if step < 0 or seconds < 0 or not math.isfinite(value) or not math.isfinite(seconds):
                raise SpecError(FIELD, f"{self.path} line {i}: step and seconds must be >= 0, value finite",
                                dict(row))
            key = tuple(float(row[p]) if self.numeric[p] else row[p] for p in self.params)
            itype = row["instance_type"] if self.by_type else ""
            self._curves.setdefault(key, {}).setdefault(itype, _Curve()).values[step] = (value, seconds)
        spans = {p: [k[i] for k in self._curves] for i, p in enumerate(self.params) if self.numeric[p]}
        self._scale = {p: (max(v) - min(v)) or 1.0 for p, v in spans.items()}

    def __call__(self, params: dict[str, Any], step: int, instance_type: str) -> tuple[float, float]:
        curves = self._curves[self._nearest(params)]
        itype = instance_type if self.by_type else ""
        if itype not in curves:
            raise ValueError(f"{self.path}: no recording on instance type {instance_type!r} for {params!r}; "
                             f"recorded: {', '.join(sorted(curves))}")
        return curves[itype].at(step)

    def _nearest(self, params: dict[str, Any]) -> tuple[Any, ...]:
        missing = [p for p in self.params if p not in params]
        if missing:
            raise ValueError(f"{self.path}: the configuration lacks recorded parameter(s) {', '.join(missing)}")
        best, best_distance = None, math.inf
        for key in self._curves:
            distance = 0.0
            for i, p in enumerate(self.params):
                if self.numeric[p]:
                    distance += ((float(params[p]) - key[i]) / self._scale[p]) ** 2
                elif str(params[p]) != key[i]:
                    distance = math.inf
                    break
            if distance < best_distance:
                best, best_distance = key, distance
        if best is None:
            raise ValueError(f"{self.path}: no recorded configuration has the categorical values of {params!r}")
        return best


def _read(path: str) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise SpecError(FIELD, f"cannot read the recorded table: {exc.strerror}", path) from None
    if not rows:
        raise SpecError(FIELD, "the recorded table has no rows", path)
    absent = [c for c in REQUIRED if c not in rows[0]]
    if absent:
        raise SpecError(FIELD, f"the recorded table needs columns {', '.join(REQUIRED)}; missing "
                        f"{', '.join(absent)}", path)
    return rows


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
