"""What a finished run leaves behind: a model version, and a summary written to a file and a webhook.

The **model version** of a run is its best trial (complete or stopped, ranked like the leaderboard):
its files (what the trial left in its directory) are copied to ``<artifact root>/<model>/v<N>/``
with a ``model.json`` card (params, metric, value, costs, lineage) beside them, so
``costtune models path`` points at something even for simulated trials that write nothing. The
artifact root is the schedule's ``--artifact-root``, else ``$COSTTUNE_HOME/models``.

The **summary** is JSON: the top of the leaderboard, spend against the cap, the cost of each
improvement, the best metric and cost against the previous run (better / worse / same, with the
delta) and the model version (promoted or not). It goes to ``<summary dir>/<study>.json`` and, when
the schedule has a webhook, in the body of one HTTP POST (``Content-Type: application/json``,
10 s timeout); a failed delivery is noted on the run, never a failed run.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from costtune.errors import CosttuneError, SpecError
from costtune.history import History, Mode, TrialState
from costtune.money import format_usd, usd_text, usd_to_micros
from costtune.schedules.records import iso
from costtune.store.versions import ModelVersion
from costtune.words import plural

TOP = 5
WEBHOOK_TIMEOUT_S = 10.0


def artifact_root(settings: Any) -> str:
    """The schedule's artifact root: a local directory (absolute) or an ``s3://bucket/prefix`` URI."""
    from costtune.store.engine import costtune_home

    if settings.artifact_root and str(settings.artifact_root).startswith("s3://"):
        return str(settings.artifact_root).rstrip("/")
    return str(Path(settings.artifact_root).expanduser() if settings.artifact_root else costtune_home() / "models")


def summary_dir(settings: Any, schedule: str) -> Path:
    from costtune.store.engine import costtune_home

    base = Path(settings.summary_dir).expanduser() if settings.summary_dir else costtune_home() / "schedules"
    return base / schedule if not settings.summary_dir else base


def register_version(store: Any, schedule: Any, run_id: int, study_name: str, history: History) -> ModelVersion | None:
    """Register the run's best trial as the next version of the model named like the schedule; None
    when no trial produced a value. Promotion follows ``schedule.settings.promote``. At most one
    version per run: a run published again (retried after a crash) gets its existing version back."""
    best = history.best()
    if best is None:
        return None
    existing = store.run_version(schedule.name, run_id)
    if existing is not None:  # this run was published before (a retried run): the same version
        return existing
    root = f"{artifact_root(schedule.settings)}/{schedule.name}"
    reach = sum(t.cost_micros for t in history.trials if t.number <= best.number)
    version = store.add_model_version(
        schedule.name, promote=schedule.settings.promote, artifact_path=lambda n: f"{root}/v{n}",
        schedule_id=schedule.id, run_id=run_id, study_name=study_name, trial_number=best.number,
        metric=history.metric, mode=history.mode, value=best.value, params=best.params,
        run_cost_micros=history.spent_micros, reach_cost_micros=reach)
    remote = version.artifact_path.startswith("s3://")
    staging = tempfile.TemporaryDirectory(prefix="costtune-model-") if remote else None
    target = Path(staging.name) if staging is not None else Path(version.artifact_path)
    target.mkdir(parents=True, exist_ok=True)
    copied = _copy_output(best.output_dir, target)
    card = {"model": version.model, "version": version.version, "schedule": schedule.name, "study": study_name,
            "trial": best.number, "metric": history.metric, "mode": str(history.mode), "value": best.value,
            "params": best.params, "run_cost_usd": format_usd(history.spent_micros),
            "reach_cost_usd": format_usd(reach), "promoted": version.promoted,
            "replaced_version": version.replaced_version,
            "files": copied, "trial_dir": best.output_dir}
    (target / "model.json").write_text(json.dumps(card, indent=2, default=str) + "\n", encoding="utf-8")
    if staging is not None:
        from costtune.agent.checkpoints import CheckpointError, checkpoints_at

        try:
            checkpoints_at(version.artifact_path).upload(target)  # boto3's upload_file per file
        except CheckpointError as exc:
            raise CosttuneError(f"model {version.ref}: {exc}") from None
        finally:
            staging.cleanup()
    return version


