"""Tables of spend policies: every applied version of every policy, and the alerts that fired.

A policy's history is append-only: ``apply`` adds a version, ``remove`` adds a version with
``removed`` set; the current policy is the newest version when it is not a removal. An alert row is
unique per (window scope, threshold), so a threshold fires once per window whichever controller, or
how many restarts, first sees it crossed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from costtune.store.models import utcnow


class PolicyVersionRow(SQLModel, table=True):
    __tablename__ = "policy_version"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, index=True)
    version: int
    removed: bool = False
    body_json: str = Field(sa_column=Column(Text, nullable=False))  # the policy mapping as written
    applied_at: datetime = Field(default_factory=utcnow)
    actor: str = Field(max_length=300)


class PolicyAlertRow(SQLModel, table=True):
    __tablename__ = "policy_alert"
    __table_args__ = (UniqueConstraint("scope", "threshold"),)
    id: int | None = Field(default=None, primary_key=True)
    policy: str = Field(max_length=64, index=True)
    scope: str = Field(max_length=200)  # the window's ledger scope: policy, period and start
    threshold: str = Field(max_length=40)  # "80% of forecast"
    fired_at: datetime = Field(default_factory=utcnow)
    actor: str = Field(max_length=300)
    detail_json: str = Field(sa_column=Column(Text, nullable=False))
