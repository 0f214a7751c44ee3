"""AWS trials end to end without a cloud (issue 9's acceptance).

moto (one server for the module) launches the instances; each one is played by a local process running
the user data EC2 holds (``awsplay.InstancePlayer``) with costtune already installed (``agent_command``:
this interpreter) against the worker API that `costtune run` serves on 127.0.0.1, and a fake metadata
endpoint of its own. Metrics reach the store only over HTTP; checkpoints go to moto's S3; billing comes
from moto's launch and termination times.
"""

from __future__ import annotations

import dataclasses
import io
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from awsplay import InstancePlayer
from awstools import AL2023, fake_credentials, session
from remotefakes import CHECKPOINTING_TRIAL_HEAD
from rich.console import Console
from sqlmodel import Session, select

pytest.importorskip("moto")
pytest.importorskip("flask")
pytest.importorskip("uvicorn")

from costtune.prices.billing import billing_rule
from costtune.store import Store
from costtune.store.models import AttemptRow, ReportRow
from costtune.store.remote_models import RemoteAttemptRow

ZONE_SPOT = 41_500  # micro-dollars an hour: the live spot price of m5.large in us-east-1a (the test's refresh)
BUCKET = "ckpt-bucket"
TRIAL = CHECKPOINTING_TRIAL_HEAD + """for step in range(first, int(sys.argv[1])):
    costtune.report(step=step, loss=float(os.environ["COSTTUNE_PARAM_X"]) + 1 / (step + 1))
    time.sleep(float(sys.argv[2]))
"""


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    with fake_credentials():
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        os.environ["AWS_ENDPOINT_URL"] = url = f"http://{host}:{port}"
        try:
            session().client("s3").create_bucket(Bucket=BUCKET)
            yield url
        finally:
            os.environ.pop("AWS_ENDPOINT_URL", None)
            server.stop()


@pytest.fixture(scope="module")
def ec2(moto_url: str) -> Any:
    return session().client("ec2")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def world(tmp_path: Path, moto_url: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from costtune.prices.catalog import PriceTable
    from costtune.prices.live import save_live

    monkeypatch.setenv("COSTTUNE_HOME", str(tmp_path / "home"))
    base = PriceTable.bundled()
    spot = base.rate("aws", "us-east-1", "m5.large", "spot")
    rows = [dataclasses.replace(base.rate("aws", "us-east-1", "m5.large", "on-demand"), source="test price list",
                                as_of=date.today()),
            dataclasses.replace(spot, usd_per_hour_micros=ZONE_SPOT, source="test spot history", as_of=date.today()),
            dataclasses.replace(spot, usd_per_hour_micros=ZONE_SPOT, source="test spot history", as_of=date.today(),
                                zone="us-east-1a")]
    save_live(rows, provider="aws", regions=["us-east-1"], fetched_at=datetime.now(UTC))
    work = tmp_path / "work"
    work.mkdir()
    (work / "train.py").write_text(TRIAL)
    return {"tmp": tmp_path, "work": work, "db": f"sqlite:///{tmp_path / 'store.db'}", "moto": moto_url}


def sweep_raw(world: dict[str, Any], *, name: str, trials: int, workers: int, steps: int, nap: float) -> dict:
    port = free_port()
    return {
        "name": name, "objective": {"metric": "loss", "mode": "min"},
        "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}}, "sampler": {"type": "random", "seed": 3},
        "budget": {"trials": trials, "usd": 5}, "command": ["python", "train.py", str(steps), str(nap)],
        "resources": {"provider": "aws", "region": "us-east-1", "zones": ["us-east-1a"], "instance_type": "m5.large",
                      "market": "spot", "image": AL2023, "tags": {"cost-centre": "vision"}, "workers": workers,
                      "checkpoint_uri": f"s3://{BUCKET}/ckpt", "agent_command": [sys.executable, "-m", "costtune.cli"]},
        "server": {"bind": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}", "heartbeat": 0.5,
                   "stop_grace": 5, "lost_after": 60},
        "workdir": str(world["work"]), "output_dir": str(world["tmp"] / "runs"),
    }


