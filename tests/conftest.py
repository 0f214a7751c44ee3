"""Shared fixtures: every store backend through one parametrized fixture."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import SQLModel

from costtune.store import Store, resolve_db_url
from costtune.store.engine import make_engine

POSTGRES_ENV = "COSTTUNE_TEST_POSTGRES_URL"


def _postgres_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``-n N``) each worker gets its own PostgreSQL database, ``<db>_<worker>``,
    created when missing: the store fixture wipes its database, which must not be another worker's."""
    worker, url = os.environ.get("PYTEST_XDIST_WORKER"), _postgres_url()
    if not worker or url is None:
        return
    from sqlalchemy.engine import make_url

    base = make_url(url)
    name = f"{base.database}_{worker}"
    admin = make_engine(resolve_db_url(base.render_as_string(hide_password=False)))
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is None:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    os.environ[POSTGRES_ENV] = base.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty store: a fresh SQLite file, or the test PostgreSQL database wiped clean."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    url = _postgres_url()
    if url is None:
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (e.g. postgresql://postgres@127.0.0.1:5432/test)")
    engine = make_engine(resolve_db_url(url))
    with engine.begin() as conn:  # sessions left by earlier tests' processes must not write into this one's tables
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
    SQLModel.metadata.drop_all(engine)
    engine.dispose()
    yield url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    st = Store(store_url)
    yield st
    st.close()


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test's default store and trial directories inside its own tmp dir."""
    monkeypatch.setenv("COSTTUNE_HOME", str(tmp_path / "costtune-home"))
    monkeypatch.delenv("COSTTUNE_DB", raising=False)
