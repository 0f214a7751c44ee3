"""Hyperband and successive halving with money as the resource, planned to fit a dollar budget.

Hyperband (Li et al.) hedges between "many cheap trials" and "few trials run long" by running
several brackets: bracket ``s`` starts ``n = ceil((s_max + 1) / (s + 1) * eta**s)`` trials at rung
``s_max - s`` and keeps the top ``1/eta`` at each rung. Here a rung is an amount of dollars spent.
Decisions are asynchronous (the "stop" variant): a trial at a rung is promoted or stopped at once,
within its own bracket, and the plan's per-rung counts become promotion quotas.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from costtune.errors import SpecError
from costtune.history import Mode
from costtune.schedulers.rungs import (
    Competition,
    RungDecision,
    first_above,
    mode_of,
    position,
    ranked,
    rung_ladder,
    usable,
    usd_text,
)
from costtune.words import plural

PLAN_KINDS = ("sh", "hyperband", "bohb")


@dataclass(frozen=True)
class Bracket:
    index: int  # the rung it starts at: 0 = most aggressive (starts at min_usd); s = s_max - index
    rungs: tuple[int, ...]  # micros levels its trials are judged at (ascending; last = max_micros)
    trials_per_rung: tuple[int, ...]  # n_i: how many trials reach rung i (planned); n_0 = trials it starts
    cost_micros: int  # planned money: sum_i n_i * (rungs[i] - rungs[i-1]) with rungs[-1] = 0


@dataclass(frozen=True)
class HyperbandPlan:
    kind: str  # "sh" | "hyperband" | "bohb"
    eta: int
    brackets: tuple[Bracket, ...]
    iterations: int  # how many times the bracket sequence repeats (>= 1)
    total_trials: int
    total_cost_micros: int

    def bracket_of(self, number: int) -> Bracket | None:
        """Trial number -> its bracket; None past ``total_trials``.

        Within one iteration the k-th trial of a bracket holding n trials sits at k / n, ties broken
        by bracket order, so the first ``len(brackets)`` trials are one per bracket and later ones stay
        proportional. The position is computed, not tabulated: a plan may hold millions of trials.
        """
        if number < 0 or number >= self.total_trials:
            return None
        j = number % (self.total_trials // self.iterations)
        sizes = [b.trials_per_rung[0] for b in self.brackets]
        for b, n in enumerate(sizes):
            lo, hi = 0, n - 1
            while lo <= hi:
                k = (lo + hi) // 2
                at = _slot(sizes, b, k)
                if at == j:
                    return self.brackets[b]
                if at < j:
                    lo = k + 1
                else:
                    hi = k - 1
        raise AssertionError(f"trial {number} fell through the bracket interleave")  # pragma: no cover


def _slot(sizes: list[int], b: int, k: int) -> int:
    """Where the k-th trial of bracket b lands in the interleave: how many sort before (k/n_b, b)."""
    n_b = sizes[b]
    before = 0
    for other, n in enumerate(sizes):
        before += -(-k * n // n_b)  # trials of `other` with k'/n < k/n_b
        if other < b and (k * n) % n_b == 0:
            before += 1  # the one with an equal key, earlier bracket first
    return before


def _held(sizes: list[int], b: int, slots: int) -> int:
    """How many of bracket b's trials sit among the first ``slots`` positions of an iteration
    (``_slot`` grows with k, so a bisection: a plan may hold millions of trials)."""
    lo, hi = 0, sizes[b]
    while lo < hi:
        k = (lo + hi) // 2
        if _slot(sizes, b, k) < slots:
            lo = k + 1
        else:
            hi = k
    return lo


def _bracket(ladder: tuple[int, ...], index: int, n0: int, eta: int) -> Bracket:
    rungs = ladder[index:]
    counts = tuple(max(1, n0 // eta**i) for i in range(len(rungs)))
    cost = sum(n * (level - below) for n, level, below in zip(counts, rungs, (0, *rungs[:-1]), strict=True))
    return Bracket(index=index, rungs=rungs, trials_per_rung=counts, cost_micros=cost)


def _plan(kind: str, eta: int, brackets: list[Bracket], iterations: int) -> HyperbandPlan:
    return HyperbandPlan(
        kind=kind, eta=eta, brackets=tuple(brackets), iterations=iterations,
        total_trials=iterations * sum(b.trials_per_rung[0] for b in brackets),
        total_cost_micros=iterations * sum(b.cost_micros for b in brackets),
    )


def study_plan(kind: str, min_micros: int, max_micros: int, eta: int, budget_micros: int | None,
               shaped_for_micros: int | None) -> HyperbandPlan:
    """A study's plan under its cap ``budget_micros`` when its brackets were fitted to ``shaped_for_micros``
    as it began (stored with the study as ``plan_usd_micros``; None: fitted to the cap, as ``plan_brackets``).

    A cap changed since (``--change-cap``) repeats the brackets the study began with as many times as the
    cap holds (at least once); it never reshapes them, since the study's trials ran in them: a plan scaled
    down to fit a small first cap keeps its scaled brackets when the cap is raised.
    """
    if shaped_for_micros is None or shaped_for_micros == budget_micros:
        return plan_brackets(kind, min_micros, max_micros, eta, budget_micros)
    first = plan_brackets(kind, min_micros, max_micros, eta, shaped_for_micros)
    one = first.total_cost_micros // first.iterations
    iterations = first.iterations if budget_micros is None else max(1, budget_micros // one)
    return _plan(kind, eta, list(first.brackets), iterations)


def holds_another_iteration(left_micros: int | None, planned_micros: int, last_micros: int) -> bool:
    """Whether ``costtune run``, at the end of a Hyperband (SH, BOHB) plan, plans one more iteration: when what is
    left of the cap (``left_micros``; None: no cap, so the plan is all there is) holds one, as planned
    (``planned_micros``) or as the plan's last iteration really cost (``last_micros``, every run). Micro-dollars.
    The controller decides by it and ``costtune plan`` forecasts a resumed study's next run by it."""
    needed = min(planned_micros, last_micros)
    return left_micros is not None and needed > 0 and left_micros >= needed