def run_in_process(world: dict[str, Any], raw: dict) -> tuple[Any, Any, Store]:
    from costtune.runner.remote import sweep_provider
    from costtune.runner.session import open_sweep, run_with_progress
    from costtune.spec import parse_sweep

    spec = parse_sweep(raw)
    store = Store(world["db"])
    study, _ = open_sweep(store, spec)
    provider = sweep_provider(spec, store, metadata_interval_s=0.1)
    status = run_with_progress(spec, study, Console(file=io.StringIO()), quiet=True, provider=provider)
    return study, status, store


def rows(store: Store, model: Any) -> list[Any]:
    with Session(store.engine) as s:
        return list(s.exec(select(model)).all())


def instances(ec2: Any, study: str) -> list[dict[str, Any]]:
    page = ec2.describe_instances(Filters=[{"Name": "tag:costtune:study", "Values": [study]}])
    return [i for r in page["Reservations"] for i in r["Instances"]]


def ec2_billed_ms(instance: dict[str, Any]) -> int:
    from costtune.providers.aws.tags import launch_time, transition_time

    end = transition_time(instance)
    assert end is not None, instance["StateTransitionReason"]
    return int((end - launch_time(instance)).total_seconds() * 1000)


def check_billing(store: Store, ec2: Any, study: str) -> None:
    """Every attempt's charge is its instance's billed seconds (EC2's times, 60 s minimum) x its rate."""
    by_key = {next(t["Value"] for t in i["Tags"] if t["Key"] == "costtune:key"): i for i in instances(ec2, study)}
    aws = billing_rule("aws")
    for attempt in rows(store, AttemptRow):
        instance = by_key[attempt.idempotency_key]
        assert instance["State"]["Name"] == "terminated"
        assert attempt.billable_ms == ec2_billed_ms(instance), (attempt, instance["StateTransitionReason"])
        assert attempt.rate_micros_per_hour == ZONE_SPOT and attempt.market == "spot"
        assert attempt.cost_micros == aws.charge(attempt.billable_ms, ZONE_SPOT) >= aws.charge(60_000, ZONE_SPOT)


def test_a_spot_sweep_runs_on_instances_reports_over_http_and_is_billed_from_ec2(world: dict[str, Any],
                                                                                 ec2: Any) -> None:
    raw = sweep_raw(world, name="e2e", trials=6, workers=3, steps=3, nap=0.05)
    with InstancePlayer(ec2, world["tmp"]) as player:
        study, status, store = run_in_process(world, raw)
    assert not player.errors
    assert status.finished == 6 and status.failed == 0, study.history().trials
    found = instances(ec2, "e2e")
    assert len(found) == 6  # one instance per attempt
    for instance in found:
        tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
        assert {"costtune:study", "costtune:trial", "costtune:attempt", "costtune:owner", "costtune:version",
                "costtune:expires-at", "costtune:key", "costtune:store"} <= set(tags)
        assert tags["cost-centre"] == "vision" and tags["costtune:owner"] == study.owner
        assert instance["InstanceType"] == "m5.large" and instance.get("InstanceLifecycle") == "spot"
        assert instance["Placement"]["AvailabilityZone"] == "us-east-1a"
    trials = study.history().trials
    assert sorted(r.step for r in rows(store, ReportRow)) == sorted([0, 1, 2] * 6)  # every line came over HTTP
    for t in trials:
        assert t.state.value == "complete" and t.value == pytest.approx(t.params["x"] + 1 / 3)
    check_billing(store, ec2, "e2e")
    assert study.history().spent_micros == sum(a.cost_micros for a in rows(store, AttemptRow))
    assert sorted(player.shutdowns.read_text().split()) == sorted(i["InstanceId"] for i in found)  # each shut down
    from click.testing import CliRunner

    from costtune.cli.app import main

    board = CliRunner().invoke(main, ["leaderboard", "e2e", "--db", world["db"]])
    assert board.exit_code == 0 and board.output.count("complete") == 6 and "spot" in board.output
    store.close()


