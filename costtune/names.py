"""The one rule for study names and the one for metric names, shared by every reader.

A study name becomes a directory under the output root, a ledger scope and a tag on every
resource a trial creates, so it must be a single, portable path segment: letters, digits, ``_``,
``.`` and ``-``, starting with a letter or digit (so never ``..`` or an absolute path).
"""

from __future__ import annotations

import re
from typing import Any

from costtune.errors import SpecError

METRIC_NAME_MAX = 128
# A metric name is a key of a report line (``costtune:report {"val_loss": 0.3}``): a word, no spaces.
_METRIC_NAME = re.compile(rf"^[A-Za-z_][A-Za-z0-9_.\-/]{{0,{METRIC_NAME_MAX - 1}}}$")
METRIC_NAME_RULE = (f"must be a metric name like val_loss: letters, digits, '_', '.', '-' or '/', starting with a "
                    f"letter or '_' (at most {METRIC_NAME_MAX})")

STUDY_NAME_MAX = 128
_STUDY_NAME = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9_.\-]{{0,{STUDY_NAME_MAX - 1}}}$")


def check_study_name(name: Any, path: str = "name") -> str:
    """``name`` if it is a valid study name; else ``SpecError(path, ...)`` naming the value."""
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
        raise SpecError(path, METRIC_NAME_RULE, name)
    return name
