"""Finding the workload a simulated sweep names: ``resources.simulation.workload``.

A workload is a callable ``(params, step, instance_type) -> (metric value, seconds for the step)``
named ``"package.module:function"``, or a recorded table (a ``.csv`` path, ``table_workload``).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from costtune.errors import SpecError

__all__ = ["WORKLOAD_FIELD", "Workload", "load_workload"]

Workload = Callable[[dict, int, str], tuple[float, float]]
WORKLOAD_FIELD = "resources.simulation.workload"


def _import_workload_module(name: str) -> Any:
    """``importlib.import_module(name)``, also finding ``name`` in the current directory, where command trials and
    relative paths are resolved from (the ``costtune`` script does not put it on ``sys.path``): appended last, so it
    never shadows an installed module, and only when the module is not found otherwise."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        here = str(Path.cwd())
        top = name.split(".")[0]
        if exc.name not in (top, name) or here in sys.path or "" in sys.path or "." in sys.path:
            raise
        if not (Path(here, f"{top}.py").is_file() or Path(here, top).is_dir()):
            raise
        sys.path.append(here)
        importlib.invalidate_caches()
        return importlib.import_module(name)


def load_workload(spec: str) -> Workload:
    """The callable named by ``"package.module:function"`` (``function`` may be dotted), or a
    recorded table (a path ending in ``.csv``, see ``table_workload``)."""
    if isinstance(spec, str) and spec.strip().lower().endswith(".csv"):
        from costtune.providers.table_workload import TableWorkload

        return TableWorkload(spec.strip())
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise SpecError(WORKLOAD_FIELD, "must be 'module:function' (e.g. 'costtune.demo.workloads:hartmann6') or "
                        "a recorded table ending in .csv", spec)
    module_name, attr_path = (part.strip() for part in spec.split(":"))
    if not module_name or not attr_path:
        raise SpecError(WORKLOAD_FIELD, "must be 'module:function', e.g. 'costtune.demo.workloads:hartmann6'", spec)
    try:
        module = _import_workload_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            here = Path.cwd()
            first = module_name.split(".")[0]
            raise SpecError(WORKLOAD_FIELD, f"no module named {module_name!r}: looked on the Python path and in the "
                            f"current directory {str(here)!r} (no {first}.py nor {first}/ there); run costtune from "
                            "the directory that holds it, or add that directory to PYTHONPATH", spec) from None
        raise SpecError(WORKLOAD_FIELD, f"module {module_name!r} failed to import: {exc}", spec) from None
    except Exception as exc:  # the user's module raised while importing
        raise SpecError(WORKLOAD_FIELD, f"module {module_name!r} failed to import: {exc!r}", spec) from None
    target: object = module
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise SpecError(WORKLOAD_FIELD, f"module {module_name!r} has no attribute {attr_path!r}", spec) from None
    if not callable(target):
        raise SpecError(
            WORKLOAD_FIELD, f"{attr_path!r} in {module_name!r} is not callable (a {type(target).__name__})", spec
        )
    return target  # type: ignore[return-value]
