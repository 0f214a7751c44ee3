"""The AWS EC2 adapter against moto (in-process): tags, markets, idempotent launches, batched polls,
EC2-reported billing, preemption, termination, and field-named validation errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from awstools import Recorder, fake_credentials, preempt, request, resources
from proctools import silence_heartbeat

pytest.importorskip("moto")
pytest.importorskip("boto3")


@pytest.fixture(scope="module")
def moto():
    from moto import mock_aws

    with fake_credentials(), mock_aws():
        yield


@pytest.fixture(scope="module")
def recorder(moto):
    return Recorder()  # one session: loading EC2's service model takes a second


@pytest.fixture()
def rec(recorder):
    recorder.calls.clear()
    return recorder


@pytest.fixture(scope="module")
def ec2(recorder):
    from awstools import session

    return session().client("ec2")  # the test's own eyes: not recorded


def provider(rec, **changes):
    from costtune.providers.aws import AwsProvider

    clock = {"t": 0.0}
    made = AwsProvider(resources(**changes), user_data="#!/bin/sh\necho agent", session=rec.session,
                       monotonic=lambda: clock["t"], sleep=lambda s: None)
    made.clock = clock  # type: ignore[attr-defined]
    return made


def tagged(ec2, key):
    found = ec2.describe_instances(Filters=[{"Name": "tag:costtune:key", "Values": [key]}])
    return [i for r in found["Reservations"] for i in r["Instances"]]


def test_a_spot_launch_carries_every_tag_on_instance_and_volume_and_terminates_on_shutdown(rec, ec2):
    handle = provider(rec).launch(request(1, 1, study="tags"), "tags-1-1")
    [instance] = tagged(ec2, "tags-1-1")
    assert instance["InstanceLifecycle"] == "spot" and instance["InstanceType"] == "m5.large"
    assert handle.market == "spot" and handle.instance_id == instance["InstanceId"]
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    for name in ("study", "trial", "attempt", "owner", "store", "version", "expires-at", "key"):
        assert f"costtune:{name}" in tags
    assert tags["costtune:study"] == "tags" and tags["costtune:trial"] == "1" and tags["cost-centre"] == "vision"
    volumes = ec2.describe_volumes(Filters=[{"Name": "tag:costtune:key", "Values": ["tags-1-1"]}])["Volumes"]
    assert volumes and {t["Key"] for t in volumes[0]["Tags"]} >= {"costtune:study", "cost-centre"}
    behaviour = ec2.describe_instance_attribute(InstanceId=handle.instance_id,
                                                Attribute="instanceInitiatedShutdownBehavior")
    assert behaviour["InstanceInitiatedShutdownBehavior"]["Value"] == "terminate"


def test_on_demand_launch_has_no_spot_lifecycle(rec, ec2):
    handle = provider(rec, market="on-demand").launch(request(2, 1, study="od"), "od-2-1")
    [instance] = tagged(ec2, "od-2-1")
    assert "InstanceLifecycle" not in instance and handle.market == "on-demand"


def test_a_launch_retried_after_a_crash_finds_its_instance_and_makes_no_second_one(rec, ec2):
    first = provider(rec).launch(request(1, 1, study="crash"), "crash-1-1")
    again = provider(rec).launch(request(1, 1, study="crash"), "crash-1-1")  # a new controller, same key
    assert again.instance_id == first.instance_id
    assert len(tagged(ec2, "crash-1-1")) == 1
    assert rec.count("ec2:RunInstances") == 1


def test_the_same_key_from_another_store_is_another_attempt_with_its_own_instance(rec, ec2):
    """Attempt keys repeat across stores (ids start at 1 in each): the look-up and ClientToken include the
    store and study, so a sweep never adopts another store's instance."""
    rec.params.clear()
    mine = provider(rec).launch(request(1, 1, study="same", store="store-a"), "same-1-1")
    theirs = provider(rec).launch(request(1, 1, study="same", store="store-b"), "same-1-1")
    assert theirs.instance_id != mine.instance_id and len(tagged(ec2, "same-1-1")) == 2
    tokens = {body["ClientToken"] for body in rec.sent("ec2:RunInstances")}
    assert len(tokens) == 2
    assert provider(rec).launch(request(1, 1, study="same", store="store-a"), "same-1-1").instance_id == \
        mine.instance_id


