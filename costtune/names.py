"""The one rule for study names, shared by the sweep file, the Python API and the store.

A study name becomes a directory under the output root, a ledger scope and a tag on every
resource a trial creates, so it must be a single, portable path segment: letters, digits, ``_``,
``.`` and ``-``, starting with a letter or digit (so never ``..`` or an absolute path).
"""

from __future__ import annotations

import re
from typing import Any

from costtune.errors import SpecError

STUDY_NAME_MAX = 128
_STUDY_NAME = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9_.\-]{{0,{STUDY_NAME_MAX - 1}}}$")


def check_study_name(name: Any, path: str = "name") -> str:
    """``name`` if it is a valid study name; else ``SpecError(path, ...)`` naming the value."""
    if not isinstance(name, str) or not _STUDY_NAME.match(name):
        raise SpecError(path, f"must be letters, digits, '_', '.' or '-', starting with a letter or digit "
                              f"(at most {STUDY_NAME_MAX})", name)
    return name
