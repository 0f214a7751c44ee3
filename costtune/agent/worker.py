"""``costtune agent``: runs one attempt of a trial on an instance and reports it to the controller.

1. Fetch the launch description and the code bundle (sha256-checked) from the worker API and unpack
   the bundle into ``<workdir>/code``; run the ``setup`` lines there (``bash -c``, in order).
2. Restore the trial's checkpoint from ``checkpoint_uri`` into ``<workdir>/trial/checkpoints``.
3. Run the trial command exactly as a local sweep does: the same launch description rendered by
   ``costtune.trialrun`` (placeholders, ``COSTTUNE_*`` variables, ``params.json``) and started by the
   local provider (a supervisor owning its process tree; SIGTERM, then SIGKILL after the grace).
4. While it runs: forward its stdout lines (numbered, so a retry never doubles one), send heartbeats
   whose answer carries the controller's decision, and watch the instance metadata for a spot
   interruption notice. A ``stop`` decision or a notice sends the trial SIGTERM so it can save a
   checkpoint. The dead man's switch: when no request has reached the controller for ``lost_after``
   seconds, the agent ends the trial on its own.
5. When the trial has ended: send its last lines, upload its checkpoint directory, report the exit
   (code, time, how), then run the shutdown command (``shutdown -h now`` on an instance whose
   shutdown behaviour is terminate), so an instance never outlives its trial.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from costtune.agent.checkpoints import CheckpointError, checkpoints_at, trial_prefix
from costtune.agent.client import Refused, Unreachable, WorkerClient
from costtune.agent.metadata import SpotNoticeWatcher
from costtune.bundle import BundleError, unpack
from costtune.trialrun import TrialLaunch

log = logging.getLogger("costtune.agent")
_BATCH = 500  # lines per request, at most
_BATCH_BYTES = 512 * 1024  # of JSON per request, at most (the API refuses bodies above 1 MiB)
_LINE_CHARS = 120_000  # a longer line is cut here: above protocol.MAX_LINE_CHARS, so the same rule judges it
_LINE_BYTES = 256 * 1024  # of JSON for one line, at most


def fit_line(line: str) -> str:
    """``line`` as the worker API takes it: NUL (which no store column holds) becomes U+FFFD, and a
    line too long to send is cut (a report line that long is ignored by the controller either way)."""
    line = line.replace("\x00", "\ufffd")[:_LINE_CHARS]
    while len(json.dumps(line)) > _LINE_BYTES:
        line = line[: len(line) // 2]
    return line


def _batch(lines: list[str]) -> list[str]:
    """The first lines of ``lines`` that fit one request."""
    size, out = 0, []
    for line in lines[:_BATCH]:
        size += len(json.dumps(line)) + 1
        if out and size > _BATCH_BYTES:
            break
        out.append(line)
    return out


@dataclass
class AgentOptions:
    server: str
    attempt: int
    token: str
    workdir: Path  # the bundle goes to workdir/code, the trial's files to workdir/trial
    shutdown_command: str = ""  # run through the shell at the end; "" runs nothing
    metadata_url: str | None = None  # None: no interruption notices are watched for
    metadata_interval_s: float = 5.0
    lost_after_s: float | None = None  # None: the launch description's
    grace_s: float = 60.0  # SIGTERM, then SIGKILL this much later (the trial's time to checkpoint)
    timeout_s: float = 10.0  # of one request
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)


@dataclass
class _Run:
    sent: int = 0  # lines the server has
    lines: list[str] = field(default_factory=list)  # lines[sent - base:] wait to be sent
    base: int = 0
    last_contact: float = field(default_factory=time.monotonic)
    how: str | None = None  # why the agent is stopping the trial
    forwarding: bool = True
    next_beat: float = 0.0  # monotonic times of the next heartbeat, look at the metadata, send of lines
    next_watch: float = 0.0
    next_flush: float = 0.0


class Agent:
    def __init__(self, options: AgentOptions) -> None:
        self.o = options
        self.client = WorkerClient(options.server, options.attempt, options.token, timeout_s=options.timeout_s)
        self.run_ = _Run()
        self.lost_after_s = options.lost_after_s or 600.0
        # setup lines and the trial find this Python's environment first (pip installs into the venv
        # costtune runs from, which is also the interpreter ``python`` means in the command)
        bindir = os.path.dirname(sys.executable)
        self.environ = {**os.environ, "PATH": os.pathsep.join(p for p in (bindir, os.environ.get("PATH")) if p)}

    # -- talking to the controller -------------------------------------------------------------
    def _contact(self, call: Callable[[], Any]) -> Any:
        """One request; Unreachable is counted against the dead man's switch, never raised."""
        try:
            answer = call()
        except Unreachable as exc:
            log.warning("controller unreachable: %s", exc)
            return None
        self.run_.last_contact = time.monotonic()
        return answer

    def _lost(self) -> bool:
        return time.monotonic() - self.run_.last_contact > self.lost_after_s

    def _until_contact(self, call: Callable[[], Any], what: str) -> Any:
        """Retry ``call`` until it answers or the controller counts as lost (then None)."""
        delay = 0.2
        while True:
            answer = self._contact(call)
            if answer is not None:
                return answer
            if self._lost():
                log.error("%s: the controller was unreachable for %.0f s", what, self.lost_after_s)
                return None
            self.o.sleep(delay)
            delay = min(delay * 2, 10.0)

    def _flush(self) -> None:
        run = self.run_
        while run.forwarding and run.sent - run.base < len(run.lines):
            batch = _batch(run.lines[run.sent - run.base:])
            try:
                next_seq = self._contact(lambda b=batch: self.client.lines(run.sent, b))
            except Refused as exc:
                log.error("the controller refused the trial's lines: %s", exc.reason)
                run.forwarding = False
                run.how = run.how or "stopped"
                return
            if next_seq is None:
                return
            run.sent = min(max(next_seq, run.sent), run.base + len(run.lines))
        del run.lines[: run.sent - run.base]
        run.base = run.sent

    # -- the attempt ------------------------------------------------------------------------
    def run(self) -> int:
        """Run the attempt; the trial's exit code (-1: it never started). Ends with the shutdown command."""
        try:
            return self._attempt()
        finally:
            self._shutdown()

    def _attempt(self) -> int:
        try:
            launch = self._until_contact(self.client.launch, "launch description")
        except Refused as exc:
            log.error("the controller refused this attempt: %s", exc.reason)
            return -1
        if launch is None:
            return -1
        self.lost_after_s = self.o.lost_after_s or float(launch.get("lost_after_s") or 600.0)
        heartbeat_s = float(launch.get("heartbeat_s") or 10.0)
        try:
            trial = TrialLaunch.from_json(launch.get("trial") or {})
        except ValueError as exc:
            return self._end(None, f"bad launch description: {exc}", "could-not-start")
        code_dir, trial_dir = self.o.workdir / "code", self.o.workdir / "trial"
        trial_dir.mkdir(parents=True, exist_ok=True)
        digest = launch.get("bundle")
        if isinstance(digest, str):
            try:
                data = self._until_contact(lambda: self.client.bundle(digest), "code bundle")
                if data is None:
                    return self._end(None, "could not fetch the code bundle", "controller-lost")
                unpack(data, code_dir, digest=digest)
            except (Refused, BundleError) as exc:
                return self._end(None, f"code bundle: {exc}", "could-not-start")
        code_dir.mkdir(parents=True, exist_ok=True)
        for line in launch.get("setup") or []:
            code = self._setup(str(line), code_dir, trial_dir)
            if code != 0:
                return self._end(code, f"setup line failed with exit code {code}: {line}", "setup-failed")
        uri = launch.get("checkpoint_uri")
        store = None
        if isinstance(uri, str) and uri:
            try:
                store = checkpoints_at(trial_prefix(uri, trial.study, trial.trial_number))
                restored = store.restore(trial_dir / "checkpoints")
                self._say(f"costtune agent: restored {restored} checkpoint files")
            except CheckpointError as exc:
                self._say(f"costtune agent: {exc}")
        return self._trial(trial, code_dir, trial_dir, heartbeat_s, store)

    def _trial(self, trial: TrialLaunch, code_dir: Path, trial_dir: Path, heartbeat_s: float, store: Any) -> int:
        from costtune.providers.base import LaunchRequest, ProviderError
        from costtune.providers.local import LocalProvider

        argv, env = trial.render(trial_dir, environ=self.environ)
        provider = LocalProvider(terminate_grace_s=self.o.grace_s)
        started = time.time()
        try:
            handle = provider.launch(LaunchRequest(argv=argv, workdir=str(code_dir), output_dir=str(trial_dir),
                                                   env=env), f"attempt-{self.o.attempt}")
        except ProviderError as exc:
            return self._end(127, str(exc), "could-not-start")
        watcher = SpotNoticeWatcher(self.o.metadata_url) if self.o.metadata_url else None
        run = self.run_
        while True:
            try:
                status = self._tick(provider, handle, watcher, started, heartbeat_s)
            except KeyboardInterrupt:  # SIGTERM or SIGINT to the agent (the instance is shutting down)
                if run.how is None:
                    run.how = "agent-stopped"
                    log.warning("the agent was asked to stop: stopping the trial")
                continue
            if not status.running:
                break
        run.lines.extend(map(fit_line, provider.output(handle, timeout=0)))
        if store is not None:
            try:
                count = store.upload(trial_dir / "checkpoints")
                self._say(f"costtune agent: uploaded {count} checkpoint files")
            except CheckpointError as exc:
                self._say(f"costtune agent: {exc}")
        return self._end(status.exit_code, None, run.how or "exited")

    def _tick(self, provider: Any, handle: Any, watcher: SpotNoticeWatcher | None, started: float,
              heartbeat_s: float) -> Any:
        """One look at everything: output, heartbeat, notice, switch; the trial's status."""
        run = self.run_
        run.lines.extend(map(fit_line, provider.output(handle, timeout=0.05)))
        now = time.monotonic()
        if now >= run.next_flush:
            run.next_flush = now + 0.25
            self._flush()
        if now >= run.next_beat:
            run.next_beat = now + heartbeat_s
            try:
                answer = self._contact(lambda: self.client.heartbeat(started))
            except Refused as exc:
                answer = ("stop", exc.reason)
            if answer is not None and answer[0] == "stop" and run.how is None:
                run.how = "stopped"
                log.info("the controller asked to stop the trial: %s", answer[1])
        if watcher is not None and now >= run.next_watch and run.how is None:
            run.next_watch = now + self.o.metadata_interval_s
            notice = watcher.check()
            if notice:
                run.how = "spot-interruption"
                self._say(f"costtune agent: spot interruption notice ({notice}): stopping the trial")
        if run.how is None and self._lost():
            run.how = "controller-lost"
            log.error("the controller was unreachable for %.0f s: ending the trial", self.lost_after_s)
        if run.how is not None:
            provider.terminate(handle)  # SIGTERM now, SIGKILL after the grace (called again: escalates)
        return provider.poll(handle)

    def _setup(self, line: str, code_dir: Path, trial_dir: Path) -> int:
        with open(trial_dir / "setup.log", "ab") as out:
            process = subprocess.run(["bash", "-c", line], cwd=code_dir, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.environ, check=False)
        return process.returncode

    def _say(self, line: str) -> None:
        """An agent note in the trial's output (the controller's stdout.log shows it)."""
        log.info("%s", line.removeprefix("costtune agent: "))
        self.run_.lines.append(line)

    def _end(self, exit_code: int | None, why: str | None, how: str) -> int:
        if why:
            self._say(f"costtune agent: {why}")
        ended = time.time()
        self._flush()
        while self.run_.forwarding and self.run_.lines and not self._lost():
            self.o.sleep(0.2)
            self._flush()
        try:
            self._until_contact(lambda: self.client.exit(exit_code, ended, how) or True, "exit report")
        except Refused as exc:
            log.error("the controller refused the exit report: %s", exc.reason)
        return -1 if exit_code is None else exit_code

    def _shutdown(self) -> None:
        if not self.o.shutdown_command:
            return
        log.info("running the shutdown command")
        subprocess.run(self.o.shutdown_command, shell=True, check=False, stdin=subprocess.DEVNULL)


__all__ = ["Agent", "AgentOptions"]