def _copy_output(trial_dir: str | None, target: Path) -> list[str]:
    """Copy what the trial named with ``log_artifact`` (else its whole directory) into ``target``;
    the names copied, relative to ``target``. A named path that is gone is skipped."""
    from costtune.artifacts import MANIFEST, logged_artifacts

    if not trial_dir or not Path(trial_dir).is_dir():
        return []
    named = logged_artifacts(trial_dir)
    if named is None:
        shutil.copytree(trial_dir, target, dirs_exist_ok=True)
        return sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file() and p.name != "model.json")
    out = []
    for source in map(Path, named):
        if source.is_dir():
            shutil.copytree(source, target / source.name, dirs_exist_ok=True)
        elif source.is_file() and source.name != MANIFEST:
            shutil.copy2(source, target / source.name)
        else:
            continue
        out.append(source.name)
    return out


def improvements(history: History) -> list[dict[str, Any]]:
    """Each new best in trial order: trial, value, spend so far and spend since the previous best."""
    out: list[dict[str, Any]] = []
    spent = 0
    best: float | None = None
    last = 0
    done = {t.number for t in history.completed()}
    for t in sorted(history.trials, key=lambda t: t.number):
        spent += t.cost_micros
        if t.number not in done or t.value is None:
            continue
        if best is None or (t.value < best if history.mode == Mode.MIN else t.value > best):
            best = t.value
            out.append({"trial": t.number, "value": t.value, "spent_usd": usd_text(spent), "spent_micros": spent,
                        "cost_usd": usd_text(spent - last), "cost_micros": spent - last})
            last = spent
    return out


def compare(mode: Mode, value: float | None, previous: float | None) -> dict[str, Any]:
    """better / worse / same (or first / none) with the signed delta of the metric."""
    if value is None:
        return {"verdict": "none", "delta": None}
    if previous is None:
        return {"verdict": "first", "delta": None}
    delta = value - previous
    if abs(delta) <= 1e-12 * max(1.0, abs(previous)):
        return {"verdict": "same", "delta": 0.0}
    wins = delta < 0 if mode == Mode.MIN else delta > 0
    return {"verdict": "better" if wins else "worse", "delta": delta}


def build_summary(schedule: Any, run: Any, study_name: str, history: History, cap_micros: int | None,
                  previous: dict[str, Any] | None, version: ModelVersion | None, warm: str,
                  stop_reason: str | None) -> dict[str, Any]:
    best = history.best()
    ranked = sorted(history.completed(), key=lambda t: t.value, reverse=history.mode == Mode.MAX)  # type: ignore[arg-type, return-value]
    prev_best = _previous_value(previous)
    change = compare(history.mode, None if best is None else best.value, prev_best)
    if previous is not None:
        change["previous_study"] = previous.get("study")
        change["previous_cost_usd"] = _plain(previous.get("spent_usd"))
    lines = {
        "schedule": schedule.name, "study": study_name, "run_id": run.id,
        "fire_time": iso(run.fire_s), "fire_s": run.fire_s,  # ISO 8601 (README), the epoch beside it
        "metric": history.metric, "mode": str(history.mode),
        "trials": len(history.trials),
        "failed_trials": sum(1 for t in history.trials if t.state == TrialState.FAILED),
        "started_trials": sum(1 for t in history.trials if t.attempts > 0),  # launched at least once
        "state": "finished" if best is not None else "failed",
        "spent_usd": usd_text(history.spent_micros),
        "spent_micros": history.spent_micros,
        "cap_usd": usd_text(cap_micros), "cap_micros": cap_micros,
        "stop_reason": stop_reason,
        "best": None if best is None else {"trial": best.number, "value": best.value, "params": best.params,
                                            "cost_usd": usd_text(best.cost_micros), "cost_micros": best.cost_micros},
        "leaderboard": [{"trial": t.number, "value": t.value, "cost_usd": usd_text(t.cost_micros),
                         "cost_micros": t.cost_micros, "params": t.params} for t in ranked[:TOP]],
        "improvements": improvements(history),
        "change": change,
        "model_version": None if version is None else {
            "ref": version.ref, "promoted": version.promoted, "replaced_version": version.replaced_version,
            "note": version.note, "artifact": version.artifact_path},
        "warm_start": warm,
    }
    lines["text"] = summary_text(lines)
    return lines


