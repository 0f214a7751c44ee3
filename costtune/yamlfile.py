"""The one YAML reader for every file costtune reads from a user (sweep files, price override files).

PyYAML implements YAML 1.1, where ``1e-4`` and ``3e6`` (no dot) are strings, ``on``/``no`` are
booleans, ``017`` is octal and ``1:20`` is 80. costtune reads the YAML 1.2 core schema instead, so a
number is a number wherever it is written:

- null: ``null``, ``Null``, ``NULL``, ``~`` and an empty value;
- booleans: ``true``/``false`` (also ``True``, ``TRUE``, ...); ``yes``, ``no``, ``on``, ``off`` are text;
- integers: ``42``, ``-7``, ``+3``, ``0o17``, ``0x1F``; ``1_000`` (YAML 1.1 digit grouping) is text, as YAML 1.2
  says, and a field that needs a number refuses it by name;
- floats: ``1.5``, ``1e-4``, ``3e6``, ``+1.5E3``, ``.5``, ``.inf``, ``-.inf``, ``.nan``;
- everything else is text (dates included), and ``<<`` merge keys still work.

A file is also refused (``SpecError`` naming the file, the key path and the line) when it is not
UTF-8 (the message gives the byte offset), is larger than ``MAX_BYTES``, repeats a key in one mapping,
holds an integer outside the signed 64-bit range or a float too large for a double (``1e400``),
has a string with a NUL or a lone surrogate (no argv or environment entry can hold them), uses a
tag outside the core schema (``!!binary``, ``!!set``, ``!!python/...``), nests deeper than
``MAX_DEPTH`` levels, or expands through aliases to more than ``MAX_NODES`` values. ``.inf`` and
``.nan`` are read as floats; the fields that need finite numbers refuse them by name.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, ClassVar

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from costtune.errors import SpecError
from costtune.limits import INT64_MAX, INT64_MIN

MAX_BYTES = 1 << 20  # 1 MiB: a sweep file is a few hundred bytes; a huge one is a mistake (or /dev/zero)
MAX_DEPTH = 64
MAX_NODES = 1_000_000

_TAG = "tag:yaml.org,2002:"
_CORE_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null", "seq", "map", "merge")}
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")  # YAML 1.2 core: no ``_`` grouping
_FLOAT = re.compile(r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
                    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
_BAD_CHAR = re.compile(r"[\x00\ud800-\udfff]")


class CoreLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 core-schema scalars (see the module docstring)."""

    yaml_implicit_resolvers: ClassVar[dict[str, list[tuple[str, re.Pattern[str]]]]] = {}
    yaml_constructors: ClassVar[dict[Any, Any]] = dict(yaml.SafeLoader.yaml_constructors)


def core_number(text: str) -> int | float | None:
    """``text`` read as a YAML 1.2 core integer or float (``42``, ``+3``, ``0o17``, ``0x1F``, ``1e3``, ``.5``,
    ``.inf``, ``.nan``); None when it is not one (``1_000``, ``Infinity``, ``1,5``). The one number rule for
    sweep files, price files and command-line values (``costtune enqueue STUDY lr=1e-3``)."""
    if _INT.match(text):
        if text[:2] in ("0o", "0x"):
            return int(text[2:], 8 if text[1] == "o" else 16)
        return int(text, 10)
    if _FLOAT.match(text):
        low = text.lower()
        if low in (".inf", "+.inf", "-.inf", ".nan"):
            return {".nan": math.nan, "-.inf": -math.inf}.get(low, math.inf)
        return float(text)
    return None


