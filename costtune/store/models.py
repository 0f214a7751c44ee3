"""The store's tables.

JSON columns hold parameters and metrics (their shape depends on the study); money columns are
64-bit integers of micro-dollars. Attempts are one row per launch of a trial, so a trial that was
interrupted or preempted and re-run keeps one trial row and gains attempt rows.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import BigInteger, Column, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

# 2: report.cost_micros, attempt.start_step / waste_micros
# 3: attempt.argv_json, bill_granule_s, bill_minimum_s, note; trial.warnings_json
# 4: trial.verdicts_json
# 5: tables bundle, remote_attempt, remote_line (store/remote_models.py)
# 6: trial.verdict_reasons_json
# 7: study.last_stop
SCHEMA_VERSION = 7


def utcnow() -> datetime:
    return datetime.now(UTC)


class MetaRow(SQLModel, table=True):
    __tablename__ = "costtune_meta"
    key: str = Field(primary_key=True)
    value: str


class StudyRow(SQLModel, table=True):
    __tablename__ = "study"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=200)
    metric: str
    mode: str
    space_json: str = Field(sa_column=Column(Text, nullable=False))
    sampler_json: str = Field(sa_column=Column(Text, nullable=False))
    spec_json: str = Field(sa_column=Column(Text, nullable=False))  # the sweep as given
    budget_usd_micros: int | None = Field(default=None, sa_column=Column(BigInteger))
    next_number: int = 0  # trial numbers are handed out under the study's lock
    created_at: datetime = Field(default_factory=utcnow)
    # Where its trial directories go (<output root>/<study>[-N]), claimed once when it is created.
    output_dir: str | None = Field(default=None, sa_column=Column(Text))
    # Why its last run (`costtune run`, a schedule, ``optimize``) stopped, as that run said it; None before
    # any, and while a run goes on (each run clears it as it starts): store/control.py.
    last_stop: str | None = Field(default=None, sa_column=Column(Text))


class TrialRow(SQLModel, table=True):
    __tablename__ = "trial"
    __table_args__ = (
        UniqueConstraint("study_id", "number"),
        UniqueConstraint("study_id", "grid_index"),  # a grid never repeats a combination
    )
    id: int | None = Field(default=None, primary_key=True)
    study_id: int = Field(foreign_key="study.id", index=True)
    number: int
    state: str = Field(index=True)
    source: str = "sampler"
    params_json: str = Field(sa_column=Column(Text, nullable=False))
    grid_index: int | None = None
    value: float | None = None
    metrics_json: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    last_step: int | None = None
    cost_micros: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    output_dir: str | None = None
    error: str | None = Field(default=None, sa_column=Column(Text))  # why it failed; first line the reason
    # What the controller ignored or dropped from its output: {"count": N, "first": [message, ...]}.
    warnings_json: str | None = Field(default=None, sa_column=Column(Text))
    # Its rung verdicts as they were made: [[rung level micros, value judged or null, promoted], ...].
    verdicts_json: str | None = Field(default=None, sa_column=Column(Text))
    # Why each verdict went as it did: {"<rung level micros>": reason, ...} (a column of its own, so a store
    # read by an older costtune still parses verdicts_json).
    verdict_reasons_json: str | None = Field(default=None, sa_column=Column(Text))
    owner: str | None = None  # the controller that runs it now (host:pid:start)
    heartbeat_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # Bumped by the database on every change of the row or of its attempts (store/trialcache.py).
    revision: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))


class AttemptRow(SQLModel, table=True):
    __tablename__ = "attempt"
    __table_args__ = (UniqueConstraint("trial_id", "number"),)
    id: int | None = Field(default=None, primary_key=True)
    trial_id: int = Field(foreign_key="trial.id", index=True)
    number: int  # 1, 2, ... within the trial
    idempotency_key: str = Field(unique=True, max_length=64)
    provider: str
    region: str | None = None
    instance_type: str | None = None
    market: str | None = None
    rate_micros_per_hour: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    host: str | None = None
    pid: int | None = None  # local process group leader, for clean-up after a crash
    started_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
    exit_reason: str | None = None  # completed | failed | stopped | timeout | interrupted | budget | policy
    exit_code: int | None = None
    billable_ms: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    cost_micros: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    start_step: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    # Money this attempt spent on work that was lost (a preemption after its last checkpoint).
    waste_micros: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    # The command line this attempt really ran (placeholders filled in), as a JSON list; None if none.
    argv_json: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # The provider's billing rule at launch (whole granules, minimum charge): how recovery bills it too.
    bill_granule_s: int = Field(default=1, sa_column=Column(Integer, nullable=False, server_default="1"))
    bill_minimum_s: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    note: str | None = Field(default=None, sa_column=Column(Text))  # how recovery billed it, when it did


class ReportRow(SQLModel, table=True):
    __tablename__ = "report"
    id: int | None = Field(default=None, primary_key=True)
    trial_id: int = Field(foreign_key="trial.id", index=True)
    attempt_id: int | None = Field(default=None, foreign_key="attempt.id")
    step: int
    metrics_json: str = Field(sa_column=Column(Text, nullable=False))
    elapsed_s: float = 0.0  # seconds since the attempt started
    # The trial's spend when it reported (all its attempts): what rungs are judged on.
    cost_micros: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    created_at: datetime = Field(default_factory=utcnow)


# Columns added after schema 1, created in place on stores made by older versions.
ADDED_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("report", "cost_micros", "BIGINT NOT NULL DEFAULT 0"),
    ("attempt", "start_step", "INTEGER NOT NULL DEFAULT 0"),
    ("attempt", "waste_micros", "BIGINT NOT NULL DEFAULT 0"),
    ("attempt", "argv_json", "TEXT"),
    ("trial", "warnings_json", "TEXT"),
    ("attempt", "bill_granule_s", "INTEGER NOT NULL DEFAULT 1"),
    ("attempt", "bill_minimum_s", "INTEGER NOT NULL DEFAULT 0"),
    ("attempt", "note", "TEXT"),
    ("study", "output_dir", "TEXT"),
    ("trial", "verdicts_json", "TEXT"),
    ("trial", "revision", "BIGINT NOT NULL DEFAULT 0"),
    ("trial", "verdict_reasons_json", "TEXT"),
    ("study", "last_stop", "TEXT"),
)
