"""A trial's environment: a documented minimal set of costtune's own, what ``env_passthrough`` names,
and the sweep's ``env`` with ``${VAR}`` resolved at launch and never stored."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import MetaData, select

from costtune.errors import SpecError
from costtune.spec import parse_sweep
from costtune.spec.environment import resolve_env
from costtune.store import resolve_db_url
from costtune.store.engine import make_engine

SECRET = "s3cr3t-9f2c-never-stored"
ENV_TRIAL = """
import json, os, costtune
with open(os.path.join(os.environ["COSTTUNE_TRIAL_DIR"], "env.json"), "w") as handle:
    json.dump(dict(os.environ), handle)
costtune.report(val_loss=1.0)
"""
BASE = {"name": "envy", "objective": {"metric": "val_loss", "mode": "min"},
        "space": {"lr": {"type": "loguniform", "low": 1e-4, "high": 0.3}}, "budget": {"trials": 1}}


def run_sweep(tmp_path: Path, db: str, extra_env: dict[str, str], **fields: Any) -> subprocess.CompletedProcess[str]:
    """`costtune run` with the store named by COSTTUNE_DB (as a user with a password in it would)."""
    (tmp_path / "trial.py").write_text(ENV_TRIAL)
    (tmp_path / "envy.yaml").write_text(yaml.safe_dump({**BASE, "command": ["python", "trial.py"], **fields}))
    env = {**os.environ, "COSTTUNE_DB": db, **extra_env}
    return subprocess.run(["costtune", "run", "envy.yaml", "--quiet"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)


def trial_env(tmp_path: Path) -> dict[str, str]:
    [path] = (tmp_path / "costtune-home").glob("runs/envy/trial-0000/env.json")
    return json.loads(path.read_text())


def store_text(url: str) -> str:
    """Every row of every table of the store, as text."""
    engine = make_engine(resolve_db_url(url))
    meta = MetaData()
    meta.reflect(engine)
    try:
        with engine.connect() as conn:
            return "\n".join(repr(tuple(row)) for table in meta.sorted_tables for row in conn.execute(select(table)))
    finally:
        engine.dispose()


def test_a_secret_reaches_the_trial_by_reference_and_is_stored_nowhere(tmp_path: Path, store_url: str) -> None:
    done = run_sweep(tmp_path, store_url, {"COSTTUNE_TEST_SECRET": SECRET},
                     env={"API_KEY": "${COSTTUNE_TEST_SECRET}", "WRAPPED": "a-${COSTTUNE_TEST_SECRET}-b",
                          "PRICE": "$$5", "PLAIN": 3})
    assert done.returncode == 0, done.stdout + done.stderr
    seen = trial_env(tmp_path)
    assert (seen["API_KEY"], seen["WRAPPED"], seen["PRICE"], seen["PLAIN"]) == (SECRET, f"a-{SECRET}-b", "$5", "3")
    assert "COSTTUNE_TEST_SECRET" not in seen  # the variable itself is not passed through
    stored = store_text(store_url)
    assert SECRET not in stored
    assert "${COSTTUNE_TEST_SECRET}" in stored  # the study's spec keeps the reference


def test_credentials_in_costtunes_environment_stay_out_of_trials(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'store.db'}"
    done = run_sweep(tmp_path, db, {"AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": "eu-west-1",
                                    "GITHUB_TOKEN": SECRET, "LC_ALL": "C.UTF-8", "OMP_NUM_THREADS": "3"})
    assert done.returncode == 0, done.stdout + done.stderr
    seen = trial_env(tmp_path)
    assert not {"AWS_SECRET_ACCESS_KEY", "AWS_REGION", "GITHUB_TOKEN", "COSTTUNE_DB"} & set(seen)
    assert SECRET not in json.dumps(seen)
    # the documented minimal set comes through: the search path, home, locale, thread counts
    assert (seen["PATH"], seen["HOME"]) == (os.environ["PATH"], os.environ["HOME"])
    assert (seen["LC_ALL"], seen["OMP_NUM_THREADS"]) == ("C.UTF-8", "3")
    assert seen["COSTTUNE_TRIAL_NUMBER"] == "0" and seen["COSTTUNE_PARAM_LR"]


def test_env_passthrough_names_and_globs_let_variables_through(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'store.db'}"
    done = run_sweep(tmp_path, db, {"AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": "eu-west-1", "HF_TOKEN": "hf"},
                     env_passthrough=["AWS_*", "COSTTUNE_DB"], env={"AWS_REGION": "us-east-1"})
    assert done.returncode == 0, done.stdout + done.stderr
    seen = trial_env(tmp_path)
    assert (seen["AWS_SECRET_ACCESS_KEY"], seen["COSTTUNE_DB"]) == (SECRET, db)
    assert seen["AWS_REGION"] == "us-east-1"  # the sweep's env wins over a passed-through value
    assert "HF_TOKEN" not in seen


def test_a_reference_to_an_unset_variable_exits_2_before_the_store_is_opened(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    environ = {k: v for k, v in os.environ.items() if k != "COSTTUNE_UNSET_FOR_TEST"}
    (tmp_path / "trial.py").write_text(ENV_TRIAL)
    (tmp_path / "envy.yaml").write_text(yaml.safe_dump(
        {**BASE, "command": ["python", "trial.py"], "env": {"TOKEN": "x${COSTTUNE_UNSET_FOR_TEST}"}}))
    done = subprocess.run(["costtune", "run", "envy.yaml", "--db", str(db)], cwd=tmp_path, env=environ,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "env.TOKEN: refers to ${COSTTUNE_UNSET_FOR_TEST}, which is not set" in done.stderr
    assert "Traceback" not in done.stderr
    assert not db.exists()


def _spec(**fields: Any) -> Any:
    return parse_sweep({**BASE, "command": ["python", "t.py"], **fields})


@pytest.mark.parametrize(("fields", "message"), [
    ({"env": {"A": "cost$5"}}, "env.A: a $ must begin ${NAME}"),
    ({"env": {"A": "x$"}}, "env.A: a $ must begin ${NAME}"),
    ({"env": {"A": "$HOME"}}, "env.A: a $ must begin ${NAME}"),
    ({"env": {"A": "${1X}"}}, "env.A: a $ must begin ${NAME}"),
    ({"env": {"A": "${HOME:-x}"}}, "env.A: a $ must begin ${NAME}"),
    ({"env": {"A": "${HOME"}}, "env.A: a $ must begin ${NAME}"),
    ({"env_passthrough": "AWS_*"}, "env_passthrough: must be a list of variable names or globs, got AWS_*"),
    ({"env_passthrough": ["PATH", "A B"]}, "env_passthrough[1]: must be a variable name or a glob"),
    ({"env_passthrough": [""]}, "env_passthrough[0]: must be a variable name or a glob"),
    ({"env_passthrough": [3]}, "env_passthrough[0]: must be a variable name or a glob"),
])
def test_bad_env_fields_name_the_field_and_the_value(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        _spec(**fields)
    assert str(caught.value).startswith(message)


def test_env_values_resolve_references_and_dollar_escapes() -> None:
    spec = _spec(env={"A": "${X}/${Y}", "B": "$$${X}$$", "C": "plain"}, env_passthrough=["AWS_*", "LC_?LL"])
    assert spec.env == {"A": "${X}/${Y}", "B": "$$${X}$$", "C": "plain"}  # kept as written
    assert spec.env_passthrough == ("AWS_*", "LC_?LL")
    assert resolve_env(spec.env, {"X": "1", "Y": "two"}) == {"A": "1/two", "B": "$1$", "C": "plain"}
    with pytest.raises(SpecError, match=r"env\.A: refers to \$\{Y\}, which is not set"):
        resolve_env(spec.env, {"X": "1"})
