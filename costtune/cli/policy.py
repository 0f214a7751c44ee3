"""`costtune policy ...`: check, apply, list, show, remove, explain and follow spend policies."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from costtune.cli.common import CommandGroup, confirm, count, db_option, err_console, handled, open_store, out_console
from costtune.errors import InputError, SpecError
from costtune.words import noun_for, plural, verb_for


@click.group("policy", cls=CommandGroup)
def policy() -> None:
    """Spend policies: caps per team and time window, launch rules, alerts (see README, FinOps)."""


def _say(text: str, *, err: bool = False) -> None:
    """A line of prose wrapped between words at the console's width (continuations indented)."""
    import textwrap

    console = err_console if err else out_console
    width = max(40, console.width or 80)
    console.print(textwrap.fill(text, width=width, subsequent_indent="  ", break_long_words=False,
                                break_on_hyphens=False), highlight=False, markup=False, soft_wrap=True)


def _usd(micros: int | None) -> str:
    from costtune.money import format_usd

    return "-" if micros is None else format_usd(micros)


@policy.command("check")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--sweep", "sweeps", multiple=True, type=click.Path(),
              help="A sweep file, or a directory of them (repeatable): print the policies each falls under.")
@handled
def check(files: tuple[str, ...], sweeps: tuple[str, ...]) -> None:
    """Validate policy FILES without storing anything; exit 2 naming the file, field and value of every error.

    With --sweep: exit 1 when the policies together deny every placement of a sweep (its run would launch
    nothing), naming the policies that deny. Also `costtune policy validate`."""
    from costtune.policies import load_policy_files, matching
    from costtune.policies.parse import duplicate_name
    from costtune.policies.status import rules_text
    from costtune.spec import load_sweep

    found, errors = [], []
    seen: dict[str, str] = {}
    for file in files:
        try:
            mine = load_policy_files([file])
        except SpecError as exc:
            errors.append(str(exc))
            continue
        for p in mine:  # a name in two files: both named, as `policy apply` says it
            if p.name in seen:
                errors.append(str(duplicate_name(file, p.name, seen[p.name])))
            seen.setdefault(p.name, file)
        found.extend(mine)
    blocked: list[Path] = []
    for error in errors:
        err_console.print(error, highlight=False, markup=False)
    if errors:
        raise SystemExit(2)
    for p in found:
        _say(f"{p.name}: scope {p.scope_text}; window {_window_text(p)}; cap {_usd(p.cap_micros)}; "
             f"soft cap {_usd(p.soft_cap_micros)}; {plural(len(p.thresholds), 'threshold')}; "
             f"rules: {rules_text(p)}")
    for path, listed in _sweep_files(sweeps):
        try:
            spec = load_sweep(path)
        except SpecError as exc:
            if not listed:
                raise
            out_console.print(f"{path}: skipped, not a valid sweep file ({exc})", highlight=False, markup=False)
            continue
        under = [p.name for p in matching(found, spec.tags)]
        shown = ", ".join(f"{k}={v}" for k, v in spec.tags.items()) or "no tags"
        out_console.print(f"{path} ({shown}): {', '.join(under) or 'no policy'}", highlight=False, markup=False)
        denying = _denied_everywhere(spec, found)
        if denying:
            blocked.append(path)
            names = sorted({name for name, _why in denying})
            n = len(names)
            _say(f"warning: {path}: {noun_for(n, 'policy')} {', '.join(names)} {verb_for(n, 'denies', 'deny')} every "
                 f"placement of this sweep, so its run would launch nothing: "
                 f"{'; '.join(why for _name, why in denying)}", err=True)
    out_console.print(f"{plural(len(found), 'policy')} valid", highlight=False)
    if blocked:
        raise SystemExit(1)


def _denied_everywhere(spec: Any, policies: list[Any]) -> list[tuple[str, str]]:
    """When the launch rules of ``policies`` deny every placement of the sweep (caps and stop thresholds,
    which depend on the moment, aside): for each placement, (deciding policy, the placement and why); else []."""
    from costtune.plan.rules import sweep_placements
    from costtune.policies import admit, matching
    from costtune.runner.admission import launch_request

    found = matching(policies, spec.tags)
    if not found:
        return []
    reasons = []
    for itype, market in sweep_placements(spec):  # what `costtune run` and `costtune plan` ask the policies
        verdict = admit(launch_request(spec, itype, market), found, datetime.now(UTC))
        if verdict.kind != "deny":
            return []
        reasons.append((str(verdict.policy), f"{itype or 'local'} {market or '(no market)'}: {verdict.reason}"))
    return reasons


