"""Live AWS prices (Price List API and spot history through the Stubber), the live cache's swap and TTL,
the catalog preferring a fresh row, ``max_price_age``, and the ``provider: aws`` sweep fields."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from awstools import AL2023, FakeTime, Recorder, fake_credentials

pytest.importorskip("boto3")
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def product(itype: str, region: str, usd: str, vcpu: str = "2", memory: str = "8 GiB") -> str:
    """One PriceList item as the Price List Query API returns it: a JSON document in a string."""
    sku = f"SKU{abs(hash((itype, region))) % 10**8:08d}"
    return json.dumps({
        "product": {"productFamily": "Compute Instance", "sku": sku, "attributes": {
            "instanceType": itype, "regionCode": region, "location": "US East (N. Virginia)", "vcpu": vcpu,
            "memory": memory, "operatingSystem": "Linux", "tenancy": "Shared", "preInstalledSw": "NA",
            "capacitystatus": "Used", "licenseModel": "No License required", "gpu": "0", "servicecode": "AmazonEC2"}},
        "serviceCode": "AmazonEC2",
        "terms": {"OnDemand": {f"{sku}.JRTCKXETXF": {
            "offerTermCode": "JRTCKXETXF", "sku": sku, "effectiveDate": "2026-11-01T00:00:00Z",
            "priceDimensions": {f"{sku}.JRTCKXETXF.6YS6EN2CT7": {
                "unit": "Hrs", "endRange": "Inf", "beginRange": "0", "rateCode": f"{sku}.JRTCKXETXF.6YS6EN2CT7",
                "description": f"${usd} per On Demand Linux {itype} Instance Hour", "appliesTo": [],
                "pricePerUnit": {"USD": usd}}}, "termAttributes": {}}}},
        "version": "20261120000000", "publicationDate": "2026-11-20T00:00:00Z"})


def spot(itype: str, zone: str, usd: str, minutes_ago: int) -> dict:
    return {"AvailabilityZone": zone, "InstanceType": itype, "ProductDescription": "Linux/UNIX", "SpotPrice": usd,
            "Timestamp": NOW - timedelta(minutes=minutes_ago)}


@pytest.fixture(scope="module")
def recorder():
    with fake_credentials():
        yield Recorder()


def stubbed_source(recorder):
    """An AwsPriceSource whose pricing and EC2 clients answer like AWS does (two pages of products)."""
    from botocore.stub import Stubber
    from costtune.providers.aws.pricing import AwsPriceSource

    source = AwsPriceSource(recorder.session, now=lambda: NOW, sleep=FakeTime().sleep)
    pricing = Stubber(source.clients.pricing())
    pricing.add_response("get_products", {"PriceList": [product("m5.large", "us-east-1", "0.0960000000")],
                                          "FormatVersion": "aws_v1", "NextToken": "page2"})
    pricing.add_response("get_products", {"PriceList": [product("c5.xlarge", "us-east-1", "0.1700000000", "4",
                                                                "8 GiB")], "FormatVersion": "aws_v1"})
    ec2 = Stubber(source.clients.ec2("us-east-1"))
    ec2.add_response("describe_spot_price_history", {"SpotPriceHistory": [
        spot("m5.large", "us-east-1a", "0.041200", 5), spot("m5.large", "us-east-1a", "0.030000", 300),
        spot("m5.large", "us-east-1b", "0.038700", 12), spot("c5.xlarge", "us-east-1c", "0.071000", 3)]})
    pricing.activate()
    ec2.activate()
    return source, (pricing, ec2)


def test_the_price_list_and_spot_history_become_prices_with_their_source(recorder):
    from costtune.providers.aws.pricing import PRICE_LIST, SPOT_HISTORY

    source, stubs = stubbed_source(recorder)
    rows = source.fetch(["us-east-1"], ["m5.large", "c5.xlarge"])
    for stub in stubs:
        stub.assert_no_pending_responses()
    by = {(p.instance_type, p.market, p.zone): p for p in rows}
    assert by[("m5.large", "on-demand", None)].usd_per_hour_micros == 96_000
    assert by[("m5.large", "on-demand", None)].source == PRICE_LIST and by[("m5.large", "on-demand", None)].vcpus == 2
    assert by[("c5.xlarge", "on-demand", None)].usd_per_hour_micros == 170_000
    assert by[("m5.large", "spot", "us-east-1a")].usd_per_hour_micros == 41_200  # the latest, not the older one
    assert by[("m5.large", "spot", "us-east-1b")].usd_per_hour_micros == 38_700
    assert by[("m5.large", "spot", None)].usd_per_hour_micros == 38_700  # the regional row: the cheapest zone
    assert by[("m5.large", "spot", None)].source == SPOT_HISTORY
    sent = recorder.params[-3][1]  # the first get_products call
    filters = {f["Field"]: f["Value"] for f in sent["Filters"]}
    assert filters["regionCode"] == "us-east-1" and filters["operatingSystem"] == "Linux"
    assert filters["tenancy"] == "Shared" and filters["capacitystatus"] == "Used"


def test_a_refresh_swaps_its_regions_rows_and_the_catalog_prefers_them(recorder, tmp_path, monkeypatch, capsys):
    from costtune.cli.prices import refresh_prices
    from costtune.prices.live import current_table, load_live, save_live

    monkeypatch.setenv("COSTTUNE_HOME", str(tmp_path))
    source, _ = stubbed_source(recorder)
    refresh_prices(source, "aws", ["us-east-1"], ["m5.large", "c5.xlarge"])
    assert "us-east-1: 2 on-demand, 2 spot prices (3 zones)" in capsys.readouterr().out
    table, fresh = current_table()
    assert table.rate("aws", "us-east-1", "m5.large", "on-demand").usd_per_hour_micros == 96_000
    assert table.rate("aws", "us-east-1", "m5.large", "spot", zone="us-east-1b").usd_per_hour_micros == 38_700
    assert ("aws", "us-east-1", "m5.large", "spot") in fresh
    other = next(r.price for r in load_live() if r.price.market == "on-demand")
    west = type(other)(**{**other.__dict__, "region": "us-west-2"})
    save_live([west], provider="aws", regions=["us-west-2"], fetched_at=datetime.now(UTC))
    regions = {r.price.region for r in load_live()}
    assert regions == {"us-east-1", "us-west-2"}  # another region's refresh keeps these rows
    save_live([west], provider="aws", regions=["us-east-1", "us-west-2"], fetched_at=datetime.now(UTC))
    assert {r.price.region for r in load_live()} == {"us-west-2"}  # a refresh of us-east-1 replaced its rows
    assert not list(tmp_path.joinpath("prices").glob(".live-*"))  # no half-written file left behind


def test_a_stale_live_price_falls_back_to_the_snapshot_with_a_warning(tmp_path, monkeypatch):
    from costtune.prices import PriceTable
    from costtune.prices.live import LIVE_TTL_S, save_live
    from costtune.spec.resources import parse_resources

    monkeypatch.setenv("COSTTUNE_HOME", str(tmp_path))
    bundled = PriceTable.bundled().rate("aws", "us-east-1", "m5.large", "spot")
    live = type(bundled)(**{**bundled.__dict__, "usd_per_hour_micros": 51_000, "source": "live", "note": ""})
    section = {"provider": "aws", "region": "us-east-1", "instance_type": "m5.large", "market": "spot",
               "image": AL2023}
    save_live([live], provider="aws", regions=["us-east-1"], fetched_at=datetime.now(UTC))
    fresh = parse_resources(section)
    assert fresh.rates["m5.large/spot"] == 51_000 and fresh.warnings == ()
    old = datetime.now(UTC) - timedelta(seconds=LIVE_TTL_S + 60)
    save_live([live], provider="aws", regions=["us-east-1"], fetched_at=old)
    stale = parse_resources(section)
    assert stale.rates["m5.large/spot"] == bundled.usd_per_hour_micros
    assert "bundled snapshot" in stale.warnings[0] and "costtune prices refresh" in stale.warnings[0]


def test_max_price_age_refuses_an_old_price(tmp_path, monkeypatch):
    from costtune.errors import SpecError
    from costtune.spec.resources import parse_resources

    monkeypatch.setenv("COSTTUNE_HOME", str(tmp_path))
    section = {"provider": "aws", "region": "us-east-1", "instance_type": "m5.large", "image": AL2023,
               "max_price_age": "7d"}
    with pytest.raises(SpecError) as caught:
        parse_resources(section)
    assert caught.value.path == "resources.max_price_age" and "costtune prices refresh" in str(caught.value)


GOOD = {"provider": "aws", "region": "us-east-1", "instance_type": "m5.large", "image": AL2023}


@pytest.mark.parametrize(("change", "field"), [
    ({"region": "useast1"}, "resources.region"),
    ({"image": "ubuntu"}, "resources.image"),
    ({"image": None}, "resources.image"),
    ({"regions": ["us-west-2"], "image": "ami-0123456789abcdef0"}, "resources.image"),
    ({"zones": ["eu-west-1a"]}, "resources.zones"),
    ({"market": "cheap"}, "resources.market"),
    ({"subnet": "net-1"}, "resources.subnet"),
    ({"subnet": "subnet-0123456789abcdef0", "zones": ["us-east-1a"]}, "resources.subnet"),
    ({"security_groups": ["default"]}, "resources.security_groups"),
    ({"disk_gb": 0}, "resources.disk_gb"),
    ({"tags": {"costtune:study": "x"}}, "resources.tags.costtune:study"),
    ({"tags": ["cost-centre"]}, "resources.tags"),
    ({"setup": 3}, "resources.setup"),
    ({"checkpoint_uri": "/tmp/ckpt"}, "resources.checkpoint_uri"),
    ({"spot_fallback_after": 0}, "resources.spot_fallback_after"),
    ({"launch_wait": "soon"}, "resources.launch_wait"),
    ({"instance_type": "m5.enormous"}, "resources.instance_type"),
    ({"usd_per_hour": 1}, "resources.usd_per_hour"),
    ({"install": ""}, "resources.install"),
    ({"install": "costtune\nrm -rf /"}, "resources.install"),
    ({"install": "costtune", "agent_command": ["/opt/costtune/bin/costtune"]}, "resources.install"),
    ({"agent_command": []}, "resources.agent_command"),
    ({"agent_command": [3]}, "resources.agent_command"),
])
def test_bad_aws_fields_are_named(change, field, tmp_path, monkeypatch):
    from costtune.errors import SpecError
    from costtune.spec.resources import parse_resources

    monkeypatch.setenv("COSTTUNE_HOME", str(tmp_path))
    section = {**GOOD, **change}
    section = {k: v for k, v in section.items() if v is not None}
    with pytest.raises(SpecError) as caught:
        parse_resources(section)
    assert caught.value.path == field


def test_how_the_instance_gets_costtune(tmp_path, monkeypatch):
    from costtune.spec.resources import parse_resources

    monkeypatch.setenv("COSTTUNE_HOME", str(tmp_path))
    wheel = parse_resources({**GOOD, "install": " https://example.org/costtune-0.1-py3-none-any.whl "}).aws
    assert wheel.install == "https://example.org/costtune-0.1-py3-none-any.whl" and wheel.agent_command == ()
    baked = parse_resources({**GOOD, "agent_command": "/opt/costtune/bin/costtune"}).aws
    assert baked.agent_command == ("/opt/costtune/bin/costtune",) and baked.install is None


def test_aws_fields_on_another_provider_are_refused():
    from costtune.errors import SpecError
    from costtune.spec.resources import parse_resources

    with pytest.raises(SpecError, match="applies to provider aws") as caught:
        parse_resources({"provider": "local", "usd_per_hour": 1, "image": AL2023})
    assert caught.value.path == "resources.image"


def test_an_aws_section_in_full(tmp_path, monkeypatch):
    from costtune.spec.resources import parse_resources

    monkeypatch.setenv("COSTTUNE_HOME", str(tmp_path))
    r = parse_resources({**GOOD, "regions": ["us-east-1", "us-west-2"], "zones": ["us-east-1a", "us-west-2b"],
                         "instance_type": {"type": "categorical", "choices": ["m5.large", "c5.xlarge"]},
                         "market": "spot-then-on-demand", "disk_gb": 100, "tags": {"cost-centre": "vision"},
                         "setup": "pip install -r requirements.txt", "checkpoint_uri": "s3://bucket/ckpt",
                         "launch_wait": "15m", "instance_profile": "costtune-worker", "key_name": "me"})
    assert r.aws.regions == ("us-east-1", "us-west-2") and r.aws.zones_of("us-west-2") == ("us-west-2b",)
    assert r.aws.launch_wait_s == 900 and r.aws.setup == ("pip install -r requirements.txt",)
    assert r.searched["instance_type"]["choices"] == ["m5.large", "c5.xlarge"]
    # spot-then-on-demand reserves what a fallen-back attempt costs: the dearer region's on-demand rate
    west = 96_000  # both regions list m5.large on-demand at $0.096 in the snapshot
    assert r.rates["m5.large/spot-then-on-demand"] == r.rates["m5.large/on-demand"] >= west


def test_run_refuses_an_aws_sweep_instances_cannot_report_to_before_the_store_opens(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from costtune.cli.app import main

    sweep = tmp_path / "aws.yaml"
    sweep.write_text("name: a\nobjective: {metric: loss, mode: min}\nspace: {lr: {type: uniform, low: 0, high: 1}}\n"
                     "command: [python, train.py]\nbudget: {usd: 5}\n"
                     f"resources: {{provider: aws, region: us-east-1, instance_type: m5.large, image: '{AL2023}'}}\n")
    db = tmp_path / "store.db"
    monkeypatch.setenv("COSTTUNE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    done = CliRunner().invoke(main, ["run", str(sweep), "--db", str(db)])
    assert done.exit_code == 2 and done.exception.__class__ is SystemExit
    assert "server.public_url" in done.output and "instances cannot reach" in done.output
    assert "warning: no fresh live price for aws/us-east-1/m5.large" in done.output  # the snapshot's, said so
    assert not db.exists()
    planned = CliRunner().invoke(main, ["plan", str(sweep)])  # plan says what run would refuse
    assert planned.exit_code == 2 and "server.public_url" in planned.output


def test_the_readmes_first_aws_sweep_is_a_valid_sweep_file(tmp_path, monkeypatch):
    from pathlib import Path

    from costtune.spec import parse_sweep
    from costtune.yamlfile import load_yaml

    monkeypatch.setenv("COSTTUNE_HOME", str(tmp_path))
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    start = text.rindex("\n", 0, text.index("name: lr-aws")) + 1  # the block is indented 3 (a list item's)
    block = "\n".join(line[3:] for line in text[start:text.index("```", start)].splitlines())
    spec = parse_sweep(load_yaml(block, source="README"))
    assert spec.resources.provider == "aws" and spec.resources.aws.market == "spot-then-on-demand"
    assert spec.server.url == "https://tune.example.org" and spec.resources.aws.checkpoint_uri
