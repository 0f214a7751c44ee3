"""``costtune.log_artifact(path)``: name what a trial produced, for the model version it may become.

A trial calls it with a file or directory (a saved model, a tokenizer folder). The absolute path is
appended to ``artifacts.json`` in the trial's directory (``$COSTTUNE_TRIAL_DIR`` in a command trial,
the running trial's directory inside ``Study.optimize``). When a scheduled run registers its best
trial as a model version, the named paths are copied into the version's artifact directory; a trial
that named nothing has its whole directory copied. Standard library only: a training script pays
nothing for it at start-up.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from costtune.errors import InputError

MANIFEST = "artifacts.json"


def _trial_dir() -> Path:
    from costtune.protocol import ENV_TRIAL_DIR, current_trial

    trial = current_trial.get()
    folder = getattr(trial, "output_dir", None) if trial is not None else None
    if folder is None:
        folder = os.environ.get(ENV_TRIAL_DIR)
    if not folder:
        raise InputError(f"log_artifact: {ENV_TRIAL_DIR} is not set: it works inside a costtune trial")
    return Path(folder)


def log_artifact(path: str | os.PathLike[str]) -> str:
    """Record ``path`` (a file or directory that exists now) as this trial's output; its absolute path.

    Raises ``InputError`` outside a trial or when ``path`` does not exist. Naming a path twice
    records it once.
    """
    target = Path(path).expanduser().resolve()
    if not target.exists():
        raise InputError(f"log_artifact: {str(path)!r} does not exist")
    manifest = _trial_dir() / MANIFEST
    names = logged_artifacts(manifest.parent) or []
    if str(target) not in names:
        names.append(str(target))
        manifest.parent.mkdir(parents=True, exist_ok=True)
        tmp = manifest.with_suffix(".tmp")
        tmp.write_text(json.dumps(names, indent=1) + "\n", encoding="utf-8")
        tmp.replace(manifest)  # a reader never sees half a list
    return str(target)


def logged_artifacts(trial_dir: str | os.PathLike[str]) -> list[str] | None:
    """The paths a trial named with ``log_artifact`` (None when it named none or the list is unreadable)."""
    try:
        data = json.loads((Path(trial_dir) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return [str(p) for p in data] if isinstance(data, list) else None
