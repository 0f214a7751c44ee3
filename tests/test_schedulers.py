"""Dollar-rung schedulers: ladders, Hyperband plans in money, ASHA/SH decisions, the sweep-file section."""

from __future__ import annotations

import json
import math
import random
import time
from fractions import Fraction
from typing import Any

import pytest

from costtune.errors import SpecError, shown
from costtune.history import FrozenTrial, History, Mode, TrialState
from costtune.schedulers import (
    RUNG_TYPES,
    AshaScheduler,
    Decision,
    FifoScheduler,
    Hyperband,
    SuccessiveHalving,
    make_rung_scheduler,
    plan_brackets,
    rung_ladder,
    scheduler_config,
)

C5, C15, C45, D135 = 50_000, 150_000, 450_000, 1_350_000
LADDER = (C5, C15, C45, D135)


def asha(mode: str = "min", eta: int = 3) -> AshaScheduler:
    return AshaScheduler(rung_ladder(C5, D135, eta), eta, mode=mode)


# --- ladders -------------------------------------------------------------------------------------


def test_ladder_is_min_times_powers_of_eta_in_exact_micros() -> None:
    assert rung_ladder(C5, D135, 3) == LADDER
    assert rung_ladder(1, 8, 2) == (1, 2, 4, 8)


def test_ladder_ends_with_max_when_max_is_not_a_power_rung() -> None:
    assert rung_ladder(C5, 1_000_000, 3) == (C5, C15, C45, 1_000_000)
    assert rung_ladder(C5, 1_400_000, 3) == (*LADDER, 1_400_000)
    ladder = rung_ladder(30_000, 2_000_000, 4)
    assert ladder[-1] == 2_000_000 and list(ladder) == sorted(set(ladder))


@pytest.mark.parametrize(("low", "high", "eta"), [(0, 10, 3), (10, 5, 3), (10, 100, 1), (10, 100, True)])
def test_ladder_rejects_impossible_arguments(low: int, high: int, eta: int) -> None:
    with pytest.raises(ValueError):
        rung_ladder(low, high, eta)


# --- Hyperband plans -----------------------------------------------------------------------------


def test_hyperband_plan_for_eta_3_and_four_rungs_by_hand() -> None:
    plan = plan_brackets("hyperband", C5, D135, 3, None)
    assert plan.iterations == 1
    assert [b.index for b in plan.brackets] == [0, 1, 2, 3]
    assert [b.trials_per_rung for b in plan.brackets] == [(27, 9, 3, 1), (12, 4, 1), (6, 2), (4,)]
    assert [b.rungs for b in plan.brackets] == [LADDER, LADDER[1:], LADDER[2:], LADDER[3:]]
    # 27*$0.05 + 9*$0.10 + 3*$0.30 + 1*$0.90, and so on per bracket
    assert [b.cost_micros for b in plan.brackets] == [4_050_000, 3_900_000, 4_500_000, 5_400_000]
    assert plan.total_trials == 49
    assert plan.total_cost_micros == 17_850_000


