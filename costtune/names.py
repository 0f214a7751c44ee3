"""The one rule for study names and the one for metric names, shared by every reader.

A study name becomes a directory under the output root, a ledger scope and a tag on every
resource a trial creates, so it must be a single, portable path segment: letters, digits, ``_``,
``.`` and ``-``, starting with a letter or digit (so never ``..`` or an absolute path).
"""

from __future__ import annotations

import re
from typing import Any

from costtune.errors import SpecError, shown

METRIC_NAME_MAX = 128
# A metric name is a key of a report line (``costtune:report {"val_loss": 0.3}``): a word, no spaces.
_METRIC_NAME = re.compile(rf"^[A-Za-z_][A-Za-z0-9_.\-/]{{0,{METRIC_NAME_MAX - 1}}}$")
METRIC_NAME_RULE = (f"must be a metric name like val_loss: letters, digits, '_', '.', '-' or '/', starting with a "
                    f"letter or '_' (at most {METRIC_NAME_MAX})")

STUDY_NAME_MAX = 128
_STUDY_NAME = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9_.\-]{{0,{STUDY_NAME_MAX - 1}}}$")


def must_be_text(value: Any, path: str) -> None:
    """``SpecError(path, ...)`` when a name field holds no text: ``is required`` for a missing (null) one, and for a
    number or boolean (``name: 123``, which YAML reads as a number) ``must be text`` with the quoted form to write.
    Nothing for text (the caller checks its rule) or other values (the caller's own rule refuses them)."""
    if value is None:
        raise SpecError(path, "is required")
    if isinstance(value, bool | int | float):
        key = path.rsplit(".", 1)[-1]
        raise SpecError(path, f"must be text, not a number or boolean (quote it: {key}: \"{shown(value)}\")", value)


def check_study_name(name: Any, path: str = "name") -> str:
    """``name`` if it is a valid study name; else ``SpecError(path, ...)`` naming the value."""
    must_be_text(name, path)
    if not isinstance(name, str) or not _STUDY_NAME.match(name):
        raise SpecError(path, f"must be letters, digits, '_', '.' or '-', starting with a letter or digit "
                              f"(at most {STUDY_NAME_MAX})", name)
    return name


def is_metric_name(name: Any) -> bool:
    """True when ``name`` can be a key of a report line (the rule ``check_metric_name`` enforces)."""
    return isinstance(name, str) and _METRIC_NAME.match(name) is not None


def check_metric_name(name: Any, path: str = "metric") -> str:
    """``name`` if a report can carry it; else ``SpecError(path, ...)`` naming the value.

    The same rule for a sweep's ``objective.metric``, ``create_study(metric=...)`` and every key of
    a report line, so an objective is always one a trial can report.
    """
    if not is_metric_name(name):
        must_be_text(name, path)
        raise SpecError(path, METRIC_NAME_RULE, name)
    return name


# -- parameter names ----------------------------------------------------------------------------
# The one rule for parameter names: sweep files (``space``), the Python API (``create_study(space=...)``,
# ``trial.suggest_*``, ``study.enqueue``) and ``costtune enqueue STUDY k=v``. A parameter reaches a
# command trial as ``{name}`` and as ``COSTTUNE_PARAM_<NAME>``: both must be its own.
RESERVED_PLACEHOLDERS = ("trial_dir", "checkpoint_dir", "trial_number", "study", "params_file")
PARAM_ENV = "COSTTUNE_PARAM_"
_PARAM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_param_name(name: Any, path: str, known: dict[str, str] | None = None) -> str:
    """``name`` if it may name a parameter; else ``SpecError(path, ...)``.

    Refused: a name that is not ASCII letters, digits and ``_`` (not starting with a digit;
    ``COSTTUNE_PARAM_<NAME>`` must be a portable environment variable name, and ``ß`` upper-cases to
    ``SS``), a built-in placeholder's name (``study``, ``trial_dir``, ...), and a name that upper-cases
    like another one in ``known`` (upper-cased name -> the other's path; ``lr`` and ``LR``).
    """
    if not isinstance(name, str) or not _PARAM.match(name):
        raise SpecError(path, "a parameter name must be ASCII letters, digits and '_', not starting with a digit "
                        f"(it becomes the environment variable {PARAM_ENV}<NAME>)", name)
    if name in RESERVED_PLACEHOLDERS:
        raise SpecError(path, f"is the name of a built-in placeholder ({{{name}}} is filled in by costtune); "
                        "rename the parameter")
    other = (known or {}).get(name.upper())
    if other is not None and other != path:
        raise SpecError(path, f"and {other} would both be the environment variable {PARAM_ENV}{name.upper()}; "
                        "rename one")
    return name


def check_param_names(names: Any, prefix: str, known: dict[str, str] | None = None) -> dict[str, str]:
    """Check every name (at ``<prefix>.<name>``) with ``check_param_name``, against each other and ``known``;
    returns ``known`` with them added."""
    taken = dict(known or {})
    for name in names:
        path = f"{prefix}.{name}"
        check_param_name(name, path, taken)
        taken.setdefault(str(name).upper(), path)
    return taken


def check_config_names(keys: Any, space_names: Any, prefix: str) -> None:
    """The names of a given configuration (``study.enqueue(params)``, ``costtune enqueue STUDY k=v``) by the same
    rule, each against the space's other names (``LR`` when the space has ``lr`` is refused like in a sweep
    file); ``SpecError`` at ``<prefix>.<key>``."""
    space = {str(n).upper(): f"space.{n}" for n in space_names}
    given: dict[str, str] = {}
    for key in keys:
        path = f"{prefix}.{key}"
        taken = {**given, **{u: p for u, p in space.items() if p != f"space.{key}"}}  # the space's name first
        check_param_name(key, path, taken)
        given.setdefault(str(key).upper(), path)
