"""Where a trial's checkpoint directory goes between attempts: ``resources.checkpoint_uri``.

Each trial has its own prefix, ``<checkpoint_uri>/<study>/trial-<number>/``. The agent uploads the
trial's checkpoint directory when the trial ends (an interruption notice gives it time to save one
first) and restores it before the next attempt starts. Two kinds of URI:

- ``s3://bucket/prefix``: boto3, imported only then (the ``aws`` extra); the instance's role needs
  ``s3:PutObject``, ``s3:GetObject``, ``s3:ListBucket``, ``s3:DeleteObject`` on the prefix only;
- ``file:///path``: a directory (tests; a shared file system).
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit


class CheckpointError(Exception):
    """The checkpoint could not be uploaded or restored."""


class Checkpoints(Protocol):
    def upload(self, local: Path) -> int:
        """Replace the stored checkpoint with the files under ``local``; how many files."""
        ...

    def restore(self, local: Path) -> int:
        """Copy the stored checkpoint into ``local``; how many files (0: there was none)."""
        ...


def trial_prefix(uri: str, study: str, trial_number: int) -> str:
    return f"{uri.rstrip('/')}/{study}/trial-{trial_number}"


def _files(local: Path) -> list[Path]:
    return sorted(p for p in local.rglob("*") if p.is_file() and not p.is_symlink())


class FileCheckpoints:
    def __init__(self, uri: str) -> None:
        self.root = Path(unquote(urlsplit(uri).path))

    def upload(self, local: Path) -> int:
        files = _files(local)
        staging = self.root.with_name(f".{self.root.name}.{uuid.uuid4().hex[:8]}")
        try:
            for path in files:
                target = staging / path.relative_to(local)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
            staging.mkdir(parents=True, exist_ok=True)
            old = self.root.with_name(f".{self.root.name}.old-{uuid.uuid4().hex[:8]}")
            if self.root.exists():
                os.replace(self.root, old)
            os.replace(staging, self.root)
            shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise CheckpointError(f"cannot upload the checkpoint to {self.root}: {exc}") from None
        return len(files)

    def restore(self, local: Path) -> int:
        if not self.root.is_dir():
            return 0
        try:
            shutil.copytree(self.root, local, dirs_exist_ok=True)
        except OSError as exc:
            raise CheckpointError(f"cannot restore the checkpoint from {self.root}: {exc}") from None
        return len(_files(self.root))


class S3Checkpoints:
    def __init__(self, uri: str) -> None:
        parts = urlsplit(uri)
        self.bucket, self.prefix = parts.netloc, parts.path.strip("/")
        try:
            import boto3
        except ImportError:
            raise CheckpointError("an s3:// checkpoint_uri needs boto3 on the instance (costtune[aws])") from None
        self.s3 = boto3.client("s3")

    def _keys(self) -> list[str]:
        keys: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + "/"):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return keys

    def upload(self, local: Path) -> int:
        files = _files(local)
        try:
            written = set()
            for path in files:
                key = f"{self.prefix}/{path.relative_to(local).as_posix()}"
                self.s3.upload_file(str(path), self.bucket, key)
                written.add(key)
            for key in self._keys():
                if key not in written:
                    self.s3.delete_object(Bucket=self.bucket, Key=key)
        except Exception as exc:  # botocore's errors: the boundary we do not own
            raise CheckpointError(f"cannot upload the checkpoint to s3://{self.bucket}/{self.prefix}: {exc}") from None
        return len(files)

    def restore(self, local: Path) -> int:
        try:
            keys = self._keys()
            for key in keys:
                rel = key[len(self.prefix) + 1:]
                if not rel or rel.startswith("/") or ".." in rel.split("/"):
                    continue
                target = local / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                self.s3.download_file(self.bucket, key, str(target))
        except Exception as exc:  # botocore's errors
            raise CheckpointError(f"cannot restore the checkpoint from s3://{self.bucket}/{self.prefix}: {exc}") \
                from None
        return len(keys)


def checkpoints_at(uri: str) -> Checkpoints:
    """The store for ``uri`` (``s3://`` or ``file://``); CheckpointError for another scheme."""
    scheme = urlsplit(uri).scheme
    if scheme == "file":
        return FileCheckpoints(uri)
    if scheme == "s3":
        return S3Checkpoints(uri)
    raise CheckpointError(f"checkpoint_uri: must start with s3:// or file://, got {uri!r}")
