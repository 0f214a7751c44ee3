"""``RemoteProvider``, the base of cloud adapters, against a cloud that only records (no processes).

What an adapter inherits: idempotent launches (a restarted controller adopts the instance it
made), the token kept as a hash, status from the store joined with the cloud's facts, stops as
decisions with escalation, and a silent agent's instance terminated.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from costtune.providers.base import LaunchRequest
from costtune.providers.remote import InstanceFacts, RemoteProvider
from sqlmodel import Session, select

from costtune.history import Mode
from costtune.spec.server import ServerSettings
from costtune.store import Store
from costtune.store.models import TrialRow
from costtune.trialrun import TrialLaunch


class RecordingCloud(RemoteProvider):
    name = "recording"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.started: dict[str, str] = {}  # key -> user data
        self.facts_by_id: dict[str, InstanceFacts] = {}
        self.terminated: list[str] = []
        self.describe_calls: list[list[str]] = []

    def start_instance(self, request: LaunchRequest, key: str, user_data: str) -> str:
        self.started[key] = user_data
        self.facts_by_id[f"i-{key}"] = InstanceFacts(state="running", launched_at=datetime.now(UTC) - timedelta(
            seconds=30))
        return f"i-{key}"

    def find_instance(self, key: str, tags: dict[str, str] | None = None) -> str | None:
        return f"i-{key}" if key in self.started else None

    def describe_instances(self, instance_ids: list[str]) -> dict[str, InstanceFacts]:
        self.describe_calls.append(list(instance_ids))
        return {i: self.facts_by_id[i] for i in instance_ids if i in self.facts_by_id}

    def terminate_instance(self, instance_id: str) -> None:
        self.terminated.append(instance_id)

    def list_instances(self, tags: dict[str, str]) -> list[tuple[str, str]]:
        return [(k, f"i-{k}") for k in self.started]


@pytest.fixture
def attempts(tmp_path: Path) -> dict[str, Any]:
    """Two attempts in a SQLite store (tests/test_worker_api.py runs the store's side on every backend)."""
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    study = store.create_study("rp", metric="loss", mode=Mode.MIN, space={}, sampler={"type": "manual"})
    keys = {}
    for n in (1, 2):
        number = store.enqueue(study.id, {"x": n})
        with Session(store.engine) as s:
            trial = s.exec(select(TrialRow.id).where(TrialRow.study_id == study.id, TrialRow.number == number)).one()
        keys[n] = f"rp-{n}"
        store.start_attempt(trial, 1, idempotency_key=keys[n], provider="recording", rate_micros_per_hour=0)
    work = tmp_path / "work"
    work.mkdir()
    (work / "train.py").write_text("print('hi')\n")
    return {"store": store, "keys": keys, "work": work, "out": tmp_path / "out"}


def request(world: dict[str, Any], n: int) -> LaunchRequest:
    launch = TrialLaunch(command=("python", "train.py", "{x}"), params={"x": n}, study="rp", trial_number=n,
                         attempt_number=1, env={"API_KEY": "s3cret"})
    return LaunchRequest(argv=("python",), workdir=str(world["work"]), output_dir=str(world["out"] / str(n)),
                         tags={"study": "rp"}, launch=launch)


def cloud(store: Store, **kwargs: Any) -> RecordingCloud:
    return RecordingCloud(store, ServerSettings(public_url="https://tune.example.org", lost_after_s=60),
                          describe_every_s=0, grace_s=0, heartbeat_s=0, **kwargs)


def test_a_retried_launch_adopts_the_instance_even_from_a_restarted_controller(attempts: dict[str, Any]) -> None:
    store, key = attempts["store"], attempts["keys"][1]
    first = cloud(store)
    handle = first.launch(request(attempts, 1), key)
    assert first.launch(request(attempts, 1), key) is handle
    restarted = cloud(store)  # nothing in memory: the store says which instance it is
    assert restarted.launch(request(attempts, 1), key).instance_id == handle.instance_id
    assert list(first.started) == [key] and not restarted.started
    state = store.remote_state(handle.attempt_id)
    token = first.started[key].splitlines()[first.started[key].splitlines().index(
        f"cat > /var/lib/costtune/token-{handle.attempt_id} <<'COSTTUNE_TOKEN_END'") + 1]
    assert state.token_sha256 == hashlib.sha256(token.encode()).hexdigest() and token not in str(state)
    assert state.launch["trial"]["env"] == {"API_KEY": "s3cret"} and state.bundle_digest


def test_a_launch_that_crashed_before_recording_its_instance_finds_it_by_key(attempts: dict[str, Any]) -> None:
    store, key = attempts["store"], attempts["keys"][1]

    class DiesAfterStarting(RecordingCloud):
        def start_instance(self, request: LaunchRequest, key: str, user_data: str) -> str:
            super().start_instance(request, key, user_data)
            raise KeyboardInterrupt  # the controller is killed between the cloud's answer and the store

    first = DiesAfterStarting(store, ServerSettings())
    with pytest.raises(KeyboardInterrupt):
        first.launch(request(attempts, 1), key)
    attempt_id = store.attempt_id_for_key(key)
    token_hash = store.remote_state(attempt_id).token_sha256
    again = cloud(store)
    again.started, again.facts_by_id = first.started, first.facts_by_id  # the same cloud account
    assert again.launch(request(attempts, 1), key).instance_id == f"i-{key}"
    assert len(again.started) == 1  # no second instance
    assert store.remote_state(attempt_id).token_sha256 == token_hash  # the instance's token still opens the API


def test_poll_bills_instance_time_reads_lines_once_and_joins_the_agents_exit(attempts: dict[str, Any]) -> None:
    store = attempts["store"]
    provider = cloud(store)
    one = provider.launch(request(attempts, 1), attempts["keys"][1])
    two = provider.launch(request(attempts, 2), attempts["keys"][2])
    status = provider.poll(one)
    assert status.running and 29_000 <= status.billable_ms < 60_000  # from the cloud's launch time
    assert provider.describe_calls[-1] == sorted([one.instance_id, two.instance_id])  # one call for all
    store.agent_lines(one.attempt_id, 0, ["costtune:report {\"loss\": 1}", "plain"])
    assert list(provider.output(one, timeout=0)) == ["costtune:report {\"loss\": 1}", "plain"]
    assert list(provider.output(one, timeout=0)) == []
    assert (Path(one.output_dir) / "stdout.log").read_text().splitlines()[1] == "plain"
    ended = datetime.now(UTC)
    store.agent_exit(one.attempt_id, exit_code=0, ended_at=ended, how="exited")
    status = provider.poll(one)
    assert status.running and status.draining  # the instance is still shutting down
    assert provider.terminated == [one.instance_id]
    launched = provider.facts_by_id[one.instance_id].launched_at
    provider.facts_by_id[one.instance_id] = InstanceFacts(state="ended", launched_at=launched,
                                                          ended_at=launched + timedelta(seconds=95))
    status = provider.poll(one)
    assert (status.running, status.exit_code, status.billable_ms, status.preempted) == (False, 0, 95_000, False)
    assert store.remote_state(one.attempt_id).launch["trial"]["env"] == {}


def test_a_spot_interruption_is_a_preemption_and_a_stop_escalates_to_termination(attempts: dict[str, Any]) -> None:
    store = attempts["store"]
    provider = cloud(store)
    one = provider.launch(request(attempts, 1), attempts["keys"][1])
    launched = provider.facts_by_id[one.instance_id].launched_at
    provider.facts_by_id[one.instance_id] = InstanceFacts(
        state="ended", launched_at=launched, ended_at=launched + timedelta(seconds=10), preempted=True,
        reason="Server.SpotInstanceTermination")
    status = provider.poll(one)
    assert (status.running, status.preempted, status.error, status.billable_ms) == (False, True, None, 10_000)
    two = provider.launch(request(attempts, 2), attempts["keys"][2])
    provider.terminate(two)
    assert store.remote_state(two.attempt_id).decision == "stop" and not provider.terminated
    provider.terminate(two)  # grace 0: the next call terminates the instance
    assert provider.terminated == [two.instance_id]


def test_an_agent_never_heard_from_gets_its_instance_terminated_and_the_attempt_failed(
        attempts: dict[str, Any]) -> None:
    store = attempts["store"]
    provider = RecordingCloud(store, ServerSettings(lost_after_s=0.01), describe_every_s=0, grace_s=0)
    one = provider.launch(request(attempts, 1), attempts["keys"][1])
    one.launched -= 1
    assert provider.poll(one).running  # the cloud still shows it; it is being terminated
    assert provider.terminated == [one.instance_id]
    provider.facts_by_id[one.instance_id] = InstanceFacts(state="ended", launched_at=datetime.now(UTC),
                                                          ended_at=datetime.now(UTC))
    status = provider.poll(one)
    assert not status.running and "never started" in (status.error or "")
