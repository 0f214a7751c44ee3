"""A local trial priced by ``resources.usd_per_hour`` has no market: market rules do not apply to it and
the books show none for it (NU1 item 1: a global ``allowed_markets: spot`` blocked every workstation sweep,
and ``spend --by market`` / ``trials`` filed local spend under on-demand)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner
from costtune.policies import parse_policy
from sqlmodel import Session, select

from costtune.cli import main
from costtune.spec.resources import parse_resources
from costtune.store import Store
from costtune.store.models import AttemptRow

TRIAL = "import costtune\ncosttune.report(step=0, loss=0.5)\n"


def _local_sweep(tmp_path: Path) -> Path:
    (tmp_path / "trial.py").write_text(TRIAL, encoding="utf-8")
    sweep = {"name": "loc-1", "objective": {"metric": "loss", "mode": "min"},
             "space": {"x": {"type": "uniform", "low": 0, "high": 1}}, "sampler": {"type": "random", "seed": 1},
             "scheduler": {"type": "fifo"}, "budget": {"trials": 1, "usd": 0.05},
             "resources": {"provider": "local", "usd_per_hour": 3.6}, "workdir": str(tmp_path),
             "command": [sys.executable, "trial.py"]}
    path = tmp_path / "local.yaml"
    path.write_text(yaml.safe_dump(sweep), encoding="utf-8")
    return path


def test_market_rules_skip_a_placement_with_no_market() -> None:
    res = parse_resources({"provider": "local", "usd_per_hour": 3.6})
    assert res.market is None and res.placement({}) == (None, None)
    rules = parse_policy({"name": "g", "rules": {"allowed_markets": "spot", "max_usd_per_hour": 1}}).rules
    assert rules.placement_problem(None, None, 500_000) is None
    assert "has no market" in (rules.market_note(None) or "")
    assert rules.placement_problem(None, "on-demand", 500_000) is not None  # local priced as an instance: checked
    assert "the trial costs $4.00/h," in (rules.placement_problem(None, None, 4_000_000) or "")


def test_a_spot_only_policy_lets_a_local_sweep_run_and_the_books_show_no_market(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    store = Store(url)
    store.apply_policies([parse_policy({"name": "g-rate", "rules": {"max_usd_per_hour": 5,
                                                                    "allowed_markets": "spot"}})])
    store.close()
    sweep = _local_sweep(tmp_path)
    runner = CliRunner()
    explained = runner.invoke(main, ["policy", "explain", str(sweep), "--db", url])
    assert explained.exit_code == 0, explained.output
    assert "local (no market): allow (rules.allowed_markets does not apply: a local trial" in explained.output
    ran = runner.invoke(main, ["run", str(sweep), "--db", url, "--quiet"])
    assert ran.exit_code == 0, ran.output
    by_market = json.loads(runner.invoke(main, ["spend", "--by", "market", "--db", url, "--format", "json"]).output)
    assert [r["market"] for r in by_market] == ["-"]
    shown = runner.invoke(main, ["trials", "loc-1", "0", "--db", url, "--format", "json"]).output
    assert '"market": null' in shown and "on-demand" not in shown
    # a store written before this rule holds on-demand for the local attempt: it still reads as no market
    store = Store(url)
    with Session(store.engine) as s:
        for row in s.exec(select(AttemptRow)).all():
            row.market = "on-demand"
            s.add(row)
        s.commit()
    store.close()
    by_market = json.loads(runner.invoke(main, ["spend", "--by", "market", "--db", url, "--format", "json"]).output)
    assert [r["market"] for r in by_market] == ["-"]
    text = runner.invoke(main, ["trials", "loc-1", "0", "--db", url]).output
    assert "on-demand" not in text
