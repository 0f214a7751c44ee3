"""Tables of remote attempts: what a worker agent fetches and what it sends back.

A remote attempt (one launched on a cloud instance) has one ``remote_attempt`` row beside its
``attempt`` row: the sha256 of its token (never the token), its launch description, the bundle it
runs, the controller's decision for it and what the agent reported (heartbeats, exit). Every line
the trial printed is a ``remote_line`` row, numbered from 0 per attempt: the controller reads them
in order and applies the same rule to them as to a local process's stdout.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, LargeBinary, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from costtune.store.models import utcnow


class BundleRow(SQLModel, table=True):
    __tablename__ = "bundle"
    digest: str = Field(primary_key=True, max_length=64)  # sha256 of data, hex
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class RemoteAttemptRow(SQLModel, table=True):
    __tablename__ = "remote_attempt"
    attempt_id: int = Field(primary_key=True, foreign_key="attempt.id")
    token_sha256: str = Field(index=True, max_length=64)
    launch_json: str = Field(sa_column=Column(Text, nullable=False))  # its env is erased once the attempt ends
    bundle_digest: str | None = Field(default=None, max_length=64)
    instance_id: str | None = None  # the cloud's name for the instance, once it exists
    decision: str = "continue"  # or "stop": the answer to the agent's next heartbeat
    decision_reason: str | None = None
    next_seq: int = 0  # lines received so far
    heartbeat_at: datetime | None = None  # the agent's last contact (any request)
    agent_started_at: datetime | None = None  # when the trial started on the instance (agent's clock)
    ended_at: datetime | None = None  # when the trial ended (agent's clock); None: not reported
    exit_code: int | None = None
    spot_strikes: int = 0  # spot capacity errors its launch met (spot-then-on-demand counts them per trial)
    how: str | None = None  # exited | stopped | spot-interruption | controller-lost | setup-failed | ...
    created_at: datetime = Field(default_factory=utcnow)


class RemoteLineRow(SQLModel, table=True):
    __tablename__ = "remote_line"
    __table_args__ = (UniqueConstraint("attempt_id", "seq"),)
    id: int | None = Field(default=None, primary_key=True)
    attempt_id: int = Field(foreign_key="attempt.id", index=True)
    seq: int
    line: str = Field(sa_column=Column(Text, nullable=False))
    received_at: datetime = Field(default_factory=utcnow)
