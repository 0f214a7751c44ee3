"""JSON records of schedules, their runs and model versions, as `--format json` prints them.

Money is given twice: ``*_micros`` (integer micro-dollars, exact) and ``*_usd`` (a decimal string,
e.g. ``"0.641"``); times are ISO 8601 strings in UTC (``2026-03-07T07:00:00Z``), with the epoch
seconds beside them where a script may want to compute with them (``*_s``).
"""

from __future__ import annotations

import re
from datetime import UTC
from typing import Any

from costtune.clock import iso
from costtune.money import usd_text

_OLD_COALESCED = re.compile(r"coalesced into the run of (\d{9,11})\b")


def shown_reason(reason: str | None) -> str | None:
    """A run's reason as shown: a store written before fire times were ISO holds ``coalesced into the run
    of 1796078625`` (epoch seconds); that reads as ``... of 2026-11-30T07:00:00Z``."""
    if reason is None:
        return None
    return _OLD_COALESCED.sub(lambda m: f"coalesced into the run of {iso(int(m.group(1)))}", reason)


def summary_times(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    """A run summary with ISO 8601 ``fire_time`` and epoch ``fire_s``: summaries written before held
    ``fire_time`` as epoch seconds (files and store alike); those read the new way."""
    if not isinstance(summary, dict):
        return summary
    fire = summary.get("fire_time")
    if isinstance(fire, int | float) and not isinstance(fire, bool):
        return {**summary, "fire_time": iso(fire), "fire_s": int(fire)}
    return summary


def money(name: str, micros: int | None) -> dict[str, Any]:
    """``{name_micros: 641000, name_usd: "0.641"}`` (both None when ``micros`` is None)."""
    return {f"{name}_micros": micros, f"{name}_usd": usd_text(micros)}


def run_record(r: Any) -> dict[str, Any]:
    """One run: fire time, state, study, reason, and from its summary the best value and spend."""
    summary = r.summary or {}
    best = summary.get("best") if isinstance(summary.get("best"), dict) else None
    return {"id": r.id, "fire_time": iso(r.fire_s), "fire_s": r.fire_s, "manual": r.manual, "state": r.state,
            "study": r.study_name, "reason": shown_reason(r.reason), "finished_at": iso(r.finished_s),
            "best_value": None if best is None else best.get("value"),
            **money("spent", summary.get("spent_micros"))}


def schedule_record(s: Any, cap_micros: int | None, runs: list[Any], *, detail: bool) -> dict[str, Any]:
    """One schedule. ``next_run`` is None while paused (resuming sets it from that moment)."""
    out: dict[str, Any] = {
        "name": s.name, "state": "paused" if s.paused else "active", "paused": s.paused,
        "timing": s.trigger.describe(), "cron": s.trigger.cron, "every_s": s.trigger.every_s,
        "tz": s.trigger.tz if s.trigger.cron is not None else None,
        "next_run": None if s.paused else iso(s.next_fire_s), **money("cap", cap_micros),
        "last_run": run_record(runs[0]) if runs else None,
    }
    if detail:
        out.update({"trigger": s.trigger.to_dict(), "settings": s.settings.to_dict(), "sweep": s.sweep,
                    "sweep_source": s.sweep_source, "runs": [run_record(r) for r in runs]})
    return out


def version_record(v: Any) -> dict[str, Any]:
    """One model version: lineage, params, metric, both costs in micros and USD, ISO created time."""
    return {"model": v.model, "version": v.version, "ref": v.ref, "promoted": v.promoted,
            "replaced_version": v.replaced_version, "note": v.note, "schedule_id": v.schedule_id,
            "run_id": v.run_id, "study": v.study_name, "trial": v.trial_number, "metric": v.metric,
            "mode": str(v.mode), "value": v.value, "params": v.params, **money("run_cost", v.run_cost_micros),
            **money("reach_cost", v.reach_cost_micros), "artifact_path": v.artifact_path,
            "created_at": v.created_at.replace(tzinfo=v.created_at.tzinfo or UTC).astimezone(UTC)
            .strftime("%Y-%m-%dT%H:%M:%SZ")}
