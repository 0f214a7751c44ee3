"""Where the money went: every micro-dollar of a study in exactly one class, and the views built on it.

``classify`` is the one rule. A trial's money (``FrozenTrial.cost_micros``) is split over its
attempts; each attempt's part goes to

- ``rerun``: work that had to be run again after a preemption or an interruption
  (``costtune.store.reads.rerun_micros``: work after the last checkpoint, or the whole attempt when
  the next one restarted from scratch);
- otherwise the class of how the trial ended: ``useful`` (it ran to its end with a value),
  ``stopped`` (ended early at a dollar rung or by the budget: the price of early stopping),
  ``policy`` (stopped by a spend policy: its window's cap could not fund more; the policies are
  named in the summary), ``failed`` (crashed, timed out, reported nothing usable), ``unfinished``
  (running or queued).

Money a trial holds beyond its attempt rows (a hand-made history, an in-process trial booked
before its attempt) gets the trial's class with no placement. So the classes add up to the total
spend exactly, in integer micro-dollars, and the summary, the per-placement table, the bar chart,
the JSON and the CSV all read the same shares.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from costtune.history import FrozenTrial, History, TrialState
from costtune.money import format_usd, usd_text
from costtune.store.reads import INTERRUPTED, PREEMPTED, AttemptCostRow, TrialCost, rerun_micros

USEFUL, STOPPED, POLICY, FAILED, RERUN, UNFINISHED = "useful", "stopped", "policy", "failed", "rerun", "unfinished"
CLASSES = (USEFUL, STOPPED, POLICY, FAILED, RERUN, UNFINISHED)
CLASS_LABELS = {
    USEFUL: "useful (trials that ran to their end)",
    STOPPED: "stopped early (by the scheduler, the study's budget or a user)",
    POLICY: "stopped by a spend policy's cap",
    FAILED: "failed trials",
    RERUN: "re-run after a preemption or interruption",
    UNFINISHED: "running or queued trials",
}
SHORT_LABELS = {USEFUL: "useful", STOPPED: "stopped early", POLICY: "policy stop", FAILED: "failed", RERUN: "re-run",
                UNFINISHED: "unfinished"}
_POLICY_STOP = "policy"  # the exit reason of an attempt a spend policy stopped (runner/finishing.py)
_POLICY_NAME = re.compile(r"^policy (?:'([^']*)'|\"([^\"]*)\")|^policy:([^:]+):")


@dataclass(frozen=True)
class Share:
    """Some of one trial's money in one class; ``attempt`` is None for money no attempt row holds."""

    trial: int
    attempt: AttemptCostRow | None
    kind: str
    micros: int


def stopping_policy(trial: FrozenTrial) -> str | None:
    """The spend policy that stopped this trial (named in its error: ``policy 'team-daily': cap_usd ...``,
    or the policy window ``policy:team-daily:...: cannot fund ...``); None when no policy stopped it."""
    if trial.state != TrialState.STOPPED or not trial.error:
        return None
    found = _POLICY_NAME.match(trial.error)
    return None if found is None else next(g for g in found.groups() if g is not None)


def trial_class(trial: FrozenTrial, attempts: Sequence[AttemptCostRow] = ()) -> str:
    """The class of a trial's money that was not re-run: how the trial ended. ``attempts``: the trial's,
    in attempt order; a last attempt that a spend policy stopped says so (else its error does)."""
    if trial.state == TrialState.COMPLETE:
        return USEFUL
    if trial.state == TrialState.STOPPED:
        by_policy = attempts[-1].exit_reason == _POLICY_STOP if attempts else stopping_policy(trial) is not None
        return POLICY if by_policy else STOPPED
    if trial.state == TrialState.FAILED:
        return FAILED
    return UNFINISHED


def group_attempts(attempts: Iterable[AttemptCostRow]) -> dict[int, list[AttemptCostRow]]:
    """Trial number -> its attempts in attempt order."""
    grouped: dict[int, list[AttemptCostRow]] = {}
    for a in attempts:
        grouped.setdefault(a.trial, []).append(a)
    return {n: sorted(rows, key=lambda a: a.number) for n, rows in grouped.items()}


def classify(history: History, attempts: Iterable[AttemptCostRow] = ()) -> list[Share]:
    """Every micro-dollar of ``history`` in one ``Share``; the shares sum to ``history.spent_micros``."""
    grouped = group_attempts(attempts)
    out: list[Share] = []
    for trial in history.trials:
        left = max(0, trial.cost_micros)
        rows = grouped.get(trial.number, [])
        kind = trial_class(trial, rows)
        for attempt, lost in zip(rows, rerun_micros(rows), strict=True):
            rerun = min(lost, left)
            kept = min(attempt.cost_micros - lost, left - rerun)
            left -= rerun + kept
            if rerun:
                out.append(Share(trial.number, attempt, RERUN, rerun))
            if kept:
                out.append(Share(trial.number, attempt, kind, kept))
        if left:
            out.append(Share(trial.number, None, kind, left))
    return out


