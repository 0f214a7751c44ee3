"""The supervisor of one local attempt: runs the trial command, owns its whole process tree, and
keeps a durable record of what the attempt held (the facts recovery bills a crashed sweep from).

Usage (the local provider starts it; standard library only, so it starts in a few milliseconds)::

    python -I .../costtune/agent/supervise.py --facts FILE --grace SECONDS -- COMMAND [ARG ...]

- The command runs in the supervisor's process group with stdin from /dev/null; its stdout and
  stderr are the supervisor's own (the controller's pipe and the trial's ``stderr.log``).
- The supervisor is a child subreaper (Linux ``PR_SET_CHILD_SUBREAPER``): a descendant whose parent
  exits is re-parented to it, so double-forked or ``setsid`` children stay in its tree.
- It stops the whole tree (SIGTERM to every descendant, SIGKILL to what is left after the grace)
  when asked (SIGTERM, SIGINT or SIGHUP), when its controller dies (end of file on stdin, a pipe
  whose other end only the controller holds; or, without a pipe, its parent changing), and when
  the command exits but left descendants running. SIGUSR1 kills the tree at once.
- FILE is a JSON object written atomically (temporary file, fsync, rename): at the start
  ``{"started_at": epoch s, "ended_at": null, ...}``, at the end ``ended_at`` (when the last process
  of the tree was gone), ``exit_code`` (negative: killed by that signal) and ``how``: ``exited``
  (on its own), ``stopped`` (asked), ``controller-died``, ``killed`` (SIGUSR1) or ``could-not-start``.
- It exits with the command's exit code, or dies of the command's signal, once the tree is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import stat
import sys
import time

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
KILL_NOW = signal.SIGUSR1
_PR_SET_CHILD_SUBREAPER = 36
_KILL_RETRY_S = 0.05  # after SIGKILL, look again this often until the tree is gone
_RECHECK_S = 0.5  # while stopping, look at the tree at least this often


def write_facts(path: str, facts: dict[str, object]) -> None:
    """Replace ``path`` atomically with ``facts`` as JSON, flushed to disk."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(facts, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    try:
        folder = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(folder)
    finally:
        os.close(folder)


