"""Trials that leave the controller's machine, end to end without a cloud (issue 9, items 4-6).

The real controller, store and ledger drive a ``RemoteProvider`` whose "instances" are local
processes running the rendered cloud-init user data (the install step pointed at this checkout's
interpreter) against ``costtune serve`` (a real subprocess on 127.0.0.1) and a fake IMDSv2 endpoint.
Metrics reach the store only over HTTP.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from remotefakes import CHECKPOINTING_TRIAL_HEAD, FakeMetadata, ProcessCloud
from sqlmodel import Session, select

from costtune.agent.userdata import Install
from costtune.runner.controller import SweepController
from costtune.runner.session import open_sweep
from costtune.spec import parse_sweep
from costtune.spec.server import ServerSettings
from costtune.store import Store
from costtune.store.models import AttemptRow, ReportRow
from costtune.store.remote_models import RemoteAttemptRow

RATE_USD_PER_HOUR = 36  # 10,000 micro-dollars a second
TRIAL = CHECKPOINTING_TRIAL_HEAD + """for step in range(first, first + int(sys.argv[1])):
    costtune.report(step=step, loss=float(os.environ["COSTTUNE_PARAM_X"]) + 1 / (step + 1))
    time.sleep(float(sys.argv[2]))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A store, `costtune serve` on it, a fake metadata endpoint, and a workdir with the trial."""
    db = f"sqlite:///{tmp_path / 'store.db'}"
    Store(db).close()
    port = free_port()
    server_log = tmp_path / "serve.log"
    with open(server_log, "wb") as log:
        serve = subprocess.Popen([sys.executable, "-m", "costtune.cli", "serve", "--bind", f"127.0.0.1:{port}",
                                  "--db", db], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    _wait_listening(port, serve)
    work = tmp_path / "work"
    work.mkdir()
    (work / "train.py").write_text(TRIAL)
    (work / ".gitignore").write_text("data/\n")
    (work / "data").mkdir()
    (work / "data" / "big.bin").write_bytes(b"x" * 1000)
    metadata = FakeMetadata()
    yield {"db": db, "url": url, "serve": serve, "server_log": server_log, "work": work, "metadata": metadata,
           "tmp": tmp_path}
    metadata.close()
    if serve.poll() is None:
        serve.kill()  # nothing to shut down gracefully: the store is committed per request
        serve.wait(timeout=10)


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    until = time.monotonic() + 30
    while time.monotonic() < until:
        assert process.poll() is None, "costtune serve exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("costtune serve did not listen")


def cloud(world: dict[str, Any], store: Store, *, lost_after: float = 30.0) -> ProcessCloud:
    tmp = world["tmp"]
    return ProcessCloud(
        store, ServerSettings(public_url=world["url"], lost_after_s=lost_after), logs=tmp / "instances",
        install=Install(command=(sys.executable, "-m", "costtune.cli")), setup=("echo set up > setup-ran.txt",),
        checkpoint_uri=f"file://{tmp / 'checkpoints'}", heartbeat_s=0.2, grace_s=5.0, describe_every_s=0.1,
        metadata_url=world["metadata"].url, metadata_interval_s=0.1,
        shutdown_command=f"echo shutdown >> {tmp / 'shutdowns.log'}", agent_home=str(tmp / "agent-home"))


def sweep(world: dict[str, Any], *, trials: int, steps: int, nap: float) -> Any:
    return parse_sweep({
        "name": "remote", "objective": {"metric": "loss", "mode": "min"},
        "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}}, "sampler": {"type": "random", "seed": 3},
        "budget": {"trials": trials}, "command": ["python", "train.py", str(steps), str(nap)],
        "resources": {"provider": "local", "workers": 2, "usd_per_hour": RATE_USD_PER_HOUR},
        "workdir": str(world["work"]), "output_dir": str(world["tmp"] / "runs"),
    })


def token_in(user_data: str) -> str:
    lines = user_data.splitlines()
    return lines[next(i for i, line in enumerate(lines) if "<<'COSTTUNE_TOKEN_END'" in line) + 1]


def rows(store: Store, model: Any) -> list[Any]:
    with Session(store.engine) as s:
        return list(s.exec(select(model)).all())


def test_trials_run_by_agents_report_over_http_and_are_billed_from_instance_time(world: dict[str, Any]) -> None:
    store = Store(world["db"])
    spec = sweep(world, trials=2, steps=3, nap=0.05)
    study, _ = open_sweep(store, spec)
    provider = cloud(world, store)
    status = SweepController(spec, study, provider, trial_events=False).run()
    assert status.finished == 2 and status.failed == 0
    trials = study.history().trials
    assert [t.state.value for t in trials] == ["complete", "complete"]
    reports = rows(store, ReportRow)
    assert sorted(r.step for r in reports) == [0, 0, 1, 1, 2, 2]  # every line arrived once, over HTTP
    for t in trials:
        assert t.value == pytest.approx(t.params["x"] + 1 / 3)
    for attempt in rows(store, AttemptRow):
        assert attempt.exit_reason == "completed"
        assert attempt.billable_ms > 0
        assert attempt.rate_micros_per_hour == RATE_USD_PER_HOUR * 1_000_000
        assert attempt.cost_micros == spec.resources.billing.charge(attempt.billable_ms, attempt.rate_micros_per_hour)
    for t in trials:
        assert "costtune:report" in (Path(t.output_dir) / "stdout.log").read_text()  # the controller keeps the log
    assert provider.starts == 2
    assert all(process.poll() is not None for process, _ in provider.instances.values())  # none left running
    homes = list((world["tmp"] / "agent-home").glob("attempt-*/code"))
    assert all((h / "setup-ran.txt").exists() and (h / "train.py").exists() for h in homes)
    assert not any((h / "data").exists() for h in homes)  # .gitignore'd: not in the bundle
    remote = rows(store, RemoteAttemptRow)
    assert [r.how for r in remote] == ["exited", "exited"]
    assert all(json.loads(r.launch_json)["trial"]["env"] == {} for r in remote)  # secrets erased at the end
    tokens = [token_in(user_data) for user_data in provider.user_data.values()]
    assert len(set(tokens)) == 2
    logs = world["server_log"].read_text() + "".join(p.read_text() for p in (world["tmp"] / "instances").iterdir())
    assert "POST /v1/attempts/" in world["server_log"].read_text()  # the access log is on
    assert not any(token in logs for token in tokens)  # and never shows a token
    store.close()


def test_a_spot_notice_checkpoints_the_trial_which_resumes_on_a_new_instance(world: dict[str, Any]) -> None:
    store = Store(world["db"])
    spec = sweep(world, trials=1, steps=4, nap=0.3)
    study, _ = open_sweep(store, spec)
    provider = cloud(world, store)
    metadata = world["metadata"]
    done = threading.Event()

    def interrupt_first_attempt() -> None:  # the notice, once the trial has reported; cleared once it is off
        while not done.is_set():
            remote = rows(store, RemoteAttemptRow)
            if remote and remote[0].next_seq >= 2 and metadata.notice is None and remote[0].ended_at is None:
                metadata.notice = {"action": "terminate", "time": "2026-11-30T06:00:00Z"}
                provider.preempt.add(remote[0].instance_id)
            if remote and remote[0].ended_at is not None:
                metadata.notice = None
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=interrupt_first_attempt, daemon=True)
    watcher.start()
    try:
        SweepController(spec, study, provider, trial_events=False).run()
    finally:
        done.set()
    attempts = sorted(rows(store, AttemptRow), key=lambda a: a.number)
    assert [a.exit_reason for a in attempts] == ["preempted", "completed"]
    assert attempts[0].cost_micros > 0  # the interrupted instance is charged
    first_log = Path(study.history().trials[0].output_dir) / "stdout.log"
    text = first_log.read_text()
    assert "spot interruption notice" in text and "checkpointed at step" in text  # SIGTERM reached the trial
    saved = json.loads((world["tmp"] / "checkpoints" / "remote" / "trial-0" / "state.json").read_text())
    assert "uploaded 1 checkpoint files" in text
    resumed = [r.step for r in rows(store, ReportRow) if r.attempt_id == attempts[1].id]
    assert resumed and resumed[0] == saved["step"] + 1 > 0  # the second instance restored the checkpoint
    assert study.history().trials[0].state.value == "complete"
    store.close()


def test_the_dead_mans_switch_ends_the_trial_and_shuts_down_when_the_server_is_gone(world: dict[str, Any]) -> None:
    store = Store(world["db"])
    spec = sweep(world, trials=1, steps=1000, nap=0.2)
    study, _ = open_sweep(store, spec)
    provider = cloud(world, store, lost_after=2.0)
    provider.frozen = True  # this controller can neither see nor stop its instance: only the agent's switch can
    claimed = threading.Event()

    def kill_server_once_reporting() -> None:
        while not claimed.is_set():
            remote = rows(store, RemoteAttemptRow)
            if remote and remote[0].next_seq >= 2:
                world["serve"].kill()
                world["serve"].wait()
                instance = next(iter(provider.instances.values()))[0]
                try:
                    instance.wait(timeout=60)  # ends on its own: the agent's switch
                finally:
                    provider.frozen = False
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_server_once_reporting, daemon=True)
    killer.start()
    try:
        status = SweepController(spec, study, provider, trial_events=False).run()
    finally:
        claimed.set()
    assert (world["tmp"] / "shutdowns.log").exists(), "the agent never ran its shutdown command"
    log = next((world["tmp"] / "instances").iterdir()).read_text()
    assert "controller was unreachable" in log, log
    record = json.loads(next((world["tmp"] / "agent-home").glob("attempt-*/trial/attempt-*.json")).read_text())
    assert record["how"] == "stopped" and record["ended_at"] is not None, record  # the trial ended, then the instance
    assert provider.instances and all(p.poll() is not None for p, _ in provider.instances.values())
    assert status.failed == 1, (status, study.history().trials)  # booked once the controller is back
    store.close()
