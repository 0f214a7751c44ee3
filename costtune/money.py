"""Money as integer micro-dollars.

Floats never enter the books: user-facing dollar amounts are parsed through ``Decimal`` from
their text, rates are micro-dollars per hour, and a charge is computed in integers from billable
milliseconds, rounding up the way providers bill (a started granule is a paid granule).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from costtune.errors import SpecError
from costtune.yamlfile import core_number

MICROS_PER_USD = 1_000_000
_MS_PER_HOUR = 3_600_000
# The largest dollar amount costtune accepts anywhere (caps, rungs, budgets): 10**15 micro-dollars,
# so ledger sums stay far inside a signed 64-bit column (about 9.2 * 10**18).
MAX_USD = 1_000_000_000
MAX_USD_MICROS = MAX_USD * MICROS_PER_USD
# The largest hourly rate (usd_per_hour, spot prices, price files): a year of one trial at it is
# 8.8 * 10**15 micro-dollars, so costs summed over many trials still fit 64 bits.
MAX_USD_PER_HOUR = 1_000_000
MAX_RATE_MICROS = MAX_USD_PER_HOUR * MICROS_PER_USD


def usd_to_micros(amount: Any, path: str = "usd", *, minimum: int = 0, maximum: int = MAX_USD_MICROS,
                  why: str = "") -> int:
    """Parse a dollar amount (str, int, Decimal, or a float written in a YAML file) exactly.

    Floats go through ``str`` first, so ``0.1`` is ten cents, not 0.1000000000000000055. Returns
    micro-dollars (rounded half up). Raises ``SpecError`` naming ``path`` and the value for anything
    that is not a finite amount in [``minimum``, ``maximum``] micro-dollars (default [0, ``MAX_USD``];
    rates pass ``MAX_RATE_MICROS``). The caller states its lower bound once, as ``minimum``
    (``POSITIVE`` for one micro-dollar: any amount > 0). With ``minimum`` 0 a negative amount gets
    ``must be >= 0``; above 0, zero and a negative amount get ``must be more than $0`` (``why`` added only
    for ``POSITIVE``, where it is a hint rather than the reason for a minimum), and a positive amount that
    rounds below ``minimum`` gets ``must be at least $X`` followed by ``why`` (one trial's minimum charge).
    """
    if isinstance(amount, bool) or amount is None:
        raise SpecError(path, "must be a dollar amount", amount)
    text = str(amount).strip().lstrip("$")
    if isinstance(amount, str) and core_number(text) is None:  # YAML 1.2 numbers only: '1_000' is not one
        raise SpecError(path, "must be a dollar amount", amount)
    try:
        value = Decimal(text)
    except (InvalidOperation, ValueError):
        raise SpecError(path, "must be a dollar amount", amount) from None
    if not value.is_finite():
        raise SpecError(path, "must be a finite dollar amount", amount)
    if value > Decimal(maximum) / MICROS_PER_USD:
        raise SpecError(path, f"must be at most ${maximum // MICROS_PER_USD:,}", amount)
    micros = int((value * MICROS_PER_USD).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if minimum > 0 and value <= 0:
        raise SpecError(path, f"must be more than $0{why if minimum == POSITIVE else ''}", amount)
    if value < 0 or micros < minimum:
        raise SpecError(path, lower_bound(minimum, why), amount)
    return micros


# The ``minimum`` of an amount that must be more than nothing: one micro-dollar, the smallest the books hold.
POSITIVE = 1


def lower_bound(minimum: int, why: str = "") -> str:
    """The message for an amount below ``minimum`` micro-dollars: ``must be >= 0``, ``must be at least $0.0016``
    (exact, ``format_usd_exact``), then ``why``; one micro-dollar with no ``why`` says money is counted in them."""
    if minimum <= 0:
        return f"must be >= 0{why}"
    if minimum == POSITIVE and not why:
        why = " (money is counted in whole micro-dollars)"
    return f"must be at least {format_usd_exact(minimum)}{why}"


def rate_to_micros(amount: Any, path: str = "usd_per_hour", *, minimum: int = 0, why: str = "") -> int:
    """An hourly rate in dollars to micro-dollars per hour: ``usd_to_micros`` up to ``MAX_USD_PER_HOUR``.

    ``minimum`` (micro-dollars an hour) and ``why`` as for ``usd_to_micros``; with ``minimum`` 0 (0 is free), a
    rate above 0 that rounds to 0 micro-dollars an hour would bill nothing at all, so it raises ``SpecError``
    naming ``path``, the value and the smallest accepted rate ($0.000001 an hour).
    """
    micros = usd_to_micros(amount, path, minimum=minimum, maximum=MAX_RATE_MICROS, why=why)
    if micros == 0 and Decimal(str(amount).strip().lstrip("$")) > 0:
        raise SpecError(path, "rounds to $0 an hour, so no time would ever be billed: the smallest accepted rate "
                        "is $0.000001 an hour (one micro-dollar; 0 means free)", amount)
    return micros


def micros_to_usd(micros: int) -> Decimal:
    return Decimal(micros) / MICROS_PER_USD


def usd_text(micros: int | None) -> str | None:
    """Exact dollars as a plain decimal string, the ``*_usd`` of JSON output beside its ``*_micros``
    (``500_000`` -> ``"0.5"``); None stays None."""
    return None if micros is None else str(micros_to_usd(micros))


# How many decimals a dollar amount shows: three significant digits of the amount (of the smallest
# non-zero amount, for a column), never fewer than cents nor more than micro-dollars.
_MIN_PLACES, _MAX_PLACES, _SIGNIFICANT = 2, 6, 3


def usd_places(*micros: int | None) -> int:
    """Decimals that show the smallest non-zero amount to three significant digits (2..6).

    One rule for every money display: a single amount (``format_usd``) and a column of amounts
    (``format_usd_column``), where all rows share the places of the column's smallest amount so
    that ``$0.0100`` and ``$0.2700`` line up instead of ``$0.010000`` beside ``$0.2700``.
    """
    nonzero = [abs(m) for m in micros if m]
    if not nonzero:
        return _MIN_PLACES
    digits = len(str(min(nonzero)))  # micro-dollars with n digits: the leading one is 10^(n-7) dollars
    return max(_MIN_PLACES, min(_MAX_PLACES, _SIGNIFICANT + 6 - digits))


def format_usd(micros: int, places: int | None = None) -> str:
    """A dollar amount for people: ``$1.23``, ``$0.0123``, ``$0.000043``, ``$0.096``, ``$1,234.50``, ``$0``.

    By default three significant digits, trailing zeros past the cents dropped; ``places`` fixes the
    decimals instead (a column's ``usd_places``, so the column lines up). For display only.
    """
    if micros == 0:
        return "$0"  # exactly nothing, not $0.000000 beside the amounts of its column
    single = places is None
    if places is None:
        places = usd_places(micros)
    quantum = Decimal(1).scaleb(-places)
    amount = micros_to_usd(micros).quantize(quantum, rounding=ROUND_HALF_UP)
    if single:  # alone, trailing zeros say nothing: $0.096, $0.27 (a column keeps them to line up)
        while places > _MIN_PLACES and amount == amount.quantize(Decimal(1).scaleb(1 - places)):
            places -= 1
            amount = amount.quantize(Decimal(1).scaleb(-places))
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,}"


def format_usd_exact(micros: int) -> str:
    """A dollar amount to the micro-dollar, never rounded: ``$0.001666``, ``$0.0025``, ``$1,234.50``, ``$0``.

    For an amount a user may copy into a sweep file (rungs chosen by costtune): it parses back to the
    same micro-dollars, where ``format_usd``'s three significant digits (``$0.00167``) would not.
    """
    if micros == 0:
        return "$0"
    amount = micros_to_usd(micros)
    places = max(_MIN_PLACES, -amount.normalize().as_tuple().exponent)  # type: ignore[operator]
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount).quantize(Decimal(1).scaleb(-places)):,}"


def format_cap(micros: int | None) -> str:
    """A dollar cap for people: ``format_usd``, or ``no cap`` for None."""
    return "no cap" if micros is None else format_usd(micros)


def format_usd_column(micros: list[int | None], missing: str = "-") -> list[str]:
    """Amounts that share one number of decimals (``usd_places`` of the column); None shows ``missing``."""
    places = usd_places(*micros)
    return [missing if m is None else format_usd(m, places) for m in micros]


def format_left_column(micros: list[int | None], missing: str = "-") -> list[str]:
    """What is left of caps, as a column (micro-dollars, signed; None shows ``missing``). A window or scope
    that committed more than its cap (a cap lowered below its spend) has nothing left: ``$0 (over by $0.294)``.
    The one rule of ``costtune spend`` and ``costtune policy status``; their JSON keeps the signed micros."""
    places = usd_places(*(abs(m) for m in micros if m is not None))
    return [missing if m is None else format_usd(m, places) if m >= 0
            else f"{format_usd(0, places)} (over by {format_usd(-m, places)})" for m in micros]


BELOW_A_MICRO = "<$0.000001"
_HUGE_USD = Decimal(10) ** 15


def format_usd_decimals(amounts: list[Decimal | str | None], missing: str = "-") -> list[str]:
    """Dollar amounts that need not be whole micro-dollars (a ratio such as dollars per unit of gain),
    shown as a column by the one rule: rounded to the micro-dollar, then ``format_usd_column``; an
    amount that rounds to nothing but is not zero shows ``<$0.000001`` (``-`` for None), and one past
    ``$10^15`` (a ratio over a vanishing gain) three significant digits with an exponent."""
    huge = [a is not None and abs(Decimal(a)) >= _HUGE_USD for a in amounts]
    micros: list[int | None] = []
    for a, big in zip(amounts, huge, strict=True):
        micros.append(None if a is None or big else int((Decimal(a) * MICROS_PER_USD).to_integral_value(ROUND_HALF_UP)))
    shown = format_usd_column(micros, missing)
    out = []
    for a, m, text, big in zip(amounts, micros, shown, huge, strict=True):
        if big:
            text = f"{'-' * (Decimal(a) < 0)}${abs(Decimal(a)):.2E}"  # type: ignore[arg-type]
        elif m == 0 and a is not None and Decimal(a) != 0:
            text = BELOW_A_MICRO
        out.append(text)
    return out


def charge_micros(
    billable_ms: int, rate_micros_per_hour: int, *, granularity_s: int = 1, minimum_s: int = 0
) -> int:
    """What ``billable_ms`` of an instance costs at a rate, with the provider's billing rules.

    Time is rounded up to whole granules (per-second billing: granularity 1 s), raised to the
    minimum charge, and the money rounded up to the next micro-dollar.
    """
    if billable_ms < 0 or rate_micros_per_hour < 0:
        raise ValueError("billable time and rate must be >= 0")
    return -(-charged_ms(billable_ms, granularity_s=granularity_s, minimum_s=minimum_s) * rate_micros_per_hour
             // _MS_PER_HOUR)


def charged_ms(billable_ms: int, *, granularity_s: int = 1, minimum_s: int = 0) -> int:
    """The time (milliseconds) ``billable_ms`` of held time is charged for: rounded up to whole
    granules (0: per millisecond), raised to the minimum charge (a 20 s AWS attempt pays 60 s)."""
    granule_ms = max(1, granularity_s * 1000)
    billed = -(-max(billable_ms, 0) // granule_ms) * granule_ms
    return max(billed, minimum_s * 1000) if billable_ms > 0 else billed