def descendants(root: int) -> list[int]:
    """Live (non-zombie) processes below ``root``, from /proc; [] where there is no /proc."""
    children: dict[int, list[int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return []
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) < 2 or fields[0] in (b"Z", b"X"):
            continue
        children.setdefault(int(fields[1]), []).append(int(name))
    found: list[int] = []
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def _become_subreaper() -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: descendants that lose their parent are not ours to see


class Supervisor:
    def __init__(self, facts_path: str, grace_s: float, argv: list[str]) -> None:
        self.facts_path = facts_path
        self.grace_s = grace_s
        self.argv = argv
        self.facts: dict[str, object] = {"started_at": None, "ended_at": None, "exit_code": None, "how": None,
                                         "pid": None, "supervisor_pid": os.getpid()}
        self.child = 0
        self.child_status: int | None = None
        self.how: str | None = None  # why the tree is being stopped; None: it is not
        self.kill_at: float | None = None  # monotonic moment of the SIGKILL
        self.signals: list[int] = []
        self.parent = os.getppid()

    def _note(self, signum: int, _frame: object) -> None:
        self.signals.append(signum)

    def run(self) -> int:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        for sig in (*STOP_SIGNALS, KILL_NOW, signal.SIGCHLD):
            signal.signal(sig, self._note)
        _become_subreaper()
        try:
            watch_stdin = stat.S_ISFIFO(os.fstat(0).st_mode)
        except OSError:
            watch_stdin = False
        self.facts["started_at"] = time.time()
        try:
            self.child = os.posix_spawnp(
                self.argv[0], self.argv, dict(os.environ),
                file_actions=[(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)],
                setsigmask=(), setsigdef=(*STOP_SIGNALS, KILL_NOW, signal.SIGCHLD, signal.SIGPIPE, signal.SIGXFSZ),
            )
        except OSError as exc:
            self.facts.update(ended_at=time.time(), exit_code=127, how="could-not-start")
            self._record()
            print(f"costtune: cannot start {self.argv[0]!r}: {exc.strerror}", file=sys.stderr, flush=True)
            return 127
        self.facts["pid"] = self.child
        self._record()
        while True:
            readable = [wake_r] + ([0] if watch_stdin else [])
            ready, _, _ = select.select(readable, [], [], self._timeout(watch_stdin))
            if 0 in ready:
                try:
                    data = os.read(0, 4096)
                except OSError:
                    data = b""
                if not data:
                    watch_stdin = False
                    self._stop("controller-died")
            if wake_r in ready:
                while True:
                    try:
                        if not os.read(wake_r, 512):
                            break
                    except BlockingIOError:
                        break
            if not watch_stdin and os.getppid() != self.parent:
                self.parent = os.getppid()
                self._stop("controller-died")
            while self.signals:
                sig = self.signals.pop(0)
                if sig == KILL_NOW:
                    self._stop("killed", now=True)
                elif sig in STOP_SIGNALS:
                    self._stop("stopped")
            self._reap()
            if self.kill_at is not None and time.monotonic() >= self.kill_at:
                self._signal_tree(signal.SIGKILL)
            if self.child_status is not None:
                if not self._tree():
                    break
                self._stop("exited")  # the command is done; what it left behind goes with it
        code = os.waitstatus_to_exitcode(self.child_status)
        self.facts.update(ended_at=time.time(), exit_code=code, how=self.how or "exited")
        self._record()
        return code

    def _record(self) -> None:
        """Write the facts; a file that cannot be written never stops the supervision itself."""
        try:
            write_facts(self.facts_path, self.facts)
        except OSError as exc:
            print(f"costtune: cannot record the attempt in {self.facts_path}: {exc.strerror}", file=sys.stderr,
                  flush=True)

    def _timeout(self, watch_stdin: bool) -> float | None:
        waits = [] if watch_stdin else [1.0]  # without a pipe, look at the parent every second
        if self.kill_at is not None:
            left = self.kill_at - time.monotonic()
            waits.append(_KILL_RETRY_S if left <= 0 else min(left, _RECHECK_S))
        elif self.how is not None or self.child_status is not None:
            waits.append(_RECHECK_S)
        return min(waits) if waits else None

    def _stop(self, how: str, *, now: bool = False) -> None:
        """Stop the tree (the first reason given is the one recorded): SIGTERM, SIGKILL after the grace."""
        if self.how is None:
            self.how = how
            if not now:
                self._signal_tree(signal.SIGTERM)
                self.kill_at = time.monotonic() + self.grace_s
        if now:
            self.kill_at = time.monotonic()
            self._signal_tree(signal.SIGKILL)

    def _tree(self) -> list[int]:
        found = descendants(os.getpid())
        if not found and self.child_status is None and self.child:
            return [self.child]  # no /proc: the command itself is all we know of
        return found

    def _signal_tree(self, sig: int) -> None:
        for pid in self._tree():
            with contextlib.suppress(OSError):
                os.kill(pid, sig)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.child:
                self.child_status = status


def _parse(args: list[str]) -> tuple[str, float, list[str]]:
    facts, grace = "", 5.0
    while args and args[0] != "--":
        flag, value, args = args[0], args[1] if len(args) > 1 else "", args[2:]
        if flag == "--facts":
            facts = value
        elif flag == "--grace":
            grace = float(value)
        else:
            raise SystemExit(f"supervise: unknown option {flag!r}")
    command = args[1:]
    if not facts or not command:
        raise SystemExit("usage: supervise.py --facts FILE --grace SECONDS -- COMMAND [ARG ...]")
    return facts, grace, command


def main(args: list[str] | None = None) -> None:
    facts, grace, command = _parse(sys.argv[1:] if args is None else args)
    code = Supervisor(facts, grace, command).run()
    sys.stdout.flush()
    sys.stderr.flush()
    if code < 0:  # die of the command's signal, so the controller sees what the command saw
        with contextlib.suppress(OSError, ValueError):  # SIGKILL and SIGSTOP cannot be caught anyway
            signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        code = 128 - code
    os._exit(code)


if __name__ == "__main__":
    main()