def _construct_int(loader: CoreLoader, node: ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    value = core_number(text)
    if not isinstance(value, int):
        raise yaml.constructor.ConstructorError(None, None, f"not an integer: {text[:40]!r}", node.start_mark)
    return value


def _construct_float(loader: CoreLoader, node: ScalarNode) -> float:
    text = str(loader.construct_scalar(node))
    value = core_number(text)
    if value is None:
        raise yaml.constructor.ConstructorError(None, None, f"not a number: {text[:40]!r}", node.start_mark)
    return float(value)


def _construct_bool(loader: CoreLoader, node: ScalarNode) -> bool:
    return str(loader.construct_scalar(node)).lower() == "true"


for _tag, _pattern, _first in (
    ("null", _NULL, ["~", "n", "N", ""]),
    ("bool", _BOOL, list("tTfF")),
    ("int", _INT, list("-+0123456789")),
    ("float", _FLOAT, list("-+0123456789.")),
    ("merge", re.compile(r"^(?:<<)$"), ["<"]),
):
    CoreLoader.add_implicit_resolver(_TAG + _tag, _pattern, _first)
CoreLoader.add_constructor(_TAG + "int", _construct_int)
CoreLoader.add_constructor(_TAG + "float", _construct_float)
CoreLoader.add_constructor(_TAG + "bool", _construct_bool)


def read_yaml_file(path: str | Path, *, what: str) -> Any:
    """Read and parse one YAML file; every failure is a ``SpecError`` naming ``what`` and the path.

    ``what`` says what the file is for messages (``"sweep file"``); a missing file reads
    ``sweep file: no such file 'x.yaml'``.
    """
    file = Path(path)
    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(what, f"no such file {str(file)!r}") from None
    except IsADirectoryError:
        raise SpecError(what, f"{str(file)!r} is a directory, not a file") from None
    except OSError as exc:
        raise SpecError(what, f"cannot read {str(file)!r}: {exc.strerror or exc}") from None
    return load_yaml(data, source=f"{what} {str(file)!r}")


def load_yaml(data: bytes | str, *, source: str) -> Any:
    """Parse a YAML document (bytes are decoded as UTF-8) under the rules in the module docstring.

    ``source`` starts every error message (``sweep file 'x.yaml'``). Returns plain dicts, lists,
    str, int, float, bool and None.
    """
    if len(data) > MAX_BYTES:
        raise SpecError(source, f"is larger than {MAX_BYTES // (1 << 20)} MiB; is it the right file?")
    text = decode_utf8(data, source=source) if isinstance(data, bytes) else data
    try:
        loader = CoreLoader(text)
    except yaml.YAMLError as exc:
        raise SpecError(source, _describe(exc, text)) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _Checker(loader, source).walk(node, "", 0)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise SpecError(source, _describe(exc, text)) from None
    except RecursionError:
        raise SpecError(source, f"is nested too deeply (at most {MAX_DEPTH} levels)") from None
    finally:
        loader.dispose()


def decode_utf8(data: bytes, *, source: str) -> str:
    """UTF-8 text (a leading BOM dropped); else a ``SpecError`` giving the first bad byte's offset."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise SpecError(source, f"is not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} "
                        f"(line {line}); save it as UTF-8") from None


def _describe(exc: yaml.YAMLError, text: str) -> str:
    """One line: what is wrong and where (PyYAML's own text spans several lines)."""
    if isinstance(exc, yaml.reader.ReaderError):
        line = text[:exc.position].count("\n") + 1
        return f"is not valid YAML at line {line}: control character U+{exc.character:04X} is not allowed"
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    detail = f"{problem} ({context})" if context else problem
    return f"is not valid YAML{at}: {' '.join(str(detail).split())}"


class _Checker:
    """Walks the node graph before construction: key paths for messages, and every structural rule."""

    def __init__(self, loader: CoreLoader, source: str) -> None:
        self.loader = loader
        self.source = source
        self.nodes = 0
        self.open: set[int] = set()  # nodes on the current path: an alias back to one is a cycle

    def fail(self, path: str, message: str, node: Node) -> None:
        where = path if len(path) <= 80 else f"{path[:60]}...{path[-16:]}"
        line = f"line {node.start_mark.line + 1}"
        raise SpecError(self.source, f"{where} ({line}): {message}" if path else f"{line}: {message}")

    def walk(self, node: Node, path: str, depth: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            self.fail(path, f"expands to more than {MAX_NODES} values (through aliases?)", node)
        if depth > MAX_DEPTH:
            self.fail(path, f"is nested deeper than {MAX_DEPTH} levels", node)
        if node.tag not in _CORE_TAGS:
            self.fail(path, f"tag {node.tag!r} is not supported (YAML 1.2 core: text, numbers, booleans, "
                      "null, lists and mappings)", node)
        if isinstance(node, ScalarNode):
            self.scalar(node, path)
            return
        if id(node) in self.open:
            self.fail(path, "an alias refers to a value that contains it (a cycle)", node)
        self.open.add(id(node))
        if isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                self.walk(item, f"{path}[{i}]", depth + 1)
        elif isinstance(node, MappingNode):
            seen: dict[Any, Node] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    self.walk(key_node, f"{path}.<key>" if path else "<key>", depth + 1)
                    self.walk(value_node, f"{path}.<key>" if path else "<key>", depth + 1)
                    continue
                self.scalar(key_node, path)
                key = "<<" if key_node.tag == _TAG + "merge" else self.loader.construct_object(key_node)
                child = f"{path}.{key}" if path else str(key)
                if key_node.tag != _TAG + "merge":
                    if key in seen:
                        self.fail(child, f"duplicate key (first at line {seen[key].start_mark.line + 1})", key_node)
                    seen[key] = key_node
                self.walk(value_node, child, depth + 1)
        self.open.discard(id(node))

    def scalar(self, node: ScalarNode, path: str) -> None:
        text, tag = node.value, node.tag.removeprefix(_TAG)
        if tag == "str":
            bad = _BAD_CHAR.search(text)
            if bad:
                what = "a NUL character" if bad.group() == "\x00" else f"a lone surrogate {bad.group()!r}"
                self.fail(path, f"text holds {what}, which no argument or environment variable can hold", node)
        elif tag in _CHECKS and not _CHECKS[tag][0].match(text):
            self.fail(path, f"{_short(text)!r} is not {_CHECKS[tag][1]}", node)
        elif tag == "int" and (len(text) > 40 or not INT64_MIN <= self.loader.construct_object(node) <= INT64_MAX):
            self.fail(path, f"integer {_short(text)} does not fit in 64 bits (write 1e30 for a float)", node)
        elif tag == "float" and math.isinf(self.loader.construct_object(node)) and "inf" not in text.lower():
            self.fail(path, f"{_short(text)} is too large for a 64-bit float (at most 1.8e308)", node)


_CHECKS = {"int": (_INT, "an integer"), "float": (_FLOAT, "a number"), "bool": (_BOOL, "true or false"),
           "null": (_NULL, "null"), "merge": (re.compile(r"^<<$"), "a merge key")}


def _short(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:20]}...({len(text)} chars)"


__all__ = ["MAX_BYTES", "CoreLoader", "decode_utf8", "load_yaml", "read_yaml_file"]
