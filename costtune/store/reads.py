"""Read-only queries for reports and the leaderboard, one query per study rather than one per trial.

A 10,000-trial sweep has tens of thousands of attempts; asking ``Store.attempts`` trial by trial
would be 10,000 round trips, so these read every attempt of a study at once and fold them here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from costtune.money import charged_ms
from costtune.store.models import AttemptRow, TrialRow
from costtune.store.records import attempt_market

if TYPE_CHECKING:
    from costtune.store.store import Store

PREEMPTED = "preempted"
INTERRUPTED = "interrupted"
CUT_SHORT = (PREEMPTED, INTERRUPTED)  # exit reasons after which a trial is queued and run again


@dataclass(frozen=True)
class AttemptCostRow:
    """One attempt with what it cost and where it ran; ``trial`` is the trial's number in its study."""

    trial: int
    number: int
    provider: str
    region: str | None
    instance_type: str | None
    market: str | None
    rate_micros_per_hour: int
    exit_reason: str | None
    billable_ms: int
    cost_micros: int
    start_step: int
    waste_micros: int
    granularity_s: int = 1  # its billing rule, snapshotted with its rate when it started
    minimum_s: int = 0

    @property
    def charged_ms(self) -> int:
        """The time it was charged for: held time with started granules and the minimum charge."""
        return charged_ms(self.billable_ms, granularity_s=self.granularity_s, minimum_s=self.minimum_s)


@dataclass(frozen=True)
class TrialCost:
    """What one trial's attempts add up to; where it ran is its last attempt's placement."""

    attempts: int
    instance_type: str | None
    market: str | None
    preemptions: int
    waste_micros: int  # money spent on work that had to be run again (``rerun_micros``)
    cost_micros: int  # the sum over its attempts
    billable_ms: int = 0  # instance time held, over its attempts
    charged_ms: int = 0  # the time it was charged for: held time with started seconds and minimum charges
    simulated: bool = False  # its time is virtual: wall-clock start/finish mean nothing


def attempt_rows(store: Store, study_id: int) -> list[AttemptCostRow]:
    """Every attempt of the study, ordered by trial number then attempt number, in one query."""
    query = (
        select(TrialRow.number, AttemptRow.number, AttemptRow.provider, AttemptRow.region,
               AttemptRow.instance_type, AttemptRow.market, AttemptRow.rate_micros_per_hour,
               AttemptRow.exit_reason, AttemptRow.billable_ms, AttemptRow.cost_micros,
               AttemptRow.start_step, AttemptRow.waste_micros, AttemptRow.bill_granule_s, AttemptRow.bill_minimum_s)
        .join(TrialRow, col(TrialRow.id) == col(AttemptRow.trial_id))
        .where(TrialRow.study_id == study_id)
        .order_by(col(TrialRow.number), col(AttemptRow.number))
    )
    with Session(store.engine) as session:
        rows = session.exec(query).all()
    # a local trial at usd_per_hour has no market (older stores wrote on-demand): one reading rule
    return [AttemptCostRow(*row[:5], attempt_market(row[2], row[4], row[5]), *row[6:]) for row in rows]


def rerun_micros(attempts: Sequence[AttemptCostRow]) -> list[int]:
    """Per attempt of one trial (in attempt order), the money it spent on work that was run again.

    The one rule every report uses: an attempt cut short (preempted or interrupted) whose next
    attempt started no further on (no checkpoint kept its progress) lost everything it cost; any
    other attempt lost what the controller booked as its waste (work after the last checkpoint of
    a preempted attempt). Never more than the attempt cost.
    """
    out = []
    for k, a in enumerate(attempts):
        following = attempts[k + 1] if k + 1 < len(attempts) else None
        restarted = a.exit_reason in CUT_SHORT and following is not None and following.start_step <= a.start_step
        lost = a.cost_micros if restarted else a.waste_micros
        out.append(max(0, min(lost, a.cost_micros)))
    return out


def trial_costs(attempts: Iterable[AttemptCostRow]) -> dict[int, TrialCost]:
    """Fold attempts (in ``attempt_rows`` order) into one ``TrialCost`` per trial number."""
    grouped: dict[int, list[AttemptCostRow]] = {}
    for a in attempts:
        grouped.setdefault(a.trial, []).append(a)
    out: dict[int, TrialCost] = {}
    for number, rows in grouped.items():
        last = max(rows, key=lambda a: a.number)
        out[number] = TrialCost(
            attempts=len(rows),
            instance_type=last.instance_type,
            market=last.market,
            preemptions=sum(a.exit_reason == PREEMPTED for a in rows),
            waste_micros=sum(rerun_micros(sorted(rows, key=lambda a: a.number))),
            cost_micros=sum(a.cost_micros for a in rows),
            billable_ms=sum(a.billable_ms for a in rows),
            charged_ms=sum(a.charged_ms for a in rows),
            simulated=any(a.provider == "simulated" for a in rows),
        )
    return out


def open_attempt_keys(store: Store, keys: Iterable[str]) -> set[str]:
    """Those of ``keys`` whose attempt is in the store and has not ended (the reaper spares their instances)."""
    wanted = sorted(set(keys))
    found: set[str] = set()
    with Session(store.engine) as session:
        for start in range(0, len(wanted), 500):
            query = select(AttemptRow.idempotency_key).where(
                col(AttemptRow.idempotency_key).in_(wanted[start:start + 500]), col(AttemptRow.ended_at).is_(None))
            found.update(session.exec(query).all())
    return found


def store_tag(store: Store) -> str:
    """The ``store`` tag of what this store's sweeps launch: another store's same-named study is not ours."""
    import hashlib

    return hashlib.sha256(store.display_url.encode()).hexdigest()[:12]
