"""N processes of one team race for the last dollars of a daily team cap; prints figures, exits 1 on a breach.

    python benchmarks/policy_race.py [--db URL] [--procs 8] [--runs 1000] [--sweep-runs 10] [--seed 0]

Every run is a fresh day (the policy window's scope key carries the date, so each day starts at zero):
the processes wait at a barrier, then race.

1. Ledger runs (``--runs``): each process admits launches through the real policy step
   (``costtune.policies.admit``) and reserves random segments in its study's scope and the team's
   window scope in one transaction (``Store.reserve``), then charges each at most what it held (a
   trial stops at its reservation) or releases it, until the window refuses it several times in a row.
2. Sweep runs (``--sweep-runs``): each process runs a different simulated sweep tagged ``team: vision``
   through the real controller on that day.

After every run: the window's spend never passes its cap (the bound is 0 here: charges never exceed
what was held; on a wall clock it is termination latency x hourly rate, README "How far can spend
pass the cap?"); nothing is held any more; the window's spend equals the sum of the studies' spend of
that day and the sum of the charged reservations in it (nothing lost, nothing counted twice).
Default store: a temporary SQLite file; pass a PostgreSQL URL to race on PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from costtune.policies import LaunchRequest, admit, parse_policy

from costtune.errors import CapExceeded
from costtune.store import Store

BASE_DAY = datetime(2027, 1, 1, 12, tzinfo=UTC)
POLICY = {"name": "race-team", "scope": {"tags": {"team": "vision"}}, "window": {"period": "daily"}, "cap_usd": 1.0}


def _day(run: int) -> datetime:
    return BASE_DAY + timedelta(days=run)


def ledger_worker(url: str, proc: int, runs: int, seed: int, barrier: Any) -> None:
    store = Store(url)
    policies = store.policies()
    rng = random.Random(seed * 1000 + proc)
    for run in range(runs):
        barrier.wait()
        now = _day(run)
        request = LaunchRequest(tags={"team": "vision"}, instance_type="m5.large", market="spot", rate_micros=35_000)
        refused, i = 0, 0
        while refused < 3:
            verdict = admit(request, policies, now)
            key = f"race-{run}-{proc}-{i}"
            i += 1
            amount = rng.randint(20_000, 250_000)
            try:
                store.reserve(key, [f"study:race-{run}-{proc}", *verdict.scopes], amount, caps=verdict.caps)
            except CapExceeded:
                refused += 1
                continue
            refused = 0
            if rng.random() < 0.15:
                store.release(key)  # the launch failed: the money goes back
            else:
                store.charge(key, rng.randint(0, amount))
    store.close()


def sweep_worker(url: str, proc: int, runs: int, seed: int, barrier: Any) -> None:
    from costtune.providers import make_provider

    from costtune.runner.controller import SweepController
    from costtune.runner.session import open_sweep
    from costtune.spec import parse_sweep

    store = Store(url)
    rng = random.Random(seed * 1000 + proc)
    for run in range(runs):
        spec = parse_sweep({
            "name": f"race-{run}-{proc}", "tags": {"team": "vision"},
            "objective": {"metric": "loss", "mode": "min"},
            "space": {"x": {"type": "uniform", "low": 0.0, "high": 1.0}},
            "sampler": {"type": "random", "seed": rng.randint(0, 10**6)},
            "scheduler": rng.choice([{"type": "fifo"}, {"type": "asha", "min_usd": 0.01, "max_usd": 0.09, "eta": 3}]),
            "budget": {"usd": rng.choice([0.3, 0.6, 2.0]), "trials": 40},
            "resources": {"provider": "simulated", "region": "us-east-1", "market": "on-demand",
                          "instance_type": rng.choice(["m5.large", "c5.xlarge"]), "workers": rng.randint(1, 6),
                          "simulation": {"workload": "costtune.demo.workloads:mlp_curve", "max_steps": 40,
                                         "startup_seconds": 30, "seed": rng.randint(0, 10**6)}},
        })
        study, _ = open_sweep(store, spec)
        provider = make_provider("simulated", simulation=spec.resources.simulation, metric=spec.metric)
        barrier.wait()
        SweepController(spec, study, provider, trial_events=False, calendar=lambda run=run: _day(10_000 + run)).run()
    store.close()


def check(store: Store, prefix: str, runs: range, offset: int) -> tuple[int, list[str]]:
    """Breaches found; and the runs' spend figures."""
    cap = parse_policy(POLICY).cap_micros
    breaches, spends = [], []
    balances = store.balances()
    charged: dict[str, int] = {}
    names = {f"study:{info.id}": info.name for info in store.list_studies()}
    runs_of = {}
    for scope in balances:  # study:race-RUN-PROC (ledger runs) or study:ID of a study named race-RUN-PROC
        if not scope.startswith("study:") or (scope in names) != (offset > 0):
            continue  # ledger runs book in study:race-RUN-PROC, sweeps in their studies' scopes
        name = names.get(scope, scope.split(":", 1)[-1])
        if name.startswith(prefix):
            runs_of[scope] = int(name.split("-")[1])
    for r in store.open_reservations():
        breaches.append(f"reservation {r.key} still held")
    from sqlmodel import Session, select

    from costtune.store.ledger_models import ReservationRow

    with Session(store.engine) as s:
        for row in s.exec(select(ReservationRow).where(ReservationRow.state == "charged")).all():
            for scope in json.loads(row.scopes_json):
                charged[scope] = charged.get(scope, 0) + int(row.charged_micros or 0)
    for run in runs:
        scope = f"policy:race-team:daily:{_day(offset + run).date().isoformat()}"
        bal = balances.get(scope)
        spent = 0 if bal is None else bal.spent_micros
        spends.append(spent)
        if spent > (cap or 0):
            breaches.append(f"run {run}: {scope} spent {spent} > cap {cap}")
        if bal is not None and bal.reserved_micros:
            breaches.append(f"run {run}: {scope} still holds {bal.reserved_micros}")
        if charged.get(scope, 0) != spent:
            breaches.append(f"run {run}: charged reservations {charged.get(scope, 0)} != window spent {spent}")
        studies = sum(b.spent_micros for s, b in balances.items() if runs_of.get(s) == run)
        if studies != spent:
            breaches.append(f"run {run}: studies spent {studies} != window spent {spent}")
    return len(breaches), [*breaches[:10], f"spends: min {min(spends)} max {max(spends)} cap {cap}"]


