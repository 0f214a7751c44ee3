"""The local provider: each attempt is a subprocess on this machine, priced like an instance.

Processes run in their own session (so a stop reaches their children too) and die with the
controller thread that launched them (Linux parent-death signal). Each carries its tags as
``COSTTUNE_TAG_*`` environment variables, which is how ``list_owned`` finds strays after a crash.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from costtune.providers.base import FatalProviderError, LaunchRequest, Status

TAG_PREFIX = "COSTTUNE_TAG_"
KEY_ENV = "COSTTUNE_ATTEMPT_KEY"
_EOF = object()


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass(eq=False)
class LocalHandle:
    key: str
    pid: int
    process: subprocess.Popen[bytes] | None = None  # None for a stray found by list_owned
    tags: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None
    lines: queue.Queue[object] = field(default_factory=queue.Queue)


class LocalProvider:
    name = "local"
    outlives_controller = True  # a process group: it must be on the books before it starts

    def __init__(self, terminate_grace_s: float = 5.0) -> None:
        self.grace = terminate_grace_s
        self._launched: dict[str, LocalHandle] = {}
        self._lock = threading.Lock()

    def launch(self, request: LaunchRequest, idempotency_key: str) -> LocalHandle:
        with self._lock:
            if idempotency_key in self._launched:
                return self._launched[idempotency_key]
            out_dir = Path(request.output_dir)
            out_dir.mkdir(parents=True, exist_ok=True)
            env = {**os.environ, **request.env, KEY_ENV: idempotency_key, "PYTHONUNBUFFERED": "1"}
            env.update({TAG_PREFIX + k.upper(): v for k, v in request.tags.items()})
            stderr = open(out_dir / "stderr.log", "ab")  # noqa: SIM115 - handed to the child
            try:
                process = subprocess.Popen(
                    list(request.argv), cwd=request.workdir, env=env, stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=stderr, start_new_session=True, preexec_fn=_die_with_parent,
                )
            except FileNotFoundError:
                if not Path(request.workdir).is_dir():
                    raise FatalProviderError(f"workdir: no such directory {request.workdir!r}") from None
                raise FatalProviderError(f"command[0]: no such program {request.argv[0]!r}") from None
            except PermissionError:
                raise FatalProviderError(f"command[0]: not executable {request.argv[0]!r}") from None
            except NotADirectoryError:
                raise FatalProviderError(f"workdir: not a directory {request.workdir!r}") from None
            finally:
                stderr.close()
            handle = LocalHandle(key=idempotency_key, pid=process.pid, process=process, tags=dict(request.tags))
            threading.Thread(target=self._pump, args=(handle, out_dir / "stdout.log"), daemon=True).start()
            self._launched[idempotency_key] = handle
            return handle

    @staticmethod
    def _pump(handle: LocalHandle, log_path: Path) -> None:
        """Copy stdout to the trial's log and hand each line to the controller."""
        assert handle.process is not None and handle.process.stdout is not None
        with open(log_path, "ab") as log:
            for raw in handle.process.stdout:
                log.write(raw)
                log.flush()
                handle.lines.put(raw.decode("utf-8", errors="replace").rstrip("\r\n"))
        handle.lines.put(_EOF)

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
        code = handle.process.poll() if handle.process else (None if _exists(handle.pid) else -1)
        if code is not None and handle.ended is None:
            handle.ended = time.monotonic()
        end = handle.ended if handle.ended is not None else time.monotonic()
        return Status(running=code is None, exit_code=code, billable_ms=int((end - handle.started) * 1000))

    def terminate(self, handle: LocalHandle) -> None:
        """SIGTERM to the whole process group, SIGKILL after the grace period."""
        if not self._signal(handle.pid, signal.SIGTERM):
            self.poll(handle)
            return
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline:
            if handle.process is not None and handle.process.poll() is not None:
                break
            if handle.process is None and not _group_alive(handle.pid):
                break
            time.sleep(0.05)
        self._signal(handle.pid, signal.SIGKILL)
        if handle.process is not None:
            handle.process.wait()
        self.poll(handle)

    @staticmethod
    def _signal(pgid: int, sig: int) -> bool:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def list_owned(self, tags: dict[str, str]) -> list[LocalHandle]:
        """One handle per process group (pid = the group id), as ``terminate`` signals the group.

        A trial's children are found through their own environment, so a group whose leader (the
        trial) already died with its controller is still found and stopped.
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


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
