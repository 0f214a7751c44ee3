"""What a trial spends before its first report, and first rungs that are below it.

Rungs count money spent after a trial's first report (``costtune.runner.decisions``): its start-up
is estimated and given a grace, so a first rung below the start-up no longer stops every trial before
it reports. A start-up beyond the estimate and its grace still can; earlier attempts of a study with
the sweep's name in the user's store show it: the spend at their first report, or, for attempts
stopped before any report, at least what they spent.

The store is only read, through a read-only connection; a missing store, study or table means
nothing was measured. Nothing here creates, migrates or writes a store.
"""

from __future__ import annotations

import sqlite3
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from costtune.money import charge_micros, format_usd
from costtune.reports.fmt import format_duration
from costtune.words import plural

if TYPE_CHECKING:
    from costtune.prices.billing import BillingRule

# Attempts that ended this way without a report had not reported by then: what they spent is a
# lower bound of their spend at a first report. (A failure or an interruption says nothing.)
_CENSORING_ENDS = ("stopped", "budget", "timeout")  # a preemption is the market's doing, not the rung's
# A wall-clock controller stops a trial a moment before its reservation runs out: an attempt stopped
# at the rung without a report may show a hair less than the rung.
_AT_RUNG = 0.95

# Per-trial start-up of a cloud instance when nothing was measured: EC2 bills from the instance's launch (60 s
# minimum) and an attempt first boots, installs costtune and fetches its code (README "What it costs": 1 to 3
# minutes an attempt; the benchmarks' simulated AWS uses 60 s of boot). The middle of that range.
CLOUD_STARTUP_S = 120.0
CLOUD_PROVIDERS = ("aws", "gcp", "azure")
_ATTEMPTS_SQL = (
    "SELECT a.rate_micros_per_hour, a.cost_micros, a.exit_reason, a.ended_at, "
    "(SELECT MIN(r.elapsed_s) FROM report r WHERE r.trial_id = a.trial_id AND r.attempt_id = a.id) "  # indexed
    "FROM attempt a JOIN trial t ON t.id = a.trial_id JOIN study s ON s.id = t.study_id WHERE s.name = ?"
)


@dataclass(frozen=True)
class FirstReports:
    """Earlier attempts of a study: spend at first report (exact) and lower bounds (no report)."""

    study: str
    where: str
    exact_micros: tuple[int, ...]
    at_least_micros: tuple[int, ...]
    first_seconds: tuple[float, ...] = ()  # seconds to first report of the attempts in ``exact_micros``
    at_least_seconds: tuple[float, ...] = ()  # billed seconds of the priced attempts in ``at_least_micros``

    @property
    def attempts(self) -> int:
        return len(self.exact_micros) + len(self.at_least_micros)


def measured_warning(top_rung: int, seen: FirstReports | None) -> str | None:
    """A note when at least half of the earlier attempts ended at or past the top rung's money without any report.

    Rungs count money after a trial's first report, and before it an attempt may spend up to its top rung's money
    (``runner/decisions.py``), so a first report that came late is no harm; only attempts that spent the whole
    ladder without one (their start-up outran ``max_usd`` at their rate) are."""
    if seen is None or not seen.attempts:
        return None
    # An attempt that ended below the top rung without a report says nothing about it: left out.
    censored = [v for v in seen.at_least_micros if v >= _AT_RUNG * top_rung]
    values = list(seen.exact_micros) + censored
    if not censored or 2 * len(censored) < len(values):
        return None
    median = round(statistics.median(values))
    parts = [f"{plural(len(censored), 'attempt')} ended without any report"]
    if seen.exact_micros:
        parts.append(f"{len(seen.exact_micros)} reported")
    return (f"earlier attempts of study {seen.study!r} in {seen.where} spent a median of at least "
            f"{format_usd(median)} before their first report ({', '.join(parts)}): their start-up outran the top "
            f"rung's money, {format_usd(top_rung)} (scheduler.max_usd), so they were stopped before they reported; "
            "raise max_usd")


@dataclass(frozen=True)
class StartupEstimate:
    """Seconds an attempt is billed before its first report, and where the figure comes from."""

    seconds: float
    # "simulation", "measured" (the study's own attempts), "at least" (its attempts that ended before any report),
    # "estimate" (CLOUD_STARTUP_S) or "none"
    source: str
    attempts: int = 0  # attempts measured
    provider: str = ""  # for the "none" note: whose start-up is not counted

    def describe(self) -> str:
        if self.source == "measured":
            return (f"start-up per launch {_seconds(self.seconds)}: the median time to first report of this "
                    f"study's {plural(self.attempts, 'attempt')} (boot, set-up and the first step, billed)")
        if self.source == "at least":
            return (f"start-up per launch at least {_seconds(self.seconds)}: none of this study's attempts has "
                    "reported; "
                    f"its {plural(self.attempts, 'attempt')} that ended without a report were billed a median of "
                    f"{_seconds(self.seconds)} each (interpreter, imports and set-up included), a lower bound")
        if self.source == "estimate":
            return (f"start-up per launch {_seconds(self.seconds)}, an estimate (boot, costtune install and "
                    "code fetch: 1 to 3 minutes an attempt; the instance is billed from its launch, 60 s minimum); a "
                    "study's own attempts replace it once it has some")
        if self.source == "none" and self.provider:
            return (f"start-up per launch not counted (shown as 0 s): a trial on the {self.provider} provider is "
                    "billed from its process start, interpreter and imports included, which nothing has measured "
                    "yet; once the study has attempts, `costtune plan` uses their median time to first report")
        return ""


