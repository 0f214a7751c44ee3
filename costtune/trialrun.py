"""How a command trial is started, wherever it runs: argv templating, environment, files.

One description (:class:`TrialLaunch`, plain JSON) and one renderer: the controller renders it for
a local attempt (``runner/attempts.py``), the agent renders the same description on a cloud
instance (``agent/worker.py``) against its own trial directory. Both give the trial the same
placeholders (``{lr}``, ``{trial_dir}``, ``{checkpoint_dir}``, ...), the same ``COSTTUNE_*``
variables and the same ``params.json``.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from fnmatch import translate
from functools import lru_cache
from pathlib import Path
from typing import Any

from costtune.protocol import (
    ENV_ATTEMPT,
    ENV_CHECKPOINT_DIR,
    ENV_OBJECTIVE,
    ENV_PARAMS_FILE,
    ENV_STUDY,
    ENV_TRIAL_DIR,
    ENV_TRIAL_NUMBER,
)
from costtune.spec.environment import resolve_env

ENV_START_STEP = "COSTTUNE_START_STEP"
# What every command trial gets from costtune's environment (README, "Command trials"): what a
# program needs to run (the search path, the user, locale, time zone, temp dir, terminal), the
# Python or conda environment it runs in, CA certificates, GPU selection and thread counts. Nothing
# that holds credentials: cloud keys, COSTTUNE_DB, tokens and passwords reach a trial only through
# the sweep's ``env`` (``${VAR}``) or ``env_passthrough``.
BASE_ENV = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR", "TEMP", "TMP", "TERM",
    "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "CONDA_PREFIX", "CONDA_DEFAULT_ENV", "SSL_CERT_FILE", "SSL_CERT_DIR",
    "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "CUDA_HOME", "CUDA_PATH", "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "*_NUM_THREADS",
)


@lru_cache(maxsize=32)
def _matcher(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(translate(p) for p in patterns))


def base_environment(passthrough: Sequence[str] = (), environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables of ``environ`` (default: this process's) named by ``BASE_ENV`` or ``passthrough``
    (names or globs, case-sensitive)."""
    environ = os.environ if environ is None else environ
    match = _matcher((*BASE_ENV, *tuple(passthrough))).match
    return {k: v for k, v in environ.items() if match(k)}


def trial_environment(env: Mapping[str, str], passthrough: Sequence[str] = (),
                      environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A command trial's environment before costtune's own ``COSTTUNE_*`` variables: the variables
    of ``environ`` (default: costtune's own) named by ``BASE_ENV`` or ``passthrough``, then the
    sweep's ``env`` with ``${VAR}`` resolved from ``environ``.

    Raises SpecError naming ``env.KEY`` when a referenced variable is not set.
    """
    environ = os.environ if environ is None else environ
    out = base_environment(passthrough, environ)
    out.update(resolve_env(env, environ))
    return out


@dataclass(frozen=True)
class TrialLaunch:
    """Everything a command trial needs to start, independent of the machine it starts on.

    ``env`` is the sweep's ``env`` already resolved (``${VAR}`` filled in from the controller's
    environment); the machine that runs the trial adds its own ``BASE_ENV`` and ``passthrough``
    variables.
    """

    command: tuple[str, ...]
    params: dict[str, Any]
    study: str
    trial_number: int
    attempt_number: int
    start_step: int = 0
    env: dict[str, str] = field(default_factory=dict)
    passthrough: tuple[str, ...] = ()
    objective: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TrialLaunch:
        """Raises ValueError naming the field when ``data`` is not a launch description."""
        def text_list(name: str) -> tuple[str, ...]:
            value = data.get(name, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{name}: must be a list of strings")
            return tuple(value)

        command = text_list("command")
        if not command:
            raise ValueError("command: must not be empty")
        params, env = data.get("params"), data.get("env", {})
        if not isinstance(params, dict):
            raise ValueError("params: must be a mapping")
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise ValueError("env: must be a mapping of strings")
        numbers = {}
        for name in ("trial_number", "attempt_number", "start_step"):
            value = data.get(name, 0)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}: must be an integer >= 0")
            numbers[name] = value
        study, objective = data.get("study"), data.get("objective")
        if not isinstance(study, str) or (objective is not None and not isinstance(objective, str)):
            raise ValueError("study, objective: must be text")
        return cls(command=command, params=dict(params), study=study, env=dict(env),
                   passthrough=text_list("passthrough"), objective=objective, **numbers)

    def render(self, trial_dir: Path, *, environ: Mapping[str, str] | None = None,
               write_files: bool = True) -> tuple[tuple[str, ...], dict[str, str]]:
        """The argv and the whole environment of the trial run in ``trial_dir``.

        ``write_files`` creates ``trial_dir/checkpoints`` and writes ``trial_dir/params.json``.
        ``python``/``python3`` as the program means the interpreter costtune runs in.
        """
        checkpoints = trial_dir / "checkpoints"
        params_file = trial_dir / "params.json"
        if write_files:
            checkpoints.mkdir(parents=True, exist_ok=True)
            params_file.write_text(json.dumps(self.params, indent=2))
        values = {**self.params, "trial_dir": str(trial_dir), "checkpoint_dir": str(checkpoints),
                  "trial_number": self.trial_number, "study": self.study, "params_file": str(params_file)}
        argv = [arg.format(**values) for arg in self.command]
        if argv and argv[0] in ("python", "python3"):
            argv[0] = sys.executable  # the interpreter costtune runs in, with its packages
        base = base_environment(self.passthrough, environ) if write_files else {}
        full_env = {**base, **self.env, ENV_PARAMS_FILE: str(params_file), ENV_TRIAL_DIR: str(trial_dir),
                    ENV_CHECKPOINT_DIR: str(checkpoints), ENV_TRIAL_NUMBER: str(self.trial_number),
                    ENV_STUDY: self.study, ENV_ATTEMPT: str(self.attempt_number),
                    ENV_START_STEP: str(self.start_step)}
        if self.objective:
            full_env[ENV_OBJECTIVE] = self.objective  # costtune.report fails a trial whose objective is NaN
        full_env.update({f"COSTTUNE_PARAM_{k.upper()}": str(v) for k, v in self.params.items()})
        return tuple(argv), full_env


__all__ = ["BASE_ENV", "ENV_START_STEP", "TrialLaunch", "base_environment", "trial_environment"]
