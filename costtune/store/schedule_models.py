"""Tables of nightly schedules, their runs and the model versions the runs publish.

Times the scheduler reasons about (fire times, heartbeats) are whole epoch seconds (UTC) in
64-bit integers: no time-zone conversion can differ between SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from costtune.store.models import utcnow


class ScheduleRow(SQLModel, table=True):
    __tablename__ = "schedule"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused after `schedule remove`: versions keep lineage
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=150)
    trigger_json: str = Field(sa_column=Column(Text, nullable=False))  # costtune.spec.schedule_timing.Trigger
    sweep_json: str = Field(sa_column=Column(Text, nullable=False))  # the sweep file's content when added/updated
    sweep_source: str | None = Field(default=None, sa_column=Column(Text))  # the path it was read from
    settings_json: str = Field(sa_column=Column(Text, nullable=False))  # costtune.spec.schedule_settings
    paused: bool = False
    next_fire_s: int | None = Field(default=None, sa_column=Column(BigInteger))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ScheduleRunRow(SQLModel, table=True):
    """One fire time of a schedule: claimed exactly once (the unique pair), then run, skipped or missed."""

    __tablename__ = "schedule_run"
    __table_args__ = (UniqueConstraint("schedule_id", "fire_s"), {"sqlite_autoincrement": True})
    id: int | None = Field(default=None, primary_key=True)
    schedule_id: int = Field(foreign_key="schedule.id", index=True)
    fire_s: int = Field(sa_column=Column(BigInteger, nullable=False))
    manual: bool = False  # schedule run-now
    # claimed | running | finished | failed | interrupted | queued | skipped | missed
    state: str = Field(index=True, max_length=20)
    reason: str | None = Field(default=None, sa_column=Column(Text))
    study_name: str | None = Field(default=None, max_length=200)
    owner: str | None = Field(default=None, max_length=300)
    heartbeat_s: int | None = Field(default=None, sa_column=Column(BigInteger))
    claimed_s: int | None = Field(default=None, sa_column=Column(BigInteger))
    finished_s: int | None = Field(default=None, sa_column=Column(BigInteger))
    summary_json: str | None = Field(default=None, sa_column=Column(Text))


class ModelVersionRow(SQLModel, table=True):
    __tablename__ = "model_version"
    __table_args__ = (UniqueConstraint("model", "version"),)
    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(index=True, max_length=200)  # the schedule's name (or a study's)
    version: int
    schedule_id: int | None = Field(default=None, index=True)
    run_id: int | None = None
    study_name: str = Field(max_length=200)
    trial_number: int
    metric: str
    mode: str
    value: float
    params_json: str = Field(sa_column=Column(Text, nullable=False))
    run_cost_micros: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    reach_cost_micros: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    artifact_path: str = Field(sa_column=Column(Text, nullable=False))
    replaced_version: int | None = None  # the version that was promoted before this one, when promoted
    promoted: bool = False  # at most one per model is promoted
    note: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow)
