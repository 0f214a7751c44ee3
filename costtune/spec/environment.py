"""What a sweep file says about its trials' environment: ``env`` and ``env_passthrough``.

An ``env`` value may refer to a variable of the environment costtune runs in as ``${NAME}``; it is
resolved each time a trial is launched and never stored (the study keeps the ``${NAME}`` text), so
a secret can reach a trial without being written anywhere. ``$$`` is a literal ``$``; any other
``$`` is an error, so a value is never half expanded. ``env_passthrough`` names variables (or globs
of them: ``*``, ``?``, ``[...]``) of costtune's environment that trials see as they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from costtune.errors import SpecError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PATTERN = re.compile(r"[A-Za-z0-9_*?\[\]!]+")
_DOLLAR = "a $ must begin ${NAME} (a variable of the environment costtune runs in) or be doubled ($$ for a $)"


def _expand(path: str, text: str, lookup: Callable[[str], str]) -> str:
    out: list[str] = []
    i = 0
    while (j := text.find("$", i)) >= 0:
        out.append(text[i:j])
        if text.startswith("$$", j):
            out.append("$")
            i = j + 2
            continue
        end = text.find("}", j) if text.startswith("${", j) else -1
        if end < 0 or not _NAME.fullmatch(text[j + 2:end]):
            raise SpecError(path, _DOLLAR, text)
        out.append(lookup(text[j + 2:end]))
        i = end + 1
    out.append(text[i:])
    return "".join(out)


def references(path: str, text: str) -> list[str]:
    """The variables ``text`` refers to, in order; raises SpecError naming ``path`` on a bad ``$``."""
    names: list[str] = []
    _expand(path, text, lambda name: names.append(name) or "")  # type: ignore[func-returns-value]
    return names


def parse_env(value: Any) -> dict[str, str]:
    """The ``env`` mapping, values as text with their references checked (not resolved)."""
    if not isinstance(value, dict):
        raise SpecError("env", "must be a mapping", value)
    out: dict[str, str] = {}
    for key, val in value.items():
        if not isinstance(key, str) or not _NAME.fullmatch(key):
            raise SpecError(f"env.{key}", "must be an environment variable name")
        if isinstance(val, bool) or not isinstance(val, str | int | float):
            raise SpecError(f"env.{key}", "must be a string or a number", val)
        out[key] = str(val)
        references(f"env.{key}", out[key])
    return out


def parse_passthrough(value: Any) -> tuple[str, ...]:
    """``env_passthrough``: a list of variable names or globs."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SpecError("env_passthrough", "must be a list of variable names or globs", value)
    for i, item in enumerate(value):
        if not isinstance(item, str) or not _PATTERN.fullmatch(item):
            raise SpecError(f"env_passthrough[{i}]", "must be a variable name or a glob of names (*, ?, [...])",
                            item)
    return tuple(value)


def resolve_env(env: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """``env`` with every ``${NAME}`` replaced by ``environ[NAME]`` and ``$$`` by ``$``.

    Raises SpecError naming ``env.KEY`` and the variable when it is not set in ``environ``.
    """
    out = {}
    for key, text in env.items():
        def lookup(name: str, key: str = key) -> str:
            if name not in environ:
                raise SpecError(f"env.{key}", f"refers to ${{{name}}}, which is not set in the environment "
                                "costtune runs in")
            return environ[name]

        out[key] = _expand(f"env.{key}", text, lookup)
    return out


__all__ = ["parse_env", "parse_passthrough", "references", "resolve_env"]
