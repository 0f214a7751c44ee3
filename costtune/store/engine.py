"""Where the store lives and how we connect to it.

SQLite is the embedded default. Every SQLite transaction begins with ``BEGIN IMMEDIATE`` so that
worker processes writing at once queue on the database lock instead of failing half-way, and the
journal is WAL so readers (a leaderboard while a sweep runs) never block writers.
"""

from __future__ import annotations

import os
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlmodel import create_engine

from costtune.errors import StoreUnavailable

ENV_DB = "COSTTUNE_DB"
ENV_HOME = "COSTTUNE_HOME"
_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@/\s]*@")
_QUERY_PASSWORD = re.compile(r"([?&](?:ssl)?pass(?:word)?=)[^&#\s]*", re.IGNORECASE)


def costtune_home() -> Path:
    """``$COSTTUNE_HOME``, else ``$XDG_DATA_HOME/costtune``, else ``~/.local/share/costtune``."""
    if os.environ.get(ENV_HOME):
        return Path(os.environ[ENV_HOME]).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data).expanduser() / "costtune"


def default_db_url() -> str:
    return f"sqlite:///{costtune_home() / 'costtune.db'}"


def mask_url(raw: str) -> str:
    """``raw`` with every password replaced by ``***``: ``scheme://user:password@host`` and the
    ``?password=`` (``sslpassword``) query parameters. The one masking rule for every URL costtune
    shows (messages, listings, progress); works on text that is not a valid URL too."""
    return _QUERY_PASSWORD.sub(r"\1***", _PASSWORD.sub(r"\1***@", raw))


def display_url(url: str) -> str:
    """A resolved store URL as people see it: passwords masked, ``postgresql://`` without the driver."""
    return mask_url(url.replace("postgresql+psycopg://", "postgresql://", 1))


def resolve_db_url(db: str | None = None) -> str:
    """A ``--db`` value, else ``$COSTTUNE_DB``, else the default SQLite file.

    A bare path (``x.db``, ``~/x.db``, ``/abs/x.db``) means a SQLite file, as do ``sqlite:///rel.db``
    (relative to the working directory) and ``sqlite:////abs.db``; each is made absolute, ``~``
    expanded. ``postgresql://`` URLs use the psycopg 3 driver and must name a database. Raises
    ``StoreUnavailable`` for text that is not a database URL, names another kind of database, or
    a PostgreSQL server without a database.
    """
    raw = db or os.environ.get(ENV_DB) or default_db_url()
    if "\x00" in raw:
        raise StoreUnavailable(f"not a database URL or path (it holds a NUL character): {mask_url(raw)!r}")
    try:
        if "://" not in raw:
            raw = f"sqlite:///{Path(raw).expanduser().resolve()}"
        url = make_url(raw)
        url.port  # noqa: B018 - a port that is not a number fails here, not at connect time
    except (ArgumentError, ValueError, OSError, RuntimeError):
        raise StoreUnavailable(f"not a database URL or path: {mask_url(raw)!r}") from None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
        if not url.database:  # libpq would quietly pick the database named after the user
            example = display_url(url.set(database="costtune").render_as_string(hide_password=False))
            raise StoreUnavailable(f"{mask_url(raw)!r} names no database: add its name, e.g. {example} "
                                   "(create it first: createdb costtune)")
    if url.drivername == "sqlite" and url.database and url.database != ":memory:" \
            and not url.database.startswith("file:"):
        # sqlite:///rel.db is relative to where costtune runs, sqlite:///~/x.db under the home directory:
        # made absolute here, so every message, listing and tag names the one file meant
        url = url.set(database=str(Path(url.database).expanduser().resolve()))
    if url.drivername not in ("sqlite", "postgresql+psycopg"):
        raise StoreUnavailable(f"unsupported database {url.drivername!r} in {mask_url(raw)!r}; "
                               "use sqlite:///PATH, a path, or postgresql://")
    return url.render_as_string(hide_password=False)


def make_engine(url: str) -> Engine:
    """An engine for a resolved URL; connects lazily (see ``opening`` for the checked first open)."""
    parsed = make_url(url)
    if parsed.drivername == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
        _configure_sqlite(engine)
        return engine
    # An unreachable host fails after 10 s instead of the operating system's minutes (a URL may say otherwise).
    args = {} if "connect_timeout" in parsed.query else {"connect_timeout": 10}
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=args)