def totals(shares: Iterable[Share]) -> dict[str, int]:
    """Micro-dollars per class, every class present."""
    out = dict.fromkeys(CLASSES, 0)
    for s in shares:
        out[s.kind] += s.micros
    return out


def _label(kind: str, policies: Sequence[str]) -> str:
    """A class's label; the policy-stop class names the policies that stopped trials."""
    if kind != POLICY or not policies:
        return CLASS_LABELS[kind]
    return f"{CLASS_LABELS[kind]} ({', '.join(repr(p) for p in policies)})"


def _pct(part: int, whole: int) -> float | None:
    return None if whole <= 0 else round(100 * part / whole, 2)


def shown_classes(summary: dict[str, Any]) -> list[str]:
    """The classes a table shows: those holding money or trials (re-run: money), in ``CLASSES`` order."""
    return [k for k in CLASSES if summary["classes"][k]["micros"] or (k != RERUN and summary["classes"][k]["trials"])]


def class_trials(summary: dict[str, Any], kind: str) -> str:
    """A class's trial count as a table shows it: re-run's in parentheses, its trials counted where they ended."""
    n = summary["classes"][kind]["trials"]
    return f"({n})" if kind == RERUN else str(n)


def spend_summary(history: History, attempts: Sequence[AttemptCostRow] | None = None) -> dict[str, Any]:
    """The study's spend by class (adds up to ``total_micros``) and by trial state; each class's
    ``trials`` counts the trials that ended that way (they add up to the study's trials), re-run's the
    trials with re-run money (each also counted where it ended).

    Without ``attempts`` nothing can be told apart as re-run: a trial's money takes its class.
    """
    shares = classify(history, attempts or ())
    by_class = totals(shares)
    # Each trial counts once, in the class of how it ended, money or not (a queued trial is unfinished),
    # so these counts add up to the study's trials; re-run counts the trials some of whose money was
    # re-run work, each also counted where it ended.
    trials_in = dict.fromkeys(CLASSES, 0)
    grouped = group_attempts(attempts or ())
    policies: list[str] = []  # the spend policies that stopped trials, named in their class's label
    for trial in history.trials:
        kind = trial_class(trial, grouped.get(trial.number, []))
        trials_in[kind] += 1
        name = stopping_policy(trial) if kind == POLICY else None
        if name and name not in policies:
            policies.append(name)
    trials_in[RERUN] = len({s.trial for s in shares if s.kind == RERUN})
    by_state: dict[str, dict[str, int]] = {}
    for trial in history.trials:
        entry = by_state.setdefault(str(trial.state), {"trials": 0, "micros": 0})
        entry["trials"] += 1
        entry["micros"] += trial.cost_micros
    cut = [a for a in attempts or () if a.exit_reason in (PREEMPTED, INTERRUPTED)]
    total = history.spent_micros
    return {
        "total_micros": total,
        "total_usd": usd_text(total),
        "classes": {k: {"label": _label(k, policies), "micros": by_class[k], "usd": usd_text(by_class[k]),
                        "trials": trials_in[k], "pct_of_spend": _pct(by_class[k], total)} for k in CLASSES},
        "by_state": dict(sorted(by_state.items())),
        "failed_micros": by_class[FAILED],
        "preempted_attempts": sum(a.exit_reason == PREEMPTED for a in cut),
        "interrupted_attempts": sum(a.exit_reason == INTERRUPTED for a in cut),
        "retried_trials": len({a.trial for a in cut}),
        "waste_micros": by_class[RERUN],
    }


def placement_label(provider: str | None, instance_type: str | None, market: str | None, rate: int | None) -> str:
    """What a bar or row of spend is: ``m5.large / spot``, ``local at $0.096/h``, ``local as m5.large / ...``."""
    if provider is None:
        return "no attempt record"
    if instance_type:
        where = f"{instance_type} / {market or '-'}"
        return f"{provider} as {where}" if provider == "local" else where
    return f"{provider} at {format_usd(rate or 0)}/h"


def _placement_key(a: AttemptCostRow | None) -> tuple[Any, ...]:
    if a is None:
        return (None, None, None, None)
    # Without an instance type the rate is the price source (a local usd_per_hour): it tells rows apart.
    return (a.provider, a.instance_type, a.market, None if a.instance_type else a.rate_micros_per_hour)


