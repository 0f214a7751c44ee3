"""Standard five-field cron expressions (Vixie cron / POSIX crontab semantics), parsed and matched.

Fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or jan-dec), day of week
(0-7 or sun-sat; **0 and 7 are Sunday**, 1-5 is Monday to Friday). Each field is ``*``, a number,
a name, a range ``a-b``, a step ``*/n`` or ``a-b/n`` or ``a/n`` (from ``a`` to the field's end),
or a comma-separated list of those. When both day of month and day of week are restricted
(neither starts with ``*``), a day matches when **either** does (``0 0 1 * 1``: the 1st of each
month and every Monday), as in Vixie cron; otherwise both must match.

Errors are ``SpecError`` naming the flag (``--cron`` unless told) and the whole expression.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from costtune.errors import SpecError

_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
# (name, low, high, names -> number)
_FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
           ("month", 1, 12, {n: i + 1 for i, n in enumerate(_MONTHS)}),
           ("day of week", 0, 7, {n: i for i, n in enumerate(_DAYS)}))


@dataclass(frozen=True)
class CronExpr:
    """A parsed expression: the allowed values of each field (day of week 0-6, Sunday 0)."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    dom_star: bool
    dow_star: bool

    def day_matches(self, d: date) -> bool:
        """Whether date ``d`` is a run day (month, then the day-of-month / day-of-week rule)."""
        if d.month not in self.months:
            return False
        dom = d.day in self.days
        dow = (d.isoweekday() % 7) in self.weekdays
        if self.dom_star or self.dow_star:
            return dom and dow
        return dom or dow

    def next_after(self, wall: datetime, limit_days: int = 366 * 5) -> datetime | None:
        """The first naive wall time strictly after ``wall`` (to the minute) that matches; None
        when nothing matches within ``limit_days``."""
        start = (wall.replace(second=0, microsecond=0) + timedelta(minutes=1))
        day = start.date()
        hours, minutes = sorted(self.hours), sorted(self.minutes)
        for _ in range(limit_days + 1):
            if self.day_matches(day):
                first_day = day == start.date()
                for h in hours:
                    if first_day and h < start.hour:
                        continue
                    for m in minutes:
                        if first_day and h == start.hour and m < start.minute:
                            continue
                        return datetime(day.year, day.month, day.day, h, m)
            day += timedelta(days=1)
        return None


def parse_cron(text: str, flag: str = "--cron") -> CronExpr:
    """Parse a five-field expression; ``SpecError(flag, ..., text)`` on anything else."""
    fields = str(text).split()
    if len(fields) != 5:
        raise SpecError(flag, f"must have 5 fields (minute hour day-of-month month day-of-week) but has "
                              f"{len(fields)}", text)
    values = [_field(f, spec, flag, text) for f, spec in zip(fields, _FIELDS, strict=True)]
    weekdays = frozenset(v % 7 for v in values[4])
    return CronExpr(frozenset(values[0]), frozenset(values[1]), frozenset(values[2]), frozenset(values[3]),
                    weekdays, fields[2].startswith("*"), fields[4].startswith("*"))


def _field(text: str, spec: tuple, flag: str, whole: str) -> set[int]:  # type: ignore[type-arg]
    name, low, high, _names = spec
    out: set[int] = set()
    for part in text.lower().split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise SpecError(flag, f"{name} step {step_text!r} must be a whole number of at least 1", whole)
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _value(a, spec, flag, whole), _value(b, spec, flag, whole)
            if first > last:
                raise SpecError(flag, f"{name} range {base!r} runs backwards", whole)
        else:
            first = _value(base, spec, flag, whole)
            last = high if slash else first
        out.update(range(first, last + 1, step))
    return out


def _value(text: str, spec: tuple, flag: str, whole: str) -> int:  # type: ignore[type-arg]
    name, low, high, names = spec
    if text in names:
        return int(names[text])
    if not text.isdigit():
        hint = f" or a name ({', '.join(names)})" if names else ""
        raise SpecError(flag, f"{name} {text!r} is not a number{hint}", whole)
    value = int(text)
    if not low <= value <= high:
        raise SpecError(flag, f"{name} {value} is out of range {low}-{high}", whole)
    return value
