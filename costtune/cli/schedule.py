"""``costtune schedule ...`` (nightly sweeps in the store) and ``costtune scheduler`` (the daemon)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from costtune.cli.common import (
    CommandGroup,
    confirm,
    db_option,
    err_console,
    handled,
    open_store,
    out_console,
)
from costtune.errors import SpecError
from costtune.words import plural

_TIMING = [
    click.option("--cron", help='Five-field cron expression, e.g. "0 2 * * *" (minute hour day month weekday).'),
    click.option("--every", help="Fixed interval instead of --cron: 30m, 6h, 1d (from when the schedule is added)."),
    click.option("--tz", help="IANA time zone the cron expression is read in (default UTC)."),
]
_SETTINGS = [
    click.option("--cap", help="Dollar cap of each run (default: the sweep's budget.usd)."),
    click.option("--overlap", type=click.Choice(["skip", "queue"]),
                 help="A fire time while the previous run still runs: skip it (default) or queue it."),
    click.option("--misfire-grace", help="How late a run may still start (default 1h); older fire times are missed."),
    click.option("--coalesce/--no-coalesce", default=None, help="Several due fire times start one run (default on)."),
    click.option("--warm-start", type=int, help="Top-k earlier configurations queued first (default 5; 0 off)."),
    click.option("--prior-runs", type=int, help="Earlier runs the Bayesian prior reads (default 3)."),
    click.option("--prior-decay", type=float, help="Weight of a run per night of age in the prior (default 0.5)."),
    click.option("--promote", type=click.Choice(["better", "always", "never"]),
                 help="When a run's best becomes the promoted model version (default better)."),
    click.option("--webhook", help="URL that receives each run's summary as a JSON POST."),
    click.option("--summary-dir", type=click.Path(file_okay=False), help="Where run summaries are written."),
    click.option("--artifact-root", help="Where model artifacts are copied: a directory or s3://bucket/prefix."),
]


def _options(options: list[Any]) -> Any:
    def wrap(func: Any) -> Any:
        for option in reversed(options):
            func = option(func)
        return func
    return wrap


@click.group("schedule", cls=CommandGroup)
@db_option
@click.pass_context
def schedule(ctx: click.Context, db: str | None) -> None:
    """Nightly sweeps: add, list, show, pause, resume, update, remove, run-now."""
    ctx.meta["costtune.group_db"] = db  # `costtune schedule --db URL CMD` as well as `CMD --db URL`


def _read_sweep(path: str) -> dict[str, Any]:
    from costtune.yamlfile import read_yaml_file

    raw = read_yaml_file(path, what="sweep file")
    if not isinstance(raw, dict):
        raise SpecError("", "a sweep file must be a mapping of fields (name, objective, space, ...)", raw)
    return raw


def _check_sweep(raw: dict[str, Any], name: str, cap_micros: int | None) -> None:
    """Validate the sweep as a run of schedule ``name`` will see it (its name, the --cap); nothing stored."""
    from costtune.money import micros_to_usd
    from costtune.spec import parse_sweep

    probe = json.loads(json.dumps(raw))
    probe["name"] = f"{name}-20260101-0000"
    if cap_micros is not None:
        budget = probe.get("budget")
        probe["budget"] = {**(budget if isinstance(budget, dict) else {}), "usd": f"{micros_to_usd(cap_micros):f}"}
    try:
        parse_sweep(probe)
    except SpecError as exc:
        if cap_micros is not None and exc.path == "budget.usd":  # the user gave --cap, not the file's field
            raise SpecError("--cap", f"(the runs' budget.usd) {exc.reason}", f"{micros_to_usd(cap_micros):f}") from None
        raise


def _settings(base: Any, **given: Any) -> Any:
    from dataclasses import replace

    from costtune.money import POSITIVE, usd_to_micros
    from costtune.spec.fields import duration
    from costtune.spec.paths import check_output_root
    from costtune.spec.schedule_settings import check_settings

    changes: dict[str, Any] = {}
    for key, value in given.items():
        if value is None:
            continue
        if key == "cap":
            changes["cap_micros"] = usd_to_micros(value, "--cap", minimum=POSITIVE)
        elif key == "misfire_grace":
            changes["misfire_grace_s"] = int(duration(value, "--misfire-grace"))
        elif key == "artifact_root" and str(value).startswith("s3://"):
            changes[key] = str(value)
        elif key in ("summary_dir", "artifact_root"):
            check_output_root(value, f"--{key.replace('_', '-')}")  # creatable and writable, like output dirs
            changes[key] = str(Path(value).expanduser().resolve())
        else:
            changes[key] = value
    return check_settings(replace(base, **changes))


def _check_tz(tz: str | None, every: str | None) -> None:
    """--tz only means something for --cron: an --every interval is elapsed time, the same in every zone."""
    from costtune.errors import SpecError

    if tz is not None and not tz.strip():  # `--tz ''` is not "the default": say so rather than store UTC
        raise SpecError("--tz", "must be an IANA time zone name (such as UTC, Europe/Lisbon); leave --tz out for UTC",
                        tz)
    if tz is not None and every is not None:
        raise SpecError("--tz", "applies to --cron schedules only (an --every interval is elapsed time, "
                                "the same in every time zone); drop --tz", tz)


def _check_name(name: str) -> None:
    from costtune.names import check_study_name

    check_study_name(name, "NAME")
    if len(name) > 150:
        raise SpecError("NAME", "must be at most 150 characters (run studies add the date to it)", name)


@schedule.command("add")
@click.argument("name")
@click.argument("sweep_file", type=click.Path(dir_okay=False))
@_options(_TIMING)
@_options(_SETTINGS)
@click.option("--paused", is_flag=True, help="Add it paused (resume it later).")
@db_option
@handled
def add(name: str, sweep_file: str, cron: str | None, every: str | None, tz: str | None, db: str | None,
        paused: bool, **settings: Any) -> None:
    """Add schedule NAME that runs SWEEP_FILE on --cron (in --tz) or --every.

    The file's content is stored now: later edits of the file change nothing until
    `costtune schedule update NAME --sweep FILE`. Each run is a study named NAME-YYYYmmdd-HHMM.
    """
    from costtune.spec.schedule_settings import ScheduleSettings
    from costtune.spec.schedule_timing import make_trigger

    _check_name(name)
    _check_tz(tz, every)
    now = datetime.now(UTC).replace(microsecond=0)
    trigger = make_trigger(cron=cron, every=every, tz=tz or "UTC", anchor=now)
    sweep = _read_sweep(sweep_file)
    config = _settings(ScheduleSettings(workdir=str(Path.cwd())), **settings)
    _check_sweep(sweep, name, config.cap_micros)
    store = open_store(_group_db(db), create=True)
    info = store.add_schedule(name, trigger=trigger, sweep=sweep, sweep_source=str(Path(sweep_file).resolve()),
                              settings=config, now_s=int(now.timestamp()), paused=paused)
    out_console.print(f"schedule {name}: {trigger.describe()}, next run {_when(info.next_fire_s, trigger.tz)}"
                      f"{' (paused)' if paused else ''}", highlight=False)
    out_console.print("start the daemon to run it: costtune scheduler", highlight=False)


@schedule.command("update")
@click.argument("name")
@click.option("--sweep", "sweep_file", type=click.Path(dir_okay=False), help="Store this sweep file's content now.")
@_options(_TIMING)
@_options(_SETTINGS)
@db_option
@handled
def update(name: str, sweep_file: str | None, cron: str | None, every: str | None, tz: str | None,
           db: str | None, **settings: Any) -> None:
    """Change schedule NAME: its sweep (--sweep FILE), timing or settings; the rest stays."""
    from costtune.spec.schedule_timing import make_trigger

    store = open_store(_group_db(db))
    info = store.get_schedule(name)
    now = datetime.now(UTC).replace(microsecond=0)
    trigger = None
    if cron is not None or every is not None or tz is not None:
        old = info.trigger
        if cron is None and every is None:
            cron = old.cron
            every = None if old.every_s is None else f"{old.every_s}s"
        _check_tz(tz, every if cron is None else None)
        trigger = make_trigger(cron=cron, every=every, tz=tz or old.tz, anchor=now)
    sweep = _read_sweep(sweep_file) if sweep_file else None
    config = _settings(info.settings, **settings)
    if trigger is None and sweep is None and config == info.settings:
        out_console.print(f"schedule {name}: nothing changed (give --sweep FILE, a timing flag or a setting)",
                          highlight=False)
        return
    _check_sweep(sweep or info.sweep, name, config.cap_micros)
    store.update_schedule(name, now_s=int(now.timestamp()), trigger=trigger, sweep=sweep,
                          sweep_source=str(Path(sweep_file).resolve()) if sweep_file else info.sweep_source,
                          settings=config)
    out_console.print(f"schedule {name} updated", highlight=False)


@schedule.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@db_option
@handled
def list_(fmt: str, db: str | None) -> None:
    """Every schedule: timing, next run, state and its last run."""
    from costtune.reports.table import Column, FittedTable
    from costtune.schedules.records import schedule_record
    from costtune.schedules.runs import run_cap_micros

    store = open_store(_group_db(db))
    schedules = store.list_schedules()
    lasts = [next(iter(store.schedule_runs(s.id, limit=1)), None) for s in schedules]
    if fmt == "json":
        click.echo(json.dumps([schedule_record(s, run_cap_micros(store, s, s.sweep), [r] if r else [], detail=False)
                               for s, r in zip(schedules, lasts, strict=True)], indent=2, default=str))
        return
    timing = [s.trigger.describe() for s in schedules]
    last = ["-" if r is None else f"{r.study_name or _when(r.fire_s, s.trigger.tz)} {r.state}"
            for s, r in zip(schedules, lasts, strict=True)]
    out_console.print(FittedTable([
        Column("schedule", [s.name for s in schedules], keep=0, justify="left"),
        Column("next run", [_next_run(s) for s in schedules], keep=1, justify="left"),
        Column("state", ["paused" if s.paused else "active" for s in schedules], keep=2, justify="left"),
        Column("timing", timing, keep=3, justify="left", wrap=_longest_word(timing, 14)),
        Column("cap", [_cap(store, s) for s in schedules], keep=4),
        Column("last run", last, keep=5, justify="left", wrap=_longest_word(last, 16)),
    ], hint="widen the terminal, or use `costtune schedule list --format json`", always=1))
    if not schedules:
        out_console.print("no schedules yet: costtune schedule add NAME SWEEP.yaml --cron \"0 2 * * *\"",
                          highlight=False)


def _longest_word(cells: list[str], least: int) -> int:
    """The narrowest a text column may wrap to without cutting a word (a time zone, a study name)."""
    return max([least] + [len(w) for c in cells for w in c.split()])


def _next_run(s: Any) -> str:
    """The next run as every command shows it: "- (paused)" while paused."""
    return "- (paused)" if s.paused else _when(s.next_fire_s, s.trigger.tz)


@schedule.command("show")
@click.argument("name")
@click.option("--runs", "limit", type=int, default=10, show_default=True, help="How many recent runs to show.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@db_option
@handled
def show(name: str, limit: int, fmt: str, as_json: bool, db: str | None) -> None:
    """Schedule NAME: timing, settings, the stored sweep and its recent runs."""
    from rich.text import Text

    from costtune.money import format_usd_column
    from costtune.reports.table import Column, FittedTable
    from costtune.schedules.records import schedule_record, shown_reason
    from costtune.schedules.runs import run_cap_micros

    store = open_store(_group_db(db))
    s = store.get_schedule(name)
    runs = store.schedule_runs(s.id, limit=limit)
    if as_json or fmt == "json":
        click.echo(json.dumps(schedule_record(s, run_cap_micros(store, s, s.sweep), runs, detail=True),
                              indent=2, default=str))
        return
    for line in (f"schedule {s.name}: {s.trigger.describe()}, {'paused' if s.paused else 'active'}, "
                 f"next run {_next_run(s)}",
                 f"cap per run: {_cap(store, s)}; overlap {s.settings.overlap}; misfire grace "
                 f"{s.settings.misfire_grace_s}s; coalesce {'on' if s.settings.coalesce else 'off'}; "
                 f"warm start top {s.settings.warm_start}; promote {s.settings.promote}",
                 f"sweep stored from {s.sweep_source}"):
        out_console.print(Text(line), highlight=False)  # wrapped at words to the terminal's width
    if not runs:
        return
    spends = format_usd_column([(r.summary or {}).get("spent_micros") for r in runs], missing="-")
    bests = [((r.summary or {}).get("best") or {}) for r in runs]
    notes = [shown_reason(r.reason) or "" for r in runs]
    columns = [
        Column("fire time", [_when(r.fire_s, s.trigger.tz) for r in runs], keep=0, justify="left"),
        Column("state", [r.state for r in runs], keep=1, justify="left"),
        Column("study", [r.study_name or "-" for r in runs], keep=2, justify="left"),
        Column("best", ["-" if b.get("value") is None else f"{b['value']:.6g}" for b in bests], keep=3),
        Column("spent", spends, keep=4),
    ]
    if any(notes):
        columns.append(Column("note", notes, keep=5, justify="left", wrap=_longest_word(notes, 20)))
    out_console.print(FittedTable(columns, always=2,
                                  hint=f"widen the terminal, or use `costtune schedule show {s.name} --format json`"))


def _pause(name: str, db: str | None, paused: bool) -> None:
    store = open_store(_group_db(db))
    store.get_schedule(name)
    info = store.update_schedule(name, now_s=int(time.time()), paused=paused)
    state = "paused" if paused else f"active, next run {_next_run(info)}"
    out_console.print(f"schedule {name}: {state}", highlight=False)


@schedule.command("pause")
@click.argument("name")
@db_option
@handled
def pause(name: str, db: str | None) -> None:
    """Stop starting runs of NAME (a running one goes on)."""
    _pause(name, db, True)


@schedule.command("resume")
@click.argument("name")
@db_option
@handled
def resume(name: str, db: str | None) -> None:
    """Start runs of NAME again from its next fire time (fire times while paused are not run)."""
    _pause(name, db, False)


@schedule.command("remove")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@db_option
@handled
def remove(name: str, yes: bool, db: str | None) -> None:
    """Delete schedule NAME and its run records; its studies and model versions stay.

    Asks first unless --yes; without a terminal to ask, --yes is needed (exit 2 otherwise)."""
    store = open_store(_group_db(db))
    info = store.get_schedule(name)
    what = f"schedule {name!r} ({plural(len(store.schedule_runs(info.id)), 'run record')}) in {store.display_url}"
    confirm(what, verb="remove", yes=yes, it=True, question=f"remove {what}? Its studies and model versions stay")
    n = store.remove_schedule(name)
    out_console.print(f"schedule {name} removed ({plural(n, 'run record')}); its studies and model versions stay",
                      highlight=False)


@schedule.command("run-now")
@click.argument("name")
@db_option
@handled
def run_now(name: str, db: str | None) -> None:
    """Run schedule NAME once now, in this process (claimed like a scheduled run: never two at once)."""
    from costtune.schedules.runs import execute_run
    from costtune.store.owner import controller_id

    store = open_store(_group_db(db))
    info = store.get_schedule(name)
    owner = controller_id()
    run = store.claim_manual(name, now_s=int(time.time()), owner=owner)
    if run.state == "queued":
        out_console.print(f"schedule {name}: a run is in progress; this one is queued behind it", highlight=False)
        return
    final = execute_run(store, info, run, owner=owner, now_s=lambda: int(time.time()), say=_say)
    state = final.state
    if state == "failed" and isinstance(final.summary, dict) and final.summary.get("started_trials") == 0 \
            and final.summary.get("trials") and not final.summary.get("failed_trials"):
        state = "not run"  # no trial could start (a policy): nothing failed
    out_console.print(f"run {final.study_name}: {state}" + (f" ({final.reason})" if final.reason else ""),
                      highlight=False, soft_wrap=True)
    if final.state == "failed":
        raise SystemExit(1)


def _say(message: str) -> None:
    """A timestamped progress line on stderr: wrapped at words on a terminal, one line in a log."""
    from rich.text import Text

    line = f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S}Z {message}"
    if err_console.is_terminal:
        err_console.print(Text(line), highlight=False)
    else:
        err_console.print(line, highlight=False, soft_wrap=True, markup=False)


def _when(epoch_s: int | None, tz: str) -> str:
    from costtune.spec.schedule_timing import zone

    if epoch_s is None:
        return "never"
    local = datetime.fromtimestamp(epoch_s, UTC).astimezone(zone(tz))
    return f"{local:%Y-%m-%d %H:%M %Z}"


def _cap(store: Any, s: Any) -> str:
    from costtune.money import format_usd
    from costtune.schedules.runs import run_cap_micros

    cap = run_cap_micros(store, s, s.sweep)
    return "none" if cap is None else format_usd(cap)


def _group_db(db: str | None) -> str | None:
    """The command's --db, else the group's (``costtune schedule --db URL ...``)."""
    ctx = click.get_current_context(silent=True)
    return db if db is not None or ctx is None else ctx.meta.get("costtune.group_db")
