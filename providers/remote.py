"""The base of every cloud provider: trials on instances, reported through the worker API.

A cloud adapter (AWS, GCP, Azure) only launches, describes and terminates instances; it subclasses
``RemoteProvider`` and implements four methods:

- ``start_instance(request, key, user_data) -> instance id``: start one instance running
  ``user_data`` (cloud-init), tagged with ``request.tags`` and ``key``; idempotent per ``key``
  (None while it waits for capacity: the adapter's ``poll`` fills ``handle.instance_id`` in later).
- ``find_instance(key, tags) -> instance id | None``: the instance launched with ``key`` (and the
  request's store and study tags: keys repeat across stores), if any (a retried launch after a
  crash adopts it instead of making a second one).
- ``describe_instances(ids) -> {id: InstanceFacts}``: one batched call for every live instance.
- ``terminate_instance(id)``: idempotent; ``list_instances(tags)`` for the reaper.

Everything about the trial comes through the store, written by ``costtune serve`` as the agent
reports: its output lines (read by ``output`` in order and copied to the trial's ``stdout.log``, so
the controller applies the one report rule to them as to a local process's), heartbeats, and its
exit. ``poll`` joins those with the instance's own facts: billable time runs from the instance's
launch to its end as the cloud reports them; a spot interruption (the cloud says so, or the agent
saw the notice) is a preemption. A stop (``terminate``) is a decision the agent reads in its next
heartbeat answer; an instance that has not ended ``grace`` seconds later is terminated from here.
An agent silent for ``server.lost_after`` (it never started, or died) has its instance terminated
and the attempt fails with that reason.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from costtune.providers.base import AttemptFacts, FatalProviderError, LaunchRequest, Status

from costtune.agent.userdata import DEFAULT_SHUTDOWN, Install, render_user_data
from costtune.bundle import pack
from costtune.spec.server import ServerSettings

if TYPE_CHECKING:
    from costtune.store import Store
    from costtune.store.remote import RemoteState

_DRAIN_S = 300.0  # after the agent's exit, wait this long for the cloud to report the instance's end


@dataclass(frozen=True)
class InstanceFacts:
    """What the cloud says about one instance (wall clock, UTC)."""

    state: str  # "pending" | "running" | "ended"
    launched_at: datetime | None = None
    ended_at: datetime | None = None  # set once state is "ended"
    preempted: bool = False  # ended by a spot interruption / eviction / preemption
    reason: str = ""  # the cloud's words for how it ended


@dataclass(eq=False)
class RemoteHandle:
    key: str
    attempt_id: int
    instance_id: str | None
    output_dir: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    seq: int = 0  # the next line to read
    launched: float = field(default_factory=time.time)  # wall time of our launch call (before the cloud's facts)
    stop_at: float | None = None  # monotonic time the stop was first asked
    terminated: bool = False
    agent_done_at: float | None = None  # monotonic time the agent's exit was first seen
    lost: str | None = None  # why the controller gave up on the agent
    note: str = ""  # where it runs (a cloud launch's placement and fail-over tries), for the attempt's note
    reads: bool = True  # False for a stray found by listing: its lines are not read, its end not waited on


def _ms(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds() * 1000))


class RemoteProvider:
    """See the module's notes. ``store`` is the controller's; ``settings`` its ``server`` section."""

    name = "remote"
    outlives_controller = True

    def __init__(self, store: Store, settings: ServerSettings, *, install: Install = Install(),  # noqa: B008
                 setup: tuple[str, ...] = (), checkpoint_uri: str | None = None, heartbeat_s: float = 10.0,
                 grace_s: float = 60.0, describe_every_s: float = 5.0,
                 metadata_url: str | None = "http://169.254.169.254", shutdown_command: str = DEFAULT_SHUTDOWN,
                 agent_home: str = "/var/lib/costtune", metadata_interval_s: float = 5.0) -> None:
        self.store = store
        self.settings = settings
        self.install, self.setup, self.checkpoint_uri = install, tuple(setup), checkpoint_uri
        self.heartbeat_s, self.grace_s, self.describe_every_s = heartbeat_s, grace_s, describe_every_s
        self.metadata_url, self.shutdown_command, self.agent_home = metadata_url, shutdown_command, agent_home
        self.metadata_interval_s = metadata_interval_s
        self._handles: dict[str, RemoteHandle] = {}
        self._bundles: dict[str, str] = {}  # workdir -> digest
        self._facts: dict[str, InstanceFacts] = {}
        self._described = 0.0
        self._lock = threading.Lock()

    end_wait_s = 10.0  # how long the cloud may take to report a terminated instance as ended

    @property
    def grace(self) -> float:
        """Seconds a stop may take until the cloud reports the instance ended (recovery waits this long, so
        it bills a stray from the cloud's own end rather than from its last sign of life)."""
        return self.grace_s + 2 * self.heartbeat_s + self.describe_every_s + self.end_wait_s

    # -- what an adapter implements ----------------------------------------------------------
    def start_instance(self, request: LaunchRequest, key: str, user_data: str) -> str | None:
        raise NotImplementedError

    def find_instance(self, key: str, tags: dict[str, str]) -> str | None:
        raise NotImplementedError

    def describe_instances(self, instance_ids: list[str]) -> dict[str, InstanceFacts]:
        raise NotImplementedError

    def terminate_instance(self, instance_id: str) -> None:
        raise NotImplementedError

    def list_instances(self, tags: dict[str, str]) -> list[tuple[str, str]]:
        """(key, instance id) of live instances carrying all of ``tags``."""
        raise NotImplementedError

    # -- Provider ----------------------------------------------------------------------------
    def launch(self, request: LaunchRequest, idempotency_key: str) -> RemoteHandle:
        """Register the attempt (token, launch description, bundle) and start its instance; a retried
        call (same key, even from a restarted controller) adopts the instance already made."""
        with self._lock:
            if idempotency_key in self._handles:
                return self._handles[idempotency_key]
            attempt_id = self.store.attempt_id_for_key(idempotency_key)
            if attempt_id is None:
                raise FatalProviderError(f"no attempt with key {idempotency_key!r} in the store")
            if request.launch is None:
                raise FatalProviderError("a remote attempt needs a command trial's launch description")
            state = self.store.remote_state(attempt_id)
            instance_id = state.instance_id if state is not None else None
            if instance_id is None and state is not None:
                instance_id = self.find_instance(idempotency_key, request.tags)  # launched before a crash
            if instance_id is None:
                token = secrets.token_urlsafe(32)
                self.store.register_remote(attempt_id, token_sha256=hashlib.sha256(token.encode()).hexdigest(),
                                           launch=self._description(request), bundle_digest=self._bundle(request))
                user_data = render_user_data(
                    server_url=self.settings.url, attempt_id=attempt_id, token=token, install=self.install,
                    home=self.agent_home, shutdown_command=self.shutdown_command, metadata_url=self.metadata_url,
                    grace_s=self.grace_s, metadata_interval_s=self.metadata_interval_s,
                    heading=f"study {request.launch.study}, trial {request.launch.trial_number}")
                instance_id = self.start_instance(request, idempotency_key, user_data) or None
            if instance_id:  # None: the adapter is still waiting for capacity (its poll fills it in)
                self.store.set_remote_instance(attempt_id, instance_id)
            handle = RemoteHandle(key=idempotency_key, attempt_id=attempt_id, instance_id=instance_id,
                                  output_dir=request.output_dir, tags=dict(request.tags))
            self._handles[idempotency_key] = handle
            self._described = 0.0  # describe the new one on the next poll
            return handle

    def _bundle(self, request: LaunchRequest) -> str:
        digest = self._bundles.get(request.workdir)
        if digest is None:
            made = pack(request.workdir, max_bytes=self.settings.bundle_max_bytes)
            self.store.put_bundle(made.digest, made.data)
            self._bundles[request.workdir] = digest = made.digest
        return digest

    def _description(self, request: LaunchRequest) -> dict[str, object]:
        assert request.launch is not None
        return {"trial": request.launch.to_json(), "setup": list(self.setup), "checkpoint_uri": self.checkpoint_uri,
                "heartbeat_s": self.heartbeat_s, "lost_after_s": self.settings.lost_after_s}

    def _instance(self, handle: RemoteHandle) -> InstanceFacts | None:
        now = time.monotonic()
        if now - self._described >= self.describe_every_s:
            ids = sorted({h.instance_id for h in self._handles.values() if h.instance_id})
            if handle.instance_id and handle.instance_id not in ids:
                ids.append(handle.instance_id)
            self._facts = self.describe_instances(ids) if ids else {}
            self._described = now
        return self._facts.get(handle.instance_id or "")

    def output(self, handle: RemoteHandle, timeout: float | None = None) -> Iterator[str]:
        """The trial's lines as the agent sent them, each once, copied to ``stdout.log``."""
        until = None if timeout is None else time.monotonic() + timeout
        while True:
            rows = self.store.remote_lines(handle.attempt_id, handle.seq)
            if rows:
                if handle.output_dir:
                    Path(handle.output_dir).mkdir(parents=True, exist_ok=True)
                    with open(Path(handle.output_dir) / "stdout.log", "a", encoding="utf-8") as log:
                        log.writelines(line + "\n" for _seq, line in rows)
                for seq, line in rows:
                    handle.seq = seq + 1
                    yield line
                continue
            if until is not None and time.monotonic() >= until:
                return
            if until is None and not self.poll(handle).running:
                return
            time.sleep(0.05 if until is None else max(0.0, min(0.05, until - time.monotonic())))

    def poll(self, handle: RemoteHandle) -> Status:
        state = self.store.remote_state(handle.attempt_id)
        facts = self._instance(handle)
        now = datetime.now(UTC)
        start = (facts.launched_at if facts and facts.launched_at else None) or datetime.fromtimestamp(
            handle.launched, UTC)
        unread = handle.reads and state is not None and handle.seq < state.next_seq
        agent_done = state is not None and state.ended_at is not None
        if agent_done and handle.agent_done_at is None:
            handle.agent_done_at = time.monotonic()
        ended = facts is not None and facts.state == "ended"
        if not ended and handle.lost is None and state is not None and not agent_done:
            handle.lost = self._silent(state, handle, now)
            if handle.lost:
                self._end_instance(handle)
        if agent_done and not ended:
            self._end_instance(handle)  # shutting down already; make sure
            if time.monotonic() - (handle.agent_done_at or 0.0) < _DRAIN_S:
                return Status(running=True, exit_code=state.exit_code, billable_ms=_ms(start, now), draining=True)
            ended = True  # the cloud never reported its end: bill to the agent's
        if not ended and not (handle.lost and facts is None):
            return Status(running=True, exit_code=None, billable_ms=_ms(start, now))
        end = (facts.ended_at if facts and facts.ended_at else None) or (state.ended_at if agent_done else None) or now
        preempted = bool(facts and facts.preempted) or (state is not None and state.how == "spot-interruption")
        if unread:
            return Status(running=True, exit_code=None, billable_ms=_ms(start, end), draining=True)
        error = None
        if not agent_done and not preempted:
            error = handle.lost or f"the instance ended ({facts.reason if facts else 'gone'}) before its trial reported"
        elif state is not None and state.how in ("setup-failed", "could-not-start", "controller-lost"):
            error = f"the agent ended the attempt: {state.how}"
        code = state.exit_code if state is not None else None
        self._handles.pop(handle.key, None)  # ended: no more describing it
        self.store.erase_remote_env(handle.attempt_id)  # the sweep's secrets leave the store with the attempt
        return Status(running=False, exit_code=code if code is not None else (None if preempted else -1),
                      billable_ms=_ms(start, end), preempted=preempted, error=error)

    def _silent(self, state: RemoteState, handle: RemoteHandle, now: datetime) -> str | None:
        last = state.heartbeat_at or datetime.fromtimestamp(handle.launched, UTC)
        if (now - last).total_seconds() <= self.settings.lost_after_s:
            return None
        what = "has not been heard from" if state.heartbeat_at else "never started"
        return f"the agent {what} for {self.settings.lost_after_s:g} s (server.lost_after)"

    def _end_instance(self, handle: RemoteHandle) -> None:
        if not handle.terminated and handle.instance_id:
            self.terminate_instance(handle.instance_id)
            handle.terminated = True
            self._described = 0.0

    def terminate(self, handle: RemoteHandle) -> None:
        """Ask the agent to stop (its next heartbeat answer); terminate the instance ``grace_s`` plus two
        heartbeats later if it is still there. Returns at once; idempotent."""
        if handle.stop_at is None:
            handle.stop_at = time.monotonic()
            self.store.decide_remote(handle.attempt_id, "stop", "the controller stopped the trial")
        elif time.monotonic() - handle.stop_at >= self.grace_s + 2 * self.heartbeat_s:
            self._end_instance(handle)

    def kill(self, handle: RemoteHandle) -> None:
        """Terminate the instance now (no grace for the trial)."""
        self.store.decide_remote(handle.attempt_id, "stop", "the controller killed the trial")
        self._end_instance(handle)

    def facts(self, key: str, *, output_dir: str | None = None) -> AttemptFacts | None:
        """The instance's launch and end as the cloud reports them (the agent's end when the cloud has none)."""
        attempt_id = self.store.attempt_id_for_key(key)
        state = None if attempt_id is None else self.store.remote_state(attempt_id)
        if state is None or state.instance_id is None:
            return None
        facts = self.describe_instances([state.instance_id]).get(state.instance_id)
        started = (facts.launched_at if facts else None) or state.agent_started_at
        if started is None:
            return None
        ended = (facts.ended_at if facts and facts.state == "ended" else None) or state.ended_at
        return AttemptFacts(started_at=started, ended_at=ended, exit_code=state.exit_code,
                            how=state.how or (facts.reason if facts else ""),
                            source=f"{self.name} instance {state.instance_id} and its agent")

    def list_owned(self, tags: dict[str, str]) -> list[RemoteHandle]:
        found = []
        for key, instance_id in self.list_instances(tags):
            attempt_id = self.store.attempt_id_for_key(key)
            found.append(RemoteHandle(key=key, attempt_id=attempt_id or 0, instance_id=instance_id, tags=dict(tags)))
        return found


__all__ = ["InstanceFacts", "RemoteHandle", "RemoteProvider"]
