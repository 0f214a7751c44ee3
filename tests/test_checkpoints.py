"""Checkpoint upload and restore between attempts (file://, and s3:// against moto when installed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from costtune.agent.checkpoints import CheckpointError, checkpoints_at, trial_prefix


def fill(folder: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return folder


def roundtrip(uri: str, tmp_path: Path) -> None:
    where = checkpoints_at(trial_prefix(uri, "study", 3))
    assert where.restore(tmp_path / "empty") == 0  # nothing stored yet
    assert where.upload(fill(tmp_path / "a", {"model.pt": "v1", "opt/state.bin": "s1", "stale.txt": "x"})) == 3
    assert where.upload(fill(tmp_path / "b", {"model.pt": "v2", "opt/state.bin": "s2"})) == 2  # replaces all
    assert where.restore(tmp_path / "restored") == 2
    got = {p.relative_to(tmp_path / "restored").as_posix(): p.read_text()
           for p in (tmp_path / "restored").rglob("*") if p.is_file()}
    assert got == {"model.pt": "v2", "opt/state.bin": "s2"}


def test_file_checkpoints_replace_and_restore_the_whole_directory(tmp_path: Path) -> None:
    roundtrip(f"file://{tmp_path / 'store'}", tmp_path)
    assert (tmp_path / "store" / "study" / "trial-3" / "model.pt").read_text() == "v2"


def test_s3_checkpoints_replace_and_restore_the_whole_prefix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    moto = pytest.importorskip("moto")
    boto3 = pytest.importorskip("boto3")
    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    with moto.mock_aws():
        boto3.client("s3").create_bucket(Bucket="ckpt")
        roundtrip("s3://ckpt/runs", tmp_path)
        keys = sorted(o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket="ckpt")["Contents"])
        assert keys == ["runs/study/trial-3/model.pt", "runs/study/trial-3/opt/state.bin"]


def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(CheckpointError, match="s3:// or file://"):
        checkpoints_at("gs://bucket/x")
