"""The audit trail: who changed what, when, and from what to what.

One generic table: each row is an action (``cap.set``, later policy changes) by an actor (the
user and the process, ``alice@host:pid:start``) on an optional study, with a JSON detail. Rows
are only ever added. A study id is kept without a foreign key, so the record outlives a deleted
study (its name is in the detail as well).
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, Text
from sqlmodel import Field, Session, SQLModel, col, select

from costtune.store.models import utcnow
from costtune.store.owner import controller_id


class AuditRow(SQLModel, table=True):
    __tablename__ = "audit"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(max_length=300)
    action: str = Field(max_length=100, index=True)
    study_id: int | None = Field(default=None, index=True)
    detail_json: str = Field(sa_column=Column(Text, nullable=False))


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    study_id: int | None
    detail: dict[str, Any]


def current_actor() -> str:
    """``user@host:pid:start``: the person (as the OS knows them) and the process that acted."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        user = "unknown"
    return f"{user}@{controller_id()}"


def add_audit(s: Session, action: str, *, actor: str, study_id: int | None, detail: dict[str, Any]) -> AuditEntry:
    """Insert one record inside the caller's transaction."""
    row = AuditRow(action=action, actor=actor, study_id=study_id, detail_json=json.dumps(detail, default=str))
    s.add(row)
    s.flush()
    return _entry(row)


def _entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(row.id, row.at, row.actor, row.action, row.study_id, json.loads(row.detail_json))  # type: ignore[arg-type]


class AuditBook:
    """Mixed into ``Store``; every method is one transaction."""

    _tx: Callable[[], AbstractContextManager[Session]]

    def audit(self, action: str, *, actor: str | None = None, study_id: int | None = None,
              detail: dict[str, Any] | None = None) -> AuditEntry:
        """Record an action (``actor`` defaults to ``current_actor()``)."""
        with self._tx() as s:
            return add_audit(s, action, actor=actor or current_actor(), study_id=study_id, detail=detail or {})

    def audit_log(self, *, study_id: int | None = None, action: str | None = None) -> list[AuditEntry]:
        """Records oldest first, only those of ``study_id`` / ``action`` when given."""
        query = select(AuditRow).order_by(col(AuditRow.id))
        if study_id is not None:
            query = query.where(AuditRow.study_id == study_id)
        if action is not None:
            query = query.where(AuditRow.action == action)
        with self._tx() as s:
            return [_entry(r) for r in s.exec(query).all()]