@pytest.mark.parametrize(("eta", "rungs"), [(2, 5), (3, 3), (3, 5), (4, 4), (5, 2)])
def test_brackets_follow_the_hyperband_formulas(eta: int, rungs: int) -> None:
    low = 10_000
    plan = plan_brackets("hyperband", low, low * eta ** (rungs - 1), eta, None)
    s_max = rungs - 1
    assert len(plan.brackets) == s_max + 1
    for bracket in plan.brackets:
        s = s_max - bracket.index
        n = math.ceil(Fraction(s_max + 1, s + 1) * eta**s)
        assert bracket.trials_per_rung == tuple(n // eta**i for i in range(s + 1))
        assert bracket.rungs[0] == low * eta**bracket.index  # r = R * eta**-s
        assert bracket.rungs[-1] == low * eta**s_max


def test_sh_is_the_most_aggressive_bracket_alone() -> None:
    plan = plan_brackets("sh", C5, D135, 3, None)
    assert len(plan.brackets) == 1
    assert plan.brackets[0].index == 0 and plan.brackets[0].trials_per_rung == (27, 9, 3, 1)
    assert plan.total_trials == 27


def test_budget_buys_whole_iterations_and_never_more() -> None:
    plan = plan_brackets("hyperband", C5, D135, 3, 40_000_000)  # $40 holds two $17.85 iterations
    assert plan.iterations == 2
    assert plan.total_trials == 98
    assert plan.total_cost_micros == 35_700_000


@pytest.mark.parametrize("kind", ["sh", "hyperband", "bohb"])
@pytest.mark.parametrize("eta", [2, 3, 4])
def test_plan_fits_the_budget_and_uses_at_least_half_of_it(kind: str, eta: int) -> None:
    for budget in range(D135, 25_000_000, 91_000):
        plan = plan_brackets(kind, C5, D135, eta, budget)
        assert plan.total_cost_micros <= budget
        assert plan.total_cost_micros * 2 >= budget, (budget, plan)
        assert plan.total_trials == plan.iterations * sum(b.trials_per_rung[0] for b in plan.brackets)


def test_small_budget_scales_brackets_down_keeping_their_shape() -> None:
    plan = plan_brackets("hyperband", C5, D135, 3, 8_000_000)  # one iteration costs $17.85
    assert plan.iterations == 1
    assert 4_000_000 < plan.total_cost_micros <= 8_000_000
    for b in plan.brackets:
        n0 = b.trials_per_rung[0]
        assert b.trials_per_rung == tuple(max(1, n0 // 3**i) for i in range(len(b.rungs)))
    starts = {b.index: b.trials_per_rung[0] for b in plan.brackets}
    assert starts[0] >= max(starts.values())  # the aggressive bracket stays the largest


def test_budget_for_a_single_full_trial_plans_one_trial() -> None:
    plan = plan_brackets("hyperband", C5, D135, 3, D135)
    assert plan.total_trials == 1 and plan.total_cost_micros == D135
    tie = plan_brackets("hyperband", 100_000, 200_000, 2, 200_000)  # eta 2, two rungs: brackets of 2 and 2
    assert tie.total_trials == 1 and tie.total_cost_micros == 200_000


def test_budget_below_one_full_trial_is_a_spec_error() -> None:
    with pytest.raises(SpecError) as err:
        plan_brackets("hyperband", C5, D135, 3, 1_000_000)
    assert err.value.path == "budget.usd"
    assert "too small for one trial at scheduler.min_usd" in str(err.value)


def test_assignment_is_deterministic_interleaved_and_fills_each_bracket() -> None:
    plan = plan_brackets("hyperband", C5, D135, 3, 40_000_000)
    first = [plan.bracket_of(i) for i in range(plan.total_trials)]
    assert first == [plan.bracket_of(i) for i in range(plan.total_trials)]
    assert {b.index for b in first[: len(plan.brackets)]} == {0, 1, 2, 3}  # early trials cover every bracket
    per_iter = plan.total_trials // plan.iterations
    for bracket in plan.brackets:
        got = sum(1 for b in first[:per_iter] if b is not None and b.index == bracket.index)
        assert got == bracket.trials_per_rung[0]
    assert first[per_iter:] == first[:per_iter]  # iterations repeat the same sequence
    assert plan.bracket_of(plan.total_trials) is None
    assert plan.bracket_of(-1) is None


def test_assignment_matches_a_proportional_merge() -> None:
    plan = plan_brackets("hyperband", 10_000, 10_000 * 2**6, 2, None)
    sizes = [b.trials_per_rung[0] for b in plan.brackets]
    order = sorted((Fraction(k, n), b) for b, n in enumerate(sizes) for k in range(n))
    assert [plan.bracket_of(i) for i in range(plan.total_trials)] == [plan.brackets[b] for _, b in order]


# --- ASHA ----------------------------------------------------------------------------------------


def test_asha_promotes_the_first_trial_at_a_rung() -> None:
    sched = asha()
    decision = sched.judge(0, C5, 0.9)
    assert decision.promote and decision.next_rung_micros == C15
    assert "top 1/3 at $0.05 rung (rank 1 of 1)" in decision.reason


def test_asha_promotes_about_one_in_eta() -> None:
    for eta in (2, 3, 4):
        sched = asha(eta=eta)
        rng = random.Random(eta)
        promoted = sum(sched.judge(i, C5, rng.random()).promote for i in range(4000))
        assert abs(promoted / 4000 - 1 / eta) < 0.05, (eta, promoted)


def test_asha_ranks_by_mode() -> None:
    lo, hi = asha("min"), asha("max")
    for i, v in enumerate([0.5, 0.4, 0.6]):
        lo.judge(i, C5, v)
        hi.judge(i, C5, v)
    assert lo.judge(3, C5, 0.1).promote and not lo.judge(4, C5, 0.9).promote
    assert hi.judge(3, C5, 0.9).promote and not hi.judge(4, C5, 0.1).promote
    assert "below the top 1/3 at $0.05 rung (rank 5 of 5)" in lo.judge(4, C5, 0.9).reason


def test_asha_ties_count_in_the_trials_favour() -> None:
    sched = asha()
    for i in range(3):
        sched.judge(i, C5, 1.0)
    assert sched.judge(3, C5, 1.0).promote  # rank 1 of 4 among equals, top 1


def test_no_result_stops_the_trial() -> None:
    sched = asha()
    decision = sched.judge(0, C15, None)
    assert not decision.promote and decision.next_rung_micros is None
    assert decision.reason == "no result by the $0.15 rung"
    assert not sched.judge(1, C5, float("nan")).promote
    assert sched.results_at(C15) == {} and sched.results_at(C5) == {}


def test_top_rung_ends_a_trial_that_ran_to_max_usd_and_keeps_the_value() -> None:
    """The top rung's verdict: not promoted, and said as a complete run, never a stop."""
    sched = asha()
    decision = sched.judge(7, D135, 0.3)
    assert decision == decision.__class__(False, None, "ran to max_usd ($1.35)")
    assert sched.results_at(D135) == {7: 0.3}


def test_asha_ladder_first_rung_and_levels() -> None:
    sched = asha()
    assert sched.max_trials() is None and sched.kind == "asha"
    assert sched.ladder(12345) == LADDER and sched.levels() == LADDER
    assert sched.first_rung(0) == C5
    assert sched.first_rung(0, C5) == C15  # already judged at $0.05: the next level
    assert sched.first_rung(0, 200_000) == C45
    assert sched.first_rung(0, D135) is None


def test_judge_at_a_level_outside_the_ladder_is_a_bug() -> None:
    with pytest.raises(ValueError):
        asha().judge(0, 60_000, 0.5)


def test_replaying_stored_results_gives_the_same_decisions_as_running_on() -> None:
    rng = random.Random(3)
    values = [rng.random() for _ in range(60)]
    straight = asha()
    decisions = [straight.judge(i, C5, v) for i, v in enumerate(values)]
    resumed = asha()
    for i, (v, d) in enumerate(zip(values[:40], decisions[:40], strict=True)):
        resumed.record(i, C5, v, d.promote)
    assert [resumed.judge(i, C5, v) for i, v in enumerate(values) if i >= 40] == decisions[40:]
    assert resumed.results_at(C5) == straight.results_at(C5)


def test_judging_a_trial_twice_does_not_count_it_twice() -> None:
    sched = asha()
    sched.judge(0, C5, 0.5)
    sched.judge(0, C5, 0.4)
    assert sched.results_at(C5) == {0: 0.4}


def test_ten_thousand_decisions_at_one_rung_are_fast() -> None:
    sched = asha()
    rng = random.Random(0)
    start = time.perf_counter()
    for i in range(10_000):
        sched.judge(i, C5, rng.random())
    assert time.perf_counter() - start < 2.0


# --- successive halving and Hyperband ------------------------------------------------------------


def test_sh_never_promotes_more_than_the_plan() -> None:
    plan = plan_brackets("sh", C5, D135, 3, None)
    sched = SuccessiveHalving(plan, mode="min")
    promoted = {level: 0 for level in LADDER}
    # every trial beats all before it, so ranking alone would promote them all: quotas must bite
    for number in range(plan.total_trials):
        level: int | None = sched.first_rung(number)
        value = 1.0 - number / 1000
        while level is not None:
            decision = sched.judge(number, level, value)
            if not decision.promote:
                break
            promoted[level] += 1
            level = decision.next_rung_micros
    assert promoted == {C5: 9, C15: 3, C45: 1, D135: 0}
    decision = sched.judge(26, C5, 0.0)  # the best value yet, but the quota is used
    assert not decision.promote and "quota of 9 promotions is used up" in decision.reason


def test_hyperband_brackets_compete_separately() -> None:
    sched = Hyperband(plan_brackets("hyperband", C5, D135, 3, None), mode="max")
    by_bracket: dict[int, list[int]] = {}
    for number in range(sched.plan.total_trials):
        bracket = sched.plan.bracket_of(number)
        assert bracket is not None
        by_bracket.setdefault(bracket.index, []).append(number)
    a, b = by_bracket[1][:2]
    assert sched.judge(a, C15, 0.9).promote
    other = by_bracket[0][0]
    sched.judge(other, C5, 0.1)
    assert sched.judge(other, C15, 0.99).promote  # bracket 0's first at $0.15: bracket 1's 0.9 is not its peer
    assert "of bracket 0 at $0.15 rung" in sched.judge(by_bracket[0][1], C15, 0.98).reason
    sched.judge(b, C15, 0.5)
    assert sched.results_at(C15) == {a: 0.9, other: 0.99, by_bracket[0][1]: 0.98, b: 0.5}
    assert sched.ladder(by_bracket[3][0]) == (D135,)
    assert sched.judge(by_bracket[3][0], D135, 0.7).reason == "ran to max_usd ($1.35)"


def test_trials_beyond_the_plan_have_no_ladder() -> None:
    sched = make_rung_scheduler(scheduler_config({"type": "hyperband", "min_usd": 0.05, "max_usd": 1.35}),
                                mode="min", budget_micros=None)
    assert sched is not None and sched.max_trials() == 49
    assert sched.ladder(49) == () and sched.first_rung(49) is None
    assert sched.ladder(0) == LADDER and sched.levels() == LADDER
    with pytest.raises(ValueError):
        sched.judge(49, C5, 0.1)


# --- the sweep file's scheduler section ----------------------------------------------------------


def test_fifo_config_and_default_type() -> None:
    assert scheduler_config({"type": "fifo"}) == {"type": "fifo"}
    assert scheduler_config({}) == {"type": "fifo"}
    assert make_rung_scheduler({"type": "fifo"}, mode="min", budget_micros=None) is None


def test_rung_config_is_normalised_and_survives_json() -> None:
    cfg = scheduler_config({"type": "bohb", "min_usd": 0.05, "max_usd": "$1.35"})
    assert cfg == {"type": "bohb", "min_usd": "0.05", "max_usd": "1.35", "eta": 3,
                   "min_usd_micros": C5, "max_usd_micros": D135, "min_points": None}
    back = json.loads(json.dumps(cfg))
    assert back == cfg and scheduler_config(back) == cfg


@pytest.mark.parametrize(
    ("section", "path", "value"),
    [
        ({"type": "bogus"}, "scheduler.type", "bogus"),
        ({"type": "asha", "min_usd": 0, "max_usd": 1}, "scheduler.min_usd", 0),
        ({"type": "asha", "min_usd": "-0.1", "max_usd": 1}, "scheduler.min_usd", "-0.1"),
        ({"type": "asha", "min_usd": "abc", "max_usd": 1}, "scheduler.min_usd", "abc"),
        ({"type": "asha", "min_usd": 0.5, "max_usd": 1.0}, "scheduler.max_usd", 1.0),
        ({"type": "sh", "min_usd": 0.1, "max_usd": 1, "eta": 1}, "scheduler.eta", 1),
        ({"type": "sh", "min_usd": 0.1, "max_usd": 1, "eta": 2.5}, "scheduler.eta", 2.5),
        ({"type": "bohb", "min_usd": 0.1, "max_usd": 1, "min_points": 1}, "scheduler.min_points", 1),
    ],
)
def test_config_errors_name_the_field_and_value(section: dict[str, Any], path: str, value: Any) -> None:
    with pytest.raises(SpecError) as err:
        scheduler_config(section)
    assert err.value.path == path
    assert err.value.value == value
    assert shown(value) in str(err.value)


def test_config_errors_for_missing_and_unknown_fields() -> None:
    with pytest.raises(SpecError) as err:
        scheduler_config({"type": "hyperband", "max_usd": 1})
    assert err.value.path == "scheduler.min_usd"
    with pytest.raises(SpecError) as err:
        scheduler_config({"type": "asha", "min_usd": 0.1})
    assert err.value.path == "scheduler.max_usd"
    with pytest.raises(SpecError) as err:
        scheduler_config({"type": "asha", "min_usd": 0.1, "max_usd": 1, "min_points": 3})
    assert err.value.path == "scheduler.min_points" and "unknown field" in str(err.value)
    with pytest.raises(SpecError) as err:
        scheduler_config({"type": "fifo", "eta": 3})
    assert err.value.path == "scheduler.eta"
    with pytest.raises(SpecError) as err:
        scheduler_config("asha")
    assert err.value.path == "scheduler"


def test_make_rung_scheduler_picks_the_kind() -> None:
    base = {"min_usd": 0.05, "max_usd": 1.35}
    kinds = {}
    for kind in RUNG_TYPES:
        sched = make_rung_scheduler(scheduler_config({"type": kind, **base}), mode="max", budget_micros=20_000_000)
        assert sched is not None
        kinds[kind] = (type(sched), sched.kind, sched.max_trials())
    assert kinds == {
        "sh": (SuccessiveHalving, "sh", 27 * 4),  # $4.05 per iteration, 4 fit in $20
        "hyperband": (Hyperband, "hyperband", 49),
        "bohb": (Hyperband, "bohb", 49),
        "asha": (AshaScheduler, "asha", None),
    }


def test_fifo_never_stops_a_trial() -> None:
    """(In-process rung types run the rung schedulers: tests/test_study_money.py.)"""
    trial = FrozenTrial(number=0, state=TrialState.RUNNING, params={}, value=1.0, cost_micros=10**9)
    assert FifoScheduler().on_report(trial, lambda: History(metric="m", mode=Mode.MIN)) == Decision.CONTINUE


@pytest.mark.parametrize("value", [4.0e-7, "0.0000004"])
def test_a_rung_below_one_micro_dollar_names_the_smallest_amount(value: object) -> None:
    """An acceptance run: `scheduler.min_usd: 4.0e-7` said "must be > 0" of a positive amount."""
    from costtune.schedulers import _dollars

    with pytest.raises(SpecError, match=r"scheduler.min_usd: must be at least \$0.000001 .*micro-dollars"):
        _dollars(value, "scheduler.min_usd")
