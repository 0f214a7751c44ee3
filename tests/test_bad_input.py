"""Bad input gets exit 2, one `error:` line, no traceback, and leaves the store byte for byte (issue 7).

Each input the issue names is a regression case run through the real CLI; then hypothesis mutates a
valid sweep file (wrong types, extreme numbers, NUL bytes, missing and unknown fields, duplicate keys,
non-UTF-8 bytes, deep nesting) and checks the same contract: in-process through click's runner for
many files (``catch_exceptions=False``: any exception the CLI does not map fails the test), and as real
``costtune run`` subprocesses for a few.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import math
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from costtune.cli import main
from costtune.errors import InputError
from costtune.spec import load_sweep
from costtune.store import Store

TRIAL = "import costtune; costtune.report(val_loss=1.0)"
LOCAL: dict[str, Any] = {
    "name": "fuzzed",
    "objective": {"metric": "val_loss", "mode": "min"},
    "space": {
        "lr": {"type": "loguniform", "low": 1e-4, "high": 0.3},
        "hidden": {"type": "int", "low": 16, "high": 256, "log": True},
        "act": {"type": "categorical", "choices": ["relu", "tanh"]},
        "drop": {"type": "uniform", "low": 0.0, "high": 0.5, "points": 3},
    },
    "sampler": {"type": "random", "seed": 0},
    "scheduler": {"type": "fifo"},
    "budget": {"trials": 2, "usd": 1.0, "trial_seconds": 60},
    "resources": {"provider": "local", "usd_per_hour": 0.1, "workers": 1},
    "command": ["python", "-c", TRIAL, "--lr", "{lr}", "{act}"],
    "env": {"MODE": "fast"},
}
SIMULATED: dict[str, Any] = {
    "name": "fuzzed-sim",
    "objective": {"metric": "val_loss", "mode": "min"},
    "space": {"lr": {"type": "loguniform", "low": 1e-4, "high": 0.3}, "depth": {"values": [2, 4, 8]}},
    "sampler": {"type": "bayes", "seed": 1, "n_startup": 3},
    "scheduler": {"type": "asha", "min_usd": 0.01, "max_usd": 0.09, "eta": 3},
    "budget": {"usd": 2.0},
    "resources": {"provider": "simulated", "region": "us-east-1",
                  "instance_type": {"type": "categorical", "choices": ["m5.large", "c5.xlarge"]}, "market": "spot",
                  "simulation": {"workload": "costtune.demo.workloads:mlp_curve", "max_steps": 20,
                                 "startup_seconds": 30, "preemptions_per_hour": 0.5, "seed": 3,
                                 "spot_prices": {"m5.large": [[0, 0.04], [3600, 0.06]]}}},
}


# -- helpers ------------------------------------------------------------------------------------
def dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000)


def changed(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``base`` with the dotted ``path`` set (``_DELETE``: removed)."""
    doc = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node.setdefault(key, {})
    if value is _DELETE:
        node.pop(last, None)
    else:
        node[last] = value
    return doc


_DELETE = object()


def snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def existing_store(tmp_path: Path) -> Iterator[tuple[str, Callable[[], dict[str, str]]]]:
    """A SQLite store holding one study with a queued trial; yields its URL and a snapshot function."""
    folder = tmp_path / "stores"
    folder.mkdir()
    url = f"sqlite:///{folder / 'store.db'}"
    store = Store(url)
    store.create_study("fuzzed", metric="val_loss", mode="min", space=LOCAL["space"],
                       sampler={"type": "random", "seed": 0}, queued=[{"lr": 0.01, "hidden": 32, "act": "relu",
                                                                       "drop": 0.25}])
    store.close()
    before = snapshot(folder)
    yield url, lambda: snapshot(folder)
    assert snapshot(folder) == before, "the store changed"


def cli(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    """The real `costtune` command in-process; an exception the CLI does not map fails the test."""
    result = CliRunner().invoke(main, args, catch_exceptions=False, env=env)
    return result.exit_code, result.output


def assert_refused(code: int, output: str, message: str) -> None:
    assert code == 2, output
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("error:", "Error:"))]
    assert len(errors) == 1, output
    assert message in errors[0], output


