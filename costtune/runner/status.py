"""What a progress display reads while a sweep runs, and the small helpers around a trial's files."""

from __future__ import annotations

import shlex
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from costtune.history import Outcomes

STDERR_TAIL_BYTES = 4000


@dataclass
class RunStatus:
    """Counters the controller keeps up to date as it goes (read by the progress line)."""

    finished: int = 0  # trials that ended, however (complete, stopped, failed)
    failed: int = 0
    results: int = 0  # trials that ended with an objective value (complete or stopped): history.Outcomes
    denied: int = 0  # trials failed unlaunched: a spend policy's rule refuses their own placement
    running: int = 0
    launched: int = 0
    spend_micros: int = 0
    best_value: float | None = None
    best_trial: int | None = None
    stop_reason: str = ""
    # What kind of end the reason is (runner/ending.py): "budget" (the cap cannot fund a queued or new
    # trial), "policy", "limit" (no trial left to start), "failures", "objective", "unreported", "interrupted"; "" while
    # running.
    stop_kind: str = ""
    budget_stops: int = 0  # this run's attempts the study's cap stopped before their end (exit reason "budget")
    preemptions: int = 0
    waste_micros: int = 0
    sim_seconds: float = 0.0  # virtual time the sweep took, when simulated
    workers: int = 0  # trials the sweep may run at once (resources.workers)
    note: str = ""  # why fewer than ``workers`` run now, for the progress line
    # The study's finished trials and spend when this run began (``finished``/``spend_micros`` start there and
    # grow only with this controller's own attempts): this run's share is the difference (``own_*``).
    finished_before: int = 0
    spent_before: int = 0
    failed_before: int = 0
    results_before: int = 0
    # Set when the sweep ended on an error the user must see (fail-fast, a missing objective metric):
    # `costtune run` prints the summary, then raises it (exit 1, or 2 for a sweep-file mistake).
    error: Exception | None = None
    # The study as the store has it, other controllers running the same study included (``observe``,
    # every few seconds while the sweep runs and once at its end): what the progress line shows, so
    # it agrees with the summary printed after it.
    study_finished: int = 0
    study_failed: int = 0
    study_spend_micros: int = 0

    def observe(self, finished: int, failed: int, spend_micros: int, best_value: float | None,
                best_trial: int | None) -> None:
        """The study's figures read from the store; its best trial is the study's (as the leaderboard)."""
        self.study_finished, self.study_failed, self.study_spend_micros = finished, failed, spend_micros
        if best_trial is not None:
            self.best_value, self.best_trial = best_value, best_trial

    @property
    def shown_finished(self) -> int:
        """The study's finished trials: this run's count grows at once, the store's with other runs' too."""
        return max(self.finished, self.study_finished)

    @property
    def shown_failed(self) -> int:
        return max(self.failed, self.study_failed)

    @property
    def shown_spend_micros(self) -> int:
        """What the study spent (micro-dollars), other controllers' attempts included."""
        return max(self.spend_micros, self.study_spend_micros)


    @property
    def own_finished(self) -> int:
        """Trials this run's own attempts finished (not another controller's running on the same study)."""
        return self.finished - self.finished_before

    @property
    def own_outcomes(self) -> Outcomes:
        """How the trials this run's own attempts ended, counted as the study's are (``history.Outcomes``)."""
        results, failed = self.results - self.results_before, self.failed - self.failed_before
        return Outcomes(results=results, failed=failed, no_result=self.own_finished - results - failed)

    @property
    def own_spend_micros(self) -> int:
        """What this run's own attempts were charged (micro-dollars)."""
        return self.spend_micros - self.spent_before


def write_header(trial_dir: Path, attempt: int, argv: tuple[str, ...], provider: str) -> None:
    """A line per attempt in the trial's logs, so `costtune logs` shows where each run began."""
    if provider == "simulated":
        return  # nothing is written by a simulated trial
    trial_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    for name in ("stdout.log", "stderr.log"):
        with open(trial_dir / name, "a", encoding="utf-8") as handle:
            handle.write(f"=== costtune attempt {attempt} at {stamp}: {shlex.join(argv)}\n")


def stderr_tail(trial_dir: Path) -> str:
    try:
        data = (trial_dir / "stderr.log").read_bytes()[-STDERR_TAIL_BYTES:]
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace").strip()


def failure_reason(exit_code: int | None, stderr: str, *, lines: int = 15) -> str:
    """Why a trial that exited non-zero failed, for `costtune trials`: the reason on the first line
    (a Python traceback's exception line, else the last stderr line), with the exit code, then the
    last ``lines`` lines of this attempt's stderr.

    ``ValueError: lr must be > 0 (exited with code 1)`` / ``exited with code 3: out of memory`` /
    ``killed by signal SIGKILL``.
    """
    text = stderr.rsplit(_HEADER, 1)[-1]  # only this attempt's part of stderr.log
    shown = [line for line in text.splitlines()[1:] if line.strip()] if _HEADER in stderr else \
        [line for line in text.splitlines() if line.strip()]
    how = _exit_text(exit_code)
    cause = ""
    if "Traceback (most recent call last):" in text:
        after = text.rsplit("Traceback (most recent call last):", 1)[1].splitlines()
        top = [line for line in after if line.strip() and not line[0].isspace()]
        cause = top[-1].strip() if top else ""
    if cause:
        head = f"{cause} ({how})"
    elif shown:
        head = f"{how}: {shown[-1].strip()}"
    else:
        head = how
    tail = "\n".join(shown[-lines:])[-2000:]
    return f"{head}\n{tail}".strip()


_HEADER = "=== costtune attempt "


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def short_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
