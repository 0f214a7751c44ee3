"""What `--db` accepts and how a store URL is shown: the SQLite forms the README lists all work and mean
the file they say, a PostgreSQL URL must name its database, and no password is ever printed."""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml
from click.testing import CliRunner

from costtune.cli import main
from costtune.store.engine import mask_url

SWEEP = {
    "name": "urls",
    "objective": {"metric": "loss", "mode": "min"},
    "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
    "sampler": {"type": "random", "seed": 1},
    "budget": {"trials": 2},
    "resources": {"provider": "simulated", "region": "us-east-1", "instance_type": "m5.large", "workers": 2,
                  "simulation": {"workload": "simworkloads:steady", "max_steps": 5, "seed": 0}},
}
SECRETS = ("secret1", "secret2")


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def costtune(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Run a command in-process from ``cwd`` (and with ``HOME`` at ``home``), as a user would."""

    def invoke(cwd: Path, *args: str, home: Path | None = None) -> Result:
        with monkeypatch.context() as m:
            m.chdir(cwd)
            if home is not None:
                m.setenv("HOME", str(home))
            result = CliRunner().invoke(main, list(args))
        return Result(result.exit_code, result.stdout, result.stderr)

    return invoke


@pytest.mark.parametrize(("raw", "shown"), [
    ("postgresql://u:secret1@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u@h/db?password=secret1", "postgresql://u@h/db?password=***"),
    ("postgresql://u:secret1@h/db?sslmode=require&password=secret2&sslpassword=secret2",
     "postgresql://u:***@h/db?sslmode=require&password=***&sslpassword=***"),
    ("not a url :secret1@ ?password=secret2", "not a url :secret1@ ?password=***"),
    ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
])
def test_one_masking_rule_for_every_url_form(raw: str, shown: str) -> None:
    assert mask_url(raw) == shown


@pytest.mark.parametrize("url", ["postgresql://postgres@127.0.0.1:5432/", "postgresql://postgres@127.0.0.1:5432",
                                 "postgres://u:secret1@127.0.0.1/?password=secret2"])
def test_a_postgresql_url_without_a_database_is_refused(costtune, tmp_path: Path, url: str) -> None:  # type: ignore[no-untyped-def]
    proc = costtune(tmp_path, "studies", "--db", url)
    assert proc.returncode == 2, proc.stderr
    assert "names no database: add its name, e.g. postgresql://" in proc.stderr and "/costtune" in proc.stderr
    assert not any(s in proc.stderr + proc.stdout for s in SECRETS) and "Traceback" not in proc.stderr


def test_every_sqlite_form_names_the_file_the_readme_says(costtune, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    (work / "sweep.yaml").write_text(yaml.safe_dump(SWEEP))
    made = costtune(work, "run", "sweep.yaml", "--quiet", "--db", "sqlite:///rel.db", home=home)
    assert made.returncode == 0, made.stderr
    assert (work / "rel.db").exists()  # relative to where costtune runs
    assert f"store: sqlite:///{work / 'rel.db'}" in made.stdout  # and shown absolute
    with sqlite3.connect(work / "rel.db") as src, sqlite3.connect(home / "x.db") as dst:
        src.backup(dst)  # the study, wherever WAL mode keeps it for now
    for cwd, db in [(work, "rel.db"), (tmp_path, f"sqlite:///{work / 'rel.db'}"), (tmp_path, str(work / "rel.db")),
                    (tmp_path, "~/x.db"), (tmp_path, "sqlite:///~/x.db")]:
        proc = costtune(cwd, "studies", "--db", db, home=home)
        assert proc.returncode == 0, (db, proc.stderr)
        assert "urls" in proc.stdout, db
        where = home / "x.db" if "~" in db else work / "rel.db"
        assert f"studies in sqlite:///{where}" in proc.stdout, (db, proc.stdout)


def test_no_password_is_printed_by_a_failed_open(costtune, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    proc = costtune(tmp_path, "studies", "--db", "postgresql://u:secret1@127.0.0.1:1/db?password=secret2")
    assert proc.returncode == 2 and "cannot open postgresql://u:***@127.0.0.1:1/db?password=***" in proc.stderr
    assert not any(s in proc.stderr + proc.stdout for s in SECRETS)


def test_no_password_is_printed_by_any_command_on_postgresql(costtune, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base = os.environ.get("COSTTUNE_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("PostgreSQL tests need COSTTUNE_TEST_POSTGRES_URL")
    parts = urlsplit(base)  # the test server trusts its clients: a password in the URL is accepted and unused
    user, host = parts.netloc.split("@", 1) if "@" in parts.netloc else ("postgres", parts.netloc)
    url = urlunsplit(parts._replace(netloc=f"{user.split(':')[0]}:secret1@{host}", query="password=secret2"))
    from conftest import SQLModel, make_engine, resolve_db_url

    engine = make_engine(resolve_db_url(base))
    SQLModel.metadata.drop_all(engine)
    engine.dispose()
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(SWEEP))
    shown = ""
    for args in (["run", "sweep.yaml"], ["run", "sweep.yaml"], ["studies"], ["leaderboard", "urls"], ["spend"],
                 ["audit"], ["leaderboard", "nope"], ["report", "urls"]):
        proc = costtune(tmp_path, *args, "--db", url)
        shown += proc.stdout + proc.stderr
        assert proc.returncode in (0, 2), proc.stderr
    assert "postgresql+psycopg://" in shown and ":***@" in shown and "password=***" in shown
    assert not any(s in shown for s in SECRETS)


@pytest.mark.parametrize("raw", ["sqlite://", "sqlite:///", "sqlite:///:memory:", ":memory:", "file:sub/f.db?mode=ro"])
def test_a_store_that_would_keep_nothing_or_litter_the_directory_is_refused(tmp_path: Path, costtune, raw: str) -> None:
    """An acceptance run: `--db sqlite://` billed trials into a store that vanished at exit, `:memory:`
    and `file:...?mode=ro` made a file or folder of that name. Each is refused before anything runs."""
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump(SWEEP))
    for args in (("run", str(sweep), "--quiet"), ("studies",)):
        result = costtune(tmp_path, *args, "--db", raw)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "--db" in result.stderr and "in-memory or URI-form SQLite store" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]  # nothing created
