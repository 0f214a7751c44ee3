"""Spend policies' launch rules in ``costtune plan`` (read-only): where `costtune run` really launches a sweep.

Before each launch, ``costtune run`` asks every policy in force that matches the sweep's tags about the trial's
placement (instance type and market): it allows it, amends it (``rules.amend``: another of the sweep's own
placements) or denies it (``costtune.runner.admission``, ``costtune.policies.admit``). ``launch_rules`` asks the
same functions about each placement the sweep's trials may ask for, with the policies and window spend read from
the store read-only (``costtune.plan.startup.read_rows``; a store without policies gives none). The plan then:

- says plainly when every placement is denied: ``costtune run`` starts no trial, so the plan is $0 and 0 trials;
- prices the placements the run really uses: a sampled configuration on an amended placement is priced where the
  amend launches it, one on a denied placement (others pass: the run fails such a trial before launching it) is
  left out of the analytic plan, and the forecast's simulated runs admit every launch under the same launch
  rules (``rules_bodies``: the policies without their caps, thresholds or webhook, which the forecast's
  in-memory store holds; the tightest hard cap is ``budget.usd`` there, ``costtune.cli.money``).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from costtune.plan.startup import read_rows

if TYPE_CHECKING:
    from costtune.policies import Policy
    from costtune.spec import SweepSpec

# the newest version of each policy (a removed one's newest version says so); ``?`` takes "", matching every name
_POLICIES_SQL = ("SELECT p.body_json, p.removed FROM policy_version p WHERE p.name <> ? AND p.version = "
                 "(SELECT MAX(q.version) FROM policy_version q WHERE q.name = p.name) ORDER BY p.name")
_BALANCE_SQL = "SELECT b.spent_micros, b.reserved_micros FROM scope_balance b WHERE b.scope = ?"
_FIRED_SQL = "SELECT a.threshold FROM policy_alert a WHERE a.scope = ?"

Placement = tuple[str | None, str]  # (instance type, or None for a local trial; market)


def read_policies(db_url: str) -> list[Policy]:
    """The spend policies in force in the store at ``db_url``, read-only, by name ([] without a store)."""
    from costtune.policies import parse_policy

    return [parse_policy(json.loads(body)) for body, removed in read_rows(db_url, _POLICIES_SQL, "") if not removed]


def window_spend(db_url: str) -> Callable[[str], tuple[int, int]]:
    """``scope -> (spent, held)`` micro-dollars of a window scope, read-only, as admission reads them."""
    def spend(scope: str) -> tuple[int, int]:
        rows = read_rows(db_url, _BALANCE_SQL, scope)
        return (int(rows[0][0] or 0), int(rows[0][1] or 0)) if rows else (0, 0)
    return spend


@dataclass(frozen=True)
class PlacementVerdict:
    """What the policies do to a launch on ``asked``: ``kind`` allow | amend | deny; ``placed``: where it
    launches (None: denied); ``lasting``: denied while other placements of the sweep pass (the run fails the
    trial without launching it and goes on)."""

    asked: Placement
    kind: str
    placed: Placement | None
    policy: str | None
    reason: str
    lasting: bool


@dataclass(frozen=True)
class LaunchRules:
    """The verdict on every placement of a sweep, and the launch rules (rules-only policy bodies) that gave them."""

    verdicts: tuple[PlacementVerdict, ...]
    bodies: tuple[dict[str, Any], ...]

    @property
    def all_denied(self) -> bool:
        """Every placement is denied: `costtune run` starts no trial."""
        return all(v.kind == "deny" for v in self.verdicts)

    @property
    def changes(self) -> bool:
        """Some placement is amended or denied: the run does not launch the sweep as its file says."""
        return any(v.kind != "allow" for v in self.verdicts)

    def placed(self, instance_type: str | None, market: str) -> Placement | None:
        """Where a trial asking for this placement launches; None when it is denied (one the sweep does not
        list, such as a market resolved at launch, as it is)."""
        for v in self.verdicts:
            if v.asked == (instance_type, market):
                return v.placed
        return instance_type, market

    def launches_on(self, instance_type: str | None, market: str | None) -> bool:
        """Whether some trial launches on this placement (``market`` None: a local trial's, any)."""
        return any(v.placed is not None and v.placed[0] == instance_type and market in (None, v.placed[1])
                   for v in self.verdicts)

    def note(self) -> str:
        """What the plan says about the policies' launch rules."""
        if self.all_denied:
            first = self.verdicts[0]
            why = first.reason.removeprefix(f"policy {first.policy!r}: ")
            return (f"`costtune run` starts no trial: policy {first.policy} denies every placement of the sweep "
                    f"({_listed(self.verdicts)}): {why}; the plan is $0 and 0 trials, without a forecast "
                    "(`costtune policy explain SWEEP.yaml` shows each placement)")
        moved = [v for v in self.verdicts if v.kind == "amend" and v.placed is not None]
        denied = [v for v in self.verdicts if v.kind == "deny"]
        said = []
        if moved:
            said.append("launches " + ", ".join(f"{_words(v.asked)} as {_words(v.placed)}" for v in moved
                                                 if v.placed is not None) + f" ({_by(moved)} amends them)")
        if denied:
            said.append(f"fails trials asking for {_listed(tuple(denied))} without launching them ({_by(denied)} "
                        "denies them; no cost, they count in budget.trials)")
        return (f"spend policies' launch rules: `costtune run` {' and '.join(said)}; the plan and the forecast price "
                "trials where the run launches them (`costtune policy explain SWEEP.yaml` says why)")

    def to_dict(self) -> dict[str, Any]:
        return {"all_denied": self.all_denied, "placements": [
            {"instance_type": v.asked[0], "market": v.asked[1], "verdict": v.kind,
             "launched_as": None if v.placed is None else {"instance_type": v.placed[0], "market": v.placed[1]},
             "policy": v.policy, "reason": v.reason, "fails_trial": v.lasting} for v in self.verdicts]}


def _words(placement: Placement) -> str:
    return f"{placement[0] or 'local'} {placement[1]}"


def _by(verdicts: list[PlacementVerdict]) -> str:
    names = sorted({v.policy or "?" for v in verdicts})
    return f"{'policy' if len(names) == 1 else 'policies'} {', '.join(names)}"


def _listed(verdicts: tuple[PlacementVerdict, ...]) -> str:
    return ", ".join(_words(v.asked) for v in verdicts)


def sweep_placements(spec: SweepSpec) -> list[Placement]:
    """Every placement the sweep's trials may ask for: each combination of its searched instance types and
    markets, else its one placement; ``market: cheapest-expected`` as both markets (chosen at each launch)."""
    from costtune.spec.resources import CHEAPEST

    res = spec.resources
    searched = {name: tuple(dim["choices"]) for name, dim in res.searched.items()}
    asked = [res.placement(dict(zip(searched, values, strict=True))) for values in itertools.product(
        *searched.values())] if searched else [(res.instance_type, res.market)]
    out: list[Placement] = []
    for itype, market in asked:
        for m in ("spot", "on-demand") if market == CHEAPEST else (market,):
            if (itype, m) not in out:
                out.append((itype, m))
    return out


def launch_rules(db_url: str, spec: SweepSpec, now: datetime | None = None) -> LaunchRules | None:
    """What the policies in force that match ``spec``'s tags do to each of its placements, as `costtune run`
    admits a launch now (stop-launching thresholds read from the windows' spend); None when no policy matches
    or none has a launch rule or stop threshold (nothing is amended or denied)."""
    from costtune.policies import admit, matching
    from costtune.runner.admission import launch_request

    found = matching(read_policies(db_url), spec.tags)
    if not found:
        return None
    moment = now or datetime.now(UTC)
    spend = window_spend(db_url)

    def fired(scope: str) -> set[str]:
        return {str(row[0]) for row in read_rows(db_url, _FIRED_SQL, scope)}

    verdicts = []
    for itype, market in sweep_placements(spec):
        v = admit(launch_request(spec, itype, market), found, moment, spend, fired)
        placed = None if v.kind == "deny" else (v.request.instance_type, v.request.market)
        verdicts.append(PlacementVerdict((itype, market), v.kind, placed, v.policy, v.reason, v.lasting))
    rules = LaunchRules(tuple(verdicts), tuple(_rules_only(p) for p in found if p.raw.get("rules")))
    return rules if rules.changes else None


def _rules_only(policy: Policy) -> dict[str, Any]:
    """The policy as the forecast's runs admit launches under it: its scope and launch rules; its caps (the
    tightest is the forecast's budget.usd), thresholds and webhook left out (a forecast alerts no one)."""
    raw = policy.raw
    return {"name": policy.name, **{k: raw[k] for k in ("scope", "rules") if k in raw}}


def no_launch(plan: Any) -> None:
    """Make ``plan`` (a ``costtune.plan.analytic.SweepPlan``) what `costtune run` does when the policies deny every
    placement: it starts no trial and spends nothing (a resumed study: what it already ran and spent)."""
    from dataclasses import replace

    r = plan.resumes
    trials, spent = (0, 0) if r is None else (r.trials, r.spent_micros)
    plan.schedule = replace(plan.schedule, brackets=(), trials=trials, trials_estimated=False, planned_micros=spent,
                            expected_micros=spent, trial_cost_micros=None, trials_fewest=None, trials_most=None,
                            bounded=False)
    if plan.total_micros is not None:
        plan.total_micros = spent
    plan.launches, plan.overhead_micros, plan.hours = 0.0, 0, None
    plan.preemption = replace(plan.preemption, instance_hours=0.0, expected=0.0, waste_micros=0, restart_micros=0)
    plan.cap_fit = None
    if plan.this_run is not None:
        plan.this_run = replace(plan.this_run, trials=0, fewest=None, most=None, micros=0, hours=None,
                                close_call=None)
