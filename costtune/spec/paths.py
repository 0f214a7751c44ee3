"""The sweep file's directories, checked on this machine before the store is opened.

Checks only look: nothing is created here (the controller creates trial directories once a trial
is claimed). ``workdir`` must be an existing directory trials can run in; the output root (the
sweep's ``output_dir``, else ``$COSTTUNE_HOME/runs``) must be a directory or creatable as one: not
an existing file, not inside /proc, /sys or /dev, with its nearest existing ancestor a directory we
may write to.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from costtune.errors import SpecError
from costtune.spec.fields import unfit_for_os

_SYSTEM = tuple(Path(p) for p in ("/proc", "/sys", "/dev"))


def path_text(value: Any, path: str) -> str:
    """A non-empty path string the operating system can hold (no NUL)."""
    if not isinstance(value, str) or not value:
        raise SpecError(path, "must be a path", value)
    problem = unfit_for_os(value)
    if problem:
        raise SpecError(path, problem, value)
    return value


def check_workdir(value: str, path: str = "workdir") -> None:
    """``value`` (``~`` expanded, relative to the current directory) is a directory we may enter."""
    where = Path(value).expanduser()
    try:
        if not where.exists():
            raise SpecError(path, "no such directory", value)
        if not where.is_dir():
            raise SpecError(path, "is not a directory", value)
    except OSError as exc:
        raise SpecError(path, f"cannot be checked ({exc.strerror or exc})", value) from None
    if not os.access(where, os.X_OK):
        raise SpecError(path, "is a directory we may not enter (permission denied)", value)


def check_output_root(value: str | Path, path: str = "output_dir") -> None:
    """``value`` can hold per-trial directories: an existing writable directory, or creatable as one."""
    shown = str(value)
    try:
        where = Path(value).expanduser().resolve()
        for system in _SYSTEM:
            if where == system or system in where.parents:
                raise SpecError(path, f"is inside {system}, which holds no user files", shown)
        if where.exists() and not where.is_dir():
            raise SpecError(path, "exists and is not a directory", shown)
        ancestor = where
        while not ancestor.exists():
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise SpecError(path, f"cannot be created: {ancestor} is not a directory", shown)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise SpecError(path, f"cannot be checked ({getattr(exc, 'strerror', None) or exc})", shown) from None
    if not os.access(ancestor, os.W_OK | os.X_OK):
        what = "is a directory" if ancestor == where else f"cannot be created: {ancestor} is a directory"
        raise SpecError(path, f"{what} we may not write to (permission denied)", shown)


__all__ = ["check_output_root", "check_workdir", "path_text"]
