"""``AwsWorkers``, the provider `costtune run` uses for AWS trials, against Stubbed EC2 answers and a real
SQLite store: strikes toward on-demand kept in the store across a restart, the rate of the offer an
attempt really landed on (on-demand after fall-back; a spot zone's live price, else the region's with a
warning), and capacity strikes recorded per attempt."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from awstools import fake_credentials
from sqlmodel import Session, select
from test_aws_failover import Recorder, Stubbed

from costtune.history import Mode
from costtune.spec.server import ServerSettings
from costtune.store import Store
from costtune.store.models import TrialRow
from costtune.trialrun import TrialLaunch

pytest.importorskip("boto3")


@pytest.fixture(scope="module")
def recorder():
    with fake_credentials():
        yield Recorder()


@pytest.fixture()
def rec(recorder):
    recorder.calls.clear()
    recorder.params.clear()
    return recorder


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("COSTTUNE_HOME", str(tmp_path / "home"))
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    study = store.create_study("w", metric="loss", mode=Mode.MIN, space={}, sampler={"type": "manual"})
    number = store.enqueue(study.id, {"x": 1})
    with Session(store.engine) as s:
        trial = s.exec(select(TrialRow.id).where(TrialRow.study_id == study.id, TrialRow.number == number)).one()
    work = tmp_path / "work"
    work.mkdir()
    (work / "train.py").write_text("print('hi')\n")
    yield {"store": store, "trial": trial, "work": work, "tmp": tmp_path}
    store.close()


def attempt(world: dict[str, Any], number: int) -> tuple[str, Any]:
    key = f"w-{number}"
    world["store"].start_attempt(world["trial"], number, idempotency_key=key, provider="aws",
                                 rate_micros_per_hour=96_000, market="spot-then-on-demand")
    launch = TrialLaunch(command=("python", "train.py"), params={"x": 1}, study="w", trial_number=0,
                         attempt_number=number)
    from costtune.providers.base import LaunchRequest

    return key, LaunchRequest(argv=("python",), workdir=str(world["work"]), output_dir=str(world["tmp"] / "out"),
                              tags={"study": "w", "store": "s0", "trial": "0", "attempt": str(number),
                                    "owner": "host:1:abc"}, instance_type="m5.large", launch=launch)


def workers(stubbed: Stubbed, store: Store) -> Any:
    from costtune.providers.aws.workers import AwsWorkers

    return AwsWorkers(store, ServerSettings(public_url="https://tune.example.org"), stubbed.aws.aws, ec2=stubbed.aws)


def test_strikes_kept_in_the_store_send_a_restarted_controllers_launch_to_on_demand_at_its_rate(rec, world):
    store = world["store"]
    key1, first = attempt(world, 1)
    s = Stubbed(rec, market="spot-then-on-demand", spot_fallback_after=2, zones=("us-east-1a", "us-east-1b"))
    s.none_found()
    s.no_capacity()  # spot in us-east-1a: a strike
    s.launched(zone="us-east-1b", iid="i-0000000000000000a")
    handle = workers(s, store).launch(first, key1)
    attempt_id = store.attempt_id_for_key(key1)
    assert handle.instance_id == "i-0000000000000000a" and "spot in us-east-1a: no-capacity" in handle.note
    store.finish_attempt(attempt_id, exit_reason="preempted", billable_ms=90_000, cost_micros=10)  # strike two
    s.done()

    key2, second = attempt(world, 2)
    restarted = Stubbed(rec, market="spot-then-on-demand", spot_fallback_after=2, zones=("us-east-1a", "us-east-1b"))
    restarted.none_found()
    restarted.launched(zone="us-east-1a", spot=False, iid="i-0000000000000000b")
    rec.params.clear()
    fresh = workers(restarted, store)  # a new controller: nothing in memory
    handle = fresh.launch(second, key2)
    restarted.done()
    sent = rec.sent("ec2:RunInstances")
    assert len(sent) == 1 and "InstanceMarketOptions" not in sent[0]  # straight to on-demand
    placed = fresh.placement(handle)
    from costtune.prices.catalog import PriceTable

    on_demand = PriceTable.bundled().rate("aws", "us-east-1", "m5.large", "on-demand")
    assert placed.market == "on-demand" and placed.rate_micros_per_hour == on_demand.usd_per_hour_micros
    assert "no fresh on-demand price" in placed.warning and "costtune prices refresh" in placed.warning


def test_a_spot_launch_is_charged_its_zones_live_price_else_the_regions_with_a_warning(rec, world):
    from costtune.prices.catalog import PriceTable
    from costtune.prices.live import save_live

    spot = PriceTable.bundled().rate("aws", "us-east-1", "m5.large", "spot")
    key, request = attempt(world, 1)
    s = Stubbed(rec, zones=("us-east-1b",))
    s.none_found()
    s.launched(zone="us-east-1b")
    provider = workers(s, world["store"])
    handle = provider.launch(request, key)
    placed = provider.placement(handle)  # no live prices: the snapshot's regional spot price, said so
    assert placed.market == "spot" and placed.rate_micros_per_hour == spot.usd_per_hour_micros
    assert "no fresh spot price for zone us-east-1b" in placed.warning
    today = date.today()
    save_live([dataclasses.replace(spot, usd_per_hour_micros=50_000, source="spot history", as_of=today),
               dataclasses.replace(spot, usd_per_hour_micros=52_500, source="spot history", as_of=today,
                                   zone="us-east-1b")], provider="aws", regions=["us-east-1"],
              fetched_at=datetime.now(UTC))
    placed = provider.placement(handle)
    assert placed.rate_micros_per_hour == 52_500 and placed.warning is None and "us-east-1b" in placed.source
