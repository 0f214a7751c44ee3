"""The ledger's tables: caps, reservations and running balances per money scope.

A scope is a string key ("study:42", "team:vision", "day:2026-11-27"); every launch reserves its
money in each scope that applies. ``ScopeBalanceRow`` keeps the running totals so admitting a
reservation reads (and locks) one row per scope instead of summing the reservation table.
Money columns are 64-bit integers of micro-dollars.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Text
from sqlmodel import Field, SQLModel

from costtune.store.models import utcnow

SCOPE_MAX = 200
KEY_MAX = 200


class ScopeCapRow(SQLModel, table=True):
    """A hard cap on one scope; a scope without a row has no cap."""

    __tablename__ = "scope_cap"
    scope: str = Field(primary_key=True, max_length=SCOPE_MAX)
    cap_micros: int = Field(sa_column=Column(BigInteger, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)


class ReservationRow(SQLModel, table=True):
    """Money held for one launch in every scope it counts against, until charged or released."""

    __tablename__ = "reservation"
    id: int | None = Field(default=None, primary_key=True)
    attempt_id: int | None = Field(default=None, foreign_key="attempt.id", index=True)
    key: str = Field(unique=True, max_length=KEY_MAX)  # the caller's idempotency key
    scopes_json: str = Field(sa_column=Column(Text, nullable=False))  # sorted JSON list
    amount_micros: int = Field(sa_column=Column(BigInteger, nullable=False))
    state: str = Field(default="held", index=True)  # held | charged | released
    created_at: datetime = Field(default_factory=utcnow)
    closed_at: datetime | None = None
    charged_micros: int | None = Field(default=None, sa_column=Column(BigInteger))


class ScopeBalanceRow(SQLModel, table=True):
    """Running totals of one scope, changed in the same transaction as its reservations."""

    __tablename__ = "scope_balance"
    scope: str = Field(primary_key=True, max_length=SCOPE_MAX)
    reserved_micros: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    spent_micros: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
