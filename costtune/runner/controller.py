"""Runs a sweep file's command trials through a provider, ``workers`` at a time.

Each worker thread claims a trial from the store, launches it, turns its stdout report lines into
stored reports, charges billable time x the rate snapshotted at launch, and closes the trial. The
controller stops claiming when the trial or dollar budget is used up, and stops running trials
once the dollar budget is reached. Interrupting it re-queues what was running.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from costtune.errors import CosttuneError
from costtune.history import TrialState
from costtune.money import format_usd
from costtune.protocol import (
    ENV_ATTEMPT,
    ENV_CHECKPOINT_DIR,
    ENV_PARAMS_FILE,
    ENV_STUDY,
    ENV_TRIAL_DIR,
    ENV_TRIAL_NUMBER,
    MetricLineError,
    parse_line,
)
from costtune.providers.base import LaunchRequest, Provider, ProviderError
from costtune.runner.heartbeat import Heartbeat
from costtune.runner.owner import hostname, is_alive
from costtune.schedulers import Decision
from costtune.spec import SweepSpec
from costtune.store import ClaimedTrial
from costtune.study import Study

log = logging.getLogger(__name__)
STDERR_TAIL_BYTES = 4000
_POLL_S = 0.2
_DRAIN_S = 10.0  # at most this long reading what an ended trial left in its pipe


@dataclass
class RunStatus:
    """What a progress display shows; updated by the workers."""

    finished: int = 0
    failed: int = 0
    running: int = 0
    launched: int = 0
    spend_micros: int = 0
    best_value: float | None = None
    best_trial: int | None = None
    stop_reason: str = ""


@dataclass
class _Live:
    attempt_id: int
    handle: Any
    rate: int
    stop_reason: str | None = None  # set to stop it: "stopped" | "budget" | "interrupted"


class SweepController:
    def __init__(self, spec: SweepSpec, study: Study, provider: Provider, *,
                 on_event: Callable[[str], None] | None = None, workdir: str | None = None) -> None:
        self.spec = spec
        self.study = study
        self.provider = provider
        self.status = RunStatus()
        self._on_event = on_event or (lambda _msg: None)
        self._workdir = str(Path(spec.workdir or workdir or ".").expanduser().resolve())
        self._live: dict[int, _Live] = {}
        self._lock = threading.RLock()  # _claim holds it while pricing running attempts
        self._stop = threading.Event()
        self._stopping: str | None = None  # why running attempts were stopped: "interrupted" | "budget"
        self._errors: list[BaseException] = []

    # -- public --------------------------------------------------------------------------
    def run(self) -> RunStatus:
        self._reap_orphans()
        self._refresh_status()
        # Each worker sets its own event as it ends. We wait on those, not on Thread.join: a Ctrl-C
        # that interrupts join() can leave a running thread marked as stopped (CPython 3.11), and
        # we would then exit before that worker re-queued its trial.
        ended = [threading.Event() for _ in range(self.spec.resources.workers)]
        workers = [threading.Thread(target=self._worker, args=(e,), name=f"costtune-worker-{i}", daemon=True)
                   for i, e in enumerate(ended)]
        with Heartbeat(self.study.store, self.study.owner, self._charges):
            for w in workers:
                w.start()
            try:
                while not all(e.is_set() for e in ended):
                    self._enforce_budget()
                    for e in ended:
                        e.wait(timeout=_POLL_S / len(ended))
            except KeyboardInterrupt:
                self.interrupt()
                for e in ended:
                    e.wait()
                raise
        self._refresh_status()
        if self._errors:
            raise self._errors[0]
        return self.status

    def interrupt(self) -> None:
        """Stop claiming; terminate running attempts and re-queue their trials."""
        self._stop.set()
        with self._lock:
            self._stopping = "interrupted"
            for live in self._live.values():
                live.stop_reason = live.stop_reason or "interrupted"

    # -- workers -------------------------------------------------------------------------
    def _worker(self, ended: threading.Event) -> None:
        try:
            while not self._stop.is_set():
                claimed = self._claim()
                if claimed is None:
                    return
                self._run_trial(claimed)
        except BaseException as exc:  # surfaced by run()
            self._errors.append(exc)
            self._stop.set()
        finally:
            ended.set()

    def _claim(self) -> ClaimedTrial | None:
        with self._lock:  # one claim at a time per controller keeps the budget check honest
            if self._stop.is_set():
                return None
            if self._budget_left() <= 0:
                self.status.stop_reason = "budget.usd reached"
                return None
            claimed = self.study.claim(max_trials=self.spec.max_trials)
            if claimed is None and not self.status.stop_reason:
                limit = self.spec.max_trials
                if limit is not None and self.spec.budget.trials == limit:
                    self.status.stop_reason = f"all {limit} trials run (budget.trials)"
                elif self.spec.sampler["type"] == "grid":
                    self.status.stop_reason = "every grid combination has run"
                else:
                    self.status.stop_reason = "the sampler has nothing left to propose"
            return claimed

    def _budget_left(self) -> int:
        cap = self.spec.budget.usd_micros
        return 1 if cap is None else cap - self._spend_now()

    def _spend_now(self) -> int:
        """Closed attempts as booked, plus this controller's running attempts priced this instant."""
        charges = self._charges()
        return self.study.store.spend_micros(self.study.id, exclude_attempts=set(charges)) + sum(
            cost for _ms, cost in charges.values())

    def _run_trial(self, claimed: ClaimedTrial) -> None:
        number, trial_dir = claimed.number, Path(claimed.output_dir or self.study.trial_dir(claimed.number))
        (trial_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        params_file = trial_dir / "params.json"
        params_file.write_text(json.dumps(claimed.params, indent=2))
        values = {**claimed.params, "trial_dir": str(trial_dir), "checkpoint_dir": str(trial_dir / "checkpoints"),
                  "trial_number": number, "study": self.study.name, "params_file": str(params_file)}
        argv = [arg.format(**values) for arg in self.spec.command]
        if argv[0] in ("python", "python3"):
            argv[0] = sys.executable  # the interpreter costtune runs in, with its packages
        key = f"ct-{self.study.id}-{claimed.id}-{claimed.attempt_number}"
        env = {**self.spec.env, ENV_PARAMS_FILE: str(params_file), ENV_TRIAL_DIR: str(trial_dir),
               ENV_CHECKPOINT_DIR: str(trial_dir / "checkpoints"), ENV_TRIAL_NUMBER: str(number),
               ENV_STUDY: self.study.name, ENV_ATTEMPT: str(claimed.attempt_number)}
        env.update({f"COSTTUNE_PARAM_{k.upper()}": str(v) for k, v in claimed.params.items()})
        rate = self.spec.resources.usd_per_hour_micros
        attempt_id = self.study.store.start_attempt(
            claimed.id, claimed.attempt_number, idempotency_key=key, provider=self.provider.name,
            rate_micros_per_hour=rate, host=hostname(), region=self.spec.resources.region,
            instance_type=self.spec.resources.instance_type, market=self.spec.resources.market)
        _append_header(trial_dir, claimed.attempt_number, argv)
        request = LaunchRequest(argv=tuple(argv), workdir=self._workdir, output_dir=str(trial_dir), env=env,
                                tags={**self._scope_tags(), "trial": str(number),
                                      "attempt": str(claimed.attempt_number), "owner": self.study.owner})
        try:
            handle = self.provider.launch(request, key)
        except ProviderError as exc:
            self._close(claimed, attempt_id, TrialState.FAILED, "failed", None, 0, rate, str(exc))
            self._on_event(f"trial {number} could not start: {exc}")
            return
        self.study.store.set_attempt_pid(attempt_id, getattr(handle, "pid", 0) or 0)
        with self._lock:
            # A stop that came while this attempt was launching applies to it too.
            self._live[attempt_id] = _Live(attempt_id, handle, rate, stop_reason=self._stopping)
            self.status.launched += 1
            self.status.running += 1
        self._on_event(f"trial {number} started: {_short(claimed.params)}")
        try:
            self._watch(claimed, attempt_id, handle, rate, trial_dir)
        finally:
            with self._lock:
                self._live.pop(attempt_id, None)
                self.status.running -= 1

    def _watch(self, claimed: ClaimedTrial, attempt_id: int, handle: Any, rate: int, trial_dir: Path) -> None:
        limit = self.spec.budget.trial_seconds
        timed_out = False
        step = -1
        warned = 0
        while True:
            # A trial that prints without pause must not keep us from checking limits and stops.
            deadline = time.monotonic() + _POLL_S
            for line in self.provider.output(handle, timeout=_POLL_S):  # type: ignore[call-arg]
                step, warned = self._take_line(claimed, attempt_id, handle, line, step, warned)
                if time.monotonic() >= deadline:
                    break
            status = self.provider.poll(handle)
            reason = self._live[attempt_id].stop_reason
            if limit is not None and status.running and status.billable_ms / 1000 >= limit:
                timed_out, reason = True, "timeout"
            if reason is not None and status.running:
                self.provider.terminate(handle)
                status = self.provider.poll(handle)
            if not status.running:
                # What is still in the pipe; bounded, as a child of the trial may hold it open.
                deadline = time.monotonic() + _DRAIN_S
                for line in self.provider.output(handle, timeout=2.0):  # type: ignore[call-arg]
                    step, warned = self._take_line(claimed, attempt_id, handle, line, step, warned)
                    if time.monotonic() >= deadline:
                        break
                break
        self._finish(claimed, attempt_id, status.exit_code, status.billable_ms, rate, trial_dir,
                     "timeout" if timed_out else reason)

    def _take_line(self, claimed: ClaimedTrial, attempt_id: int, handle: Any, line: str, step: int,
                   warned: int) -> tuple[int, int]:
        """Store the report on ``line``, if any; returns the last step and the warnings given so far."""
        try:
            report = parse_line(line)
        except MetricLineError as exc:
            if warned < 5:
                self._on_event(f"trial {claimed.number}: ignored {exc}")
            return step, warned + 1
        if report is None:
            return step, warned
        step = report.step if report.step is not None else step + 1
        elapsed = self.provider.poll(handle).billable_ms / 1000
        _frozen, decision = self.study.record_report(claimed.id, attempt_id, step, report.metrics,
                                                      elapsed_s=elapsed)
        if decision == Decision.STOP:
            self._mark(attempt_id, "stopped")
        return step, warned

    def _finish(self, claimed: ClaimedTrial, attempt_id: int, code: int | None, ms: int, rate: int,
                trial_dir: Path, reason: str | None) -> None:
        value = self.study.store.trial(self.study.id, claimed.number).value
        if reason == "interrupted":
            state, exit_reason, error = TrialState.QUEUED, "interrupted", None
        elif reason == "timeout":
            limit = self.spec.budget.trial_seconds
            state, exit_reason = TrialState.FAILED, "timeout"
            error = f"killed at its time limit of {limit:g} s (budget.trial_seconds)\n{_tail(trial_dir)}"
        elif reason in ("stopped", "budget"):
            state, exit_reason, error = TrialState.STOPPED, reason, None
        elif code == 0 and value is not None:
            state, exit_reason, error = TrialState.COMPLETE, "completed", None
        elif code == 0:
            state, exit_reason = TrialState.FAILED, "failed"
            error = f"exited 0 but never reported metric {self.study.metric!r}\n{_tail(trial_dir)}"
        else:
            state, exit_reason = TrialState.FAILED, "failed"
            error = f"exited with code {code}\n{_tail(trial_dir)}"
        self._close(claimed, attempt_id, state, exit_reason, code, ms, rate, error)
        cost = self.spec.resources.billing.charge(ms, rate)
        word = {TrialState.QUEUED: "interrupted (re-queued)"}.get(state, str(state))
        shown = f" {self.study.metric}={value:.6g}" if value is not None else ""
        self._on_event(f"trial {claimed.number} {word}{shown} {format_usd(cost)}"
                       + (f": {error.splitlines()[0]}" if error else ""))

    def _close(self, claimed: ClaimedTrial, attempt_id: int, state: TrialState, exit_reason: str,
               code: int | None, ms: int, rate: int, error: str | None) -> None:
        store = self.study.store
        store.finish_attempt(attempt_id, exit_reason=exit_reason, exit_code=code, billable_ms=ms,
                             cost_micros=self.spec.resources.billing.charge(ms, rate))
        store.finish_trial(claimed.id, state, error=error)
        self._refresh_status()

    # -- money and status ----------------------------------------------------------------
    def _charges(self) -> dict[int, tuple[int, int]]:
        with self._lock:
            live = list(self._live.values())
        out = {}
        for item in live:
            ms = self.provider.poll(item.handle).billable_ms
            out[item.attempt_id] = (ms, self.spec.resources.billing.charge(ms, item.rate))
        return out

    def _enforce_budget(self) -> None:
        cap = self.spec.budget.usd_micros
        if cap is None or self._stop.is_set() or self._spend_now() < cap:
            return
        self.status.stop_reason = "budget.usd reached"
        self._stop.set()
        with self._lock:
            self._stopping = self._stopping or "budget"
            for live in self._live.values():
                live.stop_reason = live.stop_reason or "budget"

    def _mark(self, attempt_id: int, reason: str) -> None:
        with self._lock:
            if attempt_id in self._live:
                self._live[attempt_id].stop_reason = self._live[attempt_id].stop_reason or reason

    def _refresh_status(self) -> None:
        history = self.study.history()
        best = history.best()
        with self._lock:
            self.status.finished = sum(t.state.finished for t in history.trials)
            self.status.failed = sum(t.state == TrialState.FAILED for t in history.trials)
            self.status.spend_micros = sum(t.cost_micros for t in history.trials)
            self.status.best_value = best.value if best else None
            self.status.best_trial = best.number if best else None

    def _reap_orphans(self) -> None:
        """Re-queue trials of dead controllers and kill processes they left behind."""
        self.study.recover()
        for handle in self._owned_strays():
            self._on_event(f"terminating stray process group {handle.pid} ({handle.key})")
            self.provider.terminate(handle)

    def _scope_tags(self) -> dict[str, str]:
        """Tags that name this study in this store: another store's same-named study is not ours."""
        store_id = hashlib.sha256(self.study.store.display_url.encode()).hexdigest()[:12]
        return {"study": self.study.name, "store": store_id}

    def _owned_strays(self) -> list[Any]:
        """Processes tagged with this study whose controller is dead."""
        lister = getattr(self.provider, "list_owned", None)
        if lister is None:
            return []
        try:
            found = lister(self._scope_tags())
        except (OSError, CosttuneError):
            return []
        return [h for h in found if not is_alive(getattr(h, "tags", {}).get("owner", ""), None)]


def _append_header(trial_dir: Path, attempt: int, argv: list[str]) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    for name in ("stdout.log", "stderr.log"):
        with open(trial_dir / name, "a", encoding="utf-8") as handle:
            handle.write(f"=== costtune attempt {attempt} at {stamp}: {' '.join(argv)}\n")


def _tail(trial_dir: Path) -> str:
    try:
        data = (trial_dir / "stderr.log").read_bytes()[-STDERR_TAIL_BYTES:]
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace").strip()


def _short(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())
