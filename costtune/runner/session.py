"""Glue between a sweep file and a running controller: open or resume its study, show progress."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column
from rich.text import Text

from costtune.errors import InputError, SpecError, StoreError
from costtune.money import format_cap, format_usd, micros_to_usd
from costtune.providers import Provider
from costtune.reports.fmt import format_duration, format_number
from costtune.richtext import styled
from costtune.runner.controller import RunStatus, SweepController
from costtune.runner.remote import sweep_provider, worker_api
from costtune.samplers import Sampler, sampler_config
from costtune.schedulers import scheduler_config
from costtune.schedulers.defaults import RungsNeedABudget, adopt_stored, with_stored_rungs
from costtune.schedulers.hyperband import PLAN_KINDS
from costtune.spec import SweepSpec, parse_sweep
from costtune.store import Store, StudyInfo
from costtune.study import Study
from costtune.study.output import claim_output_dir, release_output_dir
from costtune.study.resume import Asked, check_unchanged, stored_scheduler
from costtune.words import plural

# how a file that asks a stored study for another objective, space, sampler or scheduler starts afresh instead
_NEW_NAME = "give the sweep another name (--name) to start a new study"


def open_sweep(store: Store, spec: SweepSpec, *, change_cap: bool = False,
               sampler: Sampler | None = None) -> tuple[Study, bool]:
    """The sweep's study, created or (same name) resumed; True when resumed.

    A resumed study must keep its objective, space, sampler type and scheduler; workers and the command
    may change between runs (the rule of ``costtune.study.resume``, shared with ``create_study``).
    Its dollar cap is the one stored: a file whose ``budget.usd`` differs is
    an ``InputError`` unless ``change_cap`` (``costtune run --change-cap``) makes the file's value
    the new cap, recorded in the audit trail. A new study claims its own output directory,
    ``<output_dir or COSTTUNE_HOME/runs>/<name>`` (or ``<name>-2``, ... when that one holds
    something else); a resumed one keeps the directory it recorded. ``sampler``: an object to
    propose with in place of the one the file names (a forecast's random stand-in).
    """
    info = store.find_study(spec.name)
    resumed = info is not None
    root = Path(spec.output_dir).expanduser().resolve() if spec.output_dir else None
    if info is None:
        # the scheduler it got by default is stored with it: a later default never changes a study that exists
        section = spec.raw.get("scheduler")
        stored = spec.raw if isinstance(section, dict) and "type" in section else {
            **spec.raw, "scheduler": {**(section if isinstance(section, dict) else {}), "type": spec.scheduler["type"]}}
        simulated = spec.resources.provider == "simulated"  # writes no trial directories
        folder = None if simulated else claim_output_dir(root, spec.name, store=store.display_url)
        try:
            info = store.create_study(
                spec.name, metric=spec.metric, mode=spec.mode, space=spec.space.to_dict(),
                sampler=spec.sampler, spec=stored, budget_usd_micros=spec.budget.usd_micros,
                queued=spec.sampler.get("configs", []), output_dir=None if folder is None else str(folder),
            )
        except StoreError:  # another `costtune run` created it a moment ago
            if folder is not None:
                release_output_dir(folder)
            info, resumed = store.get_study(spec.name), True
    if resumed:
        _keep_stored_scheduler(info, spec)
        _keep_chosen_rungs(info, spec)
        _check_compatible(info, spec)
        added = _new_configs(store, info, spec)  # checked before anything is written
        if info.budget_usd_micros != spec.budget.usd_micros:
            if not change_cap:
                raise InputError(_cap_message(info, spec))
            store.change_study_cap(info.id, spec.budget.usd_micros, field="budget.usd",
                                   reason="costtune run --change-cap")
        stored = (info.spec.get("budget") or {}).get("trials")
        store.update_study(info.id, spec=spec.raw)
        if stored != spec.budget.trials:  # the file sets budget.trials for this run on: recorded like a raise
            store.audit("trials.set", study_id=info.id, detail={
                "study": info.name, "field": "budget.trials", "from": stored, "to": spec.budget.trials,
                "reason": "costtune run (the sweep file's budget.trials)"})
        for config in added:
            store.enqueue(info.id, config, max_trials=spec.budget.trials)
        info = store.get_study(spec.name)
    study = Study(store, info, sampler=sampler, usd_per_hour=str(micros_to_usd(spec.resources.usd_per_hour_micros)),
                  # absolute, as trials run in `workdir` and `costtune logs` runs anywhere
                  output_root=root)
    return study, resumed


def parse_resuming(raw: Any, find: Callable[[str], StudyInfo | None]) -> tuple[SweepSpec, str | None]:
    """``parse_sweep(raw)``, except for a file that leaves ``scheduler.min_usd``/``max_usd`` to be chosen and gives no
    ``budget.usd`` to choose them from (a study resumed with its cap removed): when ``find(name)`` (asked only then)
    is a study that stored its rungs, the file takes them, as any resume keeps them (``_keep_chosen_rungs``).

    Returns the spec and a line saying which rungs were kept and why (None when the file was parsed as it is).
    Raises the ``SpecError`` naming ``scheduler.max_usd`` for a new study, or one with no such rungs stored.
    """
    try:
        return parse_sweep(raw), None
    except RungsNeedABudget:
        info = find(raw["name"])  # parse_sweep checks the name before the scheduler
        stored = info.spec.get("scheduler") if info is not None and isinstance(info.spec, dict) else None
        section = with_stored_rungs(raw["scheduler"], stored)
        if info is not None and section is None:
            _refuse_other_rungs(info, raw["scheduler"])  # another type or eta: the resume check's own refusal
        if info is None or section is None:
            raise
    spec = parse_sweep({**raw, "scheduler": section})
    return spec, (f"scheduler: the file gives no budget.usd to choose rungs from; study {info.name!r} keeps the "
                  f"ones stored with it: {section['chosen']}")


def _refuse_other_rungs(info: StudyInfo, section: Any) -> None:
    """Raise the resume check's ``InputError`` (naming ``scheduler.type`` or ``scheduler.eta``, the stored and the
    file's value) when the file's scheduler ``section`` asks for another type or eta than the study ``info`` stored,
    as ``open_sweep`` would with a ``budget.usd`` to choose rungs from; nothing when both match or the section
    does not parse (the caller's own error stands)."""
    try:
        now = scheduler_config(section, choose=True)
    except SpecError:
        return
    was = stored_scheduler(info)
    named = isinstance(section, dict) and "type" in section  # a section naming no type keeps the stored one
    asked = {**was, "type": now["type"] if named else was["type"], "eta": now.get("eta")}
    check_unchanged(info, Asked(scheduler=asked), says="the file says",
                    fix=_NEW_NAME)


def _cap_message(info: StudyInfo, spec: SweepSpec) -> str:
    had = "no stored cap" if info.budget_usd_micros is None else f"a stored cap of {format_cap(info.budget_usd_micros)}"
    return (f"budget.usd: study {info.name!r} has {had}; the file says "
            f"{format_cap(spec.budget.usd_micros)}. A study has one cap: to change it to "
            f"{format_cap(spec.budget.usd_micros)}, run the same command with --change-cap (the change is recorded; "
            f"see `costtune audit {info.name}`)")


def _new_configs(store: Store, info: StudyInfo, spec: SweepSpec) -> list[dict[str, Any]]:
    """Configurations added to ``sampler.configs`` since the study began (each is queued once).

    They count toward ``budget.trials`` like every queued trial: more than the study has room for
    is a ``SpecError`` naming budget.trials, raised before anything is queued.
    """
    trials = store.history(info.id).trials
    known = [t.params for t in trials if t.source == "manual"]
    added = []
    for config in spec.sampler.get("configs", []):
        if config in known:
            known.remove(config)  # a config listed twice in the file runs twice, no more
        else:
            added.append(config)
    limit = spec.budget.trials
    if added and limit is not None and len(trials) + len(added) > limit:
        raise SpecError("budget.trials", f"study {info.name!r} holds {plural(len(trials), 'trial')} and "
                        f"sampler.configs adds {len(added)}: more than budget.trials; raise it to queue them", limit)
    return added


def _keep_stored_scheduler(info: StudyInfo, spec: SweepSpec) -> None:
    """A resumed sweep whose file has no ``scheduler`` section keeps the study's stored one, whatever its
    type (as a file that names no sampler type keeps the stored sampler); a section naming no type sets its
    fields over the stored ones (a changed setting is then refused by the resume check). It is checked against
    the rest of the file as if the file gave it (a priced resource, a cap that funds its rungs): a ``SpecError`` naming
    the scheduler field otherwise."""
    section = spec.raw.get("scheduler")
    if isinstance(section, dict) and "type" in section:
        return
    stored = info.spec.get("scheduler") if isinstance(info.spec, dict) else None
    if not isinstance(stored, dict):  # a study made before defaults were stored ran FIFO: it still does
        stored = {"type": "fifo"}
    if isinstance(section, dict):  # a section naming no type: its settings over the study's own
        stored = {**stored, **section, "type": stored.get("type", "fifo")}
    kept = parse_sweep({**spec.raw, "scheduler": stored})
    spec.scheduler.clear()  # the spec is frozen; its config dict is the one the controller reads
    spec.scheduler.update(kept.scheduler)
    spec.raw["scheduler"] = kept.raw["scheduler"]


def _keep_chosen_rungs(info: StudyInfo, spec: SweepSpec) -> None:
    """A resumed sweep whose file gives no min_usd/max_usd keeps the ones chosen when it started (stored
    with the study), not ones chosen anew from today's prices or cap (``schedulers.defaults``)."""
    stored = info.spec.get("scheduler") if isinstance(info.spec, dict) else None
    if isinstance(spec.raw.get("scheduler"), dict) and spec.scheduler["type"] in PLAN_KINDS:
        # the plan keeps the brackets it began with, whatever the cap now (raised, lowered or removed); a study
        # stored before the cap its plan was fitted to was kept plans by its cap, as it did
        shaped = stored.get("plan_usd_micros") if isinstance(stored, dict) else None
        if shaped is None:
            spec.scheduler.pop("plan_usd_micros", None)
            spec.raw["scheduler"].pop("plan_usd_micros", None)
        else:
            spec.scheduler["plan_usd_micros"] = spec.raw["scheduler"]["plan_usd_micros"] = shaped
    kept = adopt_stored(spec.scheduler, stored)
    if kept is spec.scheduler:
        return
    spec.scheduler.update(kept)  # the spec is frozen; its config dict is the one the controller reads
    spec.raw["scheduler"].update({key: kept[key] for key in ("min_usd", "max_usd", "chosen")})


def sampler_drift(info: StudyInfo, spec: SweepSpec) -> list[str]:
    """What the file's sampler section sets that a resumed study does not take (it keeps the sampler it was
    created with): one line per field, naming the stored and the given value."""
    section = spec.raw.get("sampler")
    if not isinstance(section, dict):
        return []
    return [f"sampler.{key}: study {info.name!r} keeps {info.sampler.get(key)!r} (the file says {value!r}); "
            "a resumed study keeps its sampler (give the sweep another name to start a new study)"
            for key, value in section.items()
            if key not in ("type", "configs") and key in info.sampler and info.sampler[key] != value]


def _check_compatible(info: StudyInfo, spec: SweepSpec) -> None:
    # A file that names no sampler type resumes with the study's own (the default may have changed since).
    section = spec.raw.get("sampler")
    named = isinstance(section, dict) and "type" in section
    if isinstance(section, dict) and not named:  # its fields are checked against the type that will run
        sampler_config({**section, "type": info.sampler.get("type", "random")}, spec.space)
    asked = Asked(metric=spec.metric, mode=str(spec.mode), space=spec.space,
                  sampler=spec.sampler if named else None, scheduler=spec.scheduler)
    check_unchanged(info, asked, says="the file says", fix=_NEW_NAME)


def run_with_progress(spec: SweepSpec, study: Study, console: Console, *, quiet: bool = False,
                      workdir: str | None = None, provider: Provider | None = None) -> RunStatus:
    """Run the sweep (on ``provider``, by default the one the file names), showing progress on ``console``.

    Trials on cloud instances get the worker API served beside the controller while it runs
    (``costtune.runner.remote.worker_api``)."""
    provider = provider or sweep_provider(spec, study.store)
    with worker_api(spec, study.store, provider, lambda message: None if quiet else console.print(
            styled((message, "dim")), highlight=False)):
        return _run(spec, study, console, provider, quiet=quiet, workdir=workdir)


def _run(spec: SweepSpec, study: Study, console: Console, provider: Provider, *, quiet: bool,
         workdir: str | None) -> RunStatus:
    simulated = spec.resources.provider == "simulated"

    def event(message: str) -> None:
        if not quiet:
            console.print(styled((message, "dim")), highlight=False)

    def warn(message: str) -> None:  # ignored metric lines, fail-fast, rung advice: shown even with --quiet
        console.print(styled((f"warning: {message}", "yellow")), highlight=False, soft_wrap=True)

    # A simulated sweep runs thousands of trials a second: a line per trial would drown the progress bar.
    controller = SweepController(spec, study, provider, on_event=event, workdir=workdir, trial_events=not simulated,
                                 on_warning=warn)
    if quiet:
        return controller.run()
    # The bar counts trials when their number is known, else dollars against budget.usd (an ASHA sweep).
    by_money = spec.max_trials is None and spec.budget.usd_micros is not None
    total = spec.budget.usd_micros if by_money else spec.max_trials
    whole = Column(no_wrap=True, overflow="ignore")
    progress = _Progress(
        TextColumn("{task.description}", style="bold", markup=False, table_column=whole), BarColumn(bar_width=None),
        TextColumn("{task.fields[count]}", markup=False, table_column=whole), TimeElapsedColumn(), console=console,
        transient=False, expand=True,
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


class _Progress(Progress):
    """The bar on one line, the figures (running, failed, best, spent) under it: on a narrow terminal
    the bar shrinks and the figures wrap word by word, so no name or number is ever cut."""

    def get_renderables(self) -> Iterable[RenderableType]:
        yield self.make_tasks_table(self.tasks)
        for task in self.tasks:
            if task.fields.get("detail"):
                yield _Wrapped(task.fields["detail"])


class _Wrapped:
    """Text wrapped at words to the width, even on a console that soft-wraps (the error console)."""

    def __init__(self, text: str) -> None:
        self.text = Text(text)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield from self.text.wrap(console, options.max_width)


def _update(progress: Progress, task: Any, status: RunStatus, spec: SweepSpec, study: Study) -> None:
    # the best finished trial (complete or stopped), the one the leaderboard ranks first
    best = "-" if status.best_value is None else f"{format_number(status.best_value)} (trial {status.best_trial})"
    cap = f" of {format_usd(spec.budget.usd_micros)}" if spec.budget.usd_micros is not None else ""
    extra = f"  preempted {status.preemptions}" if status.preemptions else ""
    if status.sim_seconds:
        extra += f"  simulated {format_duration(status.sim_seconds)}"
    if progress.tasks[0].fields.get("by_money"):
        count = plural(status.shown_finished, "trial")
        completed = min(status.shown_spend_micros, spec.budget.usd_micros or 0)
    else:  # the study's figures (another `costtune run` of it may be running too), as the summary says
        count = f"{status.shown_finished}/{spec.max_trials or '?'}"
        completed = status.shown_finished
    running = f"running {status.running}"
    if status.note and status.running < status.workers:  # fewer than asked for, and why
        running = f"running {status.running} of {plural(status.workers, 'worker')} ({status.note})"
    denied = f"  denied by policy {status.denied}" if status.denied else ""
    detail = (f"{running}  failed {status.shown_failed}{denied}{extra}  best {study.metric} {best}  "
              f"spent {format_usd(status.shown_spend_micros)}{cap}")
    progress.update(task, completed=completed, count=count, detail=detail)


def as_resumed(info: StudyInfo, spec: SweepSpec, *, change_cap: bool = False) -> SweepSpec:
    """The sweep ``spec`` as ``costtune run`` would run it on the stored study ``info``, worked out from ``info``
    alone (nothing is read or written elsewhere: ``costtune plan`` describes a resume with it).

    The rules of ``open_sweep``: the stored scheduler when the file has no ``scheduler`` section, the rungs
    chosen when the study started, the stored sampler (a resumed study keeps its own, seed included; the
    file's ``sampler.configs`` still count), and the stored cap (the file's ``budget.usd`` with
    ``change_cap``). Raises what ``open_sweep`` raises for a file the study cannot resume with (another
    objective, space, sampler type or scheduler). ``spec``'s scheduler section is adjusted in place, as
    ``open_sweep`` does; the returned spec is a copy with the stored sampler and cap, in its ``raw`` too (what
    a forecast re-parses).
    """
    from dataclasses import replace

    _keep_stored_scheduler(info, spec)
    _keep_chosen_rungs(info, spec)
    _check_compatible(info, spec)
    sampler = {key: value for key, value in info.sampler.items() if key != "configs"}
    if spec.sampler.get("configs"):
        sampler["configs"] = spec.sampler["configs"]
    cap = spec.budget.usd_micros if change_cap else info.budget_usd_micros
    budget = {key: value for key, value in (spec.raw.get("budget") or {}).items() if key != "usd"}
    if cap is not None:
        budget["usd"] = str(micros_to_usd(cap))  # exact decimal text, as parse_sweep reads it
    raw = {**spec.raw, "sampler": sampler, "budget": budget}
    return replace(spec, sampler=sampler, budget=replace(spec.budget, usd_micros=cap), raw=raw)