def spend_by_placement(history: History, attempts: Sequence[AttemptCostRow]) -> list[dict[str, Any]]:
    """Spend per (provider, instance type, market) split into the classes, dearest first.

    Rows add up to the study's total; each row's classes add up to its ``cost_micros``.
    """
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    trials: dict[tuple[Any, ...], set[int]] = {}
    for a in attempts:
        g = _group(groups, _placement_key(a))
        g["attempts"] += 1
        g["preemptions"] += a.exit_reason == PREEMPTED
        trials.setdefault(_placement_key(a), set()).add(a.trial)
    for s in classify(history, attempts):
        g = _group(groups, _placement_key(s.attempt))
        g["cost_micros"] += s.micros
        g[f"{s.kind}_micros"] += s.micros
        if s.attempt is None:
            trials.setdefault(_placement_key(None), set()).add(s.trial)
    out = []
    for key, g in groups.items():
        if not g["cost_micros"] and not g["attempts"]:
            continue
        g["trials"] = len(trials.get(key, ()))
        g["waste_micros"] = g["rerun_micros"]  # the name older reports used for re-run money
        for name in ("cost", "waste", *CLASSES):
            g[f"{name}_usd"] = usd_text(g[f"{name}_micros"])
        out.append(g)
    return sorted(out, key=lambda g: (-g["cost_micros"], g["label"]))


def _group(groups: dict[tuple[Any, ...], dict[str, Any]], key: tuple[Any, ...]) -> dict[str, Any]:
    if key not in groups:
        provider, itype, market, rate = key
        groups[key] = {"label": placement_label(provider, itype, market, rate), "provider": provider,
                       "instance_type": itype, "market": market, "rate_micros_per_hour": rate, "attempts": 0,
                       "preemptions": 0, "cost_micros": 0, **{f"{k}_micros": 0 for k in CLASSES}}
    return groups[key]


def preemption_summary(history: History, attempts: Sequence[AttemptCostRow]) -> dict[str, Any]:
    """The sweep's preemptions and interruptions and the money re-running their work cost."""
    total = history.spent_micros
    waste = totals(classify(history, attempts))[RERUN]
    preempted = [a for a in attempts if a.exit_reason == PREEMPTED]
    return {"preemptions": len(preempted), "trials_preempted": len({a.trial for a in preempted}),
            "interruptions": sum(a.exit_reason == INTERRUPTED for a in attempts),
            "waste_micros": waste, "waste_usd": usd_text(waste), "spend_micros": total,
            "waste_pct_of_spend": _pct(waste, total)}


def waste_by_trial(history: History, costs: Mapping[int, TrialCost],
                   attempts: Sequence[AttemptCostRow] = ()) -> list[dict[str, Any]]:
    """Trials that were preempted, interrupted or re-ran work, most re-run money first."""
    rerun: dict[int, int] = {}
    for s in classify(history, attempts):
        if s.kind == RERUN:
            rerun[s.trial] = rerun.get(s.trial, 0) + s.micros
    interrupted: dict[int, int] = {}
    for a in attempts:
        interrupted[a.trial] = interrupted.get(a.trial, 0) + (a.exit_reason == INTERRUPTED)
    out = []
    for t in history.trials:
        c = costs.get(t.number)
        lost = rerun.get(t.number, 0) if attempts else (c.waste_micros if c else 0)
        if c is None or (c.preemptions == 0 and lost == 0 and not interrupted.get(t.number)):
            continue
        out.append({"trial": t.number, "state": str(t.state), "instance_type": c.instance_type, "market": c.market,
                    "attempts": c.attempts, "preemptions": c.preemptions,
                    "interruptions": interrupted.get(t.number, 0), "waste_micros": lost, "waste_usd": usd_text(lost),
                    "cost_micros": t.cost_micros, "cost_usd": usd_text(t.cost_micros),
                    "waste_pct_of_cost": _pct(lost, t.cost_micros)})
    return sorted(out, key=lambda r: (-r["waste_micros"], r["trial"]))


def steps_per_dollar(history: History, costs: Mapping[int, TrialCost]) -> list[dict[str, Any]]:
    """Per instance type, the median steps a finished trial reached per dollar it cost.

    Rungs are dollar levels, so a slower or pricier instance reaches fewer steps by each rung; this
    puts a number on it. A trial's steps are the last step it reported (``last_step``). Trials that
    cost nothing or reported no step are left out.
    """
    per_type: dict[str | None, list[tuple[int, int]]] = {}
    for t in history.trials:
        c = costs.get(t.number)
        if not t.state.finished or t.last_step is None or t.cost_micros <= 0 or c is None:
            continue
        per_type.setdefault(c.instance_type, []).append((t.last_step, t.cost_micros))
    out = []
    for kind, pairs in per_type.items():
        ratios = [steps * 1_000_000 / micros for steps, micros in pairs]
        out.append({"instance_type": kind, "trials": len(pairs),
                    "median_steps": statistics.median(s for s, _ in pairs),
                    "median_cost_micros": statistics.median(m for _, m in pairs),
                    "median_steps_per_usd": round(statistics.median(ratios), 3)})
    return sorted(out, key=lambda r: (-r["median_steps_per_usd"], str(r["instance_type"])))


def placement(history: History, attempts: Sequence[AttemptCostRow], costs: Mapping[int, TrialCost]) -> dict[str, Any]:
    """The JSON block with every placement view."""
    return {"preemption": preemption_summary(history, attempts),
            "waste_by_trial": waste_by_trial(history, costs, attempts),
            "spend_by_placement": spend_by_placement(history, attempts),
            "steps_per_dollar": steps_per_dollar(history, costs)}
