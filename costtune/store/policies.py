"""``PolicyBook``: spend policies in the store (versioned, audited) and the alerts they fired."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, text
from sqlmodel import Session, col, select

from costtune.errors import InputError
from costtune.store.audit import add_audit, current_actor
from costtune.store.models import utcnow
from costtune.store.policy_models import PolicyAlertRow, PolicyVersionRow

if TYPE_CHECKING:
    from costtune.policies.model import Policy

APPLY_ACTION, REMOVE_ACTION, ALERT_ACTION = "policy.apply", "policy.remove", "policy.alert"
_FIRE = text(
    f"INSERT INTO {PolicyAlertRow.__tablename__} (policy, scope, threshold, fired_at, actor, detail_json) "
    "VALUES (:policy, :scope, :threshold, :fired_at, :actor, :detail_json) "
    "ON CONFLICT (scope, threshold) DO NOTHING"
)


@dataclass(frozen=True)
class PolicyVersion:
    name: str
    version: int
    removed: bool
    body: dict[str, Any]
    applied_at: datetime
    actor: str


@dataclass(frozen=True)
class AppliedPolicy:
    name: str
    version: int
    changed: bool  # False: the stored current version already said exactly this


@dataclass(frozen=True)
class FiredAlert:
    policy: str
    scope: str
    threshold: str
    fired_at: datetime
    detail: dict[str, Any]


class PolicyBook:
    """Mixed into ``Store``; every method is one transaction."""

    _tx: Callable[[], AbstractContextManager[Session]]

    def apply_policies(self, policies: list[Policy], *, actor: str | None = None) -> list[AppliedPolicy]:
        """Store each policy as its name's next version (all or none), auditing each change; a policy
        identical to its current version is left alone (``changed`` False)."""
        from costtune.policies.alerts import public_body

        who = actor or current_actor()
        out = []
        with self._tx() as s:
            for policy in policies:
                latest = _latest(s, policy.name)
                body = json.dumps(policy.raw)  # as written, in its order
                if latest is not None and not latest.removed and json.loads(latest.body_json) == policy.raw:
                    out.append(AppliedPolicy(policy.name, latest.version, changed=False))
                    continue
                version = 1 if latest is None else latest.version + 1
                s.add(PolicyVersionRow(name=policy.name, version=version, body_json=body, actor=who))
                add_audit(s, APPLY_ACTION, actor=who, study_id=None,
                          detail={"policy": policy.name, "version": version, "policy_body": public_body(policy.raw)})
                out.append(AppliedPolicy(policy.name, version, changed=True))
            s.flush()
        return out

    def remove_policy(self, name: str, *, actor: str | None = None) -> int:
        """Stop enforcing ``name`` (its history stays); returns the removal's version number.

        Raises ``InputError`` naming the policy when no such policy is in force."""
        who = actor or current_actor()
        with self._tx() as s:
            latest = _latest(s, name)
            if latest is not None and not latest.removed:
                version = latest.version + 1
                s.add(PolicyVersionRow(name=name, version=version, removed=True, body_json=latest.body_json,
                                       actor=who))
                add_audit(s, REMOVE_ACTION, actor=who, study_id=None, detail={"policy": name, "version": version})
                return version
        known = ", ".join(p.name for p in self.policies()) or "none"
        raise InputError(f"policy {name!r}: no such policy in force (policies in force: {known})")

    def policies(self) -> list[Policy]:
        """The policies in force, by name."""
        from costtune.policies.parse import parse_policy

        with self._tx() as s:
            newest = select(PolicyVersionRow.name, func.max(PolicyVersionRow.version).label("v")).group_by(
                col(PolicyVersionRow.name)).subquery()
            rows = s.exec(select(PolicyVersionRow).join(
                newest, (col(PolicyVersionRow.name) == newest.c.name) & (col(PolicyVersionRow.version) == newest.c.v))
                .order_by(col(PolicyVersionRow.name))).all()
            bodies = [json.loads(r.body_json) for r in rows if not r.removed]
        return [parse_policy(b) for b in bodies]

    def policy_versions(self, name: str) -> list[PolicyVersion]:
        """Every version of ``name``, oldest first (empty when it never existed)."""
        with self._tx() as s:
            rows = s.exec(select(PolicyVersionRow).where(PolicyVersionRow.name == name)
                          .order_by(col(PolicyVersionRow.version))).all()
            return [PolicyVersion(r.name, r.version, r.removed, json.loads(r.body_json), r.applied_at, r.actor)
                    for r in rows]

    def fire_alert(self, policy: str, scope: str, threshold: str, detail: dict[str, Any], *,
                   actor: str | None = None) -> bool:
        """Record that ``threshold`` fired in window ``scope``; True only for the first caller ever (the
        one that should act), False when it already fired (another controller, an earlier run)."""
        who = actor or current_actor()
        with self._tx() as s:
            done = s.execute(_FIRE, {"policy": policy, "scope": scope, "threshold": threshold, "fired_at": utcnow(),
                                     "actor": who, "detail_json": json.dumps(detail, default=str)})
            fired = done.rowcount == 1  # type: ignore[attr-defined]
            if fired:
                add_audit(s, ALERT_ACTION, actor=who, study_id=detail.get("study_id"),
                          detail={"policy": policy, "scope": scope, "threshold": threshold, **detail})
            return fired

    def spot_record(self, instance_type: str | None) -> tuple[int, float]:
        """``(preemptions, spot hours)`` of every spot attempt on ``instance_type`` in this store: what
        costtune observed, for the interruption rate of ``market: cheapest-expected``."""
        from costtune.store.models import AttemptRow

        with self._tx() as s:
            row = s.exec(select(func.count(), func.coalesce(func.sum(AttemptRow.billable_ms), 0)).where(
                AttemptRow.market == "spot", AttemptRow.instance_type == instance_type,
                col(AttemptRow.ended_at).is_not(None))).one()
            preempted = s.exec(select(func.count()).where(
                AttemptRow.market == "spot", AttemptRow.instance_type == instance_type,
                AttemptRow.exit_reason == "preempted")).one()
        return int(preempted), int(row[1]) / 3_600_000

    def mean_attempt_hours(self, study_id: int) -> float | None:
        """Mean billable hours of the study's attempts that completed (None before the first)."""
        from costtune.store.models import AttemptRow, TrialRow

        with self._tx() as s:
            mean = s.exec(select(func.avg(AttemptRow.billable_ms)).join(
                TrialRow, col(TrialRow.id) == col(AttemptRow.trial_id)).where(
                TrialRow.study_id == study_id, AttemptRow.exit_reason == "completed")).one()
        return None if mean is None else float(mean) / 3_600_000

    def first_report_ms(self, study_id: int) -> dict[str | None, list[int]]:
        """Instance type -> the billable ms of each of the study's attempts at its first report, oldest
        attempt first (every run of the study): how long a trial there takes to report at all."""
        from costtune.store.models import AttemptRow, ReportRow, TrialRow

        first = select(ReportRow.attempt_id, func.min(ReportRow.id).label("rid")).group_by(
            ReportRow.attempt_id).subquery()
        query = select(AttemptRow.instance_type, ReportRow.elapsed_s).join(
            first, col(first.c.attempt_id) == col(AttemptRow.id)).join(
            ReportRow, col(ReportRow.id) == col(first.c.rid)).join(
            TrialRow, col(TrialRow.id) == col(AttemptRow.trial_id)).where(
            TrialRow.study_id == study_id).order_by(col(AttemptRow.id))
        seen: dict[str | None, list[int]] = {}
        with self._tx() as s:
            for itype, elapsed in s.exec(query).all():
                seen.setdefault(itype, []).append(round(float(elapsed or 0) * 1000))
        return seen

    def unreported_costs(self, study_id: int) -> list[int]:
        """Micro-dollars of each of the study's ended attempts that was stopped without one report (every run of
        the study), oldest first: the runner's stop for trials whose start-up outruns their whole ladder."""
        from costtune.store.models import AttemptRow, ReportRow, TrialRow

        reported = select(ReportRow.attempt_id).where(col(ReportRow.attempt_id) == col(AttemptRow.id)).exists()
        query = select(AttemptRow.cost_micros).join(TrialRow, col(TrialRow.id) == col(AttemptRow.trial_id)).where(
            TrialRow.study_id == study_id, col(AttemptRow.ended_at).is_not(None), AttemptRow.exit_reason == "stopped",
            ~reported).order_by(col(AttemptRow.id))
        with self._tx() as s:
            return [int(c or 0) for c in s.exec(query).all()]

    def fired_in(self, scope: str) -> set[str]:
        """The thresholds (labels, e.g. ``"80% of actual"``) that fired in window ``scope``."""
        with self._tx() as s:
            return set(s.exec(select(PolicyAlertRow.threshold).where(PolicyAlertRow.scope == scope)).all())

    def fired_alerts(self, policy: str | None = None) -> list[FiredAlert]:
        query = select(PolicyAlertRow).order_by(col(PolicyAlertRow.id))
        if policy is not None:
            query = query.where(PolicyAlertRow.policy == policy)
        with self._tx() as s:
            return [FiredAlert(r.policy, r.scope, r.threshold, r.fired_at, json.loads(r.detail_json))
                    for r in s.exec(query).all()]


def _latest(s: Session, name: str) -> PolicyVersionRow | None:
    return s.exec(select(PolicyVersionRow).where(PolicyVersionRow.name == name)
                  .order_by(col(PolicyVersionRow.version).desc()).limit(1)).first()