def test_six_attempts_make_six_instances_polled_with_one_call_per_tick(rec, ec2):
    aws = provider(rec)
    handles = [aws.launch(request(n, 1, study="six"), f"six-{n}-1") for n in range(6)]
    assert len({h.instance_id for h in handles}) == 6
    before = rec.count("ec2:DescribeInstances")
    assert all(aws.poll(h).running for h in handles)
    assert rec.count("ec2:DescribeInstances") == before + 1  # one batched call for all six
    assert all(aws.poll(h).running for h in handles)
    assert rec.count("ec2:DescribeInstances") == before + 1  # same tick: the cache answers
    aws.clock["t"] += aws.poll_interval_s
    aws.poll(handles[0])
    assert rec.count("ec2:DescribeInstances") == before + 2


def test_a_preempted_spot_instance_is_billed_from_ec2s_launch_to_its_termination(rec):
    aws = provider(rec)
    handle = aws.launch(request(1, 1, study="preempt"), "preempt-1-1")
    ended = handle.launched_at.replace(microsecond=0) + timedelta(seconds=95)
    preempt(handle.instance_id, ended)
    aws.clock["t"] += 60
    status = aws.poll(handle)
    assert not status.running and status.preempted and status.error is None
    assert status.billable_ms == int((ended - handle.launched_at).total_seconds() * 1000)
    facts = aws.facts("preempt-1-1")
    assert facts.started_at == handle.launched_at and facts.ended_at == ended
    assert facts.how == "Server.SpotInstanceTermination" and handle.instance_id in facts.source


def test_terminate_ends_the_attempt_and_list_owned_no_longer_shows_it(rec):
    aws = provider(rec)
    handle = aws.launch(request(1, 1, study="stop"), "stop-1-1")
    assert [h.key for h in aws.list_owned({"study": "stop"})] == ["stop-1-1"]
    aws.terminate(handle)
    aws.terminate(handle)  # idempotent, and not sent twice within a minute
    assert rec.count("ec2:TerminateInstances") == 1
    aws.clock["t"] += 10
    status = aws.poll(handle)
    assert not status.running and not status.preempted and "UserInitiatedShutdown" in status.error
    assert aws.list_owned({"study": "stop"}) == []
    facts = aws.facts("stop-1-1")
    assert facts.ended_at is not None and facts.ended_at >= facts.started_at.replace(microsecond=0)


def test_facts_of_an_unknown_key_is_none(rec):
    assert provider(rec).facts("never-launched") is None


@pytest.mark.parametrize(("changes", "types", "field", "value"), [
    ({}, ["m5.nope"], "resources.instance_type", "m5.nope"),
    ({"image": "/no/such/parameter"}, ["m5.large"], "resources.image", "/no/such/parameter"),
    ({"image": "ami-0000000000000dead"}, ["m5.large"], "resources.image", "ami-0000000000000dead"),
    ({"subnet": "subnet-0123456789abcdef0"}, ["m5.large"], "resources.subnet", "subnet-0123456789abcdef0"),
    ({"security_groups": ("sg-0123456789abcdef0",)}, ["m5.large"], "resources.security_groups", None),
    ({"zones": ("us-east-1q",)}, ["m5.large"], "resources.zones", None),
])
def test_validate_names_the_field_ec2_does_not_know(rec, changes, types, field, value):
    from costtune.errors import SpecError

    with pytest.raises(SpecError) as caught:
        provider(rec, **changes).validate(types)
    assert caught.value.path == field
    if value is not None:
        assert value in str(caught.value)


def test_validate_accepts_what_exists(rec):
    provider(rec, zones=("us-east-1a",)).validate(["m5.large", "c5.xlarge"])
    assert rec.count("ssm:GetParameter") == 1  # the SSM path is resolved once per region


def test_a_missing_instance_type_is_refused_before_launching(rec):
    from costtune.providers.base import FatalProviderError

    with pytest.raises(FatalProviderError, match="instance type"):
        provider(rec).launch(request(1, 1, itype=""), "nt-1-1")
    assert rec.count("ec2:RunInstances") == 0