# -- every input issue 7 names --------------------------------------------------------------------
CASES: dict[str, tuple[Any, str]] = {
    # (the sweep file: a dict to dump, or raw bytes/text; a fragment of the one error line)
    "non-UTF-8 file": (dump(LOCAL).encode().replace(b"fast", b"f\xe4st"), "is not UTF-8 text: byte 0xe4 at offset"),
    "duplicate key": (dump(LOCAL).replace("  act:", "  lr: {type: uniform, low: 0, high: 1}\n  act:"),
                      "space.lr (line 15): duplicate key (first at line 6)"),
    "uniform bounds +/-1.7e308": (changed(LOCAL, "space.drop", {"type": "uniform", "low": -1.7e308, "high": 1.7e308}),
                                  "space.drop: high - low must be a finite 64-bit float"),
    "int range up to 1e30": (changed(LOCAL, "space.hidden", {"type": "int", "low": 1, "high": 1e30}),
                             "space.hidden.high: must be a 64-bit integer"),
    "lognormal mu 1000": (changed(LOCAL, "space.drop", {"type": "lognormal", "mu": 1000, "sigma": 1}),
                          "space.drop: samples can overflow a 64-bit float"),
    "budget.usd 1.0e40": (changed(LOCAL, "budget.usd", 1.0e40), "budget.usd: must be at most $1,000,000,000"),
    "budget.usd 1e13": (dump(LOCAL).replace("usd: 1.0", "usd: 1e13"), "budget.usd: must be at most $1,000,000,000"),
    "budget.usd '1e999999'": (dump(LOCAL).replace("usd: 1.0", "usd: '1e999999'"),
                              "budget.usd: must be at most $1,000,000,000, got '1e999999'"),
    "budget.usd 1e999999 unquoted": (dump(LOCAL).replace("usd: 1.0", "usd: 1e999999"),
                                     "budget.usd (line 32): 1e999999 is too large for a 64-bit float"),
    "usd_per_hour 1.0e40": (changed(LOCAL, "resources.usd_per_hour", 1.0e40),
                            "resources.usd_per_hour: must be at most $1,000,000"),
    "usd_per_hour 4e-7 rounding to $0": (
        changed(LOCAL, "resources.usd_per_hour", 4e-7),
        "resources.usd_per_hour: rounds to $0 an hour, so no time would ever be billed: the smallest accepted rate "
        "is $0.000001 an hour (one micro-dollar; 0 means free), got 4e-7"),
    "spot price 4e-7 rounding to $0": (
        changed(SIMULATED, "resources.simulation.spot_prices", {"m5.large": [[0, 4e-7]]}),
        "resources.simulation.spot_prices.m5.large[0][1]: rounds to $0 an hour"),
    "spot price 1e7": (changed(SIMULATED, "resources.simulation.spot_prices", {"m5.large": [[0, 1e7]]}),
                       "resources.simulation.spot_prices.m5.large[0][1]: must be at most $1,000,000"),
    "rung amount 1e10": (changed(SIMULATED, "scheduler.max_usd", 1e10), "scheduler.max_usd: must be at most"),
    "trial_seconds .nan": (changed(LOCAL, "budget.trial_seconds", math.nan),
                           "budget.trial_seconds: must be a number of seconds > 0, got .nan"),
    "trial_seconds .inf": (changed(LOCAL, "budget.trial_seconds", math.inf),
                           "budget.trial_seconds: must be a number of seconds > 0, got .inf"),
    "trial_seconds 1e12": (changed(LOCAL, "budget.trial_seconds", 1e12),
                           "budget.trial_seconds: must be at most 31536000 (365 days)"),
    "NUL in command": (changed(LOCAL, "command", ["python", "-c", TRIAL, "a\x00b"]),
                       "command[3] (line 42): text holds a NUL character"),
    "empty program": (changed(LOCAL, "command", ["", "train.py"]), "command[0]: must name the program to run"),
    "NUL in env": (changed(LOCAL, "env", {"MODE": "f\x00st"}), "env.MODE (line 46): text holds a NUL character"),
    "NUL in a choice": (changed(LOCAL, "space.act", {"type": "categorical", "choices": ["re\x00lu"]}),
                        "text holds a NUL character"),
    "output_dir is a file": (None, "output_dir: exists and is not a directory"),
    "output_dir under /proc": (changed(LOCAL, "output_dir", "/proc/self/costtune-runs"), "output_dir: is inside /proc"),
    "output_dir under /sys": (changed(LOCAL, "output_dir", "/sys/costtune"), "output_dir: is inside /sys"),
    "missing workdir": (changed(LOCAL, "workdir", "/nonexistent/costtune-workdir"), "workdir: no such directory"),
    "workdir is a file": (None, "workdir: is not a directory"),
    "cap $0.00005 below a 60 s minimum": (
        changed(changed(LOCAL, "resources", {"provider": "local", "price_as": "aws/us-east-1/m5.large"}),
                "budget.usd", 0.00005), "budget.usd: must be at least $0.0016: one trial's minimum charge"),
    "cap $0.00005 below one second at $1/h": (changed(changed(LOCAL, "resources.usd_per_hour", 1.0), "budget.usd",
                                                      0.00005), "budget.usd: must be at least $0.000278"),
    "cap $0": (changed(LOCAL, "budget.usd", 0), "budget.usd: must be more than $0, got 0"),
    "cap 1e-9 rounding to zero": (changed(LOCAL, "budget.usd", 1e-9), "budget.usd: must be at least $0.000028"),
    "cap below the first rung": (changed(SIMULATED, "budget.usd", 0.005),
                                 "budget.usd: must be at least scheduler.min_usd ($0.01)"),
    "parameter named study": (changed(LOCAL, "space.study", {"values": [1, 2]}),
                              "space.study: is the name of a built-in placeholder"),
    "parameter named trial_dir": (changed(LOCAL, "space.trial_dir", [1, 2]),
                                  "space.trial_dir: is the name of a built-in placeholder"),
    "parameters lr and LR": (changed(LOCAL, "space.LR", [1, 2]),
                             "space.LR: and space.lr would both be the environment variable COSTTUNE_PARAM_LR"),
    "non-ASCII parameter name": (changed(LOCAL, "space.straße", [1, 2]),
                                 "space.straße: a parameter name must be ASCII"),
    # fields a provider would silently ignore are refused (issue 7)
    "command in a simulated sweep": (changed(SIMULATED, "command", ["python", "-c", "print(1)"]),
                                     "is not run by provider simulated, which runs resources.simulation.workload"),
    "env in a simulated sweep": (changed(SIMULATED, "env", {"MODE": "fast"}), "reaches only command trials"),
    "env_passthrough in a simulated sweep": (changed(SIMULATED, "env_passthrough", ["HOME"]),
                                             "reaches only command trials"),
    "workdir in a simulated sweep": (changed(SIMULATED, "workdir", "/tmp"), "is where command trials run"),
    "output_dir in a simulated sweep": (changed(SIMULATED, "output_dir", "/tmp"), "simulated trials write no files"),
    "market for a local trial at usd_per_hour": (changed(LOCAL, "resources.market", "spot"),
                                                 "resources.market: prices a catalog instance"),
    "workers 1e6": (changed(LOCAL, "resources.workers", 10**6), "resources.workers: must be an integer <= 10000"),
    "integer beyond 64 bits": (dump(LOCAL).replace("trials: 2", "trials: 100000000000000000000"),
                               "budget.trials (line 31): integer 100000000000000000000 does not fit in 64 bits"),
}


