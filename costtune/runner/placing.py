"""Moving a trial the budget cannot carry to its first report to a searched placement it can.

When the sweep searches the instance type and/or the market (``resources.instance_type`` /
``resources.market`` given as choices), the sampler's placement is one proposal among several that
run the same configuration. A cap whose money left cannot carry that placement to its first report
(``Claims._reach``) may still carry another: the claim path then moves the trial, before its first
launch, to the cheapest searched placement (by hourly rate, then by cost to a first report) that the
money not yet spent can carry, keeping every other parameter. The trial's stored params change with
it (the store refuses once an attempt exists), so every report, leaderboard and sampler history
shows where it really ran, and the attempt's note says why it moved. Only when no searched
placement fits does the run stop at the end of its budget.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from costtune.money import format_usd

if TYPE_CHECKING:
    from costtune.clock import Clock
    from costtune.policies import Verdict
    from costtune.spec import SweepSpec
    from costtune.store import ClaimedTrial, Store
    from costtune.study import Study

__all__ = ["Placement", "Placing", "movable"]


def movable(claimed: ClaimedTrial, spec: SweepSpec) -> bool:
    """Whether the controller may change ``claimed``'s stored params to another placement before it launches:
    only a trial the sampler proposed (not one queued by hand, nor a grid point, whose coverage a move would
    break), on its first attempt (after one, its params are history)."""
    return claimed.source == "sampler" and claimed.attempt_number == 1 and spec.sampler.get("type") != "grid"


@dataclass(frozen=True)
class Placement:
    params: dict[str, Any]  # the trial's params on this placement
    words: str  # ``g4dn.xlarge spot``
    rate: int  # micro-dollars per hour
    reach: int  # micro-dollars to its first report


class Placing:
    """Mixed into ``SweepController``; uses its fields (claims.py, admission.py)."""

    spec: SweepSpec
    study: Study
    store: Store
    clock: Clock
    virtual: bool
    _placement_notes: dict[int, str]  # trial id -> why its placement was changed (the attempt's note)
    _reach: Callable[..., int]  # claims.py: (instance type, rate[, params, step]) -> micros
    _placement_words: Callable[[str | None, str, int], str]
    _admit: Callable[[ClaimedTrial, str | None, str], Verdict | None]
    _market_for: Callable[[ClaimedTrial, str | None, str], tuple[str, str]]

    def _note_placement(self, claimed: ClaimedTrial, note: str) -> None:
        """Say why the trial's placement changed in the note of the attempt it launches next (several reasons
        join: the budget moved it, then a policy amended it)."""
        earlier = self._placement_notes.get(claimed.id)
        self._placement_notes[claimed.id] = f"{earlier}; {note}" if earlier else note

    def _searched_placements(self, claimed: ClaimedTrial) -> list[Placement]:
        """Every placement of the sweep's searched resource dimensions for this trial's configuration
        that the spend policies do not refuse, cheapest first (rate, then cost to a first report);
        empty when the sweep searches no placement, or the trial is not the sampler's to move: a trial
        queued by hand, a grid point, or one that already ran (its params are history)."""
        res = self.spec.resources
        searched = {name: tuple(dim["choices"]) for name, dim in res.searched.items()}
        if not searched or not movable(claimed, self.spec):
            return []
        out = []
        for values in itertools.product(*searched.values()):
            params = {**claimed.params, **dict(zip(searched, values, strict=True))}
            itype, market = res.placement(params)
            market, _note = self._market_for(claimed, itype, market)
            verdict = self._admit(claimed, itype, market)
            if verdict is not None:
                if verdict.kind == "deny":
                    continue
                itype, market = verdict.request.instance_type, verdict.request.market
            rate = res.rate_for(itype, market, at=self.clock.now() if self.virtual else None)
            words = self._placement_words(itype, market, rate)
            out.append(Placement(params, words, rate, self._reach(itype, rate, params)))
        return sorted(out, key=lambda p: (p.rate, p.reach))

    def _move(self, claimed: ClaimedTrial, proposed: str, needed: int,
              left: int) -> tuple[ClaimedTrial | None, Placement | None]:
        """The trial moved to the cheapest searched placement that ``left`` (micro-dollars the cap has
        not spent) can carry to a first report, its stored params changed; (None, the cheapest searched
        placement) when none can, or (None, None) when the trial is not to be moved."""
        placements = self._searched_placements(claimed)
        fits = [p for p in placements if p.reach <= left and p.params != claimed.params]
        if not fits:
            return None, min(placements, key=lambda p: p.reach, default=None)
        to = fits[0]
        self.store.replace_params(claimed.id, to.params, owner=self.study.owner)
        self._placement_notes[claimed.id] = (
            f"placed on {to.words} instead of the proposed {proposed}: {format_usd(left)} left under budget.usd "
            f"could not carry it to its first report there (~{format_usd(needed)}); ~{format_usd(to.reach)} "
            f"on {to.words}")
        return replace(claimed, params=to.params), to
