"""The price catalog: the bundled snapshot, exact look-ups, offers, overrides and their errors."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import importlib.resources
import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from costtune.errors import InputError, SpecError
from costtune.prices import (
    FAMILIES,
    Price,
    PriceNotFound,
    PriceSource,
    PriceTable,
    build_snapshot,
    derive_family,
    discounted_micros,
    parse_price_ref,
)

TODAY = datetime.date(2026, 9, 1)
SHARED_PRICES = Path(__file__).resolve().parents[2] / "shared" / "prices"


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.bundled()


def snapshot_rows() -> list[dict[str, str]]:
    text = importlib.resources.files("costtune.prices").joinpath("snapshot.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def price(**changes: object) -> Price:
    base = dict(provider="aws", region="us-east-1", instance_type="m5.large", market="on-demand",
                usd_per_hour_micros=96_000, vcpus=2, memory_gib=8.0, gpu_model=None, gpu_count=0,
                family="general", source="test", as_of=datetime.date(2026, 1, 1))
    return Price(**{**base, **changes})  # type: ignore[arg-type]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- the bundled snapshot ------------------------------------------------------------------------


def test_snapshot_covers_providers_regions_families(table: PriceTable) -> None:
    rows = table.rows()
    assert len(table) == len(rows) == 255
    assert len({(p.provider, p.instance_type) for p in rows}) >= 40
    for provider in ("aws", "gcp", "azure"):
        assert len({p.region for p in rows if p.provider == provider}) >= 2, provider
    types_by_family = Counter(family for family, _ in {(p.family, p.instance_type) for p in rows})
    for family in ("general", "compute", "memory", "gpu"):
        assert types_by_family[family] >= 4, family
    assert {p.family for p in rows} <= set(FAMILIES)


def test_snapshot_has_both_markets_for_most_rows(table: PriceTable) -> None:
    markets: dict[tuple[str, str, str], set[str]] = {}
    for p in table:
        markets.setdefault(p.key[:3], set()).add(p.market)
    one_market = sorted("/".join(k) for k, m in markets.items() if len(m) < 2)
    assert one_market == ["azure/eastus/Standard_NC40ads_H100_v5"]  # no spot price in any source
    assert len(one_market) / len(markets) < 0.05


def test_every_row_has_provenance_and_a_positive_exact_price(table: PriceTable) -> None:
    rows = snapshot_rows()
    assert len(rows) == len(table)
    for row in rows:
        assert row["source"].strip() and row["as_of"].strip(), row
        datetime.date.fromisoformat(row["as_of"])
        text = row["usd_per_hour"]
        micros = Decimal(text) * 1_000_000
        assert micros == micros.to_integral_value() and micros > 0, text
        got = table.rate(row["provider"], row["region"], row["instance_type"], row["market"])
        assert got.usd_per_hour_micros == int(micros)
        assert got.usd_per_hour == Decimal(text)  # Decimal text -> micros -> Decimal round trip
    assert all(p.usd_per_hour_micros > 0 and p.source and p.as_of for p in table)


def test_lookups_by_provider_region_type_market(table: PriceTable) -> None:
    m5 = table.rate("aws", "us-east-1", "m5.large", "on-demand")
    assert m5.usd_per_hour_micros == 96_000
    assert (m5.vcpus, m5.memory_gib, m5.family, m5.as_of) == (2, 8.0, "general", datetime.date(2023, 12, 13))
    assert "skypilot-catalog" in m5.source and "Karpenter" in m5.note
    assert table.rate("AWS", " us-west-2", "m5.large ", "Spot").usd_per_hour_micros == 32_900
    assert table.rate("gcp", "europe-west4", "e2-standard-4", "spot").usd_per_hour_micros == 70_528
    nc = table.rate("azure", "westeurope", "Standard_NC24ads_A100_v4", "on-demand")
    assert (nc.usd_per_hour_micros, nc.gpu_model, nc.gpu_count) == (4_775_000, "A100 (80GB)", 1)
    assert nc.family == "gpu"


def test_notes_caveats_are_applied(table: PriceTable) -> None:
    p4d = table.rate("aws", "us-east-1", "p4d.24xlarge", "on-demand")
    assert p4d.usd_per_hour_micros == 21_957_642
    assert "karpenter-provider-aws" in p4d.source and p4d.as_of == datetime.date(2026, 1, 19)
    assert "updated per Karpenter" in p4d.note and "32.7726" in p4d.note
    assert "expect a cut" in table.rate("aws", "us-west-2", "p4d.24xlarge", "on-demand").note
    assert "minimum across AZs" in table.rate("aws", "us-east-1", "t3.medium", "spot").note
    assert "stale: 2023" in table.rate("aws", "us-west-2", "m5.large", "on-demand").note
    assert "doubtful" in table.rate("azure", "eastus", "Standard_D2s_v5", "spot").note
    assert "doubtful" in table.rate("aws", "us-west-2", "p4d.24xlarge", "spot").note
    assert "doubtful" in table.rate("gcp", "us-central1", "n1-standard-8+1xT4", "spot").note
    assert "doubtful" not in table.rate("gcp", "europe-west4", "n1-standard-8+1xT4", "spot").note
    assert "stale" not in table.rate("gcp", "us-central1", "e2-standard-4", "on-demand").note


def test_spot_is_cheaper_than_on_demand_where_both_exist(table: PriceTable) -> None:
    exceptions = []
    for p in table.offers(markets="spot"):
        on_demand = table.rate(p.provider, p.region, p.instance_type, "on-demand")
        if p.usd_per_hour_micros >= on_demand.usd_per_hour_micros:
            exceptions.append(f"{p.describe()} vs on-demand {on_demand.usd_per_hour}")
    # The reference data has none today; if a refresh brings one, it is listed here, not hidden.
    assert exceptions == [], "\n".join(exceptions)


def test_per_zone_aws_spot_prices(table: PriceTable) -> None:
    zones = table.spot_zones("aws", "us-east-1", "m5.large")
    assert [z.zone for z in zones][:1] == ["use1-az5"] and len(zones) == 5
    assert [z.usd_per_hour_micros for z in zones] == sorted(z.usd_per_hour_micros for z in zones)
    regional = table.rate("aws", "us-east-1", "m5.large", "spot")
    assert regional.usd_per_hour_micros == zones[0].usd_per_hour_micros  # the regional row is the minimum
    pinned = table.rate("aws", "us-east-1", "m5.large", "spot", zone="use1-az2")
    assert (pinned.zone, pinned.usd_per_hour_micros, pinned.vcpus) == ("use1-az2", 42_400, 2)
    # On-demand and regional-list spot prices hold in every zone.
    assert table.rate("aws", "us-east-1", "m5.large", "on-demand", zone="use1-az2").zone is None
    assert table.rate("gcp", "us-central1", "c2-standard-8", "spot", zone="us-central1-a").zone is None
    with pytest.raises(PriceNotFound, match=r"in zone use1-az3; did you mean: zone use1-az1"):
        table.rate("aws", "us-east-1", "m5.large", "spot", zone="use1-az3")


def test_bundled_is_cached_and_not_mutated_by_overrides(table: PriceTable, tmp_path: Path) -> None:
    assert PriceTable.bundled() is table
    path = write(tmp_path, "o.yaml", "discounts: [{provider: aws, percent: 50}]\n")
    assert table.with_overrides(path, today=TODAY).rate("aws", "us-east-1", "m5.large", "on-demand") \
        .usd_per_hour_micros == 48_000
    assert table.rate("aws", "us-east-1", "m5.large", "on-demand").usd_per_hour_micros == 96_000


@pytest.mark.skipif(not SHARED_PRICES.is_dir(), reason=f"reference prices not at {SHARED_PRICES}")
def test_snapshot_is_what_the_build_script_writes(capsys: pytest.CaptureFixture[str]) -> None:
    assert build_snapshot.main([str(SHARED_PRICES), "--check"]) == 0
    out = capsys.readouterr().out
    assert "azure/eastus/Standard_NC40ads_H100_v5 spot: no price in the source" in out


def test_family_derivation() -> None:
    cases = {
        ("aws", "t3.large"): "burstable", ("aws", "c6i.xlarge"): "compute",
        ("aws", "r5.xlarge"): "memory", ("aws", "m6i.xlarge"): "general",
        ("gcp", "n2-highmem-8"): "memory", ("gcp", "c3-highcpu-8"): "compute",
        ("gcp", "e2-standard-4"): "general", ("gcp", "e2-small"): "burstable",
        ("gcp", "m1-ultramem-40"): "memory",
        ("azure", "Standard_F8s_v2"): "compute", ("azure", "Standard_E8s_v5"): "memory",
        ("azure", "Standard_D4s_v5"): "general", ("azure", "Standard_B2s"): "burstable",
    }
    for (provider, name), family in cases.items():
        assert derive_family(provider, name, 0, 4, 16.0) == family, name
    assert derive_family("aws", "g4dn.xlarge", 1, 4, 16.0) == "gpu"
    assert derive_family("onprem", "box", 0, 4, 64.0) == "memory"  # unknown series: GiB per vCPU


# -- look-up errors and refs ---------------------------------------------------------------------


def test_price_not_found_suggests_alternatives(table: PriceTable) -> None:
    with pytest.raises(PriceNotFound) as err:
        table.rate("azure", "eastus", "Standard_NC40ads_H100_v5", "spot")
    assert isinstance(err.value, InputError)
    assert err.value.key == ("azure", "eastus", "Standard_NC40ads_H100_v5", "spot")
    message = str(err.value)
    assert message.startswith("no price for azure/eastus/Standard_NC40ads_H100_v5 spot; did you mean:")
    assert "azure/eastus/Standard_NC40ads_H100_v5 on-demand" in message
    assert "azure/westeurope/Standard_NC40ads_H100_v5 spot" in message
    with pytest.raises(PriceNotFound, match=r"did you mean: aws/us-east-1/m5\.large on-demand"):
        table.rate("aws", "us-east-1", "m5.larg", "on-demand")
    with pytest.raises(PriceNotFound, match=r"did you mean: aws/us-east-1/m5\.large spot"):
        table.rate("aws", "us-east1", "m5.large", "spot")
    with pytest.raises(PriceNotFound, match=r"no price for aws/us-east-1/zz9\.huge on-demand; add it"):
        table.rate("aws", "us-east-1", "zz9.huge", "on-demand")


def test_parse_price_ref() -> None:
    assert parse_price_ref("aws/us-east-1/m5.large") == ("aws", "us-east-1", "m5.large")
    assert parse_price_ref(" GCP/us-central1/n2-standard-8 ") == ("gcp", "us-central1", "n2-standard-8")
    assert parse_price_ref("onprem/lab-1/dgx-a100") == ("onprem", "lab-1", "dgx-a100")
    bad_refs = ("aws/us-east-1", "aws/us-east-1/m5.large/spot", "aws//m5.large", "aws/us east 1/m5.large", "")
    for bad in bad_refs:
        with pytest.raises(SpecError, match=r"^resources\.price_as: must be provider/region/instance_type"):
            parse_price_ref(bad)
    with pytest.raises(SpecError, match=r"^x\.price_as: must be provider/region/instance_type.*got 3"):
        parse_price_ref(3, "x.price_as")
    with pytest.raises(SpecError, match=r"unknown provider 'amazon'; known: aws, gcp, azure, onprem"):
        parse_price_ref("amazon/us-east-1/m5.large")


# -- offers --------------------------------------------------------------------------------------


def test_offers_cheapest_first_with_filters(table: PriceTable) -> None:
    everything = table.offers()
    assert len(everything) == len(table)
    assert [p.usd_per_hour_micros for p in everything] == sorted(p.usd_per_hour_micros for p in everything)
    gpus = table.offers(gpu_model="a100", min_gpus=8, markets="on-demand")
    assert gpus and all(p.gpu_model and p.gpu_model.startswith("A100") and p.gpu_count >= 8 for p in gpus)
    assert gpus[0].ref == "aws/us-east-1/p4d.24xlarge"  # the Karpenter-corrected price wins
    only_80 = table.offers(gpu_model="A100 (80GB)")
    assert only_80 and {p.gpu_model for p in only_80} == {"A100 (80GB)"}
    big = table.offers(providers=["gcp", "azure"], min_vcpus=16, min_memory_gib=64, family="memory")
    assert big and all(p.provider in ("gcp", "azure") and p.vcpus >= 16 and p.memory_gib >= 64  # type: ignore[operator]
                       and p.family == "memory" for p in big)
    one = table.offers(providers="aws", regions="us-west-2", instance_types=["t3.medium"], markets="spot")
    assert [p.usd_per_hour_micros for p in one] == [14_400]
    assert table.offers(family=["burstable"], providers="gcp") == []
    with pytest.raises(SpecError, match=r"^markets: must be one of on-demand, spot, got preemptible"):
        table.offers(markets=["preemptible"])
    with pytest.raises(SpecError, match=r"^family: must be one of"):
        table.offers(family="gpus")


def test_offers_ties_are_ordered_by_provider_region_type() -> None:
    tied = PriceTable([
        price(provider="gcp", region="b", instance_type="x"),
        price(provider="aws", region="b", instance_type="y"),
        price(provider="aws", region="a", instance_type="z"),
        price(provider="aws", region="a", instance_type="w"),
        price(provider="aws", region="a", instance_type="cheap", usd_per_hour_micros=1),
    ])
    assert [p.ref for p in tied.offers()] == ["aws/a/cheap", "aws/a/w", "aws/a/z", "aws/b/y", "gcp/b/x"]


# -- overrides -----------------------------------------------------------------------------------

OVERRIDES = """\
prices:
  - {provider: aws, region: us-east-1, instance_type: m5.large, market: on-demand, usd_per_hour: 0.08,
     source: "enterprise agreement 2026", as_of: 2026-03-01}
  - {provider: onprem, region: lab-1, instance_type: dgx-a100, usd_per_hour: 9.50,
     gpu_model: A100 (80GB), gpu_count: 8, vcpus: 128, memory_gib: 1024}
  - {provider: gcp, region: us-east1, instance_type: n2-standard-8, market: spot, usd_per_hour: "0.1"}
