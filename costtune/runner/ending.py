"""When a sweep ends, and why: one end condition, a stop reason computed from facts, fail-fast.

A run ends when none of its attempts is live, the last claim found nothing it could run (no trial
queued that the cap can fund, and the sampler, the plan and ``budget.trials`` allow no new one),
and no trial of the study runs under another live controller: several ``costtune run`` processes
may share a study, and one whose own work is done waits for the others (taking over what they
re-queue or leave behind when they die) instead of ending early.

Two things end a run early with an error: ``budget.max_failures`` trials failing in a row (a
crashing or mistyped script), and a first finished trial that reported metrics but never the
objective (``objective.metric`` is misspelt): nothing more is launched and the error says why.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from costtune.errors import CosttuneError, InputError
from costtune.history import TrialState
from costtune.money import format_usd
from costtune.store.owner import describe_owner, is_alive
from costtune.words import plural

if TYPE_CHECKING:
    from costtune.providers.base import Provider
    from costtune.runner.attempts import LiveAttempt
    from costtune.runner.status import RunStatus
    from costtune.schedulers import RungScheduler
    from costtune.spec import SweepSpec
    from costtune.store import Store
    from costtune.study import Study

# Rung trials judged at their top rung's money without one report, while no attempt ever reported, that stop
# all launching: one may be a trial's own fault, three in a row are the sweep's (``_count_unreported``).
UNREPORTED_LIMIT = 3
_WAIT_S = 0.5  # wall-clock pause between looks at what other controllers of the study still run
LIMIT, BUDGET = "limit", "budget"  # why the last claim gave nothing
_OBSERVE_S = 2.0  # wall seconds between reads of the study's figures for the progress line
_NOTE_REFRESH_S = 1.0  # wall seconds a history-reading idle note is reused while the loop's state holds


def tail_words(left: int, needed: int, where: str) -> str:
    """Why no trial starts at the end of a budget (micro-dollars): ``budget: $0.0032 left cannot carry a
    trial to its first report (~$0.0067 on m5.large on-demand)``."""
    return (f"budget: {format_usd(left)} left cannot carry a trial to its first report "
            f"(~{format_usd(needed)} on {where})")


class Ending:
    """Mixed into ``SweepController``; uses its fields."""

    _note_cache: tuple[tuple[object, ...], float, str] | None = None  # (loop state, when, note)

    spec: SweepSpec
    study: Study
    store: Store
    provider: Provider
    rungs: RungScheduler | None
    scope: str
    status: RunStatus
    virtual: bool
    _live: dict[int, LiveAttempt]
    _stopping: str | None
    _max_trials: int | None
    _claimable: bool  # worth claiming: something may have changed since a claim last gave nothing
    _idle: str  # LIMIT or BUDGET: why the last claim gave nothing
    _short: tuple[int, int]  # BUDGET: room left under the cap and what the unfunded trial needed (micros)
    _short_at: str | None  # BUDGET: the placement whose cost to a first report the room cannot carry
    _short_tail: bool  # BUDGET: the room covered a minimum charge (claims.py)
    _denied: str | None  # BUDGET: why a spend policy refused the last launch (admission.py)
    _halt: str | None  # "failures" | "objective" | "unreported": launch nothing more, end with status.error
    _first_ms: dict[str | None, list[int]]  # instance type -> billable ms at first reports in this run
    _first_ms_before: dict[str | None, list[int]]  # the same for the study's earlier runs
    _unreported_before: int  # the same, of the study's earlier runs (recovery.py)
    _unreported: int  # rung trials judged at their top rung's money without one report, while none ever reported
    _failures_in_a_row: int
    _last_failure: tuple[int, str] | None  # number and error of the latest failed trial of this run
    _streak_before: int  # failed trials in a row the study held when this run began (0 once one succeeds)
    _waiting_for: int  # trials other controllers run while this one has nothing to do
    _holders: list[str]  # the live controllers that run them (store.owner names), set with it
    _objective_seen: bool | None  # some trial of the study reported the objective (None: not looked yet)

    # provided by the controller and its other parts (annotations only: nothing here overrides them)
    _warn: Callable[[str], None]
    _paused_note: Callable[[], str]  # control.py: why launches are paused ("" when they are not)
    _recover: Callable[[], None]
    _another_iteration: Callable[[], bool]

    # -- the end condition ----------------------------------------------------------------
    _observed_at = float("-inf")

    def _observe_study(self, *, now: bool = False) -> None:
        """Read the study's finished trials, spend and best from the store (other controllers of the study
        included) into the status the progress line shows; at most every ``_OBSERVE_S`` unless ``now``."""
        at = time.monotonic()
        if not now and at - self._observed_at < _OBSERVE_S:
            return
        self._observed_at = at
        history = self.study.history()
        best = history.best()
        self.status.observe(sum(t.state.finished for t in history.trials),
                            sum(t.state == TrialState.FAILED for t in history.trials), history.spent_micros,
                            None if best is None else best.value, None if best is None else best.number)

    def _ended(self) -> bool:
        """Called when this controller has nothing live and nothing to launch: True to end the run.

        Otherwise it has just waited a moment for other controllers' trials and made the next claim
        worth trying (they may re-queue a trial or free money)."""
        if self._stopping or self._halt:
            self.status.stop_kind, self.status.stop_reason = self._stop_why()
            return True
        if self._another_iteration():
            return False
        self._waiting_for = self._running_elsewhere()
        if not self._waiting_for:
            self.status.stop_kind, self.status.stop_reason = self._stop_why()
            self.status.note = ""
            return True
        self._observe_study()  # what the other controllers' trials finish and spend while this one waits
        self.status.note = self._idle_note()
        time.sleep(_WAIT_S)
        self._claimable = True
        return False

    def _running_elsewhere(self) -> int:
        """How many of the study's trials other live controllers run; a dead one's are re-queued."""
        running = self.store.running_elsewhere(self.study.id, self.study.owner)
        if any(not owner or not is_alive(owner, beat) for owner, beat in running):
            self._recover()  # as at a run's start: billed from their own facts, re-queued for this one to run
            running = self.store.running_elsewhere(self.study.id, self.study.owner)
        # what is left running without a live controller (another host's attempt, left open) is not waited for
        alive = [owner for owner, beat in running if owner and is_alive(owner, beat)]
        self._holders = sorted(set(alive))
        return len(alive)

    # -- why it ended ---------------------------------------------------------------------
    def _stop_reason(self) -> str:
        """The reason, from the facts at the end (never from a flag set earlier in the run)."""
        return self._stop_why()[1]

    def _stop_why(self) -> tuple[str, str]:
        """The kind of the end (``RunStatus.stop_kind``: interrupted, failures, objective, policy, budget or
        limit) and its reason, from the facts at the end."""
        if self._stopping == "interrupted":
            return "interrupted", "interrupted"
        if self._halt == "failures":
            return "failures", self._failures_reason()
        if self._halt == "objective":
            return "objective", f"no trial reports objective.metric {self.study.metric!r}"
        if self._halt == "unreported":
            n, earlier = self._unreported + self._unreported_before, self._unreported_before
            before = f", {earlier} of them in an earlier run," if earlier else ""
            return "unreported", (f"{plural(n, 'trial')}{before} spent the top rung's money without one report "
                                  "(scheduler.max_usd)")
        trials = self.study.history().trials
        queued = sum(t.state == TrialState.QUEUED for t in trials)
        if queued and self._denied:  # a spend policy refused the launch (admission.py)
            return "policy", f"{self._denied}; {plural(queued, 'queued trial')} {'waits' if queued == 1 else 'wait'}"
        if queued:  # queued trials always run first: what keeps them waiting is money
            return BUDGET, self._budget_reason(queued)
        held, limit = len(trials), self._max_trials
        if self._idle == BUDGET and self._denied and (limit is None or held < limit):
            return "policy", self._denied
        if self._idle == BUDGET and (limit is None or held < limit):
            return BUDGET, self._budget_reason(0)
        cut = self.status.budget_stops
        if cut and self.spec.budget.usd_micros is not None:
            # The trial limit was reached, but the cap stopped trials of this run before their end (spent
            # reached it, to the micro-dollar or within a charge): the money ended the sweep, not the count.
            return BUDGET, (f"{self._budget_reason(0)}; it stopped {plural(cut, 'trial')} before "
                            f"{'its' if cut == 1 else 'their'} end")
        return LIMIT, self._why_exhausted(held)

    def _budget_reason(self, queued: int) -> str:
        cap = self.spec.budget.usd_micros
        # The study's books, not this run's tally: another controller may have spent on the same study.
        spent = self.store.balance(self.scope).spent_micros
        text = f"budget.usd reached: {format_usd(spent)} of {format_usd(cap or 0)} spent"
        left = 0 if cap is None else cap - spent - self.store.balance(self.scope).reserved_micros
        tail = self._short_at is not None and left > 0 and self._short_tail
        if tail:  # money is left (at least a minimum charge), but too little to reach a first report
            text = tail_words(left, self._short[1], self._short_at)
        if queued:
            text += f"; {plural(queued, 'queued trial')} {'waits' if queued == 1 else 'wait'} for more budget"
            if self._short_at is not None and not tail:  # the budget's end: still say what the waiting trials need
                text += f" (~{format_usd(self._short[1])} to a first report on {self._short_at})"
        return text

    def _why_exhausted(self, held: int | None = None) -> str:
        """Why no new trial may start; ``held``: how many trials the study holds (read when None)."""
        limit = self._max_trials
        if held is None:
            held = self.store.trial_count(self.study.id)
        trials = self.spec.budget.trials
        if trials is not None and held > trials:  # queued (enqueue, sampler.configs) while budget.trials was higher
            return (f"the study holds {plural(held, 'trial')}, more than budget.trials ({trials}): all have run "
                    "(budget.trials)")
        if limit is not None and trials == limit:
            return f"{'all ' if limit != 1 else ''}{plural(limit, 'trial')} run (budget.trials)"
        if limit is not None and self.rungs is not None and self.rungs.max_trials() == limit:
            return f"the {self.rungs.kind} plan's {plural(limit, 'trial')} {'has' if limit == 1 else 'have'} run"
        kind = self.spec.sampler["type"]
        if kind == "grid":
            return "every grid combination has run"
        if kind == "manual" or (limit is not None and limit == len(self.spec.sampler.get("configs", []))):
            return "every configuration in sampler.configs has run"
        return "the sampler has nothing left to propose"

    def _idle_note(self) -> str:
        """Why fewer trials run than ``resources.workers`` asks for (empty when all slots run).

        Called every tick; the reasons that read the study's history are recomputed when the loop's
        state changes or after ``_NOTE_REFRESH_S`` of wall time, not on every tick (a halted sweep with
        free slots read its whole history each tick)."""
        if len(self._live) >= self.spec.resources.workers:
            return ""
        if self._paused_note() and not self._halt:  # kept on the last line of a run interrupted while paused
            return self._paused_note()
        if self._stopping:
            return ""
        key = (len(self._live), self._halt, self._waiting_for, self._idle, self._short, self._denied)
        now = time.monotonic()
        cached = self._note_cache
        if cached is not None and cached[0] == key and now - cached[1] < _NOTE_REFRESH_S:
            return cached[2]
        note = self._fresh_idle_note()
        self._note_cache = (key, now, note)
        return note

    def _fresh_idle_note(self) -> str:
        if self._halt:
            return "launching nothing more: " + self._stop_reason()
        if self._waiting_for:
            return self._waiting_words()
        if self._idle == BUDGET and self._denied:
            return f"launch refused: {self._denied}"
        if self._idle == BUDGET:
            room, needed = self._short
            held = "running trials hold the rest; " if self._live else ""
            return (f"budget.usd: {format_usd(room)} left, {held}a trial needs {format_usd(needed)} to start")
        return "no more trials to start: " + self._why_exhausted()

    def _waiting_words(self) -> str:
        """``waiting: another run (pid 4242 on host-a) holds the remaining trials and budget: 2 trials
        running, $0.028 held``: who keeps this run from claiming anything while it has nothing of its own."""
        holders = [describe_owner(owner) for owner in self._holders]
        who = (f"another run ({holders[0]})" if len(holders) == 1 else
               f"{len(holders)} other runs ({', '.join(holders)})" if holders else "another run")
        _cap, _spent, held = self.store.balance(self.scope)
        money = f", {format_usd(held)} held" if held > 0 else ""
        verb = "hold" if len(holders) > 1 else "holds"
        return (f"waiting: {who} {verb} the remaining trials and budget: "
                f"{plural(self._waiting_for, 'trial')} running{money}")

    # -- outcomes that end a run early ----------------------------------------------------
    def _failure_streak(self) -> int:
        """Failed trials since the study's last trial that ended otherwise (complete or stopped), in the
        order they ended, counting earlier runs of the study: the failures `costtune trials` shows last."""
        ended = [t for t in self.study.history().trials if t.state.finished and t.finished_at is not None]
        streak = 0
        for t in sorted(ended, key=lambda t: (t.finished_at, t.number), reverse=True):
            if t.state != TrialState.FAILED:
                break
            if (t.error or "").startswith("denied: "):  # refused by a policy rule, never launched
                continue
            streak += 1
        return streak

    def _count_outcome(self, number: int, state: TrialState, error: str | None) -> None:
        """Fail fast: ``budget.max_failures`` failed trials in a row stop all launching. The streak
        counts from the store, so a resumed study continues its earlier run's streak: one that stopped
        on failures stops again at its next failure unless a trial succeeds first."""
        limit = self.spec.budget.max_failures
        if state == TrialState.FAILED:
            self._last_failure = (number, (error or "no reason stored").strip())
            self._failures_in_a_row = self._failure_streak() if limit else self._failures_in_a_row + 1
            if limit and self._failures_in_a_row >= limit and self._halt is None:
                self._halt = "failures"
                self._failures_reason()
                self._warn(f"budget.max_failures ({limit}) trials failed in a row: launching no more "
                           "(trials already running finish; the stop reason gives the final count)")
        elif state.finished and self._halt != "failures":  # once it stopped launching, the reason keeps its count
            self._failures_in_a_row = self._streak_before = 0

    def _failures_reason(self) -> str:
        """The stop reason of fail-fast, and ``status.error`` with the last error; the count is read at
        the moment (at the end it includes the trials that were running when launching stopped)."""
        self._failures_in_a_row = max(self._failures_in_a_row, self._failure_streak())
        n, limit = self._failures_in_a_row, self.spec.budget.max_failures
        earlier = self._streak_before
        before = f", {earlier} of them in an earlier run" if earlier > 0 else ""
        number, last = self._last_failure or (None, "no reason stored")
        self.status.error = CosttuneError(
            f"stopped after {plural(n, 'failed trial')} in a row{before} (budget.max_failures: {limit}; 0 never "
            f"stops); the last, trial {number}:\n{last}")
        return f"{plural(n, 'trial')} failed in a row{before} (budget.max_failures)"

    def _count_unreported(self, live: LiveAttempt) -> None:
        """A rung trial was judged at its top rung's money without one report. While no attempt of the study
        has ever reported, ``UNREPORTED_LIMIT`` of them in this run stop all launching: every trial's start-up
        outruns ``max_usd`` at its rate (or the trial prints no report lines), and each further trial would
        spend its whole ladder for nothing."""
        if self._halt or self._first_ms or any(self._first_ms_before.values()):
            return
        self._unreported += 1
        if self._unreported + self._unreported_before < UNREPORTED_LIMIT:
            return
        top = self.rungs.ladder(live.number)[-1] if self.rungs is not None else 0
        seconds = top / live.rate * 3600 if live.rate else 0.0
        self._halt = "unreported"
        n, earlier = self._unreported + self._unreported_before, self._unreported_before
        before = f", {earlier} of them in an earlier run," if earlier else ""
        self.status.error = CosttuneError(
            f"{plural(n, 'trial')}{before} spent their top rung's money ({format_usd(top)} scheduler.max_usd, "
            f"about {seconds:.1f} s at {format_usd(live.rate)}/h) without one report, and no trial of study "
            f"{self.study.name!r} has reported yet: a trial's start-up (interpreter, imports, data) takes longer "
            "than that, or it prints no `costtune:report` lines. Nothing more was launched; raise scheduler.max_usd "
            f"(and min_usd), or see a trial's output with `costtune trials {self.study.name} {live.number}`")
        self._warn(f"{plural(n, 'trial')}{before} spent the top rung's money without one report: launching "
                   "no more (trials already running finish; the stop reason says what to change)")

    def _check_objective(self, live: LiveAttempt, reported: set[str]) -> None:
        """A trial ended having reported metrics but never the objective, and no trial ever did:
        ``objective.metric`` is wrong. Stop at once rather than burn every trial."""
        if not reported or self._halt or self.study.metric in reported:
            return
        if self._objective_seen is None:
            self._objective_seen = any(t.value is not None for t in self.study.history().trials)
        if self._objective_seen:
            return  # the objective works for other trials: this one is the trial's own fault
        names = sorted(reported)
        close = difflib.get_close_matches(self.study.metric, names, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        self._halt = "objective"
        self.status.error = InputError(
            f"objective.metric: no trial reports {self.study.metric!r}: trial {live.number} reported "
            f"{', '.join(names)}{hint} Nothing more was launched; fix objective.metric in the sweep file "
            f"and run it under a new name (--name)")
        for other in self._live.values():  # let nothing else burn: stop and re-queue the rest
            if other is not live and other.stop_reason is None:
                other.stop_reason = "interrupted"
