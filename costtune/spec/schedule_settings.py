"""A schedule's settings beside its timing: overlap, misfires, warm start, promotion, where results go.

Stored as JSON on the schedule row; every field has a default, so a store written by an older
version reads back. ``check_settings`` validates a mapping and names the field it refuses.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlparse

from costtune.errors import SpecError

OVERLAP = ("skip", "queue")
PROMOTE = ("better", "always", "never")


@dataclass(frozen=True)
class ScheduleSettings:
    """``cap_micros``: each run's dollar cap (None: the sweep's budget.usd). ``overlap``: what a fire
    time does while the previous run still runs: ``skip`` (recorded) or ``queue`` (starts when it ends).
    ``misfire_grace_s``: how late a run may still start; older fire times are recorded ``missed``.
    ``coalesce``: several due fire times start one run (the newest); the others are recorded ``skipped``.
    ``warm_start``: top-k configurations of earlier runs queued first (0: no warm start, no prior).
    ``prior_runs``: how many earlier runs the Bayesian prior reads; ``prior_decay``: weight per night of age.
    ``promote``: ``better`` (a run's best replaces the promoted version only when better), ``always``, ``never``.
    ``workdir``: where trials run (the directory ``schedule add`` ran in).
    """

    cap_micros: int | None = None
    overlap: str = "skip"
    misfire_grace_s: int = 3600
    coalesce: bool = True
    warm_start: int = 5
    prior_runs: int = 3
    prior_decay: float = 0.5
    promote: str = "better"
    webhook: str | None = None
    summary_dir: str | None = None
    artifact_root: str | None = None
    workdir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScheduleSettings:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def check_settings(s: ScheduleSettings) -> ScheduleSettings:
    """``s`` when every field is valid, else ``SpecError`` naming the CLI flag and the value."""
    if s.cap_micros is not None and s.cap_micros <= 0:
        raise SpecError("--cap", "must be more than $0", s.cap_micros)
    if s.overlap not in OVERLAP:
        raise SpecError("--overlap", f"must be one of {', '.join(OVERLAP)}", s.overlap)
    if s.misfire_grace_s < 0:
        raise SpecError("--misfire-grace", "must be >= 0", s.misfire_grace_s)
    if not 0 <= s.warm_start <= 100:
        raise SpecError("--warm-start", "must be an integer from 0 to 100", s.warm_start)
    if not 0 <= s.prior_runs <= 30:
        raise SpecError("--prior-runs", "must be an integer from 0 to 30", s.prior_runs)
    if not (math.isfinite(s.prior_decay) and 0.0 < s.prior_decay <= 1.0):
        raise SpecError("--prior-decay", "must be in (0, 1]", s.prior_decay)
    if s.promote not in PROMOTE:
        raise SpecError("--promote", f"must be one of {', '.join(PROMOTE)}", s.promote)
    if s.webhook is not None:
        url = urlparse(s.webhook)
        if url.scheme not in ("http", "https") or not url.netloc:
            raise SpecError("--webhook", "must be an http:// or https:// URL", s.webhook)
    if s.artifact_root is not None and s.artifact_root.startswith("s3://"):
        root = urlparse(s.artifact_root)
        if not root.netloc:
            raise SpecError("--artifact-root", "must be s3://BUCKET or s3://BUCKET/PREFIX", s.artifact_root)
        if importlib.util.find_spec("boto3") is None:
            raise SpecError("--artifact-root", "an s3:// root needs boto3: pip install 'costtune[aws]'",
                            s.artifact_root)
    return s
