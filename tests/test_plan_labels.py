"""What `costtune plan` says names what the sweep really uses: the scheduler in its notes, and a forecast whose
runs drew configurations at random in place of a model sampler says, in its table, whose range it shows."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import yaml
from click.testing import CliRunner

from costtune.cli import main
from costtune.plan.forecast import Forecast, RunSample
from costtune.plan.render import render_forecast
from costtune.richtext import make_console


def test_a_curve_plans_note_names_curve_not_fifo(tmp_path: Path) -> None:
    path = tmp_path / "curve.yaml"
    path.write_text(yaml.safe_dump({
        "name": "lc", "objective": {"metric": "loss", "mode": "min"},
        "space": {"x": {"type": "uniform", "low": 0, "high": 1}}, "scheduler": {"type": "curve"},
        "command": [sys.executable, "-c", "pass"], "budget": {"usd": 0.02},
        "resources": {"provider": "local", "usd_per_hour": 3.6}}, sort_keys=False))
    result = CliRunner().invoke(main, ["plan", str(path), "--db", str(tmp_path / "none.db"), "--format", "json"])
    assert result.exit_code == 0, result.output
    notes = json.loads(result.stdout)["notes"]
    assert any(n.startswith("curve: the cost of one trial is unknown") for n in notes), notes
    assert not any(n.startswith("fifo:") for n in notes), notes


def _runs(n: int) -> tuple[RunSample, ...]:
    return tuple(RunSample(seed=i, spend_micros=490_000 + i, best_value=0.1, preemptions=1, waste_micros=10,
                           trials=100 + i, sim_seconds=6000.0) for i in range(n))


def test_a_stand_in_forecasts_range_is_labelled_random_searchs_in_the_table() -> None:
    console = make_console(file=io.StringIO(), width=200)
    stand_in = Forecast(runs=_runs(5), cap_micros=500_000, sampler="random", stand_in="bayes")
    render_forecast(stand_in, console)
    shown = console.file.getvalue()  # type: ignore[attr-defined]
    title = " ".join(shown.split("┏")[0].split())  # above the table, however it wraps
    assert "random search standing in for bayes (a bayes run may fall outside p10-p90)" in title
    assert "p10 (random)" in shown and "p90 (random)" in shown
    own = make_console(file=io.StringIO(), width=200)
    render_forecast(Forecast(runs=_runs(5), cap_micros=500_000, sampler="random"), own)
    assert "(random)" not in own.file.getvalue()  # type: ignore[attr-defined]
