"""Policy files: a valid file round-trips; every bad file of a corpus of >= 100 variants is refused by
`costtune policy apply` with exit 2, naming the file, the field and the value, and the store stays
byte for byte as it was (issue 10)."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from costtune.policies import load_policy_files, parse_policy
from storetools import sqlite_rows

from costtune.cli import main
from costtune.errors import SpecError, shown
from costtune.store import Store

BASE: dict[str, Any] = {
    "name": "vision-daily",
    "description": "team vision: sweeps on spot, $500 a day",
    "scope": {"tags": {"team": "vision"}},
    "window": {"period": "daily", "timezone": "Europe/Lisbon"},
    "cap_usd": 500,
    "soft_cap_usd": 400,
    "thresholds": [{"percent": 50, "of": "actual", "actions": ["log"]},
                   {"percent": 80, "of": "forecast", "actions": ["log", "webhook"]},
                   {"percent": 100, "actions": ["stop-launching"]}],
    "webhook": {"url": "http://127.0.0.1:9/hook", "timeout_s": 1, "retries": 2},
    "rules": {"denied_families": ["p4d", "p5"], "allowed_markets": ["spot"], "max_usd_per_hour": 5,
              "max_instances": 8, "required_tags": {"cost_centre": "cc-*"}, "amend": True},
}
_DELETE = object()


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node: Any = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
    if value is _DELETE:
        node.pop(last, None)
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return doc


# (field path to change, bad value, the path the error must name; None: the changed path)
CASES: list[tuple[str, Any, str | None]] = [
    *[("name", v, None) for v in (None, "", "has space", 12, "x" * 70, "-lead", True, ["a"], "a/b", "é")],
    ("name", _DELETE, "name"),
    *[("description", v, None) for v in (5, "x" * 2001, ["a"])],
    *[("scope", v, None) for v in ("everything", 5, [], "Global")],
    *[("scope.tags", v, None) for v in ({}, "team", None, [1])],
    ("scope.labels", {"team": "x"}, "scope.labels"),
    *[("scope.tags.team", v, None) for v in ("", ["a"], None, " vision", 1.5, True)],
    ("scope.tags", {"bad key!": "x"}, "scope.tags"),
    *[("window", v, None) for v in (5, [])],
    ("window", "hourly", "window.period"),
    *[("window.period", v, None) for v in ("hourly", None, 1, "Daily")],
    *[("window.timezone", v, None) for v in ("Mars/Base", "", 5, "../etc/passwd", "UTC+1", "/etc/localtime")],
    *[("window.reset_day", v, None) for v in (3, "monday")],  # a daily window has no reset day
    ("window", {"period": "weekly", "reset_day": "funday"}, "window.reset_day"),
    ("window", {"period": "weekly", "reset_day": 8}, "window.reset_day"),
    ("window", {"period": "weekly", "reset_day": 0}, "window.reset_day"),
    ("window", {"period": "monthly", "reset_day": 29}, "window.reset_day"),
    ("window", {"period": "monthly", "reset_day": 31}, "window.reset_day"),
    ("window", {"period": "monthly", "reset_day": "1st"}, "window.reset_day"),
    ("window", {"period": "monthly", "reset_day": True}, "window.reset_day"),
    ("window", {"period": "total", "timezone": "UTC"}, "window.timezone"),
    ("window", {"period": "total"}, "thresholds[1].of"),  # a forecast needs a window end
    ("window.start", "monday", "window.start"),
    *[("cap_usd", v, None) for v in (-1, "lots", 0, True, None, "1e400", 10 ** 12, "nan", [5], "$-3")],
    *[("soft_cap_usd", v, None) for v in (600, 500, -5, "x", 0)],
    *[("thresholds", v, None) for v in ("50%", 50, {"percent": 50})],
    *[("thresholds.0", v, None) for v in (50, "log", None)],
    *[("thresholds.0.percent", v, None) for v in (0, 1001, 50.5, "50", None, True, -10)],
    ("thresholds.2.percent", 50, "thresholds[2].percent"),  # 50% of actual is given twice
    *[("thresholds.0.of", v, None) for v in ("budget", None, 1)],
    *[("thresholds.0.actions", v, None) for v in ([], ["email"], ["log", "log"], 5, [None])],
    ("thresholds.0.when", "now", "thresholds[0].when"),
    ("webhook", _DELETE, "thresholds[1].actions[1]"),
    *[("webhook", v, None) for v in ("ftp://x", 100, [], "http://")],
    *[("webhook.url", v, None) for v in (5, "mailto:a@b", "http://a b", None)],
    *[("webhook.timeout_s", v, None) for v in (0, 100, -1, "2s", True, float("inf"))],
    *[("webhook.retries", v, None) for v in (11, -1, 1.5, "3")],
    ("webhook.secret", "x", "webhook.secret"),
    *[("rules", v, None) for v in ("none", [], 5)],
    *[("rules.allowed_instance_types", v, None) for v in ([], 5, [""], [" p4d"], [None], {})],
    *[("rules.denied_families", v, None) for v in ({}, [3.5], "")],
    *[("rules.allowed_regions", v, None) for v in ([], [""])],
    *[("rules.allowed_markets", v, None) for v in (["preemptible"], [], 5, "spot-then-on-demand")],
    *[("rules.max_usd_per_hour", v, None) for v in (-1, "x", True, None)],
    *[("rules.max_instances", v, None) for v in (0, 1.5, "8", 100001, None)],
    *[("rules.required_tags", v, None) for v in ({}, 5, {"cost centre": "*"}, {"cc": ""}, [1, 2])],
    *[("rules.amend", v, None) for v in ("yes", 1, None)],
    ("rules.min_usd_per_hour", 1, "rules.min_usd_per_hour"),
    ("caps_usd", 5, "caps_usd"),
    # globs fnmatch would read as literal text, the same glob allowed and denied, numbers given as text
    *[("rules.denied_families", v, "rules.denied_families[0]") for v in (["p4[d"], ["[vision"], ["cc-[]"], ["p4]"],
                                                                          ["g[!]"])],
    ("scope.tags.team", "[vision", "scope.tags.team"),
    ("rules.allowed_families", ["p4d", "g5"], "rules.denied_families"),
    ("rules", {"allowed_regions": ["us-*"], "denied_regions": ["us-*"]}, "rules.denied_regions"),
    *[("cap_usd", v, None) for v in ("5", "500")],
    ("rules.max_usd_per_hour", "5", "rules.max_usd_per_hour"),
    ("thresholds.0.percent", 150, "thresholds[0].percent"),  # actual spend never passes a hard cap
    ("budget", {"usd": 5}, "budget"),
]


def _expected(path: str, named: str | None) -> str:
    if named is not None:
        return named
    out = []
    for part in path.split("."):
        if part.isdigit():
            out[-1] += f"[{part}]"
        else:
            out.append(part)
    return ".".join(out)


def test_the_corpus_has_at_least_a_hundred_bad_files() -> None:
    assert len(CASES) >= 100


def test_a_valid_policy_parses_with_every_field() -> None:
    policy = parse_policy(BASE)
    assert policy.cap_micros == 500_000_000 and policy.soft_cap_micros == 400_000_000
    assert policy.window.timezone == "Europe/Lisbon" and policy.window.period == "daily"
    assert [t.label for t in policy.thresholds] == ["50% of actual", "80% of forecast", "100% of actual"]
    assert policy.rules.max_usd_per_hour_micros == 5_000_000 and policy.rules.max_instances == 8
    assert policy.matches({"team": "vision", "x": "y"}) and not policy.matches({"team": "nlp"})
    weekly = parse_policy({"name": "w", "window": {"period": "weekly", "reset_day": "sunday"}, "cap_usd": 1})
    assert weekly.window.reset_day == 7


def test_every_bad_policy_file_exits_2_naming_field_and_value_and_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    url = f"sqlite:///{db}"
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump({**BASE, "name": "already-there"}))
    runner = CliRunner()
    assert runner.invoke(main, ["policy", "apply", str(good), "--db", url]).exit_code == 0
    before = sqlite_rows(db)
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**BASE, "name": "would-be-new"}))
    for i, (path, value, named) in enumerate(CASES):
        doc = _set(BASE, path, value)
        listed = i % 3 == 0  # a third of them inside `policies: [...]`
        bad = tmp_path / f"bad{i}.yaml"
        bad.write_text(yaml.safe_dump({"policies": [doc]} if listed else doc, allow_unicode=True))
        field = ("policies[0]." if listed else "") + _expected(path, named)
        if i % 4 == 0:  # through the CLI (exit code, message, nothing stored)
            result = runner.invoke(main, ["policy", "apply", str(other), str(bad), "--db", url],
                                   catch_exceptions=False)
            assert result.exit_code == 2, (path, value, result.output)
            out = result.output
        else:  # the same validation `policy apply` runs before it opens the store
            with pytest.raises(SpecError) as exc:
                load_policy_files([other, bad])
            out = f"error: {exc.value}\n"
        # the field, or a part of it (actions[0] of actions), then the message
        assert str(bad) in out and re.search(re.escape(f": {field}") + r"(\[\d+\]|\.\w+)*(: | \(line)", out), \
            (path, value, out)
        if named is None and isinstance(value, int | str) and not isinstance(value, bool) and value != "":
            assert shown(value)[:30] in out or f"{value}" in out, (path, value, out)
        assert "Traceback" not in out
    assert sqlite_rows(db) == before
    store = Store(url)
    assert [p.name for p in store.policies()] == ["already-there"]
    assert store.policy_versions("would-be-new") == []


def test_yaml_that_is_not_a_policy_is_refused(tmp_path: Path) -> None:
    for i, text in enumerate(["", "- a\n- b\n", "name: [unclosed\n", "policies: []\n", "policies: 5\n",
                              "policies: [{name: a, cap_usd: 1}]\nextra: 1\n",
                              "policies: [{name: a, cap_usd: 1}, {name: a, cap_usd: 2}]\n"]):
        path = tmp_path / f"p{i}.yaml"
        path.write_text(text)
        with pytest.raises(SpecError):
            load_policy_files([path])
    with pytest.raises(SpecError, match="also defined in"):
        a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
        a.write_text("name: same\ncap_usd: 1\n")
        b.write_text("name: same\ncap_usd: 2\n")
        load_policy_files([a, b])


def test_apply_versions_list_show_remove_and_audit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    path = tmp_path / "team.yaml"
    path.write_text(yaml.safe_dump(BASE, sort_keys=False))
    runner = CliRunner()
    out = runner.invoke(main, ["policy", "apply", str(path), "--db", url]).output
    assert "policy vision-daily: version 1" in out
    assert "unchanged (version 1)" in runner.invoke(main, ["policy", "apply", str(path), "--db", url]).output
    path.write_text(yaml.safe_dump({**BASE, "cap_usd": 600}, sort_keys=False))
    assert "version 2" in runner.invoke(main, ["policy", "apply", str(path), "--db", url]).output
    listed = runner.invoke(main, ["policy", "list", "--db", url, "--format", "json"]).output
    assert '"cap_usd": 600' in listed and '"version": 2' in listed
    shown = runner.invoke(main, ["policy", "show", "vision-daily", "--version", "1", "--db", url]).output
    assert "cap_usd: 500" in shown and "# version 2: applied" in shown
    # removing asks first, as schedule remove and studies delete do (NU1 item 14): no terminal, no --yes: exit 2
    asked = runner.invoke(main, ["policy", "remove", "vision-daily", "--db", url])
    assert asked.exit_code == 2 and "not removed: policy 'vision-daily'" in asked.output and "--yes" in asked.output
    assert [p.name for p in Store(url).policies()] == ["vision-daily"]
    assert runner.invoke(main, ["policy", "remove", "vision-daily", "--yes", "--db", url]).exit_code == 0
    gone = runner.invoke(main, ["policy", "remove", "vision-daily", "--yes", "--db", url])
    assert gone.exit_code == 2 and "vision-daily" in gone.output
    store = Store(url)
    assert store.policies() == []
    assert [a.action for a in store.audit_log()] == ["policy.apply", "policy.apply", "policy.remove"]
    assert [v.removed for v in store.policy_versions("vision-daily")] == [False, False, True]
    recent = runner.invoke(main, ["audit", "--since", "1h", "--action", "policy.remove", "--format", "json",
                                  "--db", url]).output
    assert [r["action"] for r in json.loads(recent)] == ["policy.remove"]
    assert json.loads(runner.invoke(main, ["audit", "--since", "2999-01-01", "--format", "json", "--db", url]).output) \
        == []
    bad = runner.invoke(main, ["audit", "--since", "yesterday", "--db", url])
    assert bad.exit_code == 2 and "--since" in bad.output and "got yesterday" in bad.output


def test_policy_validate_runs_as_a_command(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nwindow: {period: daily, timezone: Mars/Base}\ncap_usd: 5\n")
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(BASE))
    done = subprocess.run([sys.executable, "-m", "costtune.cli", "policy", "validate", str(good), str(bad)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert f"{bad}: window.timezone: is not a known IANA time zone" in done.stderr and "got Mars/Base" in done.stderr


def test_status_and_explain(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    policies = tmp_path / "p.yaml"
    policies.write_text(yaml.safe_dump({"policies": [BASE, {"name": "org", "window": {"period": "monthly"},
                                                           "cap_usd": 1000, "rules": {"denied_regions": ["ap-*"]}}]}))
    runner = CliRunner()
    assert runner.invoke(main, ["policy", "apply", str(policies), "--db", url]).exit_code == 0
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({
        "name": "s", "tags": {"team": "vision", "cost_centre": "cc-1"}, "objective": {"metric": "loss"},
        "space": {"x": {"type": "uniform", "low": 0, "high": 1}}, "budget": {"trials": 2},
        "resources": {"provider": "simulated", "region": "us-east-1", "instance_type": "p4d.24xlarge",
                      "market": {"type": "categorical", "choices": ["on-demand", "spot"]},
                      "simulation": {"workload": "simworkloads:steady", "max_steps": 5}}}, sort_keys=False))
    out = runner.invoke(main, ["policy", "explain", str(sweep), "--db", url]).output
    assert "s (team=vision, cost_centre=cc-1): org, vision-daily" in out
    assert "p4d.24xlarge spot: deny: policy 'vision-daily': rules.denied_families: family p4d matches 'p4d'" in out
    status = json.loads(runner.invoke(main, ["policy", "status", "--db", url, "--format", "json"]).output)
    assert [(r["policy"], r["cap_micros"], r["spent_micros"]) for r in status] == [
        ("org", 1_000_000_000, 0), ("vision-daily", 500_000_000, 0)]
    assert status[1]["ledger_scope"].startswith("policy:vision-daily:daily:") and status[1]["alerts_fired"] == []
    checked = runner.invoke(main, ["policy", "check", str(policies), "--sweep", str(tmp_path)]).output
    assert f"{sweep} (team=vision, cost_centre=cc-1): org, vision-daily" in checked
    from datetime import UTC, datetime

    from costtune.policies.status import room_left

    store = Store(url)
    now = datetime.now(UTC)
    assert room_left(store, {"team": "vision"}, now) == 500_000_000  # the tighter of the two windows
    assert room_left(store, {"team": "nlp"}, now) == 1_000_000_000
    store.remove_policy("org")
    assert room_left(store, {"team": "nlp"}, now) is None


def test_validation_messages_match_their_rules() -> None:
    with pytest.raises(SpecError) as caught:
        parse_policy({**BASE, "cap_usd": -5})
    assert "more than 0" in str(caught.value) and ">= 0" not in str(caught.value)
    with pytest.raises(SpecError) as caught:
        parse_policy({"name": "rules-only", "window": {"period": "daily"}, "rules": {"denied_families": ["p4d"]}})
    assert caught.value.path == "window"
    one = parse_policy({"name": "one", "rules": {"denied_families": "p4d", "required_tags": "cost_centre"}})
    assert one.rules.denied_families == ("p4d",) and one.rules.required_tags == {"cost_centre": "*"}
    assert parse_policy({**BASE, "thresholds": [{"percent": 150, "of": "forecast"}], "webhook": None}
                        ).thresholds[0].percent == 150  # a forecast may pass the cap
    assert parse_policy({"name": "soft", "soft_cap_usd": 5, "thresholds": [{"percent": 150}]})


def test_lowering_a_cap_below_the_window_s_commitments_warns_and_spend_agrees(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from costtune.policies.windows import span

    url = f"sqlite:///{tmp_path / 's.db'}"
    runner = CliRunner()
    path = tmp_path / "p.yaml"
    daily = {"name": "team-daily", "window": {"period": "daily"}, "cap_usd": 10}
    path.write_text(yaml.safe_dump(daily))
    assert runner.invoke(main, ["policy", "apply", str(path), "--db", url]).exit_code == 0
    store = Store(url)
    scope = span(store.policies()[0], datetime.now(UTC)).scope
    store.reserve("k1", [scope], 3_000_000, caps={scope: 10_000_000})
    store.charge("k1", 2_000_000)
    store.reserve("k2", [scope], 1_000_000, caps={scope: 10_000_000})
    path.write_text(yaml.safe_dump({**daily, "cap_usd": 2.5}))
    applied = runner.invoke(main, ["policy", "apply", str(path), "--db", url])
    assert applied.exit_code == 0
    assert ("warning: policy team-daily: cap_usd $2.50 is below what its daily" in applied.output
            and "already committed, $3.00 ($2.00 spent, $1.00 held)" in applied.output.replace("\n", " "))
    shown = runner.invoke(main, ["policy", "status", "--db", url]).output
    assert "warning: policy team-daily: cap_usd $2.50" in shown
    status = json.loads(runner.invoke(main, ["policy", "status", "--db", url, "--format", "json"]).output)
    spend = json.loads(runner.invoke(main, ["spend", "--db", url, "--format", "json"]).output)
    assert status[0]["cap_micros"] == next(r["cap_micros"] for r in spend if r["scope"] == scope) == 2_500_000
    assert status[0]["over_cap"] is True
    # one rule for what is left (NU1 item 6: status said $0, spend -$0.50): JSON keeps the signed micros,
    # both tables say nothing is left and by how much the window is over
    assert status[0]["left_micros"] == next(r["left_micros"] for r in spend if r["scope"] == scope) == -500_000
    table = runner.invoke(main, ["spend", "--db", url]).output
    assert "$0 (over by $0.500)" in shown and "$0 (over by $0.500)" in table and "-$0.5" not in table


def test_policy_tables_and_prose_fit_80_columns_without_cutting_words(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from costtune.cli.common import out_console

    monkeypatch.setattr(out_console, "width", 80)
    url = f"sqlite:///{tmp_path / 's.db'}"
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"policies": [
        {"name": "vision-weekly-budget", "scope": {"tags": {"team": "vision"}}, "cap_usd": 8000,
         "window": {"period": "weekly", "timezone": "America/New_York", "reset_day": 7},
         "thresholds": [{"percent": 50, "actions": ["log"]}]},
        {"name": "vision-launch-rules", "scope": {"tags": {"team": "vision"}},
         "rules": {"denied_families": ["p4d", "p5"], "allowed_markets": ["spot"], "max_instances": 8,
                   "required_tags": {"cost_centre": "cc-*"}}}]}))
    runner = CliRunner()
    assert runner.invoke(main, ["policy", "apply", str(path), "--db", url]).exit_code == 0
    shown = {cmd: runner.invoke(main, ["policy", cmd, "--db", url]).output for cmd in ("list", "status")}
    shown["check"] = runner.invoke(main, ["policy", "check", str(path)]).output
    for cmd, out in shown.items():
        lines = [line for line in out.splitlines() if url.split("///")[1] not in line]  # the title names the store
        assert max(len(line) for line in lines) <= 80, (cmd, out)
        for word in ("America/New_York", "vision-weekly-budget"):
            assert word in out.replace("│", " "), (cmd, out)  # whole, never cut across lines
    assert "resets Sunday" in " ".join(shown["check"].split()) and "day 7 of the week" not in shown["check"]
    assert "; 1 threshold;" in " ".join(shown["check"].split())
    listed = " ".join(shown["list"].split())
    assert "thresholds 50% of actual (log)" in listed and "rules not families p4d,p5; markets spot" in listed
    unknown = runner.invoke(main, ["spend", "--by", "teem", "--db", url])
    assert unknown.exit_code == 2 and "--by: no sweep carries the tag 'teem'" in unknown.output


def test_check_warns_when_the_policies_together_deny_every_placement_of_a_sweep(tmp_path: Path) -> None:
    """NU1 item 4: two policies (spot only, on-demand only) that both match a sweep passed `check --sweep`
    (rc 0) while `explain` denied every placement and the run launched nothing."""
    policies = tmp_path / "c13.yaml"
    policies.write_text(yaml.safe_dump({"policies": [
        {"name": "only-spot", "scope": {"tags": {"team": "nlp"}}, "rules": {"allowed_markets": ["spot"]}},
        {"name": "only-od", "scope": {"tags": {"team": "n*"}}, "rules": {"allowed_markets": ["on-demand"]}}]}))
    sweep = tmp_path / "sweep.yaml"
    sim = {"provider": "simulated", "region": "us-east-1",
           "instance_type": {"type": "categorical", "choices": ["m5.large", "c5.xlarge"]},
           "market": {"type": "categorical", "choices": ["on-demand", "spot"]},
           "simulation": {"workload": "simworkloads:steady", "max_steps": 5}}
    sweep.write_text(yaml.safe_dump({"name": "s", "tags": {"team": "nlp"}, "objective": {"metric": "loss"},
                                     "space": {"x": {"type": "uniform", "low": 0, "high": 1}},
                                     "budget": {"trials": 2}, "resources": sim}))
    runner = CliRunner()
    checked = runner.invoke(main, ["policy", "check", str(policies), "--sweep", str(sweep)])
    assert checked.exit_code == 1, checked.output
    text = " ".join(checked.output.split())
    assert "2 policies valid" in text
    assert f"warning: {sweep}: policies only-od, only-spot deny every placement of this sweep" in text
    assert "m5.large on-demand: policy 'only-spot': rules.allowed_markets" in text
    assert "m5.large spot: policy 'only-od': rules.allowed_markets" in text
    # one policy that denies every placement alone: "policy NAME denies" (a tester saw "policy t1-rules deny")
    only_gpu = tmp_path / "gpu.yaml"
    only_gpu.write_text(yaml.safe_dump({"name": "gpu-only", "rules": {"allowed_instance_types": ["p3.*"]}}))
    one = runner.invoke(main, ["policy", "check", str(only_gpu), "--sweep", str(sweep)])
    assert one.exit_code == 1, one.output
    said = " ".join(one.output.split())
    assert "1 policy valid" in said and f"{sweep}: policy gpu-only denies every placement of this sweep" in said
    # one of them alone leaves placements that pass: valid, rc 0, no warning
    alone = tmp_path / "alone.yaml"
    alone.write_text(yaml.safe_dump({"policies": [yaml.safe_load(policies.read_text())["policies"][0]]}))
    fine = runner.invoke(main, ["policy", "check", str(alone), "--sweep", str(sweep)])
    assert fine.exit_code == 0 and "warning" not in fine.output


def test_check_names_both_files_of_a_duplicate_name_and_a_rules_only_policy_has_no_window(tmp_path: Path) -> None:
    """NU1 item 14: `check a.yaml b.yaml` said only "defined twice"; a rules-only window read "total"."""
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    rules_only = {"name": "org-rules", "rules": {"denied_families": ["p4d"]}}
    first.write_text(yaml.safe_dump(rules_only))
    second.write_text(yaml.safe_dump({"policies": [{**rules_only, "rules": {"denied_families": ["p5"]}}]}))
    runner = CliRunner()
    twice = runner.invoke(main, ["policy", "check", str(first), str(second)])
    assert twice.exit_code == 2
    text = " ".join(twice.output.split())
    assert f"{second}: name: policy 'org-rules' is also defined in {first}" in text
    url = f"sqlite:///{tmp_path / 's.db'}"
    applied = runner.invoke(main, ["policy", "apply", str(first), str(second), "--db", url])
    said = " ".join(applied.output.split())
    assert applied.exit_code == 2 and f"policy 'org-rules' is also defined in {first}" in said
    checked = " ".join(runner.invoke(main, ["policy", "check", str(first)]).output.split())
    assert "org-rules: scope global; window none (rules only);" in checked and "window total" not in checked
    assert runner.invoke(main, ["policy", "apply", str(first), "--db", url]).exit_code == 0
    listed = runner.invoke(main, ["policy", "list", "--db", url]).output
    assert "none (rules" in listed and "total" not in listed
