"""EC2's answers moto cannot give, through botocore's Stubber: capacity errors and fail-over across zones,
regions and markets, the wait budget, credentials refused, throttled polls, and the error mapping."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from awstools import AMI, FakeTime, Recorder, fake_credentials, request, resources

pytest.importorskip("boto3")
LAUNCHED = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def recorder():
    with fake_credentials():
        yield Recorder()


@pytest.fixture()
def rec(recorder):
    recorder.calls.clear()
    recorder.params.clear()
    return recorder


class Stubbed:
    """An AwsProvider whose EC2 clients answer from Stubbers (one per region), on a fake clock."""

    def __init__(self, rec, **changes) -> None:
        from botocore.stub import Stubber
        from costtune.providers.aws import AwsProvider
        from costtune.providers.aws.images import Image

        self.time = FakeTime()
        self.aws = AwsProvider(resources(**changes), user_data="#!/bin/sh", session=rec.session,
                               now=self.time.now, sleep=self.time.sleep, monotonic=self.time.monotonic)
        self.stubs = {}
        for region in self.aws.aws.regions:
            self.aws.images._by_region[region] = Image(AMI, "/dev/xvda", "x86_64")
            self.stubs[region] = Stubber(self.aws.clients.ec2(region))
            self.stubs[region].activate()

    def none_found(self, region="us-east-1"):
        self.stubs[region].add_response("describe_instances", {"Reservations": []})

    def no_capacity(self, region="us-east-1", code="InsufficientInstanceCapacity"):
        self.stubs[region].add_client_error("run_instances", service_error_code=code,
                                            service_message="We currently do not have sufficient capacity.",
                                            http_status_code=500 if code.startswith("Insufficient") else 400)

    def launched(self, region="us-east-1", zone="us-east-1b", spot=True, iid="i-0123456789abcdef0"):
        instance = {"InstanceId": iid, "InstanceType": "m5.large", "LaunchTime": LAUNCHED,
                    "Placement": {"AvailabilityZone": zone}, "State": {"Name": "pending", "Code": 0},
                    "Tags": [{"Key": "costtune:key", "Value": "k"}]}
        if spot:
            instance["InstanceLifecycle"] = "spot"
        self.stubs[region].add_response("run_instances", {"Instances": [instance]})

    def described(self, state="running", reason=None, when="2026-11-30 12:05:00", region="us-east-1"):
        instance = {"InstanceId": "i-0123456789abcdef0", "InstanceType": "m5.large", "LaunchTime": LAUNCHED,
                    "State": {"Name": state, "Code": 48 if state == "terminated" else 16},
                    "InstanceLifecycle": "spot", "Tags": [{"Key": "costtune:key", "Value": "k"}]}
        if state == "terminated":
            instance["StateTransitionReason"] = f"Service initiated ({when} GMT)"
            instance["StateReason"] = {"Code": reason or "Client.UserInitiatedShutdown", "Message": "x"}
        self.stubs[region].add_response("describe_instances", {"Reservations": [{"Instances": [instance]}]})

    def done(self):
        for stub in self.stubs.values():
            stub.assert_no_pending_responses()


def test_no_capacity_in_one_zone_fails_over_to_the_next_and_records_each_try(rec):
    s = Stubbed(rec, zones=("us-east-1a", "us-east-1b"))
    s.none_found()
    s.no_capacity()
    s.launched(zone="us-east-1b")
    handle = s.aws.launch(request(), "k")
    s.done()
    runs = rec.sent("ec2:RunInstances")
    assert [r["Placement"]["AvailabilityZone"] for r in runs] == ["us-east-1a", "us-east-1b"]
    assert all(r["InstanceMarketOptions"]["MarketType"] == "spot" for r in runs)
    assert all(r["InstanceInitiatedShutdownBehavior"] == "terminate" for r in runs)
    assert len({r["ClientToken"] for r in runs}) == 2 and all(len(r["ClientToken"]) <= 64 for r in runs)
    assert [t.outcome for t in handle.tries] == ["no-capacity", "launched"]
    assert "InsufficientInstanceCapacity" in str(handle.tries[0]) and "us-east-1a" in handle.note


def test_spot_then_on_demand_falls_back_after_n_capacity_errors(rec):
    s = Stubbed(rec, zones=("us-east-1a", "us-east-1b"), market="spot-then-on-demand", spot_fallback_after=2)
    s.none_found()
    s.no_capacity()
    s.no_capacity(code="SpotMaxPriceTooLow")
    s.launched(zone="us-east-1a", spot=False)
    handle = s.aws.launch(request(market="spot-then-on-demand"), "k")
    s.done()
    runs = rec.sent("ec2:RunInstances")
    assert ["InstanceMarketOptions" in r for r in runs] == [True, True, False]
    assert handle.market == "on-demand" and s.time.slept == []


def test_preemptions_of_a_trial_count_toward_the_fallback(rec):
    s = Stubbed(rec, market="spot-then-on-demand", spot_fallback_after=1)
    s.none_found()
    s.launched()
    first = s.aws.launch(request(7, 1, market="spot-then-on-demand"), "k")
    s.described("terminated", "Server.SpotInstanceTermination")
    assert s.aws.poll(first).preempted
    s.none_found()
    s.launched(spot=False, iid="i-0fedcba9876543210")
    s.aws.launch(request(7, 2, market="spot-then-on-demand"), "k2")
    s.done()
    assert ["InstanceMarketOptions" in r for r in rec.sent("ec2:RunInstances")] == [True, False]


def test_no_capacity_in_a_region_fails_over_to_the_next_region(rec):
    s = Stubbed(rec, regions=("us-east-1", "us-west-2"))
    s.none_found("us-east-1")
    s.none_found("us-west-2")
    s.no_capacity("us-east-1")
    s.launched("us-west-2", zone="us-west-2c")
    handle = s.aws.launch(request(), "k")
    s.done()
    assert handle.region == "us-west-2" and [t.offer.region for t in handle.tries] == ["us-east-1", "us-west-2"]


def test_waiting_for_capacity_never_blocks_and_a_later_round_launches(rec):
    s = Stubbed(rec, zones=("us-east-1a", "us-east-1b"))
    s.none_found()
    s.no_capacity()
    s.no_capacity()
    handle = s.aws.launch(request(), "k")  # every offer full: the handle waits, the controller goes on
    assert handle.instance_id == "" and s.time.slept == []
    assert s.aws.poll(handle) == s.aws.poll(handle)  # before the pause (5 s) is over: no call
    assert s.aws.poll(handle).running and s.aws.poll(handle).billable_ms == 0
    s.time.t += 5
    s.no_capacity()
    s.launched(zone="us-east-1b")
    assert s.aws.poll(handle).running  # the second round found capacity in the second zone
    s.done()
    assert handle.instance_id == "i-0123456789abcdef0" and handle.zone == "us-east-1b"
    assert [t.outcome for t in handle.tries] == ["no-capacity"] * 3 + ["launched"]
    assert "after 3 tries" in handle.note


def test_the_wait_budget_bounds_fail_over_and_names_every_try(rec):
    from costtune.providers.aws.failover import OutOfCapacity
    from costtune.providers.base import CapacityError

    s = Stubbed(rec, launch_wait_s=12.0)
    s.none_found()
    s.no_capacity()
    handle = s.aws.launch(request(), "k")
    s.time.t += 5
    s.no_capacity()
    status = s.aws.poll(handle)  # a third round would start 15 s in: past the 12 s budget
    s.done()
    assert not status.running and status.billable_ms == 0 and len(handle.tries) == 2
    assert "no capacity after 2 tries" in status.error and "resources.launch_wait" in status.error
    short = Stubbed(rec, launch_wait_s=1.0)
    short.none_found()
    short.no_capacity()
    with pytest.raises(OutOfCapacity) as caught:  # not even a second round fits: refused at once
        short.aws.launch(request(), "k")
    assert isinstance(caught.value, CapacityError) and len(caught.value.tries) == 1


def test_stopping_an_attempt_that_waits_for_capacity_launches_nothing(rec):
    s = Stubbed(rec)
    s.none_found()
    s.no_capacity()
    handle = s.aws.launch(request(), "k")
    s.aws.terminate(handle)
    s.time.t += 60
    status = s.aws.poll(handle)
    s.done()
    assert not status.running and status.billable_ms == 0 and rec.count("ec2:TerminateInstances") == 0


def test_bad_credentials_stop_the_launch_with_a_clear_message(rec):
    from costtune.providers.base import FatalProviderError

    s = Stubbed(rec, zones=("us-east-1a", "us-east-1b"))
    s.stubs["us-east-1"].add_client_error("describe_instances", service_error_code="AuthFailure",
                                          service_message="AWS was not able to validate the provided access "
                                                          "credentials", http_status_code=401)
    with pytest.raises(FatalProviderError, match="credentials"):
        s.aws.launch(request(), "k")
    s.done()
    assert rec.count("ec2:RunInstances") == 0


def test_a_refused_launch_is_fatal_and_not_retried_elsewhere(rec):
    from costtune.providers.aws.failover import LaunchRefused

    s = Stubbed(rec, zones=("us-east-1a", "us-east-1b"))
    s.none_found()
    s.no_capacity(code="UnauthorizedOperation")
    with pytest.raises(LaunchRefused, match="UnauthorizedOperation") as caught:
        s.aws.launch(request(), "k")
    s.done()
    assert [t.outcome for t in caught.value.tries] == ["refused"]


def test_a_throttled_poll_keeps_the_last_state_and_backs_off(rec):
    s = Stubbed(rec)
    s.none_found()
    s.launched()
    handle = s.aws.launch(request(), "k")
    s.time.t += 5
    s.stubs["us-east-1"].add_client_error("describe_instances", service_error_code="RequestLimitExceeded",
                                          service_message="Request limit exceeded.", http_status_code=503)
    assert s.aws.poll(handle).running
    s.time.t += 5  # the usual interval (5 s) has passed, the back-off (doubled: 10 s) has not
    assert s.aws.poll(handle).running  # no call: the Stubber has no answer queued
    s.time.t += 5
    s.described("terminated", when="2026-11-30 12:00:40")
    status = s.aws.poll(handle)
    s.done()
    assert not status.running and status.billable_ms == 40_000


@pytest.mark.parametrize(("code", "status", "kind"), [
    ("InsufficientInstanceCapacity", 500, "CapacityError"),
    ("SpotMaxPriceTooLow", 400, "CapacityError"),
    ("RequestLimitExceeded", 503, "RetryableError"),
    ("Throttling", 400, "RetryableError"),
    ("InternalError", 500, "RetryableError"),
    ("AuthFailure", 401, "FatalProviderError"),
    ("UnauthorizedOperation", 403, "FatalProviderError"),
    ("InvalidAMIID.NotFound", 400, "FatalProviderError"),
    ("VcpuLimitExceeded", 400, "FatalProviderError"),
])
def test_sdk_errors_map_to_costtunes(code, status, kind):
    from botocore.exceptions import ClientError
    from costtune.providers.aws.errors import map_error

    exc = ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                      "RunInstances")
    mapped = map_error(exc, "RunInstances")
    assert type(mapped).__name__ == kind and code in str(mapped)


def test_missing_credentials_are_fatal():
    from botocore.exceptions import NoCredentialsError
    from costtune.providers.aws.errors import map_error
    from costtune.providers.base import FatalProviderError

    assert isinstance(map_error(NoCredentialsError(), "RunInstances"), FatalProviderError)


def test_where_an_attempt_was_placed_and_what_was_tried_first_shows_in_costtune_trials(tmp_path, monkeypatch):
    import sys

    from click.testing import CliRunner
    from costtune.providers.local import LocalProvider

    from costtune.cli.app import main
    from costtune.runner.controller import SweepController
    from costtune.runner.session import open_sweep
    from costtune.spec import parse_sweep
    from costtune.store import Store

    note = "i-0abc spot m5.large in us-east-1b after 1 tries: spot in us-east-1a: no-capacity (AWS RunInstances)"

    class Placed(LocalProvider):  # a launch that, like the AWS adapter's, says where it landed
        def launch(self, request, key):
            handle = super().launch(request, key)
            handle.note = note
            return handle

    monkeypatch.setenv("COSTTUNE_HOME", str(tmp_path))
    script = tmp_path / "t.py"
    script.write_text("import costtune\ncosttune.report(step=0, loss=1.0)\n")
    spec = parse_sweep({"name": "noted", "objective": {"metric": "loss", "mode": "min"},
                        "space": {"x": {"type": "uniform", "low": 0, "high": 1}}, "budget": {"trials": 1},
                        "command": [sys.executable, str(script)], "resources": {"usd_per_hour": 1}})
    db = f"sqlite:///{tmp_path / 'noted.db'}"
    study, _ = open_sweep(Store(db), spec)
    SweepController(spec, study, Placed(), workdir=str(tmp_path)).run()
    shown = CliRunner().invoke(main, ["trials", "noted", "0", "--db", db])
    assert shown.exit_code == 0, shown.output
    assert f"attempt 1: {note}" in " ".join(shown.output.split())