def _previous_value(previous: dict[str, Any] | None) -> float | None:
    """The best metric value of the previous run's summary; None when it had none (a run where every
    trial failed, a failure summary, an older summary missing fields)."""
    best = previous.get("best") if isinstance(previous, dict) else None
    value = best.get("value") if isinstance(best, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def summary_text(s: dict[str, Any]) -> str:
    """One paragraph a chat channel can show."""
    cap = f" of {_dollars(s['cap_usd'])}" if s["cap_usd"] else ""
    failed = s.get("failed_trials", 0)
    stop = f" Stopped: {s['stop_reason']}." if s.get("stop_reason") else ""
    if s["best"] is None and s["trials"] and s.get("started_trials", s["trials"]) == 0 and not failed:
        # every trial waited in the queue (a policy's window full, its rules): nothing ran, nothing failed
        why = f": {s['stop_reason']}" if s.get("stop_reason") else ""
        return (f"{s['schedule']}: {s['study']} did not run: no trial could start{why}. "
                f"Spent {_dollars(s['spent_usd'])}{cap}. No model version was registered.")
    if s["best"] is None:
        what = "no trials ran" if not s["trials"] else (
            f"all {plural(s['trials'], 'trial')} failed" if failed == s["trials"]
            else f"no trial produced {s['metric']} ({failed} of {plural(s['trials'], 'trial')} failed)")
        return f"{s['schedule']}: {s['study']} FAILED: {what}, spent {_dollars(s['spent_usd'])}{cap}.{stop} " \
               "No model version was registered."
    ran = plural(s["trials"], "trial") + (f" ({failed} failed)" if failed else "")
    text = f"{s['schedule']}: {s['study']} ran {ran}, spent {_dollars(s['spent_usd'])}{cap}.{stop}"
    if s["best"] is not None:
        text += f" Best {s['metric']} {s['best']['value']:.6g} (trial {s['best']['trial']})."
    change = s["change"]
    if change["verdict"] in ("better", "worse", "same"):
        text += f" {change['verdict'].capitalize()} than the previous run ({change.get('previous_study')}): " \
                f"delta {change['delta']:+.6g}; it spent {_dollars(change.get('previous_cost_usd'))}."
    elif change["verdict"] == "first":
        text += " First run of this schedule."
    mv = s["model_version"]
    if mv is not None:
        text += f" Model {mv['ref']} " + ("promoted." if mv["promoted"] else f"registered, {mv['note']}.")
    return text


def deliver(summary: dict[str, Any], schedule: Any) -> list[str]:
    """Write the summary file and POST the webhook; notes of what failed (empty when all went)."""
    notes: list[str] = []
    folder = summary_dir(schedule.settings, schedule.name)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{summary['study']}.json"
        path.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
        summary["file"] = str(path)
    except OSError as exc:
        notes.append(f"summary file not written: {exc}")
    url = schedule.settings.webhook
    if url:
        body = json.dumps(summary, default=str).encode()
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "costtune"})
        try:
            with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_S) as response:
                response.read()
        except (urllib.error.URLError, OSError, ValueError) as exc:
            notes.append(f"webhook {url} failed: {exc}")
    return notes


def _plain(text: Any) -> str | None:
    """A ``*_usd`` of an earlier summary as a plain decimal (summaries before this one wrote ``$0.53``)."""
    return None if text is None else str(text).lstrip("$")


def _dollars(text: Any) -> str:
    """A ``*_usd`` decimal string as the CLI shows money (``$0.533``); "?" when missing or not a number."""
    try:
        return format_usd(usd_to_micros(text, "spent_usd"))
    except SpecError:
        return "?"

