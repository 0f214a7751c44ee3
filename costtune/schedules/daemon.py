"""``costtune scheduler``: claim due runs from the store and run them, on APScheduler 3.

The store is the source of truth: APScheduler (a ``BackgroundScheduler`` with an in-memory job
store) only *wakes* the process every ``poll_s`` seconds (the main loop also never sleeps past the
next fire time of any schedule) and runs the built-in jobs (the optional reaper and price refresh).
A running sweep marks its run alive every 30 s (``runs._Heartbeat``). Every wake-up asks the store
to claim due fire times (``Store.claim_due``: one transaction per schedule, the schedule row
locked), so any number of scheduler processes on one store start each run exactly once; a process
that finds a fire time already claimed backs off. Sweeps run one at a time in the main thread of
each process (run more processes for more at once), so signals reach the sweep's controller.

Rules a user relies on (README "Scheduled sweeps"):

- **Misfires**: a fire time that no scheduler claimed within ``misfire_grace`` (default 1 h) is
  recorded ``missed`` and not run. **Coalescing** (default on): several fire times due at once (the
  scheduler was down) start one run, for the newest; the others are recorded ``skipped``.
- **Overlap**: never two runs of one schedule at once; a fire time while a run is unfinished is
  ``skipped`` or ``queued`` (``--overlap``).
- **SIGTERM / Ctrl-C**: claim nothing more; a running sweep stops like an interrupted ``costtune run``
  (running trials are terminated and re-queued, their spend booked), the run is recorded
  ``interrupted``, and the next scheduler that claims the schedule resumes that study first. A
  second signal kills running trials without their grace period. Exit code 130.
- **A run that fails** (its sweep, its publishing, anything but a signal) is recorded ``failed``
  with the error; the daemon logs it and goes on serving every schedule.
- A run whose scheduler died without a word (no heartbeat for ``stale_s``) is resumed the same way.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from costtune.schedules.runs import execute_run, record_failure
from costtune.store.owner import controller_id
from costtune.store.schedules import RunInfo
from costtune.words import plural

log = logging.getLogger(__name__)
STALE_S = 300  # a run with no heartbeat for this long belongs to a dead scheduler


class SchedulerDaemon:
    """Claims and runs due runs. ``clock()`` returns epoch seconds (injectable: tests pass a fake one)."""

    def __init__(self, store: Any, *, clock: Callable[[], float] = time.time, owner: str | None = None,
                 stale_s: int = STALE_S, say: Callable[[str], None] = log.info) -> None:
        self.store = store
        self.clock = clock
        self.owner = owner or controller_id()
        self.stale_s = stale_s
        self.say = say
        self.current: RunInfo | None = None
        self.controller: Any = None
        self.stopping = False

    def now_s(self) -> int:
        return int(self.clock())

    def claim(self) -> tuple[Any, RunInfo] | None:
        """Claim one run (schedules in name order); None when nothing is due for this process."""
        for schedule in self.store.list_schedules():
            try:
                run = self.store.claim_due(schedule.name, now_s=self.now_s(), owner=self.owner, stale_s=self.stale_s)
            except Exception:  # e.g. a schedule removed meanwhile, a row a newer version wrote: skip it, serve the rest
                log.exception("schedule %s: could not claim its due runs", schedule.name)
                continue
            if run is not None:
                return schedule, run
        return None

    def step(self) -> RunInfo | None:
        """Claim one due run and run it to its end; its final record, or None when nothing was due."""
        if self.stopping:
            return None
        claimed = self.claim()
        if claimed is None:
            return None
        schedule, run = claimed
        self.say(f"schedule {schedule.name}: run {run.id} claimed by {self.owner}")
        self.current = run
        try:
            return execute_run(self.store, schedule, run, owner=self.owner, now_s=self.now_s, say=self.say,
                               on_controller=self._attach)
        except Exception as exc:  # one schedule's bad run never stops the daemon serving the others
            log.exception("schedule %s: run %s crashed", schedule.name, run.id)
            self.say(f"schedule {schedule.name}: run {run.id} crashed: {type(exc).__name__}: {exc}")
            try:
                return record_failure(self.store, schedule, run, run.study_name, exc, owner=self.owner,
                                      now_s=self.now_s, say=self.say)
            except Exception:  # the store itself failed: the run goes stale and is retried later
                log.exception("schedule %s: run %s could not be recorded as failed", schedule.name, run.id)
                return run
        finally:
            self.current, self.controller = None, None

    def run_pending(self) -> list[RunInfo]:
        """``step`` until nothing is due; the runs it ran."""
        done = []
        while (run := self.step()) is not None:
            done.append(run)
        return done

    def _attach(self, controller: Any) -> None:
        self.controller = controller

    def serve(self, *, poll_s: float = 15.0, reap_every_s: float | None = None, prices_cron: str | None = None,
              db_url: str | None = None) -> None:
        """Run until SIGTERM / Ctrl-C (raised here as KeyboardInterrupt after recording the run)."""
        from apscheduler.schedulers.background import BackgroundScheduler
        wake = threading.Event()
        jobs = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
        jobs.add_job(wake.set, "interval", seconds=poll_s, id="wake")
        if reap_every_s:
            jobs.add_job(_cli_job, "interval", seconds=reap_every_s, id="reap", args=[["reap"], db_url])
        if prices_cron:
            jobs.add_job(_cli_job, _StandardCron(prices_cron), id="prices",
                         args=[["prices", "refresh", "--provider", "aws"], None])
        jobs.start()
        self.say(f"scheduler {self.owner} started: {plural(len(self.store.list_schedules()), 'schedule')}, "
                 f"polling every {poll_s:g}s")
        try:
            while True:
                self.run_pending()
                wake.wait(self._sleep_for(poll_s))
                wake.clear()
        finally:
            self.stopping = True
            jobs.shutdown(wait=False)

    def _sleep_for(self, poll_s: float) -> float:
        """Until the next fire time of any schedule, at most ``poll_s``."""
        nexts = [s.next_fire_s for s in self.store.list_schedules() if not s.paused and s.next_fire_s is not None]
        if not nexts:
            return poll_s
        return max(0.05, min(poll_s, min(nexts) - self.clock()))


def _standard_cron_trigger_class() -> type:
    from apscheduler.triggers.base import BaseTrigger

    class StandardCron(BaseTrigger):  # type: ignore[misc]
        """An APScheduler trigger with standard cron semantics in UTC (``costtune.spec.cron``)."""

        def __init__(self, expr: str) -> None:
            from costtune.spec.schedule_timing import Trigger

            self.trigger = Trigger(cron=expr, tz="UTC")

        def get_next_fire_time(self, previous_fire_time: Any, now: Any) -> Any:
            from datetime import timedelta

            from costtune.spec.schedule_timing import next_fire

            return next_fire(self.trigger, now - timedelta(microseconds=1))

    return StandardCron


def _StandardCron(expr: str) -> Any:  # noqa: N802 - reads like the class it builds
    return _standard_cron_trigger_class()(expr)


def _cli_job(args: list[str], db_url: str | None) -> None:
    """A built-in job: a costtune command in a child process (its failure is logged, never fatal)."""
    argv = [sys.executable, "-m", "costtune.cli", *args] + (["--db", db_url] if db_url else [])
    result = subprocess.run(argv, capture_output=True, text=True, timeout=3600, check=False)
    level = logging.INFO if result.returncode == 0 else logging.WARNING
    log.log(level, "costtune %s exited %s: %s", " ".join(args), result.returncode,
            (result.stdout + result.stderr).strip()[-500:])
