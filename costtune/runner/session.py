"""Glue between a sweep file and a running controller: open or resume its study, show progress."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from costtune.errors import InputError, StoreError
from costtune.money import format_usd, micros_to_usd
from costtune.providers import make_provider
from costtune.reports.fmt import format_duration
from costtune.runner.controller import RunStatus, SweepController
from costtune.space import SearchSpace
from costtune.spec import SweepSpec
from costtune.store import Store, StudyInfo
from costtune.study import Study


def open_sweep(store: Store, spec: SweepSpec) -> tuple[Study, bool]:
    """The sweep's study, created or (same name) resumed; True when resumed.

    A resumed study must keep its objective, space and search method; budgets, workers and the
    command may change between runs.
    """
    info = store.find_study(spec.name)
    resumed = info is not None
    if info is None:
        try:
            info = store.create_study(
                spec.name, metric=spec.metric, mode=spec.mode, space=spec.space.to_dict(),
                sampler=spec.sampler, spec=spec.raw, budget_usd_micros=spec.budget.usd_micros,
                queued=spec.sampler.get("configs", []),
            )
        except StoreError:  # another `costtune run` created it a moment ago
            info, resumed = store.get_study(spec.name), True
    if resumed:
        _check_compatible(info, spec)
        store.update_study(info.id, spec=spec.raw, budget_usd_micros=spec.budget.usd_micros)
        _enqueue_new_configs(store, info, spec)
    study = Study(store, info, usd_per_hour=str(micros_to_usd(spec.resources.usd_per_hour_micros)),
                  # absolute, as trials run in `workdir` and `costtune logs` runs anywhere
                  output_root=Path(spec.output_dir).expanduser().resolve() if spec.output_dir else None)
    return study, resumed


def _enqueue_new_configs(store: Store, info: StudyInfo, spec: SweepSpec) -> None:
    """Configurations added to ``sampler.configs`` since the study began are queued, once."""
    known = [t.params for t in store.history(info.id).trials if t.source == "manual"]
    for config in spec.sampler.get("configs", []):
        if config in known:
            known.remove(config)  # a config listed twice in the file runs twice, no more
        else:
            store.enqueue(info.id, config)


def _check_compatible(info: StudyInfo, spec: SweepSpec) -> None:
    what = f"study {info.name!r} already exists"
    fix = "; give the sweep another name (--name) to start a new study"
    if (info.metric, info.mode) != (spec.metric, spec.mode):
        raise InputError(f"objective: {what} with objective {info.metric} ({info.mode}), "
                         f"the file says {spec.metric} ({spec.mode}){fix}")
    if info.space and SearchSpace.from_dict(info.space) != spec.space:
        stored = SearchSpace.from_dict(info.space)
        changed = sorted(set(stored.names) ^ set(spec.space.names)) or [
            n for n in spec.space.names if stored[n] != spec.space[n]]
        raise InputError(f"space: {what} with a different search space (changed: {', '.join(changed)}){fix}")
    if info.sampler.get("type") != spec.sampler["type"] or info.sampler.get("points") != spec.sampler.get("points"):
        raise InputError(f"sampler: {what} with sampler {info.sampler.get('type')}, "
                         f"the file says {spec.sampler['type']}{fix}")


def run_with_progress(spec: SweepSpec, study: Study, console: Console, *, quiet: bool = False,
                      workdir: str | None = None) -> RunStatus:
    provider = make_provider(spec.resources.provider, simulation=spec.resources.simulation, metric=spec.metric)
    simulated = spec.resources.provider == "simulated"

    def event(message: str) -> None:
        if not quiet:
            console.print(f"[dim]{message}[/]", highlight=False)

    def warn(message: str) -> None:  # ignored metric lines, fail-fast, rung advice: shown even with --quiet
        console.print(f"[yellow]warning: {message}[/]", highlight=False, soft_wrap=True)

    # A simulated sweep runs thousands of trials a second: a line per trial would drown the progress bar.
    controller = SweepController(spec, study, provider, on_event=event, workdir=workdir, trial_events=not simulated,
                                 on_warning=warn)
    if quiet:
        return controller.run()
    # The bar counts trials when their number is known, else dollars against budget.usd (an ASHA sweep).
    by_money = spec.max_trials is None and spec.budget.usd_micros is not None
    total = spec.budget.usd_micros if by_money else spec.max_trials
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[count]}"),
        TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), console=console, transient=False,
    )
    task = progress.add_task(spec.name, total=total, count="", detail="", by_money=by_money)
    done = threading.Event()

    def refresh() -> None:
        while not done.wait(0.5):
            _update(progress, task, controller.status, spec, study)

    ticker = threading.Thread(target=refresh, daemon=True)
    with progress:
        ticker.start()
        try:
            status = controller.run()
        finally:
            done.set()
            ticker.join()
            _update(progress, task, controller.status, spec, study)
    return status


def _update(progress: Progress, task: Any, status: RunStatus, spec: SweepSpec, study: Study) -> None:
    # the best finished trial (complete or stopped), the one the leaderboard ranks first
    best = "-" if status.best_value is None else f"{status.best_value:.5g} (trial {status.best_trial})"
    cap = f" of {format_usd(spec.budget.usd_micros)}" if spec.budget.usd_micros is not None else ""
    extra = f"  preempted {status.preemptions}" if status.preemptions else ""
    if status.sim_seconds:
        extra += f"  simulated {format_duration(status.sim_seconds)}"
    if progress.tasks[0].fields.get("by_money"):
        count = f"{status.finished} trials"
        completed = min(status.spend_micros, spec.budget.usd_micros or 0)
    else:
        count = f"{status.finished}/{spec.max_trials or '?'}"
        completed = status.finished
    running = f"running {status.running}"
    if status.note and status.running < status.workers:  # fewer than asked for, and why
        running += f" of {status.workers} ({status.note})"
    detail = (f"{running}  failed {status.failed}{extra}  best {study.metric} {best}  "
              f"spent {format_usd(status.spend_micros)}{cap}")
    progress.update(task, completed=completed, count=count, detail=detail)
