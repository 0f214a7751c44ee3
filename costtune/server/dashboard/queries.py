"""The dashboard's reads: aggregates and pages computed by the database, never whole tables in Python.

Every function takes a ``Store`` and returns plain JSON-ready values. Money is integer
micro-dollars (``*_micros``); rates are micro-dollars per hour; times are ISO 8601 strings (UTC).
A 10,000-trial study is read a page at a time (``leaderboard_page``), and the live view asks only
for what has an id above the one it saw (``live_delta``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, func, or_
from sqlmodel import Session, col, select

from costtune.money import charged_ms
from costtune.store.caps import study_scope
from costtune.store.ledger_models import ScopeBalanceRow, ScopeCapRow
from costtune.store.models import AttemptRow, ReportRow, StudyRow, TrialRow

if TYPE_CHECKING:
    from costtune.store import Store

SORTS = {"number": TrialRow.number, "value": TrialRow.value, "cost": TrialRow.cost_micros,
         "step": TrialRow.last_step, "state": TrialRow.state, "finished": TrialRow.finished_at}
STATES = ("queued", "running", "complete", "stopped", "failed")
MAX_PAGE = 500
_HUGE = 1.7e308  # above it only inf: a float column's finite values are below


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def study_rows(store: Store) -> list[dict[str, Any]]:
    """Every study with its trial counts per state, best value, spend, cap, burn rate and last activity.

    Three grouped queries whatever the number of trials: trials by (study, state), open attempts'
    summed hourly rate, and the caps of the ``study:ID`` scopes.
    """
    # a value that is None, nan or +-inf is no candidate for best (an inf loss must not hide the finite ones)
    finite = case((and_(col(TrialRow.value) > -_HUGE, col(TrialRow.value) < _HUGE), TrialRow.value), else_=None)
    with Session(store.engine) as s:
        studies = s.exec(select(StudyRow).order_by(col(StudyRow.id))).all()
        per_state = s.exec(
            select(TrialRow.study_id, TrialRow.state, func.count(), func.coalesce(func.sum(TrialRow.cost_micros), 0),
                   func.min(finite), func.max(finite), func.max(TrialRow.finished_at),
                   func.max(TrialRow.heartbeat_at), func.max(TrialRow.created_at))
            .group_by(TrialRow.study_id, TrialRow.state)).all()
        burning = dict(s.exec(
            select(TrialRow.study_id, func.sum(AttemptRow.rate_micros_per_hour))
            .join(TrialRow, col(TrialRow.id) == col(AttemptRow.trial_id))
            .where(col(AttemptRow.ended_at).is_(None)).group_by(TrialRow.study_id)).all())
        caps = {r.scope: r.cap_micros for r in s.exec(select(ScopeCapRow)).all()}
    out = []
    for st in studies:
        counts = dict.fromkeys(STATES, 0)
        spend, best, last = 0, None, st.created_at
        for sid, state, n, cost, lo, hi, fin, hb, created in per_state:
            if sid != st.id:
                continue
            counts[state] = counts.get(state, 0) + n
            spend += int(cost)
            if state in ("complete", "stopped"):
                candidate = _finite(lo if st.mode == "min" else hi)  # None: no trial in this state reported
                if candidate is not None and (best is None or (candidate < best if st.mode == "min"
                                                                else candidate > best)):
                    best = candidate
            for moment in (fin, hb, created):
                if moment is not None and _naive(moment) > _naive(last):
                    last = moment
        running, queued = counts["running"], counts["queued"]
        state = "running" if running else "queued" if queued else "finished" if sum(counts.values()) else "empty"
        out.append({
            "name": st.name, "metric": st.metric, "mode": st.mode, "state": state,
            "trials": sum(counts.values()), "counts": counts, "best": best, "spend_micros": spend,
            "cap_micros": caps.get(study_scope(st.id), st.budget_usd_micros),
            "burn_micros_per_hour": int(burning.get(st.id) or 0) if running else 0,
            "created_at": iso(st.created_at), "last_activity": iso(last),
        })
    return out


def _naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None) if moment.tzinfo is None else moment.astimezone().replace(tzinfo=None)


def leaderboard_page(store: Store, study_id: int, mode: str, *, sort: str = "value", desc: bool = False,
                     states: Sequence[str] = (), search: str = "", min_cost: int | None = None,
                     max_cost: int | None = None, offset: int = 0, limit: int = 50) -> dict[str, Any]:
    """One page of the study's trials, sorted and filtered by the database.

    ``sort``: a key of ``SORTS`` ("value" puts trials without a value last, and in the direction
    the objective improves unless ``desc`` flips it); ``states``: keep only these; ``search``: a
    substring of the parameters' JSON; ``min_cost``/``max_cost``: micro-dollars, inclusive.
    Returns ``{"total": matching trials, "offset", "limit", "rows": [...]}``, each row with the
    trial's last placement (instance type, market, hourly rate), attempts and preemptions, the instance
    time its attempts held (``billable_ms``) and the time billed for it (``charged_ms``: started granules
    and minimum charges, the CLI's "time billed").
    """
    where = [TrialRow.study_id == study_id]
    if states:
        where.append(col(TrialRow.state).in_(list(states)))
    if search:
        where.append(col(TrialRow.params_json).contains(search, autoescape=True))
    if min_cost is not None:
        where.append(TrialRow.cost_micros >= min_cost)
    if max_cost is not None:
        where.append(TrialRow.cost_micros <= max_cost)
    key = SORTS[sort]
    ascending = (mode != "max") if sort == "value" else True
    if desc:
        ascending = not ascending
    order = [case((col(key).is_(None), 1), else_=0), col(key).asc() if ascending else col(key).desc(),
             col(TrialRow.number)]
    with Session(store.engine) as s:
        total = s.exec(select(func.count()).select_from(TrialRow).where(*where)).one()
        trials = s.exec(select(TrialRow).where(*where).order_by(*order).offset(offset).limit(limit)).all()
        ids = [t.id for t in trials]
        attempts = s.exec(select(AttemptRow).where(col(AttemptRow.trial_id).in_(ids))
                          .order_by(col(AttemptRow.trial_id), col(AttemptRow.number))).all() if ids else []
    by_trial: dict[int, list[AttemptRow]] = {}
    for a in attempts:
        by_trial.setdefault(a.trial_id, []).append(a)
    rows = []
    for t in trials:
        mine = by_trial.get(t.id or 0, [])
        last = mine[-1] if mine else None
        rows.append({
            "number": t.number, "state": t.state, "value": _finite(t.value), "raw_value": _text_value(t.value),
            "cost_micros": t.cost_micros, "last_step": t.last_step, "params": json.loads(t.params_json),
            "attempts": len(mine), "preemptions": sum(a.exit_reason == "preempted" for a in mine),
            # held time, and the time billed for it (started granules, minimum charges): what the cost
            # pays for and what `costtune leaderboard` shows as "time billed" (charged_s)
            "billable_ms": sum(a.billable_ms for a in mine),
            "charged_ms": sum(charged_ms(a.billable_ms, granularity_s=a.bill_granule_s, minimum_s=a.bill_minimum_s)
                              for a in mine),
            "waste_micros": sum(a.waste_micros for a in mine),
            "instance_type": last.instance_type if last else None, "market": last.market if last else None,
            "rate_micros_per_hour": last.rate_micros_per_hour if last else None,
            "source": t.source, "finished_at": iso(t.finished_at), "error": (t.error or "").split("\n")[0] or None,
        })
    return {"total": total, "offset": offset, "limit": limit, "rows": rows}


def _text_value(value: float | None) -> str | None:
    return None if value is None else repr(value)


def running_attempts(store: Store, study_id: int | None = None) -> list[dict[str, Any]]:
    """Attempts not ended yet, newest first, with their study, trial, placement, rate and spend so far
    (as of the controller's last heartbeat), and the trial's spend and next rung (set by the caller).

    ``placement`` is the CLI's label (``m5.large / spot``, ``local at $3.60/h``); ``market`` is None
    for a local run priced at its ``usd_per_hour`` (it has none)."""
    query = (select(AttemptRow, TrialRow.number, TrialRow.cost_micros, TrialRow.last_step, TrialRow.params_json,
                    StudyRow.name, StudyRow.id, TrialRow.heartbeat_at)
             .join(TrialRow, col(TrialRow.id) == col(AttemptRow.trial_id))
             .join(StudyRow, col(StudyRow.id) == col(TrialRow.study_id))
             .where(col(AttemptRow.ended_at).is_(None)).order_by(col(AttemptRow.id).desc()))
    if study_id is not None:
        query = query.where(TrialRow.study_id == study_id)
    with Session(store.engine) as s:
        found = s.exec(query).all()
    from costtune.reports.spend import placement_label

    return [{
        "attempt_id": a.id, "study": name, "study_id": sid, "trial": number, "attempt": a.number,
        "provider": a.provider, "region": a.region, "instance_type": a.instance_type,
        # a local run priced at its usd_per_hour has no market: its price source shows, as in the CLI
        "market": a.market if a.instance_type or a.provider != "local" else None,
        "placement": placement_label(a.provider, a.instance_type, a.market, a.rate_micros_per_hour),
        "rate_micros_per_hour": a.rate_micros_per_hour, "attempt_cost_micros": a.cost_micros,
        "trial_cost_micros": trial_cost, "billable_ms": a.billable_ms, "last_step": step,
        "started_at": iso(a.started_at), "heartbeat_at": iso(hb), "params": json.loads(params),
    } for a, number, trial_cost, step, params, name, sid, hb in found]


def live_delta(store: Store, study_id: int, *, after_report: int = 0, after_trial: int = 0,
               since: str | None = None, report_limit: int = 2000) -> dict[str, Any]:
    """What changed in a study since the caller's cursors, read by id and time, never the whole table.

    ``after_report``: the highest report id seen (the new reports come back, oldest first, at most
    ``report_limit``); ``after_trial``: the highest trial id seen (new trials come back);
    ``since``: the latest ``finished_at`` seen (trials finished after it come back). Counts and spend
    are aggregates the database computes. Returns the cursors to send next time.
    """
    with Session(store.engine) as s:
        counts = dict.fromkeys(STATES, 0)
        spend = 0
        grouped = select(TrialRow.state, func.count(), func.coalesce(func.sum(TrialRow.cost_micros), 0)).where(
            TrialRow.study_id == study_id).group_by(TrialRow.state)
        for state, n, cost in s.exec(grouped).all():
            counts[state] = n
            spend += int(cost)
        reports = s.exec(
            select(ReportRow.id, TrialRow.number, ReportRow.step, ReportRow.cost_micros, ReportRow.metrics_json)
            .join(TrialRow, col(TrialRow.id) == col(ReportRow.trial_id))
            .where(TrialRow.study_id == study_id, ReportRow.id > after_report)
            .order_by(col(ReportRow.id)).limit(report_limit)).all()
        changed_where = [TrialRow.id > after_trial]
        if since:
            changed_where.append(col(TrialRow.finished_at) > datetime.fromisoformat(since))
        changed = s.exec(select(TrialRow).where(TrialRow.study_id == study_id, or_(*changed_where))
                         .order_by(col(TrialRow.id)).limit(5000)).all()
        burn = s.exec(select(func.coalesce(func.sum(AttemptRow.rate_micros_per_hour), 0))
                      .join(TrialRow, col(TrialRow.id) == col(AttemptRow.trial_id))
                      .where(and_(TrialRow.study_id == study_id, col(AttemptRow.ended_at).is_(None)))).one()
    last_report = reports[-1][0] if reports else after_report
    finished = [t.finished_at for t in changed if t.finished_at is not None]
    newest = max(finished, default=None)
    return {
        "counts": counts, "trials": sum(counts.values()), "spend_micros": spend, "burn_micros_per_hour": int(burn),
        "reports": [{"trial": n, "step": step, "cost_micros": cost, "metrics": json.loads(m)}
                    for _i, n, step, cost, m in reports],
        "trials_changed": [{"number": t.number, "state": t.state, "value": _finite(t.value),
                            "cost_micros": t.cost_micros, "finished_at": iso(t.finished_at)} for t in changed],
        "cursor": {"after_report": last_report, "after_trial": max([after_trial, *(t.id or 0 for t in changed)]),
                   "since": iso(newest) if newest is not None else since},
    }


def live_cursor(store: Store, study_id: int) -> dict[str, Any]:
    """The cursors of ``live_delta`` as of now (three aggregates): a page drawn from current data starts here."""
    with Session(store.engine) as s:
        report = s.exec(select(func.max(ReportRow.id)).join(TrialRow, col(TrialRow.id) == col(ReportRow.trial_id))
                        .where(TrialRow.study_id == study_id)).one()
        trial, finished = s.exec(select(func.max(TrialRow.id), func.max(TrialRow.finished_at))
                                 .where(TrialRow.study_id == study_id)).one()
    return {"after_report": report or 0, "after_trial": trial or 0, "since": iso(finished) or ""}


def scope_rows(store: Store) -> list[dict[str, Any]]:
    """Every ledger scope with its cap, spent and reserved micro-dollars, scopes with a cap first."""
    with Session(store.engine) as s:
        caps = {r.scope: r.cap_micros for r in s.exec(select(ScopeCapRow)).all()}
        balances = {r.scope: r for r in s.exec(select(ScopeBalanceRow)).all()}
        names = dict(s.exec(select(StudyRow.id, StudyRow.name)).all())
    out = []
    for scope in sorted(set(caps) | set(balances)):
        b = balances.get(scope)
        kind, _, rest = scope.partition(":")
        label = scope
        if kind == "study" and rest.isdigit():
            label = f"study {names.get(int(rest), '(deleted #' + rest + ')')}"
        out.append({"scope": scope, "kind": kind, "label": label, "cap_micros": caps.get(scope),
                    "spent_micros": b.spent_micros if b else 0, "reserved_micros": b.reserved_micros if b else 0})
    return sorted(out, key=lambda r: (r["cap_micros"] is None, r["scope"]))