def race(target: Any, url: str, procs: int, runs: int, seed: int) -> float:
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(procs)
    workers = [ctx.Process(target=target, args=(url, p, runs, seed, barrier)) for p in range(procs)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    for w in workers:
        w.start()
    for w in workers:
        w.join()
        if w.exitcode:
            raise SystemExit(f"a racing process failed (exit {w.exitcode})")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default=None, help="Store URL (default: a temporary SQLite file).")
    parser.add_argument("--procs", type=int, default=8)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--sweep-runs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    url = args.db or f"sqlite:///{Path(tempfile.mkdtemp()) / 'race.db'}"
    store = Store(url)
    store.apply_policies([parse_policy(POLICY)])
    wall = time.perf_counter()
    cpu = race(ledger_worker, url, args.procs, args.runs, args.seed)
    bad, notes = check(store, "race-", range(args.runs), 0)
    print(f"ledger: {args.runs} runs x {args.procs} processes on {store.display_url.split(':')[0]}: "
          f"{bad} breaches; {cpu:.1f} s CPU, {time.perf_counter() - wall:.1f} s wall; {'; '.join(notes)}")
    failed = bad
    if args.sweep_runs:
        wall = time.perf_counter()
        cpu = race(sweep_worker, url, args.procs, args.sweep_runs, args.seed)
        bad, notes = check(store, "race-", range(args.sweep_runs), 10_000)
        print(f"sweeps: {args.sweep_runs} runs x {args.procs} simulated sweeps: {bad} breaches; "
              f"{cpu:.1f} s CPU, {time.perf_counter() - wall:.1f} s wall; {'; '.join(notes)}")
        failed += bad
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
