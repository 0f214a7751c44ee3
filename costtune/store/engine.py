"""Where the store lives and how we connect to it.

SQLite is the embedded default. Every SQLite transaction begins with ``BEGIN IMMEDIATE`` so that
worker processes writing at once queue on the database lock instead of failing half-way, and the
journal is WAL so readers (a leaderboard while a sweep runs) never block writers.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError
from sqlmodel import create_engine

from costtune.errors import InputError

ENV_DB = "COSTTUNE_DB"
ENV_HOME = "COSTTUNE_HOME"


def costtune_home() -> Path:
    """``$COSTTUNE_HOME``, else ``$XDG_DATA_HOME/costtune``, else ``~/.local/share/costtune``."""
    if os.environ.get(ENV_HOME):
        return Path(os.environ[ENV_HOME]).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data).expanduser() / "costtune"


def default_db_url() -> str:
    return f"sqlite:///{costtune_home() / 'costtune.db'}"


def resolve_db_url(db: str | None = None) -> str:
    """A ``--db`` value, else ``$COSTTUNE_DB``, else the default SQLite file.

    A bare path means a SQLite file; ``postgresql://`` URLs use the psycopg 3 driver.
    """
    raw = db or os.environ.get(ENV_DB) or default_db_url()
    if "://" not in raw:
        raw = f"sqlite:///{Path(raw).expanduser().resolve()}"
    try:
        url = make_url(raw)
    except ArgumentError:
        raise InputError(f"--db: not a database URL, got {raw!r}") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.drivername not in ("sqlite", "postgresql+psycopg"):
        raise InputError(f"--db: unsupported database {url.drivername!r}; use sqlite:/// or postgresql://")
    return url.render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.drivername == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _use_wal(cursor: sqlite3.Cursor, patience_s: float = 60.0) -> None:
    """Switch the file to WAL once; workers opening a fresh file at the same moment take turns.

    Changing the journal mode answers "database is locked" at once instead of waiting on the busy
    timeout, so we retry it ourselves. The mode is stored in the file: later opens only read it.
    """
    deadline = time.monotonic() + patience_s
    delay = 0.005
    while True:
        if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
            return
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=60000")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):  # type: ignore[no-untyped-def]
        connection.exec_driver_sql("BEGIN IMMEDIATE")