def _case_file(tmp_path: Path, case: str) -> Path:
    doc, _ = CASES[case]
    if doc is None:  # cases that need a file on disk
        blocker = tmp_path / "a-file"
        blocker.write_text("not a directory")
        doc = changed(LOCAL, "output_dir" if case.startswith("output_dir") else "workdir", str(blocker))
    file = tmp_path / "sweep.yaml"
    if isinstance(doc, bytes):
        file.write_bytes(doc)
    else:
        file.write_text(doc if isinstance(doc, str) else dump(doc), encoding="utf-8")
    return file


@pytest.mark.parametrize("case", list(CASES))
def test_each_named_bad_sweep_file_exits_2_and_leaves_the_store_byte_for_byte(
        tmp_path: Path, existing_store: tuple[str, Any], case: str) -> None:
    url, _ = existing_store
    file = _case_file(tmp_path, case)
    code, output = cli(["run", str(file), "--db", url, "--quiet"])
    assert_refused(code, output, CASES[case][1])
    if "workdir" not in case and "output_dir" not in case:  # the same file through `costtune plan`
        assert_refused(*cli(["plan", str(file), "--quiet"]), CASES[case][1])


@pytest.mark.parametrize("case", ["non-UTF-8 file", "NUL in command", "output_dir under /proc", "missing workdir",
                                  "trial_seconds .nan", "cap $0"])