def plan_brackets(kind: str, min_micros: int, max_micros: int, eta: int, budget_micros: int | None) -> HyperbandPlan:
    """Plan Hyperband's brackets in money and fit them to the budget.

    As many whole iterations of the bracket sequence as the budget holds (one without a budget).
    When not even one fits, every bracket's starting count is scaled down by the same factor,
    keeping the shape, and brackets left with no trial drop out. The smallest possible plan is one
    trial run to max_usd; a budget below that raises ``SpecError("budget.usd", ...)``.
    """
    if kind not in PLAN_KINDS:
        raise ValueError(f"kind must be one of {', '.join(PLAN_KINDS)}, got {kind!r}")
    ladder = rung_ladder(min_micros, max_micros, eta)
    s_max = len(ladder) - 1
    starts = [0] if kind == "sh" else list(range(s_max + 1))
    sizes = [-(-(s_max + 1) * eta ** (s_max - j) // (s_max - j + 1)) for j in starts]
    full = [_bracket(ladder, j, n, eta) for j, n in zip(starts, sizes, strict=True)]
    one = sum(b.cost_micros for b in full)
    if budget_micros is None or budget_micros >= one:
        return _plan(kind, eta, full, 1 if budget_micros is None else budget_micros // one)

    # Scale by a factor f = m / n_b: each bracket's count steps up exactly at such fractions, so the
    # best fit is, over the brackets, the largest m / n_b whose plan fits (cost grows with f).
    def scaled(m: int, n_b: int) -> list[Bracket]:
        return [_bracket(ladder, j, n * m // n_b, eta) for j, n in zip(starts, sizes, strict=True) if n * m >= n_b]

    def cost(brackets: list[Bracket]) -> int:
        return sum(b.cost_micros for b in brackets)

    best: tuple[int, int] | None = None
    for n_b in sorted(set(sizes)):
        lo, hi, m_best = 1, n_b - 1, 0
        while lo <= hi:
            m = (lo + hi) // 2
            if cost(scaled(m, n_b)) <= budget_micros:
                m_best, lo = m, m + 1
            else:
                hi = m - 1
        if m_best and (best is None or m_best * best[1] > best[0] * n_b):
            best = (m_best, n_b)
    if best is not None:
        return _plan(kind, eta, scaled(*best), 1)
    # The smallest factor still gives one trial to every bracket as large as the first (eta 2 ties two).
    if max_micros <= budget_micros:
        return _plan(kind, eta, [_bracket(ladder, starts[0], 1, eta)], 1)
    raise SpecError(
        "budget.usd",
        f"too small for one trial at scheduler.min_usd {usd_text(min_micros)} to run on to scheduler.max_usd "
        f"{usd_text(max_micros)}: the smallest {kind} plan costs {usd_text(max_micros)}",
        usd_text(budget_micros),
    )


class Hyperband:
    """Asynchronous Hyperband: each bracket is its own competition, with the plan's counts as quotas.

    At rung i of a bracket a trial runs on when it ranks in the top ``max(1, n // eta)`` of the
    values its bracket recorded there so far and fewer than ``iterations * n_{i+1}`` of the bracket's
    trials were promoted past that rung. BOHB takes the very same decisions; only its sampler differs.
    """

    def __init__(self, plan: HyperbandPlan, *, mode: str | Mode) -> None:
        self.plan = plan
        self.kind = plan.kind
        self.eta = plan.eta
        self.mode = mode_of(mode)
        self._levels = tuple(sorted({level for b in plan.brackets for level in b.rungs}))
        self._rungs = {(b.index, level): Competition(self.mode) for b in plan.brackets for level in b.rungs}
        self._trials: int | None = None  # budget.trials (or the sampler's size) when it cuts the plan short
        self._quota = self._quotas()
        self._bracket_cache: dict[int, Bracket | None] = {}

    def limit_trials(self, trials: int | None) -> None:
        """Only ``trials`` trials will exist (budget.trials, or what the sampler can propose; None: the
        plan's). Promotion quotas then come from the trials that exist in each bracket, not from the
        plan's: a plan of 4 iterations cut to 2 by budget.trials promotes what 2 iterations would."""
        self._trials = trials
        self._quota = self._quotas()

    def _quotas(self) -> dict[tuple[int, int], int]:
        """(bracket index, level) -> how many of the bracket's trials may be promoted past that level:
        ``n_{i+1}`` for each whole iteration that exists, and for a last iteration cut short by the
        trial limit the counts of a bracket started with the trials it really holds there."""
        plan = self.plan
        per = plan.total_trials // plan.iterations
        exist = plan.total_trials if self._trials is None else max(0, min(self._trials, plan.total_trials))
        whole, part = divmod(exist, per)
        sizes = [b.trials_per_rung[0] for b in plan.brackets]
        quota: dict[tuple[int, int], int] = {}
        for b, bracket in enumerate(plan.brackets):
            held = _held(sizes, b, part)  # its trials among the first ``part`` of an iteration
            for i, level in enumerate(bracket.rungs[:-1]):
                cut = max(1, held // self.eta ** (i + 1)) if held else 0
                quota[(bracket.index, level)] = whole * bracket.trials_per_rung[i + 1] + cut
        return quota

    def _bracket(self, number: int) -> Bracket | None:
        if number not in self._bracket_cache:
            self._bracket_cache[number] = self.plan.bracket_of(number)
        return self._bracket_cache[number]

    def max_trials(self) -> int | None:
        return self.plan.total_trials

    def iteration_cost(self) -> int:
        """The planned money of one more iteration of the bracket sequence."""
        return self.plan.total_cost_micros // self.plan.iterations

    def last_iteration(self) -> range:
        """The trial numbers of the plan's last iteration (each iteration holds the same number of trials)."""
        per_trials = self.plan.total_trials // self.plan.iterations
        return range(self.plan.total_trials - per_trials, self.plan.total_trials)

    def add_iteration(self) -> None:
        """Plan one more iteration (the controller does so only when the budget still holds a whole one:
        trials that end below their rungs leave money the first plan counted as spent)."""
        per_trials = self.plan.total_trials // self.plan.iterations
        self.plan = dataclasses.replace(
            self.plan, iterations=self.plan.iterations + 1, total_trials=self.plan.total_trials + per_trials,
            total_cost_micros=self.plan.total_cost_micros + self.iteration_cost())
        self._quota = self._quotas()
        self._bracket_cache = {n: b for n, b in self._bracket_cache.items() if b is not None}

    def cover(self, trials: int) -> None:
        """Plan enough iterations for ``trials`` trials (a resumed sweep that had added some)."""
        while self.plan.total_trials < trials:
            self.add_iteration()

    def ladder(self, number: int) -> tuple[int, ...]:
        bracket = self._bracket(number)
        return bracket.rungs if bracket else ()

    def first_rung(self, number: int, spent_micros: int = 0) -> int | None:
        return first_above(self.ladder(number), spent_micros)

    def levels(self) -> tuple[int, ...]:
        return self._levels

    def results_at(self, rung_micros: int) -> dict[int, float]:
        out: dict[int, float] = {}
        for b in self.plan.brackets:
            rung = self._rungs.get((b.index, rung_micros))
            if rung is not None:
                out.update(rung.values())
        return out

    def _rung(self, number: int, rung_micros: int) -> tuple[Bracket, int, Competition]:
        bracket = self._bracket(number)
        if bracket is None:
            raise ValueError(f"trial {number} is beyond the plan's {plural(self.plan.total_trials, 'trial')}")
        i = position(bracket.rungs, rung_micros)
        return bracket, i, self._rungs[(bracket.index, rung_micros)]

    def record(self, number: int, rung_micros: int, value: float | None, promoted: bool) -> None:
        _, _, rung = self._rung(number, rung_micros)
        rung.record(number, value, promoted)

    def note_finished(self, number: int, rung_micros: int, value: float) -> None:
        """A trial that ended on its own below this rung: its final value, for ``results_at`` only."""
        _, _, rung = self._rung(number, rung_micros)
        rung.finished[number] = value

    def judge(self, number: int, rung_micros: int, value: float | None) -> RungDecision:
        bracket, i, rung = self._rung(number, rung_micros)
        if not usable(value):
            rung.discard(number)
            return RungDecision(False, None, f"no result by the {usd_text(rung_micros)} rung")
        assert value is not None
        rank = rung.add(number, value)
        if i == len(bracket.rungs) - 1:
            return RungDecision(False, None, f"ran to max_usd ({usd_text(rung_micros)})")  # complete, not stopped
        return ranked(rung, number, rank, self.eta, rung_micros, bracket.rungs[i + 1],
                      f"of bracket {bracket.index} ", self._quota[(bracket.index, rung_micros)])


class SuccessiveHalving(Hyperband):
    """Successive halving: Hyperband with only its most aggressive bracket, started at min_usd."""

    def __init__(self, plan: HyperbandPlan, *, mode: str | Mode) -> None:
        if plan.kind != "sh" or len(plan.brackets) != 1:
            raise ValueError("successive halving runs a one-bracket 'sh' plan")
        super().__init__(plan, mode=mode)
