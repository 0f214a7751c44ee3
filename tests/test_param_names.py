"""One parameter-name rule, one message: sweep files, create_study, suggest_*, study.enqueue, costtune enqueue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import costtune
from costtune.cli import main
from costtune.errors import SpecError
from costtune.spec import parse_sweep

SPACE = {"lr": {"type": "uniform", "low": 0, "high": 1}}
# (name, what follows "<path>: " in every entry point's message)
BAD = [
    ("LR", "and space.lr would both be the environment variable COSTTUNE_PARAM_LR; rename one"),
    ("study", "is the name of a built-in placeholder ({study} is filled in by costtune); rename the parameter"),
    ("trial_dir", "is the name of a built-in placeholder ({trial_dir} is filled in by costtune); rename the parameter"),
    ("straße", "a parameter name must be ASCII letters, digits and '_', not starting with a digit (it becomes the "
               "environment variable COSTTUNE_PARAM_<NAME>), got 'straße'"),
    ("y-z", "a parameter name must be ASCII letters, digits and '_', not starting with a digit (it becomes the "
            "environment variable COSTTUNE_PARAM_<NAME>), got y-z"),
]


def _message(call: Any) -> str:
    with pytest.raises(SpecError) as err:
        call()
    return str(err.value)


@pytest.mark.parametrize(("name", "reason"), BAD, ids=[n for n, _ in BAD])
def test_every_entry_point_refuses_a_name_with_the_same_message(tmp_path: Path, name: str, reason: str) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    raw = {"name": "names", "objective": {"metric": "loss"}, "space": {**SPACE, name: [1, 2]},
           "budget": {"trials": 2}, "command": ["true"]}
    assert _message(lambda: parse_sweep(raw)) == f"space.{name}: {reason}"
    assert _message(lambda: costtune.create_study("other", metric="loss", storage=url,
                                                  space={**SPACE, name: [1]})) == f"space.{name}: {reason}"
    study = costtune.create_study("names", metric="loss", storage=url, space=SPACE)
    trial = study.ask()
    assert _message(lambda: trial.suggest_float(name, 0, 1)) == f"space.{name}: {reason}"
    assert _message(lambda: study.enqueue({"lr": 0.5, name: 1})) == f"params.{name}: {reason}"
    before = len(study.history().trials)
    result = CliRunner().invoke(main, ["enqueue", "names", "lr=0.5", f"{name}=1", "--db", url])
    assert result.exit_code == 2 and result.output.strip() == f"error: config.{name}: {reason}"
    assert len(study.history().trials) == before  # nothing queued