def test_named_bad_files_as_real_subprocesses_create_no_store(tmp_path: Path, case: str) -> None:
    """The issue's worst cases, as a user runs them: also no store file and no directory appear."""
    file = _case_file(tmp_path, case)
    new = tmp_path / "new" / "store.db"
    for command in (["run", str(file), "--db", f"sqlite:///{new}"], ["plan", str(file)]):
        if command[0] == "plan" and ("workdir" in case or "output_dir" in case):
            continue
        proc = subprocess.run([sys.executable, "-m", "costtune.cli", *command], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, env={**os.environ, "COSTTUNE_HOME": str(tmp_path / "home")})
        assert_refused(proc.returncode, proc.stderr, CASES[case][1])
    assert not new.parent.exists() and not (tmp_path / "home").exists()


# -- --db and COSTTUNE_DB -----------------------------------------------------------------------------
def _pg_base() -> str | None:
    return os.environ.get("COSTTUNE_TEST_POSTGRES_URL") or None


DB_CASES: dict[str, tuple[Callable[[Path], str], str]] = {
    "refused PostgreSQL": (lambda _: "postgresql://costtune:s3cret@127.0.0.1:1/costtune",
                           "cannot open postgresql://costtune:***@127.0.0.1:1/costtune: connection failed"),
    "unparsable URL": (lambda _: "postgresql://costtune:s3cret@host:port/db",
                       "not a database URL or path: 'postgresql://costtune:***@host:port/db'"),
    "unsupported scheme": (lambda _: "mysql://root:s3cret@localhost/db",
                           "unsupported database 'mysql' in 'mysql://root:***@localhost/db'"),
    "a directory": (lambda tmp: str(tmp), "it is a directory, not a SQLite file"),
    "not a SQLite file": (lambda tmp: _file(tmp / "notes.txt", b"these are my notes, not a database\n" * 4),
                          "the file is not a SQLite database"),
    "another program's SQLite file": (lambda tmp: _sqlite_of_another_program(tmp / "other.db"),
                                      "it is a SQLite database of another program (tables: bookmarks)"),
    "path under a file": (lambda tmp: str(Path(_file(tmp / "plain", b"x")) / "store.db"), "is not a directory"),
}


