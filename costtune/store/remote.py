"""The store side of remote attempts: bundles, tokens, agent lines, heartbeats, decisions, exits.

Written by two parties: the controller (``providers/remote.py``: register an attempt, decide a
stop, read lines) and the worker API (``costtune serve``: what agents send). Each method is one
transaction; an agent's retried request changes nothing twice (lines carry sequence numbers, an
exit is first-wins).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from costtune.errors import StoreError
from costtune.store.models import AttemptRow, utcnow
from costtune.store.remote_models import BundleRow, RemoteAttemptRow, RemoteLineRow


class RemoteConflict(StoreError):
    """An agent's request does not fit what the store holds (a gap in its lines, an ended attempt)."""


@dataclass(frozen=True)
class RemoteState:
    """A snapshot of one remote attempt; times are aware UTC."""

    attempt_id: int
    key: str
    instance_id: str | None
    decision: str
    decision_reason: str | None
    next_seq: int
    heartbeat_at: datetime | None
    agent_started_at: datetime | None
    ended_at: datetime | None
    exit_code: int | None
    how: str | None
    attempt_open: bool  # the controller has not closed the attempt
    launch: dict[str, Any]
    bundle_digest: str | None
    token_sha256: str


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; every time the store keeps is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


class RemoteBook:
    """Mixed into ``Store``."""

    _tx: Callable[[], AbstractContextManager[Session]]

    # -- bundles ---------------------------------------------------------------------------
    def put_bundle(self, digest: str, data: bytes) -> None:
        """Keep a code bundle under its sha256 (hex); storing the same one again changes nothing."""
        with self._tx() as s:
            if s.get(BundleRow, digest) is None:
                s.add(BundleRow(digest=digest, size=len(data), data=data))

    def get_bundle(self, digest: str) -> bytes | None:
        with self._tx() as s:
            row = s.get(BundleRow, digest)
            return None if row is None else bytes(row.data)

    # -- the controller's side -------------------------------------------------------------
    def attempt_id_for_key(self, key: str) -> int | None:
        with self._tx() as s:
            return s.exec(select(AttemptRow.id).where(AttemptRow.idempotency_key == key)).first()

    def register_remote(self, attempt_id: int, *, token_sha256: str, launch: dict[str, Any],
                        bundle_digest: str | None) -> None:
        """Give a remote attempt its token (hashed), launch description and bundle. Called again before
        an instance exists (a retried launch), it replaces them; afterwards ``StoreError``."""
        with self._tx() as s:
            row = s.get(RemoteAttemptRow, attempt_id)
            if row is not None and row.instance_id is not None:
                raise StoreError(f"attempt {attempt_id} already runs on instance {row.instance_id}")
            if row is None:
                row = RemoteAttemptRow(attempt_id=attempt_id, token_sha256=token_sha256, launch_json="{}")
                s.add(row)
            row.token_sha256, row.launch_json, row.bundle_digest = token_sha256, json.dumps(launch), bundle_digest

    def set_remote_instance(self, attempt_id: int, instance_id: str) -> None:
        with self._tx() as s:
            s.execute(update(RemoteAttemptRow).where(col(RemoteAttemptRow.attempt_id) == attempt_id)
                      .values(instance_id=instance_id))

    def set_remote_strikes(self, attempt_id: int, strikes: int) -> None:
        """Keep how many spot capacity errors this attempt's launch met (they survive a restart)."""
        with self._tx() as s:
            s.execute(update(RemoteAttemptRow).where(col(RemoteAttemptRow.attempt_id) == attempt_id)
                      .values(spot_strikes=strikes))

    def trial_spot_strikes(self, attempt_id: int) -> int:
        """Strikes of the trial ``attempt_id`` belongs to, from its earlier attempts: the spot capacity
        errors their launches met plus their preemptions (``resources.spot_fallback_after`` counts them)."""
        with self._tx() as s:
            attempt = s.get(AttemptRow, attempt_id)
            if attempt is None:
                return 0
            earlier = s.exec(select(AttemptRow).where(AttemptRow.trial_id == attempt.trial_id,
                                                      col(AttemptRow.number) < attempt.number)).all()
            preempted = sum(a.exit_reason == "preempted" for a in earlier)
            ids = [a.id for a in earlier] or [-1]
            capacity = s.exec(select(RemoteAttemptRow.spot_strikes)
                              .where(col(RemoteAttemptRow.attempt_id).in_(ids))).all()
            return preempted + sum(capacity)

    def decide_remote(self, attempt_id: int, decision: str, reason: str | None = None) -> None:
        """Set the answer to the agent's next heartbeat (``continue`` or ``stop``; a stop stays)."""
        if decision not in ("continue", "stop"):
            raise ValueError(f"decision must be continue or stop, got {decision!r}")
        with self._tx() as s:
            row = s.get(RemoteAttemptRow, attempt_id)
            if row is not None and row.decision != "stop":
                row.decision, row.decision_reason = decision, reason

    def remote_state(self, attempt_id: int) -> RemoteState | None:
        with self._tx() as s:
            found = s.exec(select(RemoteAttemptRow, AttemptRow)
                           .where(RemoteAttemptRow.attempt_id == attempt_id)
                           .where(AttemptRow.id == RemoteAttemptRow.attempt_id)).first()
            if found is None:
                return None
            row, attempt = found
            return RemoteState(
                attempt_id=row.attempt_id, key=attempt.idempotency_key, instance_id=row.instance_id,
                decision=row.decision, decision_reason=row.decision_reason, next_seq=row.next_seq,
                heartbeat_at=aware(row.heartbeat_at), agent_started_at=aware(row.agent_started_at),
                ended_at=aware(row.ended_at), exit_code=row.exit_code, how=row.how,
                attempt_open=attempt.ended_at is None, launch=json.loads(row.launch_json),
                bundle_digest=row.bundle_digest, token_sha256=row.token_sha256)

    def remote_lines(self, attempt_id: int, after: int, limit: int = 1000) -> list[tuple[int, str]]:
        """Lines numbered ``after`` and up, in order, at most ``limit``."""
        with self._tx() as s:
            rows = s.exec(select(RemoteLineRow.seq, RemoteLineRow.line)
                          .where(RemoteLineRow.attempt_id == attempt_id, col(RemoteLineRow.seq) >= after)
                          .order_by(col(RemoteLineRow.seq)).limit(limit)).all()
            return [(seq, line) for seq, line in rows]

    def attempts_with_token(self, token_sha256: str) -> list[int]:
        """Attempts whose token hashes to ``token_sha256`` (a token is unique: at most one)."""
        with self._tx() as s:
            return list(s.exec(select(RemoteAttemptRow.attempt_id)
                               .where(RemoteAttemptRow.token_sha256 == token_sha256)).all())

    # -- what agents send ------------------------------------------------------------------
    def agent_lines(self, attempt_id: int, first_seq: int, lines: Sequence[str]) -> int:
        """Append the trial's lines numbered from ``first_seq``; lines already received are skipped (a
        retried request). Returns the number of the next line expected. Raises ``RemoteConflict`` for a
        gap (``first_seq`` past what was received) or an attempt the controller has closed."""
        with self._tx() as s:
            row = self._open_row(s, attempt_id)
            if first_seq > row.next_seq:
                raise RemoteConflict(f"seq: expected at most {row.next_seq}, got {first_seq}")
            now = utcnow()
            fresh = list(lines)[row.next_seq - first_seq:]
            for offset, line in enumerate(fresh):
                s.add(RemoteLineRow(attempt_id=attempt_id, seq=row.next_seq + offset, line=line, received_at=now))
            row.next_seq += len(fresh)
            row.heartbeat_at = now
            return row.next_seq

    def agent_heartbeat(self, attempt_id: int, *, started_at: datetime | None = None) -> tuple[str, str | None]:
        """Record the agent's contact; the controller's decision (``continue``/``stop``) and its reason.
        An attempt the controller has closed answers ``stop``."""
        with self._tx() as s:
            row = s.get(RemoteAttemptRow, attempt_id)
            attempt = s.get(AttemptRow, attempt_id)
            if row is None or attempt is None:
                raise RemoteConflict(f"attempt {attempt_id} is not a remote attempt")
            row.heartbeat_at = utcnow()
            if started_at is not None and row.agent_started_at is None:
                row.agent_started_at = started_at
            if attempt.ended_at is not None:
                return "stop", "the attempt has ended"
            return row.decision, row.decision_reason

    def agent_exit(self, attempt_id: int, *, exit_code: int | None, ended_at: datetime, how: str) -> bool:
        """Record how the trial ended (first report wins; True when this one did) and erase the
        launch description's environment, which may hold the sweep's secrets."""
        with self._tx() as s:
            row = s.get(RemoteAttemptRow, attempt_id)
            if row is None:
                raise RemoteConflict(f"attempt {attempt_id} is not a remote attempt")
            row.heartbeat_at = utcnow()
            if row.ended_at is not None:
                return False
            row.ended_at, row.exit_code, row.how = ended_at, exit_code, how
            _erase_env(row)
            return True

    def erase_remote_env(self, attempt_id: int) -> None:
        """Drop the launch description's environment (the sweep's resolved ``env``): the attempt is over."""
        with self._tx() as s:
            row = s.get(RemoteAttemptRow, attempt_id)
            if row is not None:
                _erase_env(row)

    @staticmethod
    def _open_row(s: Session, attempt_id: int) -> RemoteAttemptRow:
        row = s.get(RemoteAttemptRow, attempt_id)
        attempt = s.get(AttemptRow, attempt_id)
        if row is None or attempt is None:
            raise RemoteConflict(f"attempt {attempt_id} is not a remote attempt")
        if attempt.ended_at is not None:
            raise RemoteConflict(f"attempt {attempt_id} has ended; nothing more is taken for it")
        return row


def _erase_env(row: RemoteAttemptRow) -> None:
    launch = json.loads(row.launch_json)
    if isinstance(launch.get("trial"), dict) and launch["trial"].get("env"):
        launch["trial"]["env"] = {}
        row.launch_json = json.dumps(launch)


def delete_remote(s: Session, attempt_ids: Sequence[int]) -> None:
    """Remove remote attempts' rows (a study being deleted); their bundles stay (shared by digest)."""
    if attempt_ids:
        s.execute(delete(RemoteLineRow).where(col(RemoteLineRow.attempt_id).in_(attempt_ids)))
        s.execute(delete(RemoteAttemptRow).where(col(RemoteAttemptRow.attempt_id).in_(attempt_ids)))