def test_spot_interruptions_checkpoint_requeue_and_resume_on_new_instances(world: dict[str, Any], ec2: Any) -> None:
    """The first instance gets a notice (the trial checkpoints to S3), the second is reclaimed by EC2 at
    once (Server.SpotInstanceTermination, no notice); the third resumes from the checkpoint."""
    raw = sweep_raw(world, name="spot", trials=1, workers=1, steps=16, nap=0.2)
    done = threading.Event()
    with InstancePlayer(ec2, world["tmp"]) as player:
        store = Store(world["db"])

        def interrupt() -> None:
            handled: set[int] = set()
            seen: dict[int, float] = {}
            while not done.is_set() and len(handled) < 2:
                for row in rows(store, RemoteAttemptRow):  # the first once it reports; the second once it starts
                    if row.instance_id:
                        seen.setdefault(row.attempt_id, time.monotonic())
                    # EC2's launch and termination times are whole seconds: an instance interrupted within its first
                    # second shows no time held at all (as one that never ran); these have run for over a second
                    lived = time.monotonic() - seen.get(row.attempt_id, time.monotonic()) >= 1.2
                    if row.attempt_id not in handled and row.next_seq >= (2 if handled else 3) and row.instance_id \
                            and lived:
                        (player.notice if not handled else player.pull_plug)(row.instance_id)
                        handled.add(row.attempt_id)
                time.sleep(0.05)

        watcher = threading.Thread(target=interrupt, daemon=True)
        watcher.start()
        try:
            study, status, store = run_in_process(world, raw)
        finally:
            done.set()
    assert not player.errors
    attempts = sorted(rows(store, AttemptRow), key=lambda a: a.number)
    assert [a.exit_reason for a in attempts] == ["preempted", "preempted", "completed"], attempts
    assert status.preemptions == 2 and all(a.cost_micros > 0 for a in attempts)  # interrupted instances are charged
    remote = {r.attempt_id: r for r in rows(store, RemoteAttemptRow)}
    assert remote[attempts[0].id].how == "spot-interruption"  # the agent saw the notice
    reclaimed = next(i for i in instances(ec2, "spot") if i["InstanceId"] == remote[attempts[1].id].instance_id)
    assert reclaimed["StateReason"]["Code"] == "Server.SpotInstanceTermination"  # EC2's word alone
    check_billing(store, ec2, "spot")
    saved = session().client("s3").get_object(Bucket=BUCKET, Key="ckpt/spot/trial-0/state.json")["Body"].read()
    step = yaml.safe_load(saved)["step"]
    first_log = (Path(study.history().trials[0].output_dir) / "stdout.log").read_text()
    assert "checkpointed at step" in first_log  # SIGTERM reached the trial on the notice
    resumed = [r.step for r in rows(store, ReportRow) if r.attempt_id == attempts[2].id]
    assert resumed[0] == step + 1 > 0  # the last instance restored the checkpoint
    assert study.history().trials[0].state.value == "complete"
    store.close()