def _file(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _sqlite_of_another_program(path: Path) -> str:
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE bookmarks (url TEXT)")
    conn.commit()
    conn.close()
    return str(path)


@pytest.mark.parametrize("case", list(DB_CASES))
@pytest.mark.parametrize("command", ["run", "studies", "leaderboard", "spend"])
def test_every_bad_db_is_exit_2_naming_the_flag_and_leaving_nothing(tmp_path: Path, case: str, command: str) -> None:
    make, message = DB_CASES[case]
    db = make(tmp_path)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(dump(LOCAL))
    before = snapshot(tmp_path)
    args = {"run": ["run", str(sweep)], "studies": ["studies"], "leaderboard": ["leaderboard", "fuzzed"],
            "spend": ["spend"]}[command]
    code, output = cli([*args, "--db", db])
    if command != "run" and case == "path under a file":  # commands that only read: "no store there"
        assert code in (0, 2) and "no store at" in output and "Traceback" not in output
    else:
        assert_refused(code, output, message)
        assert "error: --db: " in output and "s3cret" not in output
    assert snapshot(tmp_path) == before  # no file created, none changed


def test_costtune_db_from_the_environment_is_named_as_such(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(dump(LOCAL))
    code, output = cli(["run", str(sweep)], env={"COSTTUNE_DB": "mysql://root:s3cret@localhost/db"})
    assert_refused(code, output, "COSTTUNE_DB: unsupported database 'mysql'")
    assert "s3cret" not in output


def test_a_missing_postgresql_database_is_exit_2(tmp_path: Path) -> None:
    base = _pg_base()
    if base is None:
        pytest.skip("needs COSTTUNE_TEST_POSTGRES_URL")
    db = base.rsplit("/", 1)[0] + "/costtune_no_such_database"
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(dump(LOCAL))
    code, output = cli(["run", str(sweep), "--db", db])
    assert_refused(code, output, 'database "costtune_no_such_database" does not exist')


def test_bad_db_as_a_real_subprocess_leaves_no_file(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(dump(LOCAL))
    notes = _file(tmp_path / "notes.db", b"not sqlite " * 20)
    before = snapshot(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "costtune.cli", "run", str(sweep), "--db", notes], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COSTTUNE_HOME": str(tmp_path / "home")})
    assert_refused(proc.returncode, proc.stderr, "--db: cannot open sqlite:///")
    assert snapshot(tmp_path) == before


# -- numeric flags ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "flag"), [
    (["logs", "s", "0", "--tail", "-2"], "'--tail'"),
    (["logs", "s", "0", "--tail", "0"], "'--tail'"),
    (["logs", "s", "99999999999999999999"], "'TRIAL'"),
    (["logs", "s", "99999999999"], "'TRIAL'"),  # past the store's 32-bit trial numbers
    (["logs", "s", "2147483648"], "'TRIAL'"),
    (["trials", "s", "99999999999"], "'[TRIAL]'"),
    (["plan", "sweep.yaml", "--runs", "1001"], "'--runs'"),
    (["plan", "sweep.yaml", "--jobs", "257"], "'--jobs'"),
    (["plan", "sweep.yaml", "--jobs", "0"], "'--jobs'"),
    (["leaderboard", "s", "--limit", "-1"], "'--limit'"),
    (["leaderboard", "s", "--limit", "0"], "'--limit'"),
    (["run", "sweep.yaml", "--workers", "0"], "'--workers'"),
    (["run", "sweep.yaml", "--workers", "1000000"], "'--workers'"),
    (["demo", "--trials", "0"], "'--trials'"),
    (["demo", "--workers", "-3"], "'--workers'"),
    (["plan", "sweep.yaml", "--runs", "-1"], "'--runs'"),
    (["prices", "--min-vcpus", "-1"], "'--min-vcpus'"),
    (["prices", "--min-memory", "nan"], "'--min-memory'"),
    (["prices", "--min-memory", "-inf"], "'--min-memory'"),
    (["prices", "--limit", "0"], "'--limit'"),
])
def test_numeric_flags_have_ranges(args: list[str], flag: str) -> None:
    code, output = cli(args)
    assert code == 2 and "Traceback" not in output
    assert f"Invalid value for {flag}" in output


# -- mutated sweep files (hypothesis) -------------------------------------------------------------
NASTY: list[Any] = [
    None, True, False, 0, -1, 1, 2, 0.5, -0.5, 2**63 - 1, -(2**63), 1e308, -1e308, 1.7e308, 1e30, -1e30, 5e-324,
    math.nan, math.inf, -math.inf, "", " ", "x", "-1", "1e999999", "nan", "inf", "0x10", "$5", "\x00", "a\x00b",
    "\x07", "é", "x" * 5000, "{lr}", "{nope}", "{", "}", "/proc/self", "..", [], [1, "a"], [None], {}, {"a": 1},
    {"type": "uniform"}, {"type": "uniform", "low": 1, "high": 0}, {"values": []}, [[[[[[[[1]]]]]]]],
]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*prefix, i))
    return out


