"""The schedules page's data: every schedule with its timing, next fire time and latest runs, and
every model version the scheduled runs published (which one each model serves now)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from costtune.schedules.records import iso as iso_z
from costtune.schedules.records import run_record
from costtune.server.dashboard.queries import iso

if TYPE_CHECKING:
    from costtune.store import Store

RUNS_SHOWN = 5


def schedules_overview(store: Store) -> dict[str, Any]:
    """``{"schedules": [...], "models": [...]}``: times ISO 8601 UTC, money integer micro-dollars.

    A schedule's ``study`` is the study of its latest run (None before one), ``next_run`` None while
    it is paused (``costtune schedule list`` shows ``-``). Schedule times are named and written as
    ``costtune schedule list --format json`` writes them (``next_run``, ``fire_time``, ``finished_at``:
    ``2026-03-07T02:00:00Z``); each run is the CLI's record (``run_record``) with its summary."""
    schedules = []
    for info in store.list_schedules():
        runs = store.schedule_runs(info.id, limit=RUNS_SHOWN)
        schedules.append({
            "name": info.name, "timing": info.trigger.describe(), "trigger": info.trigger.to_dict(),
            "paused": info.paused, "next_run": None if info.paused else iso_z(info.next_fire_s),  # the CLI's "-"
            "study": next((r.study_name for r in runs if r.study_name), None),  # its latest run's study
            "sweep_name": info.sweep.get("name"),  # the sweep file's name; each run is a study NAME-YYYYmmdd-HHMM
            "runs": [{**run_record(r), "summary": r.summary} for r in runs],
        })
    models = [{"model": v.model, "version": v.version, "ref": v.ref, "study": v.study_name, "trial": v.trial_number,
               "metric": v.metric, "mode": str(v.mode),
               "value": v.value if math.isfinite(v.value) else None, "params": v.params,
               "run_cost_micros": v.run_cost_micros, "reach_cost_micros": v.reach_cost_micros,
               "promoted": v.promoted, "note": v.note, "artifact_path": v.artifact_path,
               "created_at": iso(v.created_at)} for v in store.model_versions()]
    return {"schedules": schedules, "models": models}
