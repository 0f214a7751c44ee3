"""One trial in full for the trial page: parameters, metrics, rung verdicts, attempts with placement,
rate, billable seconds and charge, the objective against spend, the tail of its logs, its artifacts."""

from __future__ import annotations

import math
import os
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from costtune.reports.fmt import shown_exit_code
from costtune.server.dashboard.queries import iso
from costtune.store.models import AttemptRow, TrialRow
from costtune.store.remote_models import RemoteLineRow

if TYPE_CHECKING:
    from costtune.store import Store, StudyInfo

LOG_TAIL = 60  # lines per log
ARTIFACTS_MAX = 100
_LOG_NAMES = ("stdout.log", "stderr.log")


def _finite(value: Any) -> Any:
    return value if not isinstance(value, float) or math.isfinite(value) else repr(value)


def trial_detail(store: Store, info: StudyInfo, number: int) -> dict[str, Any]:
    """The trial page's data; raises ``StudyNotFound`` when the study has no trial ``number``."""
    trial = store.trial(info.id, number)
    attempts = store.attempts(info.id, number)
    reports = store.reports(info.id, number)
    costs = store.rung_reports(info.id).get(number, []) if len(reports) < 5000 else []
    curve = [[cost, value] for cost, value in costs if value is not None and math.isfinite(value)]
    logs = _logs(trial.output_dir)
    if not any(logs.values()):
        logs = _remote_logs(store, info.id, number)
    return {
        "study": info.name, "metric": info.metric, "mode": str(info.mode), "number": trial.number,
        "state": str(trial.state), "value": _finite(trial.value), "source": trial.source,
        "params": trial.params, "metrics": {k: _finite(v) for k, v in trial.metrics.items()},
        "cost_micros": trial.cost_micros, "last_step": trial.last_step, "error": trial.error,
        "warnings": list(trial.warnings), "warning_count": trial.warning_count,
        "started_at": iso(trial.started_at), "finished_at": iso(trial.finished_at), "output_dir": trial.output_dir,
        "verdicts": [{"rung_micros": level, "value": _finite(value), "promoted": up,
                      "reason": dict(trial.verdict_reasons).get(level)} for level, value, up in trial.verdicts],
        "attempts": [{
            "number": a.number, "provider": a.provider, "region": a.region, "instance_type": a.instance_type,
            "market": a.market, "rate_micros_per_hour": a.rate_micros_per_hour, "started_at": iso(a.started_at),
            "ended_at": iso(a.ended_at), "exit_reason": a.exit_reason, "exit_code": a.exit_code,
            "exit_code_shown": shown_exit_code(a.exit_reason, a.exit_code),  # none for a completed attempt's SIGTERM
            "billable_ms": a.billable_ms, "charged_ms": a.charged_ms, "cost_micros": a.cost_micros,
            "start_step": a.start_step, "waste_micros": a.waste_micros, "note": a.note,
            "argv": list(a.argv) if a.argv else None,
        } for a in attempts],
        "curve": curve, "reports": len(reports), "logs": logs, "artifacts": _artifacts(trial.output_dir),
    }


def _tail(path: Path, lines: int = LOG_TAIL) -> list[str]:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > 256 * 1024:  # read the end only
                fh.seek(size - 256 * 1024)
                fh.readline()
            return [line.rstrip("\n") for line in deque(fh, maxlen=lines)]
    except OSError:
        return []


def _logs(output_dir: str | None) -> dict[str, list[str]]:
    if not output_dir:
        return {name: [] for name in _LOG_NAMES}
    return {name: _tail(Path(output_dir) / name) for name in _LOG_NAMES}


def _remote_logs(store: Store, study_id: int, number: int) -> dict[str, list[str]]:
    """A trial run through the worker API keeps its output lines in the store."""
    with Session(store.engine) as s:
        ids = select(AttemptRow.id).join(TrialRow, col(TrialRow.id) == col(AttemptRow.trial_id)).where(
            TrialRow.study_id == study_id, TrialRow.number == number)
        rows = s.exec(select(RemoteLineRow.line).where(col(RemoteLineRow.attempt_id).in_(ids))
                      .order_by(col(RemoteLineRow.id).desc()).limit(LOG_TAIL)).all()
    return {"stdout.log": list(reversed(rows)), "stderr.log": []}


def _artifacts(output_dir: str | None) -> list[dict[str, Any]]:
    """Files in the trial's directory (logs left out), largest listing ``ARTIFACTS_MAX``; names relative."""
    if not output_dir or not Path(output_dir).is_dir():
        return []
    root = Path(output_dir)
    out = []
    for path in sorted(root.rglob("*")):
        if len(out) >= ARTIFACTS_MAX:
            break
        if path.is_file() and path.name not in _LOG_NAMES:
            try:
                out.append({"name": str(path.relative_to(root)), "bytes": path.stat().st_size})
            except OSError:
                continue
    return out