def test_expires_at_is_a_day_after_launch(rec, ec2):
    provider(rec).launch(request(1, 1, study="exp"), "exp-1-1")
    [instance] = tagged(ec2, "exp-1-1")
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    expires = datetime.fromisoformat(tags["costtune:expires-at"].replace("Z", "+00:00"))
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(hours=24)


def test_reap_dry_run_lists_an_orphan_and_a_young_instance_then_terminates_the_orphan_only(rec, ec2, tmp_path,
                                                                                           monkeypatch):
    from awstools import age
    from click.testing import CliRunner

    from costtune.cli.app import main
    from costtune.history import Mode
    from costtune.store import Store
    from costtune.store.reads import store_tag

    monkeypatch.setenv("COSTTUNE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("boto3.session.Session", lambda **_: rec.session)  # the CLI's calls are recorded too
    db = str(tmp_path / "reap.db")
    store = Store(db)
    tag = store_tag(store)
    study = store.create_study("reaped", metric="loss", mode=Mode.MIN, space={}, sampler={"type": "random"})
    store.enqueue(study.id, {"x": 1})
    claimed = store.claim_next(study.id, None, owner="host:1:abc")
    store.start_attempt(claimed.id, 1, idempotency_key="reap-owned", provider="aws", rate_micros_per_hour=96_000)
    aws = provider(rec)
    made = {key: aws.launch(request(n, 1, study="reaped", store=store_for_key), key).instance_id
            for n, (key, store_for_key) in enumerate([("reap-orphan", tag), ("reap-young", tag), ("reap-owned", tag),
                                                      ("reap-foreign", "another0")])}
    for key, seconds in (("reap-orphan", 3600), ("reap-young", 10), ("reap-owned", 3600), ("reap-foreign", 3600)):
        age(made[key], seconds)

    def state(key):
        [instance] = tagged(ec2, key)
        return instance["State"]["Name"]

    listed = CliRunner().invoke(main, ["reap", "--db", db, "--regions", "us-east-1", "--dry-run"])
    assert listed.exit_code == 0, listed.output
    rows = {line.split()[1]: line for line in listed.output.splitlines() if "│ i-" in line}
    assert "would terminate" in rows[made["reap-orphan"]]
    assert "spared: younger" in rows[made["reap-young"]]
    assert "spared: a live" in rows[made["reap-owned"]]
    assert "another" in rows[made["reap-foreign"]]
    assert "would terminate 1 instances: $" in listed.output
    assert all(state(key) == "running" for key in made)
    reaped = CliRunner().invoke(main, ["reap", "--db", db, "--regions", "us-east-1", "--older-than", "60"])
    assert reaped.exit_code == 0, reaped.output
    assert "terminated 1 instances: $" in reaped.output and "/h stopped" in reaped.output
    assert {key: state(key) for key in made} == {"reap-orphan": "terminated", "reap-young": "running",
                                                 "reap-owned": "running", "reap-foreign": "running"}
    # the reaper only lists and terminates (the rest launched the instances)
    assert set(rec.calls) == {"ssm:GetParameter", "ec2:DescribeImages", "ec2:DescribeInstances", "ec2:RunInstances",
                              "ec2:TerminateInstances"}


# Actions that no API call names but that an API call needs, each with the parameter that needs it.
IMPLIED = {"ec2:CreateTags": ("ec2:RunInstances", "TagSpecifications"),
           "iam:PassRole": ("ec2:RunInstances", "IamInstanceProfile")}


def _policy_actions(name):
    import json
    from pathlib import Path

    policy = json.loads((Path(__file__).resolve().parents[1] / "infra" / "aws" / name).read_text())
    actions = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow" and "NotAction" not in statement
        given = statement["Action"]
        actions.update([given] if isinstance(given, str) else given)
    return policy, actions


def test_the_controller_policy_grants_exactly_what_the_adapter_calls(rec, ec2, tmp_path, monkeypatch):
    from botocore.stub import Stubber
    from costtune.providers.aws.pricing import AwsPriceSource
    from costtune.providers.base import CapacityError

    from costtune.cli.prices import refresh_prices

    monkeypatch.setenv("COSTTUNE_HOME", str(tmp_path))
    subnet = ec2.describe_subnets()["Subnets"][0]
    group = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
    aws = provider(rec, zones=(subnet["AvailabilityZone"],))
    aws.validate(["m5.large"])
    placed = provider(rec, subnet=subnet["SubnetId"], security_groups=(group,), disk_gb=40)
    placed.validate(["m5.large"])
    handle = placed.launch(request(1, 1, study="policy"), "policy-1-1")
    placed.poll(handle)
    placed.facts("policy-1-1")
    placed.list_owned({"study": "policy"})
    placed.terminate(handle)
    source = AwsPriceSource(rec.session)
    stub = Stubber(source.clients.pricing())
    stub.add_response("get_products", {"PriceList": [], "FormatVersion": "aws_v1"})
    with stub:
        refresh_prices(source, "aws", ["us-east-1"], ["m5.large"])  # spot history from moto
    profiled = provider(rec, instance_profile="costtune-worker", image="ami-0123456789abcdef0", launch_wait_s=1.0)
    profiled.images._by_region["us-east-1"] = placed.images.resolve("us-east-1")
    launcher = Stubber(profiled.clients.ec2("us-east-1"))
    launcher.add_response("describe_instances", {"Reservations": []})
    launcher.add_client_error("run_instances", "InsufficientInstanceCapacity", http_status_code=500)
    with launcher, pytest.raises(CapacityError):
        profiled.launch(request(1, 1, study="policy-profile"), "policy-profile-1-1")

    called = set(rec.calls)
    _, granted = _policy_actions("controller-policy.json")
    assert called - granted == set(), "the policy misses operations the adapter calls"
    for action, (needed_by, parameter) in IMPLIED.items():
        assert any(parameter in sent for sent in rec.sent(needed_by)), f"{action}: nothing sent {parameter}"
    assert granted - called - set(IMPLIED) == set(), "the policy grants operations the adapter never calls"


def test_the_worker_policy_reaches_only_the_checkpoint_prefix():
    policy, actions = _policy_actions("worker-policy.json")
    assert actions == {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"}
    for statement in policy["Statement"]:
        resources = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
        for resource in resources:
            assert resource in ("arn:aws:s3:::BUCKET/PREFIX/*", "arn:aws:s3:::BUCKET")
        if statement["Resource"] == "arn:aws:s3:::BUCKET":
            assert statement["Condition"]["StringLike"]["s3:prefix"] == ["PREFIX/*"]


def test_the_provider_factory_validates_with_ec2_before_returning(rec):
    from costtune.providers import make_provider

    from costtune.errors import SpecError

    with pytest.raises(SpecError) as caught:
        make_provider("aws", aws=resources(), instance_types=["m5.large", "m5.nope"], user_data="#!/bin/sh",
                      session=rec.session)
    assert caught.value.path == "resources.instance_type" and "m5.nope" in str(caught.value)
    made = make_provider("aws", aws=resources(), instance_types=["m5.large"], user_data="#!/bin/sh",
                         session=rec.session)
    assert made.name == "aws" and rec.count("ec2:DescribeInstanceTypes") == 2


def test_deleting_a_study_terminates_the_instances_its_dead_controller_left(rec, ec2, tmp_path, monkeypatch):
    """`costtune studies delete` settled only local attempts: an AWS study whose controller died kept its
    instances running (and billing) after its books were gone. It now settles them with the AWS adapter of the
    regions its attempts ran in: the stray is terminated and its attempt billed from EC2's own times."""

    from click.testing import CliRunner

    from costtune.cli.app import main
    from costtune.history import Mode
    from costtune.store import Store
    from costtune.store.reads import store_tag

    monkeypatch.setenv("COSTTUNE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("boto3.session.Session", lambda **_: rec.session)
    db = str(tmp_path / "gone.db")
    store = Store(db)
    study = store.create_study("gone", metric="loss", mode=Mode.MIN, space={}, sampler={"type": "random"})
    store.enqueue(study.id, {"x": 1})
    claimed = store.claim_next(study.id, None, owner="host:1:abc")  # another host's controller, gone silent
    store.start_attempt(claimed.id, 1, idempotency_key="gone-1", provider="aws", rate_micros_per_hour=96_000,
                        region="us-east-1")
    instance = provider(rec).launch(request(1, 1, study="gone", store=store_tag(store)), "gone-1").instance_id
    silence_heartbeat(store, claimed.id)  # its heartbeats stopped ten minutes ago
    assert [i["InstanceId"] for i in tagged(ec2, "gone-1") if i["State"]["Name"] == "running"] == [instance]
    done = CliRunner().invoke(main, ["studies", "delete", "gone", "--db", db, "--yes"])
    assert done.exit_code == 0, done.output
    assert f"terminating stray instance {instance}" in done.output
    assert "deleted study 'gone'" in done.output
    assert [i["State"]["Name"] for i in tagged(ec2, "gone-1")] in (["terminated"], ["shutting-down"])


def test_deleting_a_study_without_aws_credentials_warns_that_its_instances_may_still_run(rec, ec2, tmp_path,
                                                                                        monkeypatch):
    """Without credentials the adapter cannot list the study's instances: the delete still settles and deletes
    (its attempts billed to their last sign of life), but it used to leave the instance running without a word.
    It now warns on stderr and names the command that reaps it, which then does (credentials back)."""
    from awstools import age
    from click.testing import CliRunner

    from costtune.cli.app import main
    from costtune.history import Mode
    from costtune.store import Store
    from costtune.store.reads import store_tag

    monkeypatch.setenv("COSTTUNE_HOME", str(tmp_path / "home"))
    db = str(tmp_path / "nocreds.db")
    store = Store(db)
    study = store.create_study("nocreds", metric="loss", mode=Mode.MIN, space={}, sampler={"type": "random"})
    store.enqueue(study.id, {"x": 1})
    claimed = store.claim_next(study.id, None, owner="host:1:abc")
    store.start_attempt(claimed.id, 1, idempotency_key="nocreds-1", provider="aws", rate_micros_per_hour=96_000,
                        region="us-east-1")
    instance = provider(rec).launch(request(1, 1, study="nocreds", store=store_tag(store)), "nocreds-1").instance_id
    silence_heartbeat(store, claimed.id)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)  # the CLI's own boto3 session finds no credentials (no profile, no metadata)
    done = CliRunner().invoke(main, ["studies", "delete", "nocreds", "--db", db, "--yes"])
    assert done.exit_code == 0, done.output
    assert "deleted study 'nocreds'" in done.stdout
    warned = " ".join(done.stderr.split())
    assert "warning: could not list the aws instances of study 'nocreds'" in warned
    assert "may still be running" in warned and "credentials" in warned
    command = f"costtune reap --provider aws --regions us-east-1 --db sqlite:///{db}"
    assert command in warned
    assert [i["State"]["Name"] for i in tagged(ec2, "nocreds-1")] == ["running"]  # left, but said so
    # the named command reaps it once credentials are back
    monkeypatch.undo()
    monkeypatch.setenv("COSTTUNE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("boto3.session.Session", lambda **_: rec.session)
    age(instance, 3600)
    reaped = CliRunner().invoke(main, command.split()[1:])
    assert reaped.exit_code == 0, reaped.output
    assert "terminated 1 instances" in reaped.output
    assert [i["State"]["Name"] for i in tagged(ec2, "nocreds-1")] in (["terminated"], ["shutting-down"])


def test_reap_refuses_a_misspelt_region_before_asking_aws_for_credentials(tmp_path, monkeypatch) -> None:
    """`reap --dry-run --regions mars-1` complained about missing credentials; the region is checked first and the
    store is not created."""
    from click.testing import CliRunner

    from costtune.cli import main

    monkeypatch.setenv("COSTTUNE_HOME", str(tmp_path / "home"))
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    db = tmp_path / "reap.db"
    result = CliRunner().invoke(main, ["reap", "--db", str(db), "--regions", "us-east-1,mars-1", "--dry-run"])
    assert result.exit_code == 2
    assert "--regions: must be AWS region names such as us-east-1, got mars-1" in result.output
    assert "credentials" not in result.output and not db.exists()
