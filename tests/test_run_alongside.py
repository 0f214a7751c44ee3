"""Two `costtune run` of one study at once: the second says whom it waits for, and its summary counts only
its own trials and spend, not what the other run finished meanwhile."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from costtune.providers import make_provider
from simworkloads import with_changes

from costtune.cli.run import totals_line
from costtune.history import TrialState
from costtune.money import format_usd
from costtune.runner.controller import SweepController
from costtune.runner.session import open_sweep
from costtune.spec import parse_sweep
from costtune.store import Store
from costtune.store.owner import _start_ticks, hostname
from costtune.study import Study

SWEEP = {
    "name": "alongside",
    "objective": {"metric": "loss", "mode": "min"},
    "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
    "sampler": {"type": "random", "seed": 1},
    "scheduler": {"type": "fifo"},
    "budget": {"trials": 3, "usd": 0.05},
    "resources": {"provider": "simulated", "region": "us-east-1", "instance_type": "m5.large",
                  "market": "on-demand", "workers": 1,
                  "simulation": {"workload": "simworkloads:steady", "max_steps": 3, "startup_seconds": 0, "seed": 0}},
}


def _beside_another_run(tmp_path: Path, before_it_ends: Callable[[Store, Any, int], None] | None = None) -> Any:
    """Run the sweep while another live controller (a process of its own) runs trial 0 and holds the whole budget;
    once this run says it waits, the other's trial ends ($0.012 spent), after ``before_it_ends(store, claimed,
    attempt)``. Returns (spec, study, this run's status, the other's pid, its claimed trial, the history before,
    the note this run showed while it waited)."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    spec = parse_sweep(with_changes(SWEEP))
    study, _ = open_sweep(store, spec)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        theirs = Study(Store(url), study.info)
        theirs.owner = f"{hostname()}:{other.pid}:{_start_ticks(other.pid)}"
        claimed = theirs.claim(with_output_dir=False)
        assert claimed is not None
        theirs.store.reserve("other-0", [f"study:{study.id}"], 50_000)
        attempt = theirs.store.start_attempt(claimed.id, 1, idempotency_key="other-0", provider="simulated",
                                             rate_micros_per_hour=96_000, host=hostname())
        before = study.history()
        provider = make_provider("simulated", simulation=spec.resources.simulation, metric=spec.metric)
        ours = SweepController(spec, study, provider, trial_events=False)
        seen: list[str] = []

        def the_other_finishes() -> None:
            deadline = time.monotonic() + 30
            while not ours.status.note.startswith("waiting") and time.monotonic() < deadline:
                time.sleep(0.01)
            seen.append(ours.status.note)
            if before_it_ends is not None:
                before_it_ends(theirs.store, claimed, attempt)
            theirs.store.finish_attempt(attempt, exit_reason="completed", billable_ms=450_000, cost_micros=12_000)
            theirs.store.charge("other-0", 12_000)
            theirs.store.finish_trial(claimed.id, TrialState.COMPLETE)

        helper = threading.Thread(target=the_other_finishes)
        helper.start()
        status = ours.run()
        helper.join()
    finally:
        other.kill()
        other.wait()
    return spec, study, status, other.pid, claimed, before, seen


def test_a_second_run_says_who_holds_the_work_and_counts_only_its_own(tmp_path: Path) -> None:
    _spec, study, status, pid, _claimed, before, seen = _beside_another_run(tmp_path)
    assert seen and seen[0] == (f"waiting: another run (pid {pid} on {hostname()}) holds the remaining "
                                f"trials and budget: 1 trial running, $0.05 held")
    history = study.history()
    assert sum(t.state.finished for t in history.trials) == 3  # the other's trial and this run's two
    line = totals_line(history, status, before)
    own = history.spent_micros - 12_000
    assert f"this run: 2 trials ended (2 with a result), {format_usd(own)} spent" in line, line
    assert status.own_spend_micros == own


def test_the_progress_line_shows_the_studys_best_and_spend_with_another_run_alongside(tmp_path: Path) -> None:
    # Run B's last progress line said "best loss 0.0472 (trial 7) spent $0.02" while its summary said best
    # trial 1, the study spent $0.032: the line counted only B's own trials. It shows the study's now.
    from rich.console import Console

    from costtune.runner.session import _Progress, _update

    def reports_the_best(store: Store, claimed: Any, attempt: int) -> None:  # the study's best, after ours
        store.add_report(claimed.id, attempt, 1, {"loss": -100.0}, objective="loss")

    spec, study, status, _pid, claimed, _before, _seen = _beside_another_run(tmp_path, reports_the_best)
    history = study.history()
    best = history.best()
    assert best is not None and best.number == claimed.number
    progress = _Progress(console=Console(width=200, record=True))
    task = progress.add_task(spec.name, total=spec.max_trials, count="", detail="", by_money=False)
    _update(progress, task, status, spec, study)
    fields = progress.tasks[0].fields
    assert fields["count"] == "3/3"
    assert f"best loss -100 (trial {best.number})" in fields["detail"], fields["detail"]
    assert f"spent {format_usd(history.spent_micros)} of $0.05" in fields["detail"], fields["detail"]
