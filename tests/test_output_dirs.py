"""Study names are one validated path segment, and every study writes to a directory of its own."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

import costtune
from costtune.cli import main
from costtune.errors import SpecError
from costtune.history import Mode
from costtune.spec import parse_sweep
from costtune.store import Store
from costtune.study.output import MARKER

CHECKPOINT_TRIAL = """
import os, costtune
ckpt = os.path.join(os.environ["COSTTUNE_CHECKPOINT_DIR"], "model.ckpt")
found = os.path.exists(ckpt)
with open(ckpt, "w") as handle:
    handle.write(os.environ["COSTTUNE_STUDY"])
print("trial of", os.environ["COSTTUNE_STUDY"])
costtune.report(val_loss=1.0, resumed=1.0 if found else 0.0)
"""


def _sweep(tmp_path: Path, name: str, **fields: Any) -> Path:
    doc = {"name": name, "objective": {"metric": "val_loss", "mode": "min"},
           "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}}, "budget": {"trials": 1},
           "command": ["python", str(tmp_path / "train.py")], "output_dir": "shared", **fields}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _cli(tmp_path: Path, *args: str, db: str = "store.db") -> subprocess.CompletedProcess[str]:
    """A real `costtune run` process."""
    proc = subprocess.run(["costtune", *args, "--db", str(tmp_path / db)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


def _read(tmp_path: Path, *args: str, db: str = "store.db") -> str:
    """A read-only command through the CLI's own code in this process."""
    result = CliRunner().invoke(main, [*args, "--db", str(tmp_path / db)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def _board(tmp_path: Path, study: str, db: str = "store.db") -> list[dict[str, Any]]:
    return json.loads(_read(tmp_path, "leaderboard", study, "--format", "json", db=db))["trials"]


def test_two_sweeps_with_one_output_dir_get_a_directory_each(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(CHECKPOINT_TRIAL)
    _cli(tmp_path, "run", str(_sweep(tmp_path, "first")), "--quiet")
    _cli(tmp_path, "run", str(_sweep(tmp_path, "second")), "--quiet")
    [a], [b] = _board(tmp_path, "first"), _board(tmp_path, "second")
    assert a["output_dir"] == str(tmp_path / "shared" / "first" / "trial-0000")
    assert b["output_dir"] == str(tmp_path / "shared" / "second" / "trial-0000")
    assert b["metrics"]["resumed"] == 0.0  # trial 0 of the second study did not start from the first's checkpoint
    assert (tmp_path / "shared" / "first" / "trial-0000" / "checkpoints" / "model.ckpt").read_text() == "first"
    logs = _read(tmp_path, "logs", "second", "0")
    assert "trial of second" in logs and "trial of first" not in logs


def test_a_same_named_study_of_another_store_or_a_recreated_one_never_reuses_a_directory(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(CHECKPOINT_TRIAL)
    sweep = _sweep(tmp_path, "again")
    _cli(tmp_path, "run", str(sweep), "--quiet", db="one.db")
    _cli(tmp_path, "run", str(sweep), "--quiet", db="two.db")  # another store, same name, same output_dir
    (tmp_path / "one.db").unlink()  # the study is gone; its files are not
    _cli(tmp_path, "run", str(sweep), "--quiet", db="one.db")
    dirs = [_board(tmp_path, "again", db)[0]["output_dir"] for db in ("two.db", "one.db")]
    assert dirs == [str(tmp_path / "shared" / "again-2" / "trial-0000"),
                    str(tmp_path / "shared" / "again-3" / "trial-0000")]
    assert [_board(tmp_path, "again", db)[0]["metrics"]["resumed"] for db in ("two.db", "one.db")] == [0.0, 0.0]
    # resuming keeps the directory the study recorded
    _cli(tmp_path, "run", str(_sweep(tmp_path, "again", budget={"trials": 2})), "--quiet", db="two.db")
    assert [r["output_dir"] for r in sorted(_board(tmp_path, "again", "two.db"), key=lambda r: r["trial"])] == [
        str(tmp_path / "shared" / "again-2" / f"trial-000{n}") for n in (0, 1)]


def test_in_process_studies_get_their_own_directory_too(tmp_path: Path) -> None:
    dirs = []
    for db in ("a.db", "b.db"):
        study = costtune.create_study("same", storage=str(tmp_path / db), output_dir=tmp_path / "out")
        trial = study.ask()
        (trial.output_dir / "weights.bin").write_bytes(b"x")
        study.tell(trial, 1.0)
        dirs.append(trial.output_dir)
    assert dirs == [tmp_path / "out" / "same" / "trial-0000", tmp_path / "out" / "same-2" / "trial-0000"]
    assert json.loads((tmp_path / "out" / "same-2" / MARKER).read_text())["study"] == "same"
    default = costtune.create_study("home", storage=str(tmp_path / "a.db"))
    assert default.ask().output_dir.parent.parent.name == "runs"  # COSTTUNE_HOME/runs/home/trial-0000


@pytest.mark.parametrize("name", ["../../x", "/abs/path", "a/b", "..", ".hidden", "", "x" * 129, 7])
def test_study_names_are_checked_everywhere_before_anything_is_written(tmp_path: Path, name: Any) -> None:
    url = str(tmp_path / "s.db")
    said = r"^name: must be text" if name == 7 else r"^name: must be letters, digits"  # 7: YAML's number, not text
    with pytest.raises(SpecError, match=said):
        costtune.create_study(name, storage=url)
    with pytest.raises(SpecError, match=said):
        costtune.load_study(name, storage=url)
    with pytest.raises(SpecError, match=said):
        parse_sweep({"name": name, "objective": {"metric": "m"}, "space": {"x": {"values": [1]}}, "command": ["x"],
                     "budget": {"trials": 1}})
    with pytest.raises(SpecError, match=said):
        Store(url).create_study(name, metric="m", mode=Mode.MIN, space={}, sampler={})
    assert not (tmp_path / "s.db").exists() or Store(url).list_studies() == []
    assert not (tmp_path / "x").exists() and not Path("/abs/path").exists()


def test_after_a_rename_logs_trials_and_a_resume_find_the_recorded_output(tmp_path: Path) -> None:
    """Issue 7: a renamed study's trials keep their output, and its resume keeps writing beside them."""
    (tmp_path / "train.py").write_text(CHECKPOINT_TRIAL)
    _cli(tmp_path, "run", str(_sweep(tmp_path, "before")), "--quiet")
    _read(tmp_path, "studies", "rename", "before", "after")
    assert "trial of before" in _read(tmp_path, "logs", "after", "0")
    assert "completed" in _read(tmp_path, "trials", "after", "0")
    _cli(tmp_path, "run", str(_sweep(tmp_path, "before", budget={"trials": 2})), "--name", "after", "--quiet")
    rows = _board(tmp_path, "after")
    folder = tmp_path / "shared" / "before"  # the directory recorded when the study was created
    assert sorted(Path(r["output_dir"]) for r in rows) == [folder / "trial-0000", folder / "trial-0001"]
    assert "trial of after" in _read(tmp_path, "logs", "after", "1")