def _seconds(seconds: float) -> str:
    """Start-up as the plan's table shows it (``format_duration``: 218 ms, 1.5 s), whole seconds from a minute."""
    return format_duration(seconds) if seconds < 60 else f"{seconds:.0f} s"


def startup_charge(seconds: float, rate_micros: int) -> int:
    """What ``seconds`` of start-up adds to a launch's bill (micro-dollars): its share of the attempt's time, to
    the millisecond. The billing rule rounds the attempt's whole time up to its granule, once (a local attempt
    of 0.26 s start-up and 0.6 s training is billed 1 s, not 1 s of start-up and 1 s of training); the minimum
    charge is shown apart (``Overhead.minimum_micros``)."""
    return charge_micros(round(seconds * 1000), rate_micros, granularity_s=0)


def startup_estimate(provider: str, simulated_s: float | None, measured: FirstReports | None) -> StartupEstimate:
    """Per-launch start-up for the plan: the simulation's ``startup_seconds``; else the median time to first
    report of the study's earlier attempts (``read_first_reports``), for a cloud provider; else
    ``CLOUD_STARTUP_S`` for a cloud provider; for another (local) one, measured when there are attempts, else
    not counted (0 s, source "none", with a note saying so: its interpreter's start-up is billed)."""
    if simulated_s is not None:
        return StartupEstimate(simulated_s, "simulation")
    seen = list(measured.first_seconds) if measured is not None else []
    if seen:
        return StartupEstimate(float(statistics.median(seen)), "measured", len(seen))
    bound = list(measured.at_least_seconds) if measured is not None else []
    if bound:  # every attempt ended before its first report: each ran at least that long without one
        lowest = float(statistics.median(bound))
        if provider not in CLOUD_PROVIDERS or lowest > CLOUD_STARTUP_S:
            return StartupEstimate(lowest, "at least", len(bound))
    if provider not in CLOUD_PROVIDERS:
        return StartupEstimate(0.0, "none", provider=provider)
    return StartupEstimate(CLOUD_STARTUP_S, "estimate")


def read_first_reports(db_url: str, study: str, rule: BillingRule) -> FirstReports | None:
    """Earlier attempts of ``study`` in the store at ``db_url``, read-only; None when there are none.

    A store that does not exist, cannot be read or holds no such study gives None (never an error:
    ``plan`` works without a store). SQLite files are opened with ``mode=ro``; PostgreSQL in a
    read-only transaction.
    """
    rows = read_rows(db_url, _ATTEMPTS_SQL, study)
    if not rows:
        return None
    exact, at_least, seconds, bound = [], [], [], []
    for rate, cost, reason, ended, first_s in rows:
        if first_s is not None:
            exact.append(rule.charge(round(float(first_s) * 1000), int(rate or 0)))
            seconds.append(float(first_s))
        elif ended is not None and reason in _CENSORING_ENDS:
            at_least.append(int(cost or 0))
            if rate and cost:  # billed seconds, from its charge at its rate (a minimum charge overstates it)
                bound.append(int(cost) / int(rate) * 3600.0)
    if not exact and not at_least:
        return None
    return FirstReports(study, where_of(db_url), tuple(exact), tuple(at_least), tuple(seconds), tuple(bound))


def read_rows(db_url: str, sql: str, name: str) -> list[Any]:
    """The rows ``sql`` (one ``?`` parameter: ``name``) gives in the store at ``db_url``, read-only; [] when the
    store does not exist, cannot be read or lacks what the query names (an older schema)."""
    return _read_sqlite(db_url, name, sql) if db_url.startswith("sqlite") else _read_other(db_url, name, sql)


def _read_sqlite(db_url: str, study: str, sql: str) -> list[Any]:
    from sqlalchemy.engine import make_url

    path = make_url(db_url).database
    if not path or path == ":memory:" or not Path(path).is_file():
        return []
    try:
        conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return []
    try:
        return conn.execute(sql, (study,)).fetchall()
    except sqlite3.Error:  # not a costtune store, an older schema, locked: nothing measured
        return []
    finally:
        conn.close()


def _read_other(db_url: str, study: str, sql: str) -> list[Any]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        engine = create_engine(db_url, pool_pre_ping=False, connect_args={"connect_timeout": 5})
    except (SQLAlchemyError, ImportError, ValueError):
        return []
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            return list(conn.execute(text(sql.replace("?", ":name")), {"name": study}).fetchall())
    except SQLAlchemyError:
        return []
    finally:
        engine.dispose()


def where_of(db_url: str) -> str:
    """The store's file, or its URL with any password masked: for messages."""
    return db_url.split("///", 1)[-1] if db_url.startswith("sqlite") else _masked(db_url)


def _masked(url: str) -> str:
    from costtune.store.engine import display_url

    return display_url(url)