discounts:
  - {provider: aws, market: on-demand, percent: 12, source: "EDP 2026"}
  - {provider: aws, region: us-east-1, instance_type: m5.large, market: spot, percent: 12.5}
"""


def test_override_replaces_exactly_with_its_own_source(table: PriceTable, tmp_path: Path) -> None:
    path = write(tmp_path, "prices.yaml", OVERRIDES)
    new = table.with_overrides(path, today=TODAY)
    m5 = new.rate("aws", "us-east-1", "m5.large", "on-demand")
    assert m5.usd_per_hour_micros == 80_000  # exact: the 12% discount does not stack on a negotiated rate
    assert (m5.source, m5.as_of) == ("enterprise agreement 2026", datetime.date(2026, 3, 1))
    assert (m5.vcpus, m5.family) == (2, "general")  # specs kept from the catalog
    fresh = new.rate("gcp", "us-east1", "n2-standard-8", "spot")  # a new region: specs from the same type
    assert (fresh.usd_per_hour_micros, fresh.source, fresh.as_of) == (100_000, str(path), TODAY)
    assert (fresh.vcpus, fresh.memory_gib) == (8, 32.0)
    assert len(new) == len(table) + 2


def test_percent_discounts_are_integer_and_round_up(table: PriceTable, tmp_path: Path) -> None:
    new = table.with_overrides(write(tmp_path, "prices.yaml", OVERRIDES), today=TODAY)
    r5 = new.rate("aws", "us-west-2", "r5.xlarge", "on-demand")
    assert r5.usd_per_hour_micros == 221_760  # 252000 x 88 / 100
    assert "EDP 2026" in r5.source and "12% discount on list $0.252/h" in r5.note
    assert r5.as_of == datetime.date(2023, 12, 13)  # no fresher than the list price it discounts
    p4d = new.rate("aws", "us-east-1", "p4d.24xlarge", "on-demand")
    assert p4d.usd_per_hour_micros == -(-21_957_642 * 88 // 100) == 19_322_725
    assert new.rate("aws", "us-east-1", "m5.large", "spot").usd_per_hour_micros == 34_563  # 39500 x 0.875
    assert new.spot_zones("aws", "us-east-1", "m5.large")[0].usd_per_hour_micros == 34_563  # zones too
    untouched = ("aws", "us-east-1", "m5.xlarge", "spot")
    assert new.rate(*untouched) == table.rate(*untouched)
    assert new.rate("gcp", "us-central1", "e2-standard-4", "on-demand").usd_per_hour_micros == 134_023
    assert discounted_micros(41_600, "33.3") == 27_748  # 27747.2 rounded up
    assert discounted_micros(1, 50) == 1  # never rounds a price down to free


def test_onprem_rows(table: PriceTable, tmp_path: Path) -> None:
    new = table.with_overrides(write(tmp_path, "prices.yaml", OVERRIDES), today=TODAY)
    dgx = new.rate("onprem", "lab-1", "dgx-a100", "on-demand")
    assert (dgx.usd_per_hour_micros, dgx.gpu_count, dgx.family, dgx.as_of) == (9_500_000, 8, "gpu", TODAY)
    assert dgx in new.offers(providers="onprem")
    assert new.offers(gpu_model="A100", min_gpus=8, providers="onprem") == [dgx]


def test_csv_override_file(table: PriceTable, tmp_path: Path) -> None:
    path = write(tmp_path, "prices.csv", "provider,region,instance_type,market,usd_per_hour,source\n"
                 "aws,us-east-1,c5.xlarge,spot,0.05,spot fleet quote\n"
                 "onprem,lab-1,cpu-box,,0.02,\n")
    new = table.with_overrides(path, today=TODAY)
    c5 = new.rate("aws", "us-east-1", "c5.xlarge", "spot")
    assert (c5.usd_per_hour_micros, c5.source, c5.as_of, c5.vcpus) == (50_000, "spot fleet quote", TODAY, 4)
    assert new.spot_zones("aws", "us-east-1", "c5.xlarge") == []  # zone data described the old number
    assert new.rate("aws", "us-east-1", "c5.xlarge", "spot", zone="use1-az1") == c5
    box = new.rate("onprem", "lab-1", "cpu-box", "on-demand")
    assert (box.source, box.vcpus, box.family) == (str(path), None, "general")


@pytest.mark.parametrize(("text", "message"), [
    ("prices:\n  - {provider: aws, region: r, instance_type: t, market: spot, usd_per_hour: 1}\n"
     "  - {provider: aws, region: r, instance_type: u, market: spot, usd_per_hour: 1}\n"
     "  - {provider: aws, region: r, instance_type: v, market: spot, usd_per_hour: 0}\n",
     "prices.yaml: prices[2].usd_per_hour: must be > 0, got 0"),
    ("prices: [{provider: aws, region: r, instance_type: t, market: spot, usd_per_hour: -0.5}]",
     "prices.yaml: prices[0].usd_per_hour: must be > 0, got -0.5"),
    ("prices: [{provider: aws, region: r, instance_type: t, market: spot}]",
     "prices.yaml: prices[0].usd_per_hour: is required"),
    ("prices: [{provider: aws, region: r, instance_type: t, market: spot, usd_per_hour: 'free'}]",
     "prices.yaml: prices[0].usd_per_hour: must be a dollar amount, got free"),
    ("prices: [{provider: aws, region: r, instance_type: t, market: preemptible, usd_per_hour: 1}]",
     "prices.yaml: prices[0].market: must be one of on-demand, spot, got preemptible"),
    ("prices: [{provider: amazon, region: r, instance_type: t, market: spot, usd_per_hour: 1}]",
     "prices.yaml: prices[0].provider: must be one of aws, gcp, azure, onprem, got amazon"),
    ("prices: [{provider: aws, region: r, instance_type: t, market: spot, usd_per_hour: 1, cost: 2}]",
     "prices.yaml: prices[0].cost: unknown field"),
    ("prices: [{provider: onprem, region: r, instance_type: t, usd_per_hour: 1, gpu_count: 2}]",
     "prices.yaml: prices[0].gpu_model: is required when gpu_count > 0"),
    ("prices: [{provider: onprem, region: r, instance_type: t, usd_per_hour: 1, as_of: last week}]",
     "prices.yaml: prices[0].as_of: must be a date YYYY-MM-DD, got 'last week'"),
    ("prices: [{provider: onprem, region: r, instance_type: t, usd_per_hour: 1, vcpus: 0}]",
     "prices.yaml: prices[0].vcpus: must be an integer >= 1, got 0"),
    ("prices:\n  - {provider: onprem, region: r, instance_type: t, usd_per_hour: 1}\n"
     "  - {provider: onprem, region: r, instance_type: t, usd_per_hour: 2}\n",
     "prices.yaml: prices[1]: repeats prices[0] (onprem/r/t on-demand)"),
    ("discounts: [{provider: aws, percent: 100}]",
     "prices.yaml: discounts[0].percent: must be > 0 and < 100, got 100"),
    ("discounts: [{provider: aws, percent: 0}]",
     "prices.yaml: discounts[0].percent: must be > 0 and < 100, got 0"),
    ("discounts: [{market: spot, percent: 5}]", "prices.yaml: discounts[0].provider: is required"),
    ("discounts: [{provider: aws, region: mars-1, percent: 5}]",
     "prices.yaml: discounts[0]: matches no price in the catalog (aws/mars-1/*/*)"),
    ("discounts: [{provider: aws, percent: 5}, {provider: aws, instance_type: m5.large, percent: 7}]",
     "prices.yaml: discounts[1]: overlaps discounts[0] on aws/"),
    ("prices: {provider: aws}", "prices.yaml: prices: must be a list"),
    ("rates: []", "prices.yaml: rates: unknown field; allowed: prices, discounts"),
    ("- 1\n- 2\n", "prices.yaml: must be a mapping with prices and/or discounts"),
    ("", "prices.yaml: is empty"),
    ("prices: [unclosed", "prices.yaml: is not valid YAML"),
])
def test_override_errors_name_file_row_and_field(
    table: PriceTable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "prices.yaml", text)
    with pytest.raises(SpecError) as err:
        table.with_overrides("prices.yaml", today=TODAY)
    assert str(err.value).startswith(message), str(err.value)


def test_override_file_errors(table: PriceTable, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError, match=r"^missing\.yaml: no such price override file$"):
        table.with_overrides("missing.yaml")
    write(tmp_path, "prices.json", "{}")
    with pytest.raises(SpecError, match=r"^prices\.json: a price override file must end in \.yaml"):
        table.with_overrides("prices.json")
    write(tmp_path, "prices.csv", "provider,region,instance_type,market,usd_per_hour\naws,r,t,spot,0.1\n"
          "aws,r,u,spot,0\n")
    with pytest.raises(SpecError, match=r"^prices\.csv:3: usd_per_hour: must be > 0, got '0'$"):
        table.with_overrides("prices.csv")
    write(tmp_path, "cols.csv", "provider,region,instance_type,price\n")
    with pytest.raises(SpecError, match=r"^cols\.csv:1: unknown column; allowed: .*, got price"):
        table.with_overrides("cols.csv")


def test_from_csv_rejects_zero_and_unsourced_rows(tmp_path: Path) -> None:
    header = "provider,region,instance_type,market,usd_per_hour,source,as_of\n"
    good = write(tmp_path, "ok.csv", header + "aws,r,t,spot,0.25,quote,2026-01-02\n")
    assert PriceTable.from_csv(good).rate("aws", "r", "t", "spot").usd_per_hour_micros == 250_000
    zero = write(tmp_path, "zero.csv", header + "aws,r,t,spot,0.0,quote,2026-01-02\n")
    with pytest.raises(SpecError, match=r"zero\.csv:2: usd_per_hour: must be > 0, got '0\.0'"):
        PriceTable.from_csv(zero)
    blank = write(tmp_path, "blank.csv", header + "aws,r,t,spot,,quote,2026-01-02\n")
    with pytest.raises(SpecError, match=r"blank\.csv:2: usd_per_hour: is required"):
        PriceTable.from_csv(blank)
    unsourced = write(tmp_path, "unsourced.csv", header + "aws,r,t,spot,0.25,,2026-01-02\n")
    with pytest.raises(SpecError, match=r"unsourced\.csv:2: source: is required"):
        PriceTable.from_csv(unsourced)
    with pytest.raises(ValueError, match="must be an int > 0"):
        price(usd_per_hour_micros=0)


# -- the live-refresh seam -----------------------------------------------------------------------


def test_price_source_protocol_feeds_with_prices(table: PriceTable) -> None:
    class FakeSpotFeed:
        def fetch(self, regions: list[str], instance_types: list[str]) -> list[Price]:
            base = table.rate("aws", "us-east-1", "m5.large", "spot")
            fetched = dataclasses.replace(base, usd_per_hour_micros=41_000, as_of=TODAY, note="",
                                          source="describe_spot_price_history")
            return [fetched, dataclasses.replace(fetched, zone="use1-az1"),
                    dataclasses.replace(fetched, zone="use1-az2", usd_per_hour_micros=45_000)]

    source = FakeSpotFeed()
    assert isinstance(source, PriceSource)
    new = table.with_prices(source.fetch(["us-east-1"], ["m5.large"]))
    assert new.rate("aws", "us-east-1", "m5.large", "spot").as_of == TODAY
    assert [z.zone for z in new.spot_zones("aws", "us-east-1", "m5.large")] == ["use1-az1", "use1-az2"]
    with pytest.raises(ValueError, match="two new prices"):
        table.with_prices([price(), price()])


def test_prices_command_filters_and_sorts_cheapest_first(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from costtune.cli import main

    runner = CliRunner()
    result = runner.invoke(main, ["prices", "--provider", "aws", "--gpu", "T4", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows and all(r["provider"] == "aws" and r["gpu_model"] == "T4" for r in rows)
    micros = [r["usd_per_hour_micros"] for r in rows]
    assert micros == sorted(micros)
    assert all(r["source"] and r["as_of"] for r in rows)
    override = tmp_path / "rates.yaml"
    override.write_text("prices:\n  - {provider: aws, region: us-east-1, instance_type: m5.large, "
                        "market: on-demand, usd_per_hour: 0}\n")
    bad = runner.invoke(main, ["prices", "--overrides", str(override)])
    assert bad.exit_code == 2 and "usd_per_hour" in bad.output


def test_a_region_or_type_no_price_has_is_an_error_naming_the_flag_not_an_empty_table() -> None:
    """`--region eu-north-9` exited 0 with "no price matches" while `--gpu Z9000` exited 2: a name the catalog does
    not hold is a typo, refused with the flag, the value and the nearest names; filters that are valid but match
    nothing together still print the empty-result line with exit 0."""
    from click.testing import CliRunner

    from costtune.cli import main

    runner = CliRunner()
    region = runner.invoke(main, ["prices", "--region", "us-east-2"])
    assert region.exit_code == 2
    assert "--region: no price has region 'us-east-2'" in region.output and "us-east-1" in region.output
    kind = runner.invoke(main, ["prices", "--region", "us-east-1", "--type", "m5.huge"])
    assert kind.exit_code == 2 and "--type: no price has instance type 'm5.huge'; did you mean" in kind.output
    empty = runner.invoke(main, ["prices", "--region", "us-east-1", "--min-vcpus", "999"])
    assert empty.exit_code == 0 and "no price matches these filters" in empty.output
