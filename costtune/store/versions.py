"""Model versions in the store: numbered per model, at most one promoted, promotion recorded.

A version is added and (by the schedule's ``promote`` rule) promoted in one transaction holding
the model's previous versions' rows, so two runs ending at once still number 1, 2, ... and leave
one promoted version.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from costtune.errors import InputError, shown
from costtune.history import Mode
from costtune.store.audit import add_audit, current_actor
from costtune.store.schedule_models import ModelVersionRow


@dataclass(frozen=True)
class ModelVersion:
    model: str
    version: int
    schedule_id: int | None
    run_id: int | None
    study_name: str
    trial_number: int
    metric: str
    mode: Mode
    value: float
    params: dict[str, Any]
    run_cost_micros: int
    reach_cost_micros: int
    artifact_path: str
    replaced_version: int | None
    promoted: bool
    note: str | None
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.model}:{self.version}"


def _version(r: ModelVersionRow) -> ModelVersion:
    return ModelVersion(r.model, r.version, r.schedule_id, r.run_id, r.study_name, r.trial_number, r.metric,
                        Mode(r.mode), r.value, json.loads(r.params_json), r.run_cost_micros, r.reach_cost_micros,
                        r.artifact_path, r.replaced_version, r.promoted, r.note, r.created_at)


def better(mode: Mode, new: float, old: float) -> bool:
    return new < old if mode == Mode.MIN else new > old


class ModelBook:
    """Mixed into ``Store``; every method is one transaction."""

    _tx: Callable[[], AbstractContextManager[Session]]

    def add_model_version(self, model: str, *, promote: str, artifact_path: Callable[[int], str],
                          **fields: Any) -> ModelVersion:
        """Register the next version of ``model``; ``promote``: better | always | never.

        ``artifact_path(version)`` names where its artifact lives (called once the number is known).
        ``fields``: schedule_id, run_id, study_name, trial_number, metric, mode, value, params,
        run_cost_micros, reach_cost_micros. Idempotent per run: when ``run_id`` already has a
        version of ``model``, that version is returned and nothing is added. Under ``better`` it is
        promoted when no version is promoted yet or its value beats the promoted one's (strictly: a
        tie keeps the old one).
        """
        with self._tx() as s:
            rows = s.exec(select(ModelVersionRow).where(ModelVersionRow.model == model).with_for_update()).all()
            run_id = fields.get("run_id")
            same_run = next((r for r in rows if run_id is not None and r.run_id == run_id), None)
            if same_run is not None:  # a retried publish of one run: its version, never a second one
                return _version(same_run)
            number = max((r.version for r in rows), default=0) + 1
            current = next((r for r in rows if r.promoted), None)
            mode = Mode(fields["mode"])
            wins = current is None or better(mode, fields["value"], current.value)
            promoted = promote == "always" or (promote == "better" and wins)
            note = None
            if not promoted:
                note = ("not promoted (promote: never)" if promote == "never" else
                        f"not promoted: {fields['metric']} {fields['value']:.6g} is not better than "
                        f"version {current.version}'s {current.value:.6g}")  # type: ignore[union-attr]
            row = ModelVersionRow(model=model, version=number, schedule_id=fields.get("schedule_id"),
                                  run_id=fields.get("run_id"), study_name=fields["study_name"],
                                  trial_number=fields["trial_number"], metric=fields["metric"], mode=str(mode),
                                  value=float(fields["value"]), params_json=json.dumps(fields["params"]),
                                  run_cost_micros=fields.get("run_cost_micros", 0),
                                  reach_cost_micros=fields.get("reach_cost_micros", 0),
                                  artifact_path=artifact_path(number), promoted=promoted, note=note,
                                  replaced_version=current.version if promoted and current is not None else None)
            if promoted and current is not None:
                current.promoted = False
                s.add(current)
                s.flush()
            s.add(row)
            s.flush()
            if promoted:
                add_audit(s, "model.promote", actor=current_actor(), study_id=None, detail={
                    "model": model, "version": number, "replaced": row.replaced_version, "rule": promote})
            return _version(row)

    def run_version(self, model: str, run_id: int) -> ModelVersion | None:
        """The version schedule run ``run_id`` registered for ``model``, if any."""
        with self._tx() as s:
            row = s.exec(select(ModelVersionRow).where(ModelVersionRow.model == model,
                                                       ModelVersionRow.run_id == run_id)).first()
            return None if row is None else _version(row)

    def model_versions(self, model: str | None = None) -> list[ModelVersion]:
        """Versions oldest first (of ``model`` when given)."""
        query = select(ModelVersionRow).order_by(col(ModelVersionRow.model), col(ModelVersionRow.version))
        if model is not None:
            query = query.where(ModelVersionRow.model == model)
        with self._tx() as s:
            return [_version(r) for r in s.exec(query)]

    def model_version(self, ref: str) -> ModelVersion:
        """``NAME`` (the promoted version, else the newest) or ``NAME:VERSION``; ``InputError`` if none."""
        model, _, ver = ref.partition(":")
        versions = self.model_versions(model)
        if not versions:
            known = sorted({v.model for v in self.model_versions()})
            raise InputError(f"model: no model named {model!r} (models: {', '.join(known) or 'none'})")
        if not ver:
            return next((v for v in versions if v.promoted), versions[-1])
        if not ver.isdigit():
            raise InputError(f"model: version must be a number in NAME:VERSION, got {shown(ref)}")
        found = next((v for v in versions if v.version == int(ver)), None)
        if found is None:
            raise InputError(f"model: {model!r} has no version {ver} (versions 1 to {versions[-1].version})")
        return found

    def promote_version(self, ref: str, *, reason: str | None = None) -> tuple[ModelVersion, int | None]:
        """Make ``NAME:VERSION`` the promoted one; (it, the version it replaced). Recorded in the audit."""
        target = self.model_version(ref)
        with self._tx() as s:
            rows = s.exec(select(ModelVersionRow).where(ModelVersionRow.model == target.model).with_for_update()).all()
            old = next((r for r in rows if r.promoted), None)
            new = next(r for r in rows if r.version == target.version)
            if old is not None and old.version == new.version:
                return _version(new), None
            if old is not None:
                old.promoted = False
                s.add(old)
                s.flush()
            new.promoted = True
            new.replaced_version = old.version if old is not None else None
            s.add(new)
            add_audit(s, "model.promote", actor=current_actor(), study_id=None, detail={
                "model": target.model, "version": new.version, "replaced": new.replaced_version,
                "rule": "manual", "reason": reason})
            s.flush()
            return _version(new), new.replaced_version
