"""Policy windows with an injected clock, and admission verdicts (pure: no store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from costtune.policies import LaunchRequest, admit, parse_policy, span
from costtune.policies.windows import forecast_micros


def _policy(**window: object) -> object:
    return parse_policy({"name": "team", "window": window, "cap_usd": 100})


def test_lisbon_month_end_counts_in_that_month_a_minute_later_in_the_next() -> None:
    monthly = _policy(period="monthly", timezone="Europe/Lisbon")
    # 31 December 23:59 in Lisbon (WET, UTC+0 in winter) and a minute later
    last = span(monthly, datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    first = span(monthly, datetime(2027, 1, 1, 0, 0, tzinfo=UTC))
    assert last.scope == "policy:team:monthly:2026-12-01" and first.scope == "policy:team:monthly:2027-01-01"
    # 31 May 23:59 in Lisbon is 22:59 UTC (WEST, UTC+1): still May; 23:00 UTC is already June there
    may = span(monthly, datetime(2026, 5, 31, 22, 59, tzinfo=UTC))
    june = span(monthly, datetime(2026, 5, 31, 23, 0, tzinfo=UTC))
    assert may.scope.endswith(":2026-05-01") and june.scope.endswith(":2026-06-01")
    assert june.start == datetime(2026, 5, 31, 23, 0, tzinfo=UTC)  # Lisbon's midnight, in UTC
    assert may.end == june.start


def test_daily_window_resets_at_local_midnight_on_dst_days() -> None:
    daily = _policy(period="daily", timezone="Europe/Lisbon")
    # 2026-03-29: clocks go forward at 01:00 -> 02:00; the day is 23 hours long
    spring = span(daily, datetime(2026, 3, 29, 12, 0, tzinfo=UTC))
    assert spring.start == datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
    assert spring.end == datetime(2026, 3, 29, 23, 0, tzinfo=UTC)
    assert spring.end - spring.start == timedelta(hours=23)
    assert span(daily, datetime(2026, 3, 29, 22, 59, tzinfo=UTC)).scope.endswith(":2026-03-29")
    assert span(daily, datetime(2026, 3, 29, 23, 0, tzinfo=UTC)).scope.endswith(":2026-03-30")
    # 2026-10-25: clocks go back at 02:00 -> 01:00; the day is 25 hours long
    autumn = span(daily, datetime(2026, 10, 25, 12, 0, tzinfo=UTC))
    assert autumn.end - autumn.start == timedelta(hours=25)
    assert span(daily, datetime(2026, 10, 25, 23, 59, tzinfo=UTC)).scope.endswith(":2026-10-25")
    assert span(daily, datetime(2026, 10, 26, 0, 0, tzinfo=UTC)).scope.endswith(":2026-10-26")
    # another zone: New York's midnight is 05:00 UTC in winter
    ny = _policy(period="daily", timezone="America/New_York")
    assert span(ny, datetime(2026, 12, 1, 4, 59, tzinfo=UTC)).scope.endswith(":2026-11-30")
    assert span(ny, datetime(2026, 12, 1, 5, 0, tzinfo=UTC)).scope.endswith(":2026-12-01")


def test_weekly_and_monthly_reset_days_and_total() -> None:
    weekly = _policy(period="weekly", timezone="UTC", reset_day="wednesday")
    # Monday 2026-11-30 belongs to the week that began on Wednesday 2026-11-25
    assert span(weekly, datetime(2026, 11, 30, 12, tzinfo=UTC)).scope.endswith(":2026-11-25")
    assert span(weekly, datetime(2026, 12, 2, 0, tzinfo=UTC)).scope.endswith(":2026-12-02")
    mid = _policy(period="monthly", timezone="UTC", reset_day=15)
    assert span(mid, datetime(2026, 1, 14, 23, 59, tzinfo=UTC)).scope.endswith(":2025-12-15")
    assert span(mid, datetime(2026, 1, 15, tzinfo=UTC)).scope.endswith(":2026-01-15")
    assert span(mid, datetime(2026, 1, 20, tzinfo=UTC)).end == datetime(2026, 2, 15, tzinfo=UTC)
    total = parse_policy({"name": "all", "cap_usd": 5})
    assert span(total, datetime(2030, 1, 1, tzinfo=UTC)).scope == "policy:all:total"


def test_forecast_is_the_run_rate_to_the_window_end() -> None:
    daily = _policy(period="daily", timezone="UTC")
    window = span(daily, datetime(2026, 11, 30, 6, tzinfo=UTC))
    assert forecast_micros(10_000_000, window, datetime(2026, 11, 30, 6, tzinfo=UTC)) == 40_000_000  # a quarter gone
    assert forecast_micros(1_000_000, window, datetime(2026, 11, 30, 0, 1, tzinfo=UTC)) == 10_000_000  # floor: 1/10


RULES = {"name": "vision-rules", "scope": {"tags": {"team": "vision"}},
         "rules": {"denied_instance_types": ["p4d.*"], "allowed_regions": ["us-*", "eu-west-1"],
                   "required_tags": {"cost_centre": "cc-*"}}}
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def _request(**kw: object) -> LaunchRequest:
    base: dict[str, object] = {"tags": {"team": "vision", "cost_centre": "cc-1"}, "instance_type": "g5.xlarge",
                               "market": "spot", "rate_micros": 400_000, "regions": ("us-east-1",)}
    return LaunchRequest(**{**base, **kw})  # type: ignore[arg-type]


def test_denials_name_the_policy_and_the_rule() -> None:
    rules = [parse_policy(RULES)]
    assert admit(_request(), rules, NOW).kind == "allow"
    denied = admit(_request(instance_type="p4d.24xlarge"), rules, NOW)
    assert denied.kind == "deny" and denied.policy == "vision-rules"
    assert denied.reason == "policy 'vision-rules': rules.denied_instance_types: p4d.24xlarge matches 'p4d.*'"
    region = admit(_request(regions=("ap-south-1",)), rules, NOW)
    assert region.kind == "deny" and "rules.allowed_regions: region ap-south-1" in region.reason
    untagged = admit(_request(tags={"team": "vision"}), rules, NOW)
    assert untagged.kind == "deny" and "rules.required_tags: the sweep has no tag 'cost_centre'" in untagged.reason
    wrong = admit(_request(tags={"team": "vision", "cost_centre": "finance"}), rules, NOW)
    assert "tag cost_centre='finance' does not match 'cc-*'" in wrong.reason
    assert admit(_request(tags={"team": "nlp"}, instance_type="p4d.24xlarge"), rules, NOW).matched == ()


def test_amend_turns_on_demand_into_spot_or_a_cheaper_allowed_type() -> None:
    spot_only = parse_policy({"name": "spot", "rules": {"allowed_markets": ["spot"], "amend": True}})
    choices = {("g5.xlarge", "on-demand"): 1_006_000, ("g5.xlarge", "spot"): 400_000, ("m5.large", "spot"): 35_000}
    verdict = admit(_request(market="on-demand", rate_micros=1_006_000, choices=choices), [spot_only], NOW)
    assert verdict.kind == "amend" and verdict.policy == "spot"
    assert (verdict.request.instance_type, verdict.request.market) == ("g5.xlarge", "spot")  # same type kept
    assert verdict.asked is not None and verdict.asked.market == "on-demand"
    cheap = parse_policy({"name": "cheap", "rules": {"max_usd_per_hour": 0.5, "amend": True}})
    pricey = {("p3.2xlarge", "spot"): 900_000, ("g4dn.xlarge", "spot"): 160_000, ("c5.xlarge", "spot"): 60_000}
    moved = admit(_request(instance_type="p3.2xlarge", rate_micros=900_000, choices=pricey), [cheap], NOW)
    assert moved.kind == "amend" and moved.request.instance_type == "c5.xlarge"  # the cheapest that passes
    strict = parse_policy({"name": "strict", "rules": {"allowed_markets": ["spot"]}})  # no amend: deny
    assert admit(_request(market="on-demand", choices=choices), [strict], NOW).kind == "deny"
    nothing = admit(_request(market="on-demand", choices={("g5.xlarge", "on-demand"): 1}), [spot_only], NOW)
    assert nothing.kind == "deny" and "no placement among the sweep's choices" in nothing.reason


def test_nested_scopes_all_apply_and_stop_launching_holds_the_window() -> None:
    team = parse_policy({"name": "team", "scope": {"tags": {"team": "vision"}}, "window": {"period": "daily"},
                         "cap_usd": 10, "thresholds": [{"percent": 90, "actions": ["stop-launching"]}]})
    org = parse_policy({"name": "org", "window": {"period": "monthly"}, "cap_usd": 1000})
    verdict = admit(_request(), [team, org], NOW, lambda scope: (0, 0))
    assert verdict.kind == "allow" and verdict.matched == ("org", "team")
    assert verdict.caps == {"policy:org:monthly:2026-11-01": 1_000_000_000,
                            "policy:team:daily:2026-11-30": 10_000_000}
    spent = {"policy:team:daily:2026-11-30": (8_000_000, 1_000_000)}
    stopped = admit(_request(), [team, org], NOW, lambda scope: spent.get(scope, (0, 0)))
    assert stopped.kind == "deny" and "thresholds: 90% of actual reached" in stopped.reason
    assert admit(_request(), [team, org], NOW + timedelta(days=1), lambda scope: spent.get(scope, (0, 0))).kind \
        == "allow"  # the next day is a new window