def test_a_controller_killed_mid_sweep_leaves_nothing_running_unbilled_or_launched_twice(world: dict[str, Any],
                                                                                      ec2: Any) -> None:
    """`kill -9` of `costtune run` (and its worker API) while two instances run; the next `costtune run`
    stops them (EC2 reports their end), bills them from EC2's times, re-queues their trials and finishes."""
    raw = sweep_raw(world, name="crash", trials=2, workers=2, steps=50, nap=0.1)  # both run when killed
    sweep = world["tmp"] / "crash.yaml"
    sweep.write_text(yaml.safe_dump(raw))
    argv = [sys.executable, "-m", "costtune.cli", "run", str(sweep), "--db", world["db"], "--quiet"]
    with InstancePlayer(ec2, world["tmp"]) as player:
        first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        store = Store(world["db"])
        until = time.monotonic() + 90
        while sum(r.next_seq >= 3 for r in rows(store, RemoteAttemptRow)) < 2:
            assert first.poll() is None and time.monotonic() < until, "the first run never got both trials going"
            time.sleep(0.05)
        first.kill()  # kill -9: no goodbye, the worker API goes with it
        first.wait()
        assert sum(i["State"]["Name"] == "running" for i in instances(ec2, "crash")) == 2  # left running
        second = subprocess.run(argv[:-1], capture_output=True, text=True, timeout=180)  # events shown
    assert second.returncode == 0, second.stderr + second.stdout
    assert not player.errors
    assert second.stderr.count("terminating stray instance") == 2, second.stderr
    attempts = sorted(rows(store, AttemptRow), key=lambda a: (a.trial_id, a.number))
    assert [a.exit_reason for a in attempts] == ["interrupted", "completed"] * 2, attempts
    keys = [next(t["Value"] for t in i["Tags"] if t["Key"] == "costtune:key") for i in instances(ec2, "crash")]
    assert sorted(keys) == sorted(a.idempotency_key for a in attempts)  # one instance per attempt, no more
    check_billing(store, ec2, "crash")  # the interrupted ones too: billed from EC2's launch and end
    study_id = attempts[0].trial_id and store.get_study("crash").id
    assert store.balance(f"study:{study_id}").spent_micros == sum(a.cost_micros for a in attempts)  # nothing lost
    assert store.balance(f"study:{study_id}").reserved_micros == 0
    assert [t.state.value for t in store.history(study_id).trials] == ["complete", "complete"]
    store.close()


def test_run_refuses_a_worker_api_address_it_cannot_listen_on_before_the_store_exists(world: dict[str, Any]) -> None:
    from click.testing import CliRunner

    from costtune.cli.app import main

    raw = sweep_raw(world, name="busy", trials=1, workers=1, steps=1, nap=0)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        raw["server"].update(bind=f"127.0.0.1:{port}", public_url=f"http://127.0.0.1:{port}")
        sweep = world["tmp"] / "busy.yaml"
        sweep.write_text(yaml.safe_dump(raw))
        db = world["tmp"] / "busy.db"
        done = CliRunner().invoke(main, ["run", str(sweep), "--db", str(db)])
    assert done.exit_code == 2 and "server.bind" in done.output and f"127.0.0.1:{port}" in done.output, done.output
    assert not db.exists()


def test_with_the_controller_gone_for_good_the_agent_shuts_its_instance_down(world: dict[str, Any], ec2: Any) -> None:
    raw = sweep_raw(world, name="gone", trials=1, workers=1, steps=1000, nap=0.1)
    raw["server"].update(lost_after=3, heartbeat=0.5)
    sweep = world["tmp"] / "gone.yaml"
    sweep.write_text(yaml.safe_dump(raw))
    with InstancePlayer(ec2, world["tmp"]) as player:
        run = subprocess.Popen([sys.executable, "-m", "costtune.cli", "run", str(sweep), "--db", world["db"],
                                "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        store = Store(world["db"])
        until = time.monotonic() + 90
        while not any(r.next_seq >= 2 for r in rows(store, RemoteAttemptRow)):
            assert run.poll() is None and time.monotonic() < until, "the trial never reported"
            time.sleep(0.05)
        run.kill()  # and nobody starts it again
        run.wait()
        (instance_id,) = [i["InstanceId"] for i in instances(ec2, "gone")]
        until = time.monotonic() + 60
        while instances(ec2, "gone")[0]["State"]["Name"] != "terminated":
            assert time.monotonic() < until, player.log(instance_id)
            time.sleep(0.2)
    assert player.shutdowns.read_text().split() == [instance_id]  # the agent ran the shutdown command
    assert "controller was unreachable" in player.log(instance_id)
    store.close()
