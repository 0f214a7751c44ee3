"""How long `costtune plan` takes; prints figures, asserts nothing.

    python benchmarks/plan_speed.py [--repeat 3] [--jobs N] [--quick] [--no-per-run | --only-per-run]

Times the whole command (`python -m costtune.cli plan ... --quiet`, start-up included, output
discarded) on:

1. examples/simulated/hyperband.yaml: the plan alone (--runs 0), the default forecast (8 to 20
   runs, until its figures settle) and --runs 20;
2. examples/simulated/asha-cost-aware.yaml: --runs 3, the default forecast and --runs 20, with its
   bayes sampler stood in for by random draws (the default), and one --exact-sampler run;
3. a large Hyperband plan (the hyperband example with budget.usd 60 and max_usd 2.43, 400+ trials):
   the plan alone and --runs 1.

Each case runs ``--repeat`` times; the best and the median wall time are printed, with the CPU
time (the command and its workers: on an idle machine with N cores the wall time of the forecast
is about CPU / N plus start-up), the CPU time per forecast run (the command's CPU divided by its
runs, start-up included) and the load average, because on a shared machine the wall time
mostly measures the neighbours. Pass ``--quick`` to skip the slow --exact-sampler case.

Then, unless ``--no-per-run``, the CPU seconds (user + system) of single forecast runs of each
example measured in this process (``simulate_once``, imports done beforehand): what one run of
the simulated controller loop costs, the figure that least depends on the load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
HYPERBAND = ROOT / "examples" / "simulated" / "hyperband.yaml"
ASHA = ROOT / "examples" / "simulated" / "asha-cost-aware.yaml"


def large_hyperband(folder: Path) -> Path:
    data = yaml.safe_load(HYPERBAND.read_text())
    data["name"] = "sim-hyperband-large"
    data["scheduler"] = {"type": "hyperband", "min_usd": 0.01, "max_usd": 2.43, "eta": 3}
    data["budget"] = {"usd": 60}
    path = folder / "hyperband-large.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def timed(args: list[str], repeat: int, env: dict[str, str]) -> tuple[list[float], list[float], int]:
    """Wall seconds and CPU seconds (user + system, the command and its worker processes) per
    repeat, and how many forecast runs the command made (from its JSON output)."""
    walls, cpus, runs = [], [], 0
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "costtune.cli", "plan", *args, "--quiet", "--format", "json"],
                              check=True, env=env, stdout=subprocess.PIPE, text=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        forecast = json.loads(done.stdout).get("forecast")
        runs = forecast["runs"] if forecast else 0
    return walls, cpus, runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=None, help="--jobs for plan (default: its own, one per core)")
    parser.add_argument("--quick", action="store_true", help="skip the --exact-sampler case")
    parser.add_argument("--no-per-run", action="store_true", help="skip the in-process CPU time per run")
    parser.add_argument("--only-per-run", action="store_true", help="only the in-process CPU time per run")
    opts = parser.parse_args()
    jobs = [] if opts.jobs is None else ["--jobs", str(opts.jobs)]
    with tempfile.TemporaryDirectory(prefix="costtune-plan-bench-") as tmp:
        env = {**os.environ, "COSTTUNE_HOME": tmp, "COSTTUNE_DB": str(Path(tmp) / "none.db")}  # no store read
        large = large_hyperband(Path(tmp))
        cases = [
            ("hyperband example, plan alone (--runs 0)", [str(HYPERBAND), "--runs", "0"]),
            ("hyperband example, forecast (default: 8-20 runs, until settled)", [str(HYPERBAND), *jobs]),
            ("hyperband example, --runs 20", [str(HYPERBAND), "--runs", "20", *jobs]),
            ("asha cost-aware example, --runs 3", [str(ASHA), "--runs", "3", *jobs]),
            ("asha cost-aware example, forecast (default: 8-20 runs, until settled)", [str(ASHA), *jobs]),
            ("asha cost-aware example, --runs 20", [str(ASHA), "--runs", "20", *jobs]),
            ("large hyperband plan, plan alone (--runs 0)", [str(large), "--runs", "0"]),
            ("large hyperband plan, --runs 1", [str(large), "--runs", "1", *jobs]),
        ]
        if not opts.quick:
            cases.append(("asha cost-aware example, --runs 1 --exact-sampler (bayes itself)",
                          [str(ASHA), "--runs", "1", "--exact-sampler"]))
        print(f"cores: {os.cpu_count()}, jobs: {opts.jobs or 'default (one per core)'}, repeat: {opts.repeat}")
        for label, args in [] if opts.only_per_run else cases:
            load = os.getloadavg()[0]
            walls, cpus, runs = timed(args, 1 if "exact" in label else opts.repeat, env)
            per_run = f", {runs} runs, {min(cpus) / runs:.2f} s per run" if runs else ""
            print(f"{label}: wall best {min(walls):.1f} s, median {statistics.median(walls):.1f} s; "
                  f"CPU best {min(cpus):.1f} s{per_run} (load average {load:.1f} before)", flush=True)
    if not opts.no_per_run:
        per_run_cpu(opts.repeat)


def per_run_cpu(repeat: int) -> None:
    """CPU seconds of single forecast runs (seeds 0..repeat-1) of each example, in this process."""
    from costtune.plan.forecast import seeded_raw, simulate_once
    from costtune.spec import parse_sweep

    for path in (HYPERBAND, ASHA):
        spec = parse_sweep(yaml.safe_load(path.read_text()))
        simulate_once(seeded_raw(spec, repeat), exact_sampler=False)  # imports and first-use caches
        cpus = []
        for k in range(repeat):
            before = time.process_time()
            simulate_once(seeded_raw(spec, k), exact_sampler=False)
            cpus.append(time.process_time() - before)
        print(f"{path.name}, one forecast run in this process: CPU median {statistics.median(cpus):.2f} s, "
              f"best {min(cpus):.2f} s over seeds 0-{repeat - 1} (load average {os.getloadavg()[0]:.1f})",
              flush=True)


if __name__ == "__main__":
    main()