@contextmanager
def opening(url: str) -> Iterator[Engine]:
    """The engine of a resolved URL for a store's first open, with every failure mapped.

    Inside the block, a database error (refused connection, missing database, permission, a file
    that is not SQLite) or an OS error becomes ``StoreUnavailable`` with a one-line reason; any SQLite
    file or directory this open created is removed first, so a failed open leaves nothing behind.
    """
    parsed = make_url(url)
    shown = display_url(url)
    sqlite_file = parsed.drivername == "sqlite" and parsed.database not in (None, "", ":memory:") \
        and not str(parsed.database).startswith("file:")
    created = _prepare_sqlite(Path(str(parsed.database)), shown) if sqlite_file else []
    try:
        engine = make_engine(url)
    except (ImportError, NoSuchModuleError):
        _remove(created)
        raise StoreUnavailable(f"cannot open {shown}: the PostgreSQL driver is missing "
                               "(pip install 'costtune[postgres]')") from None
    try:
        yield engine
    except (DBAPIError, OSError) as exc:
        engine.dispose()
        _remove(created)
        raise StoreUnavailable(f"cannot open {shown}: {_one_line(exc)}") from None
    except BaseException:
        engine.dispose()
        _remove(created)
        raise


def refuse_foreign_sqlite(conn: Connection, shown: str, *, known: set[str]) -> None:
    """A SQLite file with tables but none of ``known`` belongs to another program: never add ours to it."""
    tables = {row[0] for row in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'")}
    _refuse_unless_ours(tables, shown, known)


def _check_existing_sqlite(path: Path, shown: str) -> None:
    """Refuse an existing file that is not a SQLite database, or is one of another program.

    The file is read through SQLite itself, never through a file handle of our own: closing any
    handle on the database file drops every POSIX lock this process holds on it, including those of
    a store already open here (a dashboard, ``costtune serve``, an earlier in-process command). Another
    process then takes itself for the file's last user, checkpoints and deletes the ``-wal`` and
    ``-shm`` files under our live connections, and the next read here fails with "disk I/O error"
    (writes could land in a WAL the other processes no longer see). SQLite keeps its own handles
    open while any connection in the process holds a lock, so its connections are safe to close.
    ``mode=rw`` never creates the file, and reading the table list writes nothing; the table check
    runs before the WAL switch on connect would rewrite the header of a file that is not ours.
    """
    from sqlmodel import SQLModel

    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=60)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorname", None) == "SQLITE_NOTADB":
            raise StoreUnavailable(f"cannot open {shown}: the file is not a SQLite database") from None
        raise StoreUnavailable(f"cannot open {shown}: {exc}") from None
    _refuse_unless_ours(tables, shown, set(SQLModel.metadata.tables))


def _refuse_unless_ours(tables: set[str], shown: str, known: set[str]) -> None:
    if tables and not tables & known:
        listed = ", ".join(sorted(tables)[:5]) + (", ..." if len(tables) > 5 else "")
        raise StoreUnavailable(f"cannot open {shown}: it is a SQLite database of another program "
                               f"(tables: {listed}), not a costtune store")


def _prepare_sqlite(path: Path, shown: str) -> list[Path]:
    """Check a SQLite path and create its missing directories; returns what was created, deepest last."""
    try:
        if path.is_dir():
            raise StoreUnavailable(f"cannot open {shown}: it is a directory, not a SQLite file")
        if path.exists():
            if not os.access(path, os.R_OK):
                raise StoreUnavailable(f"cannot open {shown}: Permission denied")
            _check_existing_sqlite(path, shown)  # never open()/close() the file itself: see there
            return []
        missing = []
        ancestor = path.parent
        while not ancestor.exists():
            missing.append(ancestor)
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise StoreUnavailable(f"cannot open {shown}: {ancestor} is not a directory")
    except OSError as exc:
        raise StoreUnavailable(f"cannot open {shown}: {exc.strerror or exc}") from None
    created: list[Path] = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
    except OSError as exc:
        _remove(created)
        raise StoreUnavailable(f"cannot open {shown}: cannot create {folder}: {exc.strerror or exc}") from None
    return [*created, path]


def _remove(created: list[Path]) -> None:
    """Undo ``_prepare_sqlite``: the database file (and its journal files), then the new directories."""
    for path in reversed(created):
        try:
            if path.is_dir():
                path.rmdir()
            else:
                for extra in ("", "-wal", "-shm", "-journal"):
                    Path(f"{path}{extra}").unlink(missing_ok=True)
        except OSError:
            pass  # something else put a file there meanwhile: leave it


def _one_line(exc: BaseException) -> str:
    """The driver's own message, on one line, without SQLAlchemy's background link."""
    inner = getattr(exc, "orig", None) or exc
    text = mask_url(" ".join(str(getattr(inner, "strerror", None) or inner).split()))
    return text if len(text) <= 300 else f"{text[:300]}..."


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
