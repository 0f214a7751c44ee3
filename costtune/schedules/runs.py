"""One claimed run of a schedule: a study named from the schedule and the fire time, run to its end.

The study is ``<schedule>-<YYYYmmdd-HHMM>`` (the fire time on the schedule's own clock; ``-2``, ...
if that name is taken by something else), created from the sweep content stored on the schedule
(never the file on disk). Its dollar cap is ``run_cap_micros`` -- the schedule's ``--cap``, else the
sweep's ``budget.usd``. A run that is interrupted (SIGTERM to the scheduler) is recorded
``interrupted``; the next scheduler to claim the schedule resumes the same study (finished trials
kept, stopped ones re-queued), before any newer fire time.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from costtune.errors import CosttuneError
from costtune.history import History
from costtune.money import micros_to_usd
from costtune.schedules.publish import build_summary, deliver, register_version
from costtune.schedules.records import iso
from costtune.schedules.warm import WarmStart, WarmStartSampler, build_warm_start
from costtune.spec.schedule_timing import zone
from costtune.store.schedules import RunInfo, ScheduleInfo

log = logging.getLogger(__name__)
DONE = ("finished", "failed", "interrupted")
HEARTBEAT_S = 30


def study_name_for(schedule: ScheduleInfo, fire_s: int, taken: Callable[[str], bool]) -> str:
    local = datetime.fromtimestamp(fire_s, UTC).astimezone(zone(schedule.trigger.tz))
    base = f"{schedule.name}-{local:%Y%m%d-%H%M}"
    name, n = base, 1
    while taken(name):
        n += 1
        name = f"{base}-{n}"
    return name


def run_cap_micros(store: Any, schedule: ScheduleInfo, sweep: dict[str, Any]) -> int | None:
    """The dollar cap of one run: the schedule's own cap, else the sweep's budget.usd (None: none).

    The seam for policy window caps (a team's daily or monthly window, issue 10): when policies land,
    this returns the smaller of this and what the windows that apply have left.
    """
    if schedule.settings.cap_micros is not None:
        return schedule.settings.cap_micros
    usd = (sweep.get("budget") or {}).get("usd")
    from costtune.money import usd_to_micros

    return None if usd is None else usd_to_micros(usd, "budget.usd")


def sweep_for_run(schedule: ScheduleInfo, study_name: str, cap_micros: int | None, warm: WarmStart,
                  seed: int | None) -> dict[str, Any]:
    """The stored sweep with the run's name, cap and warm-start configurations (trimmed to budget.trials)."""
    raw = copy.deepcopy(schedule.sweep)
    raw["name"] = study_name
    base = schedule.settings.workdir
    for key in ("workdir", "output_dir"):  # relative to where `schedule add` ran, not the daemon's directory
        value = raw.get(key)
        if base and isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            raw[key] = str(Path(base) / value)
    if cap_micros is not None:
        raw.setdefault("budget", {})["usd"] = f"{micros_to_usd(cap_micros):f}"  # exact: no float on the way
    sampler = raw.setdefault("sampler", {"type": "random"})
    if seed is not None and sampler.get("type") not in ("grid", "manual"):
        sampler["seed"] = seed
    configs = list(sampler.get("configs") or [])
    limit = (raw.get("budget") or {}).get("trials")
    for config in warm.configs:
        if isinstance(limit, int) and len(configs) >= limit:
            break
        if config not in configs:
            configs.append(config)
    if configs:
        sampler["configs"] = configs
    return raw


def earlier_runs(store: Any, schedule: ScheduleInfo, run: RunInfo) -> list[tuple[str, History]]:
    """(study, history) of the schedule's runs before ``run`` that have a study, newest first."""
    out = []
    for r in store.schedule_runs(schedule.id):
        if r.id == run.id or r.fire_s >= run.fire_s or r.study_name is None or r.state not in DONE:
            continue
        info = store.find_study(r.study_name)
        if info is not None:
            out.append((r.study_name, store.history(info.id)))
    return out


def execute_run(store: Any, schedule: ScheduleInfo, run: RunInfo, *, owner: str, now_s: Callable[[], int],
                say: Callable[[str], None] = log.info,
                on_controller: Callable[[Any], None] | None = None) -> RunInfo:
    """Run the claimed ``run`` to its end; its final record. KeyboardInterrupt (SIGTERM) records it
    ``interrupted`` and propagates; any other error records it ``failed`` with the reason."""
    from costtune.providers import make_provider
    from costtune.runner.controller import SweepController
    from costtune.runner.session import open_sweep
    from costtune.samplers import make_sampler
    from costtune.spec import parse_sweep

    name = run.study_name or study_name_for(schedule, run.fire_s, lambda n: store.find_study(n) is not None)
    store.update_run(run.id, owner=owner, state="running", study_name=name, heartbeat_s=now_s())
    try:
        existing = store.find_study(name)
        seed = None if existing is None else existing.sampler.get("seed")
        cap = run_cap_micros(store, schedule, schedule.sweep)
        settings = schedule.settings
        space_probe = parse_sweep(sweep_for_run(schedule, name, cap, WarmStart(), seed))
        warm = build_warm_start(space_probe.space, space_probe.mode, earlier_runs(store, schedule, run),
                                top_k=settings.warm_start, prior_runs=settings.prior_runs, decay=settings.prior_decay)
        spec = parse_sweep(sweep_for_run(schedule, name, cap, warm, space_probe.sampler.get("seed")))
        say(warm.describe())
        sampler = WarmStartSampler(make_sampler(spec.sampler), warm.prior) if warm.prior else None
        study, resumed = open_sweep(store, spec, sampler=sampler)
        say(f"{'resuming' if resumed else 'starting'} study {name} (cap {_usd(cap)})")
        provider = make_provider(spec.resources.provider, simulation=spec.resources.simulation, metric=spec.metric)
        controller = SweepController(spec, study, provider, on_event=say, workdir=settings.workdir,
                                     trial_events=spec.resources.provider != "simulated", on_warning=say)
        if on_controller is not None:
            on_controller(controller)
        with _Heartbeat(store, run.id, owner, now_s):
            status = controller.run()
    except KeyboardInterrupt:
        store.update_run(run.id, owner=owner, state="interrupted", heartbeat_s=now_s(),
                         reason="the scheduler was stopped; the next scheduler start resumes this study")
        raise
    except Exception as exc:  # the run failed, not the scheduler: recorded, and the next fire time comes
        return record_failure(store, schedule, run, name, exc, owner=owner, now_s=now_s, say=say)
    try:
        return _publish(store, schedule, run, name, study, cap, warm, status, owner=owner, now_s=now_s, say=say)
    except Exception as exc:  # publishing failed: the run is failed, never left running
        return record_failure(store, schedule, run, name, exc, owner=owner, now_s=now_s, say=say)


def record_failure(store: Any, schedule: ScheduleInfo, run: RunInfo, name: str | None, exc: BaseException, *,
                   owner: str, now_s: Callable[[], int], say: Callable[[str], None] = log.info) -> RunInfo:
    """Record ``run`` as ``failed`` with the error (its summary says so, and goes to the file and the
    webhook when it can); the record. ``StoreError`` when another scheduler took the run over."""
    log.warning("run %s of schedule %s failed", run.id, schedule.name, exc_info=not isinstance(exc, CosttuneError))
    reason = f"{type(exc).__name__}: {exc}"
    failed = {"schedule": schedule.name, "study": name, "run_id": run.id, "fire_time": iso(run.fire_s),
              "fire_s": run.fire_s, "state": "failed", "reason": reason,
              "text": f"{schedule.name}: run {name} failed: {reason}"}
    try:
        notes = deliver(failed, schedule)  # a failed night is news too
    except Exception as err:
        notes = [f"summary not delivered: {err}"]
    say(failed["text"])
    return store.update_run(run.id, owner=owner, state="failed", reason="; ".join([reason, *notes]),
                            summary=failed, finished_s=now_s())


def _publish(store: Any, schedule: ScheduleInfo, run: RunInfo, name: str, study: Any, cap: int | None,
             warm: WarmStart, status: Any, *, owner: str, now_s: Callable[[], int],
             say: Callable[[str], None]) -> RunInfo:
    """The model version and the summary of a sweep that ended; the run's final record.

    A run in which no trial produced a value (every trial failed) is recorded ``failed``, its
    summary naming how many trials failed and why the sweep stopped."""
    history = study.history()
    previous = next((r.summary for r in store.schedule_runs(schedule.id)
                     if r.fire_s < run.fire_s and r.state == "finished" and r.summary), None)
    notes: list[str] = []
    try:
        version = register_version(store, schedule, run.id, name, history)
    except Exception as exc:  # the sweep's results stand in the store; the artifact is what failed
        log.warning("model version of %s not published", name, exc_info=not isinstance(exc, CosttuneError))
        version, notes = None, [f"model version not published: {exc}"]
    summary = build_summary(schedule, run, name, history, cap, previous, version, warm.describe(), status.stop_reason)
    notes += deliver(summary, schedule)
    say(summary["text"])
    for note in notes:
        say(f"warning: {note}")
    state = "failed" if history.best() is None else "finished"
    reason = "; ".join(([summary["text"]] if state == "failed" else []) + notes)
    return store.update_run(run.id, owner=owner, state=state, summary=summary, finished_s=now_s(),
                            reason=reason, heartbeat_s=now_s())  # "" clears an earlier note (interrupted)


class _Heartbeat:
    """Marks the run alive every ``HEARTBEAT_S`` while its sweep runs (a thread), so no other scheduler
    takes it over as crashed (``stale_s``, default 300 s), whether a daemon or ``run-now`` runs it."""

    def __init__(self, store: Any, run_id: int, owner: str, now_s: Callable[[], int]) -> None:
        self.args = (store, run_id, owner, now_s)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._beat, name=f"costtune-run-{run_id}-heartbeat", daemon=True)

    def _beat(self) -> None:
        store, run_id, owner, now_s = self.args
        while not self.done.wait(HEARTBEAT_S):
            try:
                store.update_run(run_id, owner=owner, heartbeat_s=now_s())
            except Exception:  # a missed beat never stops a sweep; the stale limit is ten beats
                log.warning("heartbeat of schedule run %s failed", run_id, exc_info=True)

    def __enter__(self) -> _Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.done.set()
        self.thread.join(timeout=5)


def _usd(micros: int | None) -> str:
    from costtune.money import format_usd

    return "none" if micros is None else format_usd(micros)
