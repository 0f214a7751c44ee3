"""Each study's own output directory: ``<output root>/<study>/trial-NNNN``, never shared.

A study claims its directory once, when it is created, and the store records it; resumes use the
recorded one. A directory already holding something else (another store's study of the same name,
a study deleted and created again, files of the user's) is never reused: the claim moves on to
``<study>-2``, ``<study>-3``, ... The claim is a marker file created with O_EXCL, so two processes
creating studies at the same moment cannot both get one directory.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from costtune.errors import InputError
from costtune.store import costtune_home
from costtune.store.models import utcnow

MARKER = ".costtune-study.json"
_MAX_SUFFIX = 10_000


def default_output_root() -> Path:
    """Where trial directories go when neither the sweep file nor the API names a root."""
    return costtune_home() / "runs"


def claim_output_dir(root: str | Path | None, study: str, *, store: str) -> Path:
    """Claim a fresh directory for ``study`` under ``root`` (default: ``COSTTUNE_HOME/runs``).

    ``study`` must already be a valid study name (one path segment). Returns the absolute path;
    raises ``InputError`` naming the root when it cannot be created.
    """
    base = Path(root).expanduser().resolve() if root is not None else default_output_root().resolve()
    for k in range(1, _MAX_SUFFIX):
        candidate = base / (study if k == 1 else f"{study}-{k}")
        try:
            candidate.mkdir(parents=True, exist_ok=True)
            if any(entry.name != MARKER for entry in candidate.iterdir()):
                continue  # something else lives here
            fd = os.open(candidate / MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue  # another study claimed it first (or a file has this name)
        except NotADirectoryError:
            continue
        except OSError as exc:
            raise InputError(f"output_dir: cannot create a directory under {str(base)!r}: {exc.strerror}") from None
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"study": study, "store": store, "claimed_at": utcnow().isoformat()}, handle)
        return candidate
    raise InputError(f"output_dir: no free directory for study {study!r} under {str(base)!r}")


def release_output_dir(path: Path) -> None:
    """Give back a directory claimed for a study that was not created after all (nothing was written)."""
    if [entry.name for entry in path.iterdir()] == [MARKER]:
        shutil.rmtree(path, ignore_errors=True)
