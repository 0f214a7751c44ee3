"""Two `costtune run` of one study at once: the second says whom it waits for, and its summary counts only
its own trials and spend, not what the other run finished meanwhile."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

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


def test_a_second_run_says_who_holds_the_work_and_counts_only_its_own(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    spec = parse_sweep(with_changes(SWEEP))
    study, _ = open_sweep(store, spec)
    # Another live controller (a process of its own) runs trial 0 and holds the whole budget.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = f"{hostname()}:{other.pid}:{_start_ticks(other.pid)}"
        theirs = Study(Store(url), study.info)
        theirs.owner = owner
        claimed = theirs.claim(with_output_dir=False)
        assert claimed is not None
        theirs.store.reserve("other-0", [f"study:{study.id}"], 50_000)
        attempt = theirs.store.start_attempt(claimed.id, 1, idempotency_key="other-0", provider="simulated",
                                             rate_micros_per_hour=96_000, host=hostname())
        before = study.history()
        provider = make_provider("simulated", simulation=spec.resources.simulation, metric=spec.metric)
        ours = SweepController(spec, study, provider, trial_events=False)
        seen: list[str] = []

        def the_other_finishes() -> None:  # once the second run says it waits: its trial ends, $0.012 spent
            deadline = time.monotonic() + 30
            while not ours.status.note.startswith("waiting") and time.monotonic() < deadline:
                time.sleep(0.01)
            seen.append(ours.status.note)
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
    assert seen and seen[0] == (f"waiting: another run (pid {other.pid} on {hostname()}) holds the remaining "
                                f"trials and budget: 1 trial running, $0.05 held")
    history = study.history()
    assert sum(t.state.finished for t in history.trials) == 3  # the other's trial and this run's two
    line = totals_line(history, status, before)
    own = history.spent_micros - 12_000
    assert f"this run: 2 trials finished, {format_usd(own)} spent" in line, line
    assert status.own_spend_micros == own
