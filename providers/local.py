"""The local provider: each attempt is a subprocess on this machine, priced like an instance.

Every attempt runs under its own supervisor (``costtune/agent/supervise.py``, a few milliseconds
of start-up, standard library only), in a session of its own. The supervisor owns the trial's whole
process tree (a child subreaper), stops it when asked or when the controller dies (its stdin is a
pipe only the controller holds), and records the attempt's start, end and exit code in
``attempt-<key>.json`` in the trial directory: the facts recovery bills a crashed sweep from.

Stopping never waits: ``terminate`` sends SIGTERM to the supervisor, which stops the tree and sends
SIGKILL to what is left after the grace period; the controller sees the end on a later ``poll``.
Each process carries its tags as ``COSTTUNE_TAG_*`` environment variables, which is how
``list_owned`` finds strays after a crash. The trial's environment is exactly ``request.env`` plus
those tags: this provider adds nothing from its own environment.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from costtune.providers.base import AttemptFacts, FatalProviderError, LaunchRequest, Status

from costtune.agent import supervise

TAG_PREFIX = "COSTTUNE_TAG_"
KEY_ENV = "COSTTUNE_ATTEMPT_KEY"
SUPERVISOR = str(Path(supervise.__file__).resolve())
GRACE_S = 5.0  # SIGTERM, then SIGKILL this much later
_SLACK_S = 2.0  # a supervisor that has not ended this long after its own SIGKILL is killed from here
_DRAIN_S = 10.0  # an ended attempt is reported running at most this long while its output is read
_EOF = object()


@dataclass(eq=False)
class LocalHandle:
    key: str
    pid: int  # the supervisor's pid, which is also its process group (a stray's group, found by list_owned)
    process: subprocess.Popen[bytes] | None = None  # None for a stray found by list_owned
    tags: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    lines: queue.Queue[object] = field(default_factory=queue.Queue)
    eof: bool = False  # the pump has read the last of its output
    stop_at: float | None = None  # when terminate first asked it to stop (monotonic)
    kill_at: float | None = None  # when kill asked it to die now (monotonic)
    killed: bool = False
    facts_file: Path | None = None  # the supervisor's record (None for a stray)
    lost: int | None = None  # the supervisor died before its tree did (its exit code): the tree is watched from here


def facts_path(output_dir: str | Path, key: str) -> Path:
    return Path(output_dir) / f"attempt-{key}.json"


class LocalProvider:
    name = "local"
    outlives_controller = True  # a process tree: it must be on the books before it starts

    def __init__(self, terminate_grace_s: float = GRACE_S) -> None:
        self.grace = terminate_grace_s
        self._launched: dict[str, LocalHandle] = {}
        self._gone: dict[str, float] = {}  # key -> wall time a stray of it was last seen gone
        self._lock = threading.Lock()

    def launch(self, request: LaunchRequest, idempotency_key: str) -> LocalHandle:
        with self._lock:
            if idempotency_key in self._launched:
                return self._launched[idempotency_key]
            out_dir = Path(request.output_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            env = {**request.env, KEY_ENV: idempotency_key, "PYTHONUNBUFFERED": "1"}
            env.update({TAG_PREFIX + k.upper(): v for k, v in request.tags.items()})
            _check_startable(request.argv, request.workdir, env.get("PATH", os.defpath))
            argv = [sys.executable or "python3", "-I", SUPERVISOR, "--facts", str(facts_path(out_dir, idempotency_key)),
                    "--grace", repr(self.grace), "--", *request.argv]
            stderr = open(out_dir / "stderr.log", "ab")  # noqa: SIM115 - handed to the child
            try:
                process = subprocess.Popen(argv, cwd=request.workdir, env=env, stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, stderr=stderr, start_new_session=True)
            except OSError as exc:
                raise FatalProviderError(f"cannot start the trial's supervisor: {exc}") from None
            finally:
                stderr.close()
            handle = LocalHandle(key=idempotency_key, pid=process.pid, process=process, tags=dict(request.tags),
                                 facts_file=facts_path(out_dir, idempotency_key))
            threading.Thread(target=self._pump, args=(handle, out_dir / "stdout.log"), daemon=True).start()
            self._launched[idempotency_key] = handle
            return handle

    @staticmethod
    def _pump(handle: LocalHandle, log_path: Path) -> None:
        """Copy stdout to the trial's log and hand each line to the controller."""
        assert handle.process is not None and handle.process.stdout is not None
        with open(log_path, "ab") as log, handle.process.stdout as pipe:
            for raw in pipe:
                log.write(raw)
                log.flush()
                handle.lines.put(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        handle.lines.put(_EOF)
        handle.eof = True

    def output(self, handle: LocalHandle, timeout: float | None = None) -> Iterator[str]:
        """Lines as they come; with ``timeout``, stops early when none arrived in that time."""
        while True:
            try:
                item = handle.lines.get(timeout=timeout)
            except queue.Empty:
                return
            if item is _EOF:
                handle.lines.put(_EOF)  # later readers see the end too
                return
            yield str(item)

    def poll(self, handle: LocalHandle) -> Status:
        """Billable time runs from launch to the end of the supervisor (the whole tree's end). An ended
        attempt is reported running until its output is all read (at most ``_DRAIN_S``), so the
        controller never waits for a pipe."""
        alive = handle.process is not None or _group_alive(handle.pid)
        code = handle.process.poll() if handle.process is not None else (None if alive else -1)
        now = time.monotonic()
        if code is not None and handle.ended is None and handle.process is not None and self._tree_outlived(handle):
            code = None  # its supervisor is gone, its processes are not: they run (and are billed) on
        if code is not None and handle.ended is None:
            handle.ended = now
            if handle.process is None:
                self._gone[handle.key] = max(self._gone.get(handle.key, 0.0), time.time())
            elif handle.process.stdin is not None:
                handle.process.stdin.close()
            if handle.lost is not None:
                _record_lost_end(handle)
        end = handle.ended if handle.ended is not None else now
        billable_ms = int((end - handle.started) * 1000)
        if code is None:
            return Status(running=True, exit_code=None, billable_ms=billable_ms)
        draining = handle.process is not None and not handle.eof and now - end < _DRAIN_S
        error = None
        if handle.lost is not None:
            error = (f"its supervisor died ({_how(handle.lost)}) before the trial's processes did; they were "
                     "watched from here and billed until they ended; their exit code is unknown")
        return Status(running=draining, exit_code=code, billable_ms=billable_ms, draining=draining, error=error)

    @staticmethod
    def _tree_outlived(handle: LocalHandle) -> bool:
        """Whether processes of an attempt whose supervisor has exited still run. A supervisor that
        recorded its end saw its whole tree gone; one killed (``kill -9``) recorded none, and what it
        ran is then watched here: found by its process group and its attempt key, stopped by
        ``terminate``/``kill``, billed until the last of it is gone."""
        if handle.lost is None:
            if handle.facts_file is None or _recorded_end(handle.facts_file) or not _tree_pids(handle.key, handle.pid):
                return False  # it saw its tree end (or nothing of it is left): an ordinary end
            assert handle.process is not None
            handle.lost = handle.process.returncode
            return True
        return bool(_tree_pids(handle.key, handle.pid))

    def terminate(self, handle: LocalHandle) -> None:
        """Ask the supervisor to stop the tree (SIGTERM now, SIGKILL after the grace) and return at once.

        Called again on later ticks: a supervisor still alive ``_SLACK_S`` after its own SIGKILL was
        due is killed with its process group from here. A stray (no supervisor of ours) gets the same
        treatment through its process group.
        """
        if handle.ended is not None or (handle.process is not None and handle.process.poll() is not None
                                        and handle.lost is None):
            return
        now = time.monotonic()
        if handle.stop_at is None:
            handle.stop_at = now
            self._send(handle, signal.SIGTERM)
        elif handle.lost is not None and now - handle.stop_at >= self.grace:
            self._send(handle, signal.SIGKILL)  # every tick until it is gone: nobody else will
        elif not handle.killed and now - handle.stop_at >= self.grace + (_SLACK_S if handle.process else 0.0):
            handle.killed = True
            _signal_group(handle.pid, signal.SIGKILL)

    def kill(self, handle: LocalHandle) -> None:
        """Kill the tree now (SIGUSR1: the supervisor sends SIGKILL to every process of it) and return
        at once; idempotent. A supervisor still alive ``_SLACK_S`` later is killed with its group."""
        if handle.process is None or (handle.lost is not None and handle.ended is None):
            self._send(handle, signal.SIGKILL)
            return
        if handle.ended is not None or handle.process.poll() is not None:
            return
        now = time.monotonic()
        if handle.kill_at is None:
            handle.kill_at = now
            self._send(handle, supervise.KILL_NOW)
        elif not handle.killed and now - handle.kill_at >= _SLACK_S:
            handle.killed = True
            _signal_group(handle.pid, signal.SIGKILL)

    @staticmethod
    def _send(handle: LocalHandle, sig: int) -> None:
        if handle.process is None or handle.lost is not None:
            _signal_group(handle.pid, sig)
            for pid in _tree_pids(handle.key, handle.pid) if handle.lost is not None else ():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, sig)  # what left the group (a session of its own) too
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            handle.process.send_signal(sig)  # the supervisor only; it signals the tree

    def facts(self, key: str, *, output_dir: str | None = None) -> AttemptFacts | None:
        """The supervisor's record of the attempt. When the supervisor died before recording an end, the
        end is the moment this provider (recovering) last saw a stray process of it gone; None if none
        was seen. None when there is no record at all."""
        record: dict[str, object] = {}
        if output_dir:
            try:
                record = json.loads(facts_path(output_dir, key).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                record = {}
        started = record.get("started_at")
        if not isinstance(started, int | float):
            return None
        ended, code, how = record.get("ended_at"), record.get("exit_code"), str(record.get("how") or "")
        source = "the local supervisor's record"
        if not isinstance(ended, int | float):  # the supervisor died before its tree: recovery saw the end
            ended, how, source = self._gone.get(key), "stopped by recovery", source + " and recovery"
        return AttemptFacts(
            started_at=datetime.fromtimestamp(started, UTC),
            ended_at=None if ended is None else datetime.fromtimestamp(ended, UTC),
            exit_code=code if isinstance(code, int) else None, how=how, source=source,
        )

    def list_owned(self, tags: dict[str, str]) -> list[LocalHandle]:
        """One handle per process group (pid = the group id), as ``terminate`` signals the group.

        Processes are found through their own environment, so a group whose supervisor is gone, or a
        descendant that started a session of its own, is still found and stopped.
        """
        wanted = {(TAG_PREFIX + k.upper()).encode(): v.encode() for k, v in tags.items()}
        found: dict[int, LocalHandle] = {}
        for entry in Path("/proc").glob("[0-9]*"):
            try:
                raw = (entry / "environ").read_bytes()
            except OSError:
                continue
            env = dict(item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
            if KEY_ENV.encode() not in env or any(env.get(k) != v for k, v in wanted.items()):
                continue
            try:
                pgid = os.getpgid(int(entry.name))
            except ProcessLookupError:
                continue
            tags = {k[len(TAG_PREFIX):].decode().lower(): v.decode(errors="replace")
                    for k, v in env.items() if k.startswith(TAG_PREFIX.encode())}
            found.setdefault(pgid, LocalHandle(key=env[KEY_ENV.encode()].decode(), pid=pgid, tags=tags))
        return list(found.values())


def _check_startable(argv: tuple[str, ...], workdir: str, path: str) -> None:
    """The errors starting the command would meet, found before the supervisor is started."""
    folder = Path(workdir)
    if not folder.exists():
        raise FatalProviderError(f"workdir: no such directory {workdir!r}")
    if not folder.is_dir():
        raise FatalProviderError(f"workdir: not a directory {workdir!r}")
    program = argv[0] if argv else ""
    if "/" in program:
        candidates = [folder / program]
    else:
        candidates = [folder / (d or ".") / program for d in path.split(os.pathsep)] if program else []
    existing = [c for c in candidates if c.exists()]
    if not existing:
        raise FatalProviderError(f"command[0]: no such program {program!r}")
    if not any(c.is_file() and os.access(c, os.X_OK) for c in existing):
        raise FatalProviderError(f"command[0]: not executable {program!r}")


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs; zombies waiting to be reaped do not count."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="ascii", errors="replace").rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[0] != "Z" and fields[2] == str(pgid):
            return True
    return False


def _recorded_end(path: Path) -> bool:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and isinstance(record.get("ended_at"), int | float)


def _record_lost_end(handle: LocalHandle) -> None:
    """Complete the record a killed supervisor left open: the moment its tree was seen gone."""
    if handle.facts_file is None:
        return
    try:
        record = json.loads(handle.facts_file.read_text(encoding="utf-8"))
        record.update(ended_at=time.time(), how=f"watched by the controller after its supervisor died "
                                              f"({_how(handle.lost)})")
        supervise.write_facts(str(handle.facts_file), record)
    except (OSError, ValueError, AttributeError):
        pass  # the controller books this attempt itself; the record only helps a later recovery


def _how(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _tree_pids(key: str, pgid: int) -> list[int]:
    """Live processes of an attempt: its supervisor's process group, and any process carrying its
    attempt key (one that started a session of its own); zombies do not count."""
    found = []
    needle = f"{KEY_ENV}={key}".encode()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="ascii", errors="replace").rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) < 3 or fields[0] in ("Z", "X"):
            continue
        pid = int(stat.parent.name)
        if pid == os.getpid():
            continue
        if fields[2] == str(pgid):
            found.append(pid)
            continue
        try:
            environ = (stat.parent / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(pid)
    return found
