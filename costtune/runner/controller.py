"""The sweep controller: one event loop, one code path for every provider and every clock.

Each tick reads what running attempts reported, makes the decisions that are due (a rung reached,
a reservation used up, a time limit, a stop), closes attempts that ended (completed, failed, or
preempted: re-queued, not failed), and fills free worker slots: claim a trial, reserve its next
segment of money in the ledger, book the attempt, launch it. Then it waits: on a wall clock a
short sleep, on a virtual clock a jump to the next moment anything happens (a step end, a
preemption, a deadline), so a simulated 10,000-trial sweep runs in seconds.

Money: no launch without a reservation, and an attempt is stopped when its spend reaches what it
reserved unless the scheduler promotes it (which reserves the next rung first). Spend therefore
never passes ``budget.usd`` on a virtual clock, and on a wall clock only by what running attempts
bill between a deadline and their termination (see README, "How far can spend pass the cap?").

Its parts: claims.py (what to launch, with what money), decisions.py (reading reports, rung
verdicts), finishing.py (booking an attempt that ended), ending.py (when the run ends and why,
fail-fast), recovery.py (start and Ctrl-C), waking.py (which attempts a tick looks at, and when the
next tick comes). One attempt's trouble never stops the loop: each attempt is handled inside a
savepoint, and whatever goes wrong fails that trial with the error stored.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from contextlib import nullcontext
from datetime import datetime
from pathlib import Path

from costtune.clock import Clock, VirtualClock, WallClock
from costtune.history import TrialState
from costtune.providers.base import Provider, ProviderError
from costtune.runner.admission import Admission
from costtune.runner.attempts import LiveAttempt, launch_request
from costtune.runner.claims import Claims
from costtune.runner.control import Control
from costtune.runner.curving import Curving
from costtune.runner.decisions import Decisions
from costtune.runner.ending import LIMIT, Ending
from costtune.runner.finishing import Finishing
from costtune.runner.firststeps import first_steps
from costtune.runner.placing import Placing
from costtune.runner.recovery import Recovery, catch_signals
from costtune.runner.status import RunStatus, short_params, write_header
from costtune.runner.waking import Waking
from costtune.schedulers import make_curve_scheduler, make_rung_scheduler
from costtune.spec import SweepSpec
from costtune.store.heartbeat import Heartbeat
from costtune.study import Study

log = logging.getLogger(__name__)
_GROUP_S = 0.25  # a simulated world commits its books at least this often (wall time)
# On a wall clock a deadline is noticed up to a tick late and termination takes a moment: act this
# much early, so a trial stopped at its reservation rarely starts another billing second.
_LEAD_MS = 150
_RECLAIM_S = 1.0  # on a wall clock, look for new work this often when the last claim found none

__all__ = ["RunStatus", "SweepController"]


class SweepController(Finishing, Decisions, Curving, Claims, Placing, Ending, Recovery, Control, Admission,
                      Waking):
    def __init__(self, spec: SweepSpec, study: Study, provider: Provider, *,
                 on_event: Callable[[str], None] | None = None, workdir: str | None = None,
                 clock: Clock | None = None, trial_events: bool = True,
                 on_warning: Callable[[str], None] | None = None, every_report: bool = True,
                 calendar: Callable[[], datetime] | None = None) -> None:
        """``on_event`` gets progress messages (hidden by ``--quiet``); ``on_warning`` gets what a
        user must see even then (metric lines, fail-fast, rung advice, policy verdicts and alerts),
        by default logged at INFO. ``every_report=False`` (a forecast, whose store is thrown away)
        stores only the last report of each read of an attempt: the trial's totals and every decision
        are the same. ``calendar``: aware UTC now, for policy windows (admission.py)."""
        self.spec = spec
        self.study = study
        self.store = study.store
        self.provider = provider
        self.clock: Clock = clock or getattr(provider, "clock", None) or WallClock()
        self.virtual = isinstance(self.clock, VirtualClock)
        self.status = RunStatus()
        self.billing = spec.resources.billing
        self.rungs = make_rung_scheduler(spec.scheduler, mode=str(spec.mode), budget_micros=spec.budget.usd_micros)
        if hasattr(self.rungs, "limit_trials"):  # a plan cut short by budget.trials promotes what its trials hold
            self.rungs.limit_trials(spec.max_trials)  # type: ignore[union-attr]
        self.curve = make_curve_scheduler(spec.scheduler, mode=str(spec.mode))
        self.scope = f"study:{study.id}"
        self._on_event = on_event or (lambda _msg: None)
        self._warn = on_warning or log.info
        self._trial_events = trial_events
        self._workdir = str(Path(spec.workdir or workdir or ".").expanduser().resolve())
        self._live: dict[int, LiveAttempt] = {}
        self._tags: dict[str, str] | None = None
        self._by_key: dict[str, LiveAttempt] = {}
        self._take_reports = getattr(provider, "take_reports", None)
        self._every_report = every_report
        limit = spec.budget.trial_seconds
        self._limit_ms = None if limit is None else round(limit * 1000)
        # (clock time, seq, attempt id, deadline ms) of every deadline set; stale entries are skipped
        self._deadlines: list[tuple[float, int, int, int]] = []
        self._seq = itertools.count()
        self._stopping: str | None = None  # "interrupted": running attempts are being stopped
        self._claimable = True  # worth claiming: something may have changed since a claim last gave nothing
        self._idle = LIMIT  # why the last claim gave nothing: LIMIT (no trial to start) or BUDGET
        self._short = (0, 0)  # BUDGET: room left under the cap, and what the unfunded trial needed
        self._short_least: int | None = None  # the least an unfunded claim of the last fill needed
        self._short_at: str | None = None  # BUDGET: the placement a first report was too dear on (claims.py)
        self._short_tail = True  # BUDGET: the room covered a minimum charge (a tail, not the end; claims.py)
        self._claimed_at = 0.0  # wall time of the last claim that gave nothing
        # "failures" | "objective" | "unreported": launch nothing more (status.error says why)
        self._halt: str | None = None
        self._unreported = 0  # rung trials judged at their top rung's money without one report (ending.py)
        self._unreported_before = 0  # the same, of the study's earlier runs (set when the run starts)
        self._failures_in_a_row = 0
        self._last_failure: tuple[int, str] | None = None
        self._streak_before = 0  # set from the store when the run starts (fail-fast counts across resumes)
        self._waiting_for = 0
        self._holders: list[str] = []  # the live controllers running them (ending.py)
        self._objective_seen: bool | None = None
        self._credited: dict[int, int] = {}  # trial number -> rung level it was last promoted at (decisions.py)
        self._first_ms: dict[str | None, list[int]] = {}  # instance type -> billable ms at first reports
        # the same, for the study's attempts before this run: what a launch must carry it to (claims.py)
        self._first_ms_before = study.store.first_report_ms(study.id)
        # before any is measured, a simulated sweep's time to a first report as `costtune plan` counts it
        self._first_steps = first_steps(spec)
        self._paid: dict[int, int] = {}  # trial number -> start-up spend of its attempts in this run
        self.status.workers = spec.resources.workers
        self._kill_now = False  # asked twice to stop: running attempts are killed without their grace
        self._launched_at_extension = -1  # status.launched when the plan last grew by an iteration
        self._checkpoints = spec.resources.simulation.checkpoint if spec.resources.simulation else False
        self._price_warnings: set[str] = set()
        self._placement_notes: dict[int, str] = {}  # trial id -> why the budget moved it (placing.py)
        # BOHB's model proposes, unless the study's sampler is manual (stored before that pair was refused):
        # a manual study runs only its configs
        if self.rungs is not None and self.rungs.kind == "bohb" and spec.sampler["type"] != "manual":
            from costtune.samplers import make_sampler
            from costtune.samplers.rung_model import RungModelSampler

            inner = study.sampler if spec.sampler["type"] == "bayes" else make_sampler({"type": "bayes"})
            study.sampler = RungModelSampler(inner, self.rungs, min_points=spec.scheduler.get("min_points"))
        set_rates = getattr(getattr(study.sampler, "inner", study.sampler), "set_rates", None)
        if set_rates is not None and (spec.resources.instance_choices or spec.resources.market_choices):
            res = spec.resources  # a cost-aware sampler then learns each placement's speed, not its price
            set_rates(lambda params: res.rate_for(*res.placement(params)))
        self._max_trials = self._trial_limit()
        self._setup_policies(calendar)

    # -- public --------------------------------------------------------------------------
    def run(self) -> RunStatus:
        """Run until the sweep is done; Ctrl-C (or SIGTERM) stops it cleanly and raises KeyboardInterrupt.

        Signals only ask the loop to stop: raising at a random point of a busy loop could land in a
        finaliser (and be lost) or between two writes of one decision. The first stops running
        attempts with their grace period, a second kills them now (the loop books them within a few
        ticks), a third interrupts at once (what runs is killed and booked on the way out).
        """
        self._prepare()
        self.store.set_last_stop(self.study.id, None)  # `costtune studies`: no earlier run's reason while this one goes
        beat = nullcontext() if self.virtual else Heartbeat(self.store, self.study.owner, self._charges)
        restore = catch_signals(self.interrupt)
        try:
            with beat:
                try:
                    self._loop()
                except KeyboardInterrupt:
                    if not self.status.stop_reason:
                        self.status.stop_kind, self.status.stop_reason = "interrupted", "interrupted"
                    self._abandon()
                    raise
        finally:
            restore()
            self._close_policies()
            self._record_stop()
            try:  # the last progress line says what the summary under it says
                self._observe_study(now=True)
            except Exception:  # never hides how the run ended
                log.warning("could not read the study's figures for the progress line", exc_info=True)
        self.status.sim_seconds = self.clock.now() if self.virtual else 0.0
        if self._stopping == "interrupted":
            raise KeyboardInterrupt
        return self.status

    def _record_stop(self) -> None:
        """Why this run stopped, for `costtune studies` (nothing when it failed before it knew)."""
        if not self.status.stop_reason:
            return
        try:
            self.store.set_last_stop(self.study.id, self.status.stop_reason)
        except Exception:  # the run's own books are written; a missing reason must not hide how it ended
            log.warning("could not record why the run stopped", exc_info=True)

    def interrupt(self) -> None:
        """Stop claiming; terminate running attempts and re-queue their trials."""
        if self._stopping == "interrupted":
            if self._kill_now:
                raise KeyboardInterrupt  # asked three times: stop here
            self._kill_now = True  # asked twice: no grace period
            return
        self._stopping = "interrupted"
        self.status.stop_kind, self.status.stop_reason = "interrupted", "interrupted"

    # -- the loop ------------------------------------------------------------------------
    def _loop(self) -> None:
        durable = getattr(self.provider, "outlives_controller", True)
        while True:
            done = False
            self._wait_while_paused()
            with nullcontext() if durable else self.store.batch():
                until = time.perf_counter() + _GROUP_S
                while True:
                    with self.store.batch():
                        pending = self._tick()
                    self._launch(pending)  # after the commit when launches outlive us
                    self.status.note = self._idle_note()
                    idle = not self._claimable or self._stopping or self._halt
                    done = not self._live and not pending and bool(idle)
                    if done:
                        break
                    self._advance()
                    if durable or time.perf_counter() >= until or (self._paused and not self._live):
                        break
            if done and self._ended():  # outside the group's transaction: it may wait for others
                return

    def _tick(self) -> list[LiveAttempt]:
        paused = self._obey()
        for live in self._due():
            self._guarded(live, self._step)
        if not self._claimable and not self.virtual and time.monotonic() - self._claimed_at >= _RECLAIM_S:
            self._claimable = True  # another controller or `costtune enqueue` may have queued work
        if not self.virtual:
            self._policy_tick()
            self._observe_study()  # ending.py: the study's figures for the progress line, other runs' included
        return [] if paused else self._fill()

    def _step(self, live: LiveAttempt) -> None:
        if not live.placed:
            self._place(live)
        if self._take_reports is not None:  # the simulator hands reports over as they are, not as lines
            self._read(live, self._take_reports(live.handle))
        else:
            self._read(live, self.provider.output(live.handle, timeout=0))  # type: ignore[call-arg]
        self._check(live)

    def _guarded(self, live: LiveAttempt, step: Callable[[LiveAttempt], None]) -> None:
        """Handle one attempt; whatever goes wrong with it fails that trial, never the sweep."""
        try:
            with self.store.savepoint():
                step(live)
        except Exception as exc:
            log.warning("trial %s: could not handle its output or state", live.number, exc_info=True)
            self._fail_broken(live, exc)

    def _fail_broken(self, live: LiveAttempt, exc: Exception) -> None:
        """Terminate the attempt, book it failed with the error, free its reservation; keep going."""
        live.stop_reason = "failed"
        live.error = f"costtune could not handle this trial: {type(exc).__name__}: {str(exc)[:300]}"
        try:
            with self.store.savepoint():
                self.provider.terminate(live.handle)
                self._finish(live, self.provider.poll(live.handle))
        except Exception:
            log.error("trial %s: could not book its failure; `costtune run` settles it next time",
                      live.number, exc_info=True)
            self._live.pop(live.attempt_id, None)
            self._by_key.pop(live.key, None)
            self.status.running = len(self._live)

    # -- reading and deciding ------------------------------------------------------------
    def _check(self, live: LiveAttempt) -> None:
        status = self.provider.poll(live.handle)
        live.billed_ms = status.billable_ms
        if status.draining:
            return  # it ended; a later tick reads the last of its output and closes it
        if status.running:
            if live.stop_reason is None and self._stopping:
                live.stop_reason = self._stopping
            limit = self.spec.budget.trial_seconds
            if live.stop_reason is None and limit is not None and status.billable_ms >= limit * 1000:
                live.stop_reason = "timeout"
            lead = 0 if self.virtual else _LEAD_MS
            if (live.stop_reason is None and live.deadline_ms is not None
                    and (status.billable_ms >= live.deadline_ms - lead or live.judge_now)):
                live.stop_reason = self._at_deadline(live)
            if live.stop_reason is None:
                return
            live.stop_step = live.step if live.stop_step is None else live.stop_step  # when it was stopped
            # Never waits: it asks for a stop (and, called again on later ticks, escalates after the
            # provider's grace period), so the other trials' deadlines are still seen on time.
            kill = getattr(self.provider, "kill", None) if self._kill_now else None
            (kill or self.provider.terminate)(live.handle)
            status = self.provider.poll(live.handle)
            if status.running:
                return  # it is going; a later tick closes it
        if not self.virtual:  # what an ended process left in its pipe (a provider reports it ended once all is read)
            self._read(live, self.provider.output(live.handle, timeout=0))  # type: ignore[call-arg]
        self._finish(live, status)

    # -- launching ------------------------------------------------------------------------
    def _launch(self, pending: list[LiveAttempt]) -> None:
        if not pending:
            return
        tags = {**self.spec.tags, **self._scope_tags(), "owner": self.study.owner}
        for live in pending:
            request = launch_request(live, command=self.spec.command, env=self.spec.env, workdir=self._workdir,
                                     study=self.study.name, region=self.spec.resources.region, tags=tags,
                                     write_files=self.provider.name != "simulated", objective=self.study.metric,
                                     passthrough=self.spec.env_passthrough)
            write_header(live.trial_dir, live.claimed.attempt_number, request.argv, self.provider.name)
            if request.argv and self.provider.name != "simulated":
                self.store.set_attempt_argv(live.attempt_id, request.argv)  # what `costtune trials` shows
            try:
                live.handle = self.provider.launch(request, live.key)
            except ProviderError as exc:
                with self.store.batch():
                    self.store.finish_attempt(live.attempt_id, exit_reason="failed", billable_ms=0, cost_micros=0)
                    if live.reserved:
                        self.store.release(live.key)
                    self.store.finish_trial(live.claimed.id, TrialState.FAILED, error=str(exc))
                self.status.finished += 1
                self.status.failed += 1
                self._on_event(f"trial {live.number} could not start: {exc}")
                self._count_outcome(live.number, TrialState.FAILED, str(exc))
                continue
            live.launched_at = self.clock.now()
            self._by_key[live.key] = live
            if self.virtual:
                self._watch_deadlines(live)
            pid = getattr(live.handle, "pid", 0)
            if pid:
                self.store.set_attempt_pid(live.attempt_id, pid)
            note = getattr(live.handle, "note", "")  # a cloud launch: where it runs, what was tried first
            if note:
                self.store.add_attempt_note(live.attempt_id, note)  # after the market choice, if any
            self._place(live)
            self._live[live.attempt_id] = live
            self._waiting_for = 0
            self.status.launched += 1
            self.status.running = len(self._live)
            if self._trial_events:
                self._on_event(f"trial {live.number} started: {short_params(live.claimed.params)}")

    def _charges(self) -> dict[int, tuple[int, int]]:
        out = {}
        for live in list(self._live.values()):  # the heartbeat's thread: the last poll's figures, no new poll
            if live.handle is not None:  # (a cloud provider's poll writes to the store and calls the cloud)
                out[live.attempt_id] = (live.billed_ms, self.billing.charge(live.billed_ms, live.rate))
        return out
