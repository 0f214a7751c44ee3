"""`costtune spend` after a controller died (`kill -9`): its hold is named as a dead controller's, with what its
attempts were charged so far (the cost `studies`/`trials` show), not left to disagree silently with them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from costtune.cli import main
from costtune.runner.session import open_sweep
from costtune.spec import parse_sweep
from costtune.store import Store
from costtune.store.owner import hostname

SWEEP = {
    "name": "ghost", "objective": {"metric": "loss", "mode": "min"},
    "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
    "sampler": {"type": "random", "seed": 1}, "scheduler": {"type": "fifo"}, "budget": {"trials": 2, "usd": 0.05},
    "resources": {"provider": "local", "usd_per_hour": 3.6, "workers": 1}, "command": ["python", "t.py"],
}


def _cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False, env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_spend_names_a_dead_controllers_hold_and_what_its_attempts_cost(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    study, _ = open_sweep(store, parse_sweep(SWEEP))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a controller that ran trial 0, $0.002 charged by its last heartbeat, then died
    study.owner = f"{hostname()}:{pid}:1"
    claimed = study.claim(with_output_dir=False)
    assert claimed is not None
    store.reserve("dead-0", [f"study:{study.id}"], 50_000)
    attempt = store.start_attempt(claimed.id, 1, idempotency_key="dead-0", provider="local",
                                  rate_micros_per_hour=3_600_000, host=hostname())
    store.heartbeat(study.owner, {attempt: (2_000, 2_000)})

    text = _cli("spend", "--db", url)
    assert (f"study ghost: $0.05 held by a controller that is no longer running (pid {pid} on {hostname()}); its "
            "attempts were charged $0.002 so far (in the trials' cost that `costtune studies` and `costtune trials` "
            "show), not yet in spent; the next `costtune run` of study ghost settles it") in " ".join(text.split())
    [row] = json.loads(_cli("spend", "--db", url, "--format", "json"))
    assert (row["spent_micros"], row["held_controller_gone_micros"], row["controller_gone_cost_micros"]) == \
        (0, 50_000, 2_000)
    [trial] = json.loads(_cli("trials", "ghost", "--db", url, "--format", "json"))
    assert trial["cost_micros"] == row["controller_gone_cost_micros"]  # the figure the two views share