policy.add_command(click.Command("validate", params=check.params, callback=check.callback,
                                 help=check.help, short_help="Same as `costtune policy check`."))


def _window_text(p: Any) -> str:
    """``daily (Europe/Lisbon)``, ``total``; ``none (rules only)`` for a policy with no cap, soft cap or
    threshold, which counts no money in any window."""
    w = p.window
    if p.cap_micros is None and p.soft_cap_micros is None and not p.thresholds:
        return "none (rules only)"
    if w.period == "total":
        return "total"
    from costtune.policies.model import WEEKDAYS

    day = {"weekly": f", resets {WEEKDAYS[w.reset_day - 1].capitalize()}", "monthly": f", resets on day {w.reset_day}"}
    return f"{w.period} ({w.timezone}{day.get(w.period, '') if w.reset_day != 1 else ''})"


def _sweep_files(paths: tuple[str, ...]) -> list[tuple[Path, bool]]:
    """(file, found in a directory): a directory's YAML files that are not sweeps are skipped, not errors."""
    out: list[tuple[Path, bool]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend((p, True) for p in sorted(path.iterdir()) if p.suffix in (".yaml", ".yml"))
        elif path.exists():
            out.append((path, False))
        else:
            raise InputError(f"--sweep: no such file or directory {raw!r}")
    return out


@policy.command("apply")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@db_option
@handled
def apply(files: tuple[str, ...], db: str | None) -> None:
    """Store the policies of FILES (all or none) as each name's next version; audited.

    Re-applying an unchanged policy changes nothing. Policies take effect at the next launch of
    every running sweep (read every few seconds)."""
    from costtune.policies import load_policy_files
    from costtune.policies.status import over_cap_text, window_rows

    found = load_policy_files(list(files))  # every file is valid before the store is opened
    store = open_store(db, create=True)
    for applied in store.apply_policies(found):
        state = f"version {applied.version}" if applied.changed else f"unchanged (version {applied.version})"
        out_console.print(f"policy {applied.name}: {state}", highlight=False)
    for row in window_rows(store, found, datetime.now(UTC)):
        if row["over_cap"]:
            _say(f"warning: {over_cap_text(row)}", err=True)


@policy.command("list")
@db_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@handled
def list_(db: str | None, fmt: str) -> None:
    """The policies in force: scope, window, caps, thresholds and rules."""
    from costtune.money import format_usd_column
    from costtune.policies.alerts import public_body
    from costtune.policies.status import rules_text
    from costtune.reports.table import Column, FittedTable

    store = open_store(db)
    found = store.policies()
    versions = {p.name: store.policy_versions(p.name)[-1].version for p in found}
    if fmt == "json":
        click.echo(json.dumps([{"name": p.name, "version": versions[p.name], "policy": public_body(p.raw)}
                               for p in found],
                              indent=2))
        return
    out_console.print(FittedTable([
        Column("policy", [p.name for p in found], keep=0, justify="left"),
        Column("v", [str(versions[p.name]) for p in found], keep=5),
        Column("scope", [p.scope_text for p in found], keep=1, justify="left", wrap=12),
        Column("window", [_window_text(p) for p in found], keep=2, justify="left", wrap=12),
        Column("cap", format_usd_column([p.cap_micros for p in found]), keep=3),
        Column("soft cap", format_usd_column([p.soft_cap_micros for p in found]), keep=6),
    ], title=f"policies in {store.display_url}", always=1))
    for p in found:  # thresholds and rules as lines under the table: they wrap between words at any width
        thresholds = ", ".join(f"{t.label} ({', '.join(t.actions)})" for t in p.thresholds) or "-"
        _say(f"{p.name}: thresholds {thresholds}; rules {rules_text(p)}")


@policy.command("show")
@click.argument("name")
@click.option("--version", "version", type=count(1), default=None, help="An earlier version (default: the newest).")
@db_option
@handled
def show(name: str, version: int | None, db: str | None) -> None:
    """One policy as applied (YAML), then its version history."""
    import yaml

    store = open_store(db)
    versions = store.policy_versions(name)
    if not versions:
        known = ", ".join(p.name for p in store.policies()) or "none"
        raise InputError(f"policy {name!r}: no such policy (policies in force: {known})")
    chosen = versions[-1] if version is None else next((v for v in versions if v.version == version), None)
    if chosen is None:
        raise InputError(f"--version: policy {name!r} has versions 1 to {versions[-1].version}, got {version}")
    if chosen.removed:
        out_console.print(f"# policy {name} was removed in version {chosen.version}; as last applied:",
                          highlight=False, markup=False)
    from costtune.policies.alerts import public_body

    click.echo(yaml.safe_dump(public_body(chosen.body), sort_keys=False, allow_unicode=True).rstrip())
    out_console.print("\n# history", highlight=False, markup=False)
    for v in versions:
        what = "removed" if v.removed else "applied"
        out_console.print(f"# version {v.version}: {what} {v.applied_at.isoformat(timespec='seconds')} by {v.actor}",
                          highlight=False, markup=False)


@policy.command("remove")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@db_option
@handled
def remove(name: str, yes: bool, db: str | None) -> None:
    """Stop enforcing policy NAME (its history and window books stay); audited.

    Asks first unless --yes; without a terminal to ask, --yes is needed (exit 2 otherwise)."""
    store = open_store(db)
    if any(p.name == name for p in store.policies()):  # an unknown name: the store's error names it
        confirm(f"policy {name!r} in {store.display_url}", verb="remove", yes=yes, it=True,
                question=f"stop enforcing policy {name!r} in {store.display_url}? Its history and books stay")
    version = store.remove_policy(name)
    out_console.print(f"policy {name}: removed (version {version})", highlight=False)


@policy.command("status")
@db_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@handled
def status(db: str | None, fmt: str) -> None:
    """Each policy's current window: cap, spent, held by running trials, left, forecast, alerts fired."""
    from costtune.policies.status import window_rows

    store = open_store(db)
    rows = window_rows(store, store.policies(), datetime.now(UTC))
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    _window_table(rows, f"policy windows in {store.display_url}")
    from costtune.policies.status import over_cap_text

    for row in rows:
        if row["over_cap"]:
            _say(f"warning: {over_cap_text(row)}")


def _window_table(rows: list[dict[str, Any]], title: str) -> None:
    from costtune.money import format_left_column, format_usd_column
    from costtune.reports.table import Column, FittedTable

    keys = ("cap_micros", "soft_cap_micros", "spent_micros", "held_micros", "left_micros", "forecast_micros")
    money = [(format_left_column if k == "left_micros" else format_usd_column)([r[k] for r in rows]) for k in keys]
    # the run rate would pass the hard cap, which stops launches there: the forecast is the cap, and says so
    money[-1] = [f"{m} (cap)" if r.get("forecast_at_cap") else m for m, r in zip(money[-1], rows, strict=True)]
    out_console.print(FittedTable([
        Column("policy", [r["policy"] for r in rows], keep=0, justify="left"),
        Column("window", [r["window"] for r in rows], keep=1, justify="left", wrap=14),
        *(Column(head, column, keep=keep) for head, column, keep in zip(
            ("cap", "soft cap", "spent", "held", "left", "forecast"), money, (2, 6, 3, 5, 4, 7), strict=True)),
        Column("alerts fired", [", ".join(r["alerts_fired"]) or "-" for r in rows], keep=8, justify="left", wrap=12),
    ], title=title, always=1))


@policy.command("explain")
@click.argument("sweep_file", type=click.Path(dir_okay=False))
@db_option
@handled
def explain(sweep_file: str, db: str | None) -> None:
    """Which policies in force match SWEEP_FILE's tags, what they do to each of its placements, and the
    money left in each window."""
    from costtune.plan.rules import sweep_placements
    from costtune.policies import admit, matching
    from costtune.policies.status import window_rows
    from costtune.runner.admission import launch_request
    from costtune.spec import load_sweep

    spec = load_sweep(sweep_file)
    store = open_store(db)
    found = matching(store.policies(), spec.tags)
    tags = ", ".join(f"{k}={v}" for k, v in spec.tags.items()) or "no tags"
    out_console.print(f"{spec.name} ({tags}): {', '.join(p.name for p in found) or 'no policy applies'}",
                      highlight=False, markup=False)
    if not found:
        return
    now = datetime.now(UTC)
    # the placements and requests `costtune run`, `costtune plan` and `policy check` ask the policies about
    for itype, market in sorted(sweep_placements(spec), key=lambda p: (str(p[0]), str(p[1]))):
        request = launch_request(spec, itype, market)
        verdict = admit(request, found, now, lambda scope: tuple(store.balance(scope))[1:])  # type: ignore[arg-type]
        where = f"{itype or 'local'} {market or '(no market)'}"
        notes = sorted({n for p in found if (n := p.rules.market_note(market))})  # a market rule that does not apply
        out_console.print(f"  {where}: {verdict.kind}" + (f": {verdict.reason}" if verdict.reason else "")
                          + "".join(f" ({n})" for n in notes), highlight=False, markup=False)
    _window_table(window_rows(store, found, now), "money left in each window")