def _apply(doc: Any, path: tuple[Any, ...], op: str, value: Any) -> None:
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if op == "set":
        parent[last] = value
    elif op == "delete":
        del parent[last]
    elif op == "unknown" and isinstance(parent, dict):
        parent[f"{last}_extra"] = value
    elif op == "rename" and isinstance(parent, dict):
        parent[str(last).upper()] = parent.pop(last)
    elif op == "nest":
        for _ in range(value):
            parent[last] = [parent[last]]


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    """A valid sweep file with one to three mutations of its fields, then maybe of its bytes."""
    doc = copy.deepcopy(draw(st.sampled_from([LOCAL, SIMULATED])))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        op = draw(st.sampled_from(["set", "set", "set", "delete", "unknown", "rename", "nest"]))
        value = draw(st.integers(1, 80)) if op == "nest" else draw(st.sampled_from(NASTY))
        with contextlib.suppress(KeyError, IndexError, TypeError):
            _apply(doc, path, op, copy.deepcopy(value))
    text = dump(doc).encode("utf-8", "surrogatepass")
    lines = text.splitlines(keepends=True)
    how = draw(st.sampled_from(["as is", "as is", "duplicate a line", "bad bytes", "truncate"]))
    if how == "duplicate a line" and lines:
        i = draw(st.integers(0, len(lines) - 1))
        lines.insert(i, lines[i])
        text = b"".join(lines)
    elif how == "bad bytes":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\x80\x80", b"\xed\xa0\x80"])) + text[at:]
    elif how == "truncate":
        text = text[:draw(st.integers(0, len(text)))]
    return text


def _verdict(file: Path) -> str | None:
    """The validation layer's answer: None for a valid file, else the one-line error; nothing else may escape."""
    try:
        load_sweep(file)
    except InputError as exc:
        assert "\n" not in str(exc), str(exc)
        return str(exc)
    return None


FUZZ = settings(deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.filter_too_much])


@settings(FUZZ, max_examples=250)
@given(data=mutated_files())
def test_mutated_sweep_files_are_refused_cleanly_in_process(
        tmp_path: Path, existing_store: tuple[str, Any], data: bytes) -> None:
    url, now = existing_store
    before = now()
    file = tmp_path / "sweep.yaml"
    file.write_bytes(data)
    verdict = _verdict(file)
    if verdict is None:  # a valid mutation: running it would run trials; validation said yes, which is fine
        return
    code, output = cli(["run", str(file), "--db", url, "--quiet"])
    assert_refused(code, output, verdict.split(": ")[0])
    assert now() == before


@settings(FUZZ, max_examples=6)
@given(data=mutated_files())
def test_mutated_sweep_files_as_real_subprocesses(tmp_path: Path, existing_store: tuple[str, Any],
                                                  data: bytes) -> None:
    url, now = existing_store
    before = now()
    file = tmp_path / "sweep.yaml"
    file.write_bytes(data)
    assume(_verdict(file) is not None)
    new = tmp_path / "fresh" / "store.db"
    for db in (url, f"sqlite:///{new}"):
        proc = subprocess.run([sys.executable, "-m", "costtune.cli", "run", str(file), "--db", db, "--quiet"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "COSTTUNE_HOME": str(tmp_path / "home")})
        assert_refused(proc.returncode, proc.stderr, "")
    assert now() == before and not new.parent.exists()


def test_plan_help_states_the_maxima_of_runs_and_jobs() -> None:
    code, output = cli(["plan", "--help"])
    text = " ".join(output.split())
    assert code == 0 and "0<=x<=1000" in text and "1<=x<=256" in text
