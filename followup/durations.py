"""Durations and anchors as HR writes them in YAML: ``1w``, ``3bd``, ``1mo``, ``offer + 6w``.

Parsing is strict so a typo is a config error at load time, never a surprise at send time.
Arithmetic that needs the calendar (business days) takes the calendar's predicate as an argument.
"""

from __future__ import annotations

import calendar as _calendar
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

Unit = Literal["d", "w", "bd", "mo"]
AnchorBase = Literal["offer", "accepted", "start", "deadline", "event"]  # the last two: events only

_DURATION = re.compile(r"^\s*(\d{1,4})\s*(d|w|bd|mo)\s*$")
_ANCHOR = re.compile(r"^\s*(offer|accepted|start|deadline|event)\s*(?:([+-])\s*(\S.*?))?\s*$")
_DATE = re.compile(r"^\s*(\d{4}-\d{2}-\d{2})\s*$")

UNIT_NAMES = {"d": "days", "w": "weeks", "bd": "business days", "mo": "months"}


@dataclass(frozen=True)
class Interval:
    """A positive count of days, weeks, business days or calendar months."""

    amount: int
    unit: Unit

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"

    def approx_days(self) -> float:
        """Length in calendar days, for comparisons that need no calendar (overlap checks, summaries)."""
        return {"d": 1.0, "w": 7.0, "bd": 7 / 5, "mo": 30.44}[self.unit] * self.amount

    def describe(self) -> str:
        return f"every {self.amount} {UNIT_NAMES[self.unit]}" if self.amount != 1 else f"every {self.unit}"


def parse_interval(text: str, *, allow_zero: bool = False) -> Interval:
    """``"2w"`` → Interval(2, "w"). Raises ValueError with a message a person can act on."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(
            f"bad duration {text!r}: expected a whole number and a unit, d (days), w (weeks), "
            "bd (business days) or mo (months), e.g. 1w, 14d, 3bd, 1mo"
        )
    amount = int(match.group(1))
    if amount == 0 and not allow_zero:
        raise ValueError(f"bad duration {text!r}: must be greater than zero")
    return Interval(amount, match.group(2))  # type: ignore[arg-type]


def add_months(day: date, months: int) -> date:
    """Same day ``months`` later, clamped to the month's end (1/31 + 1mo = 2/28 or 2/29)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, _calendar.monthrange(year, month)[1]))


def shift(
    day: date,
    interval: Interval,
    times: int = 1,
    *,
    is_business_day: Callable[[date], bool] | None = None,
) -> date:
    """``day`` moved by ``times`` × ``interval`` (negative ``times`` goes back).

    Months are computed from ``day`` each time (not chained), so 1/31 + 2×1mo is 3/31, not 3/28.
    """
    if interval.unit == "d":
        return day + timedelta(days=interval.amount * times)
    if interval.unit == "w":
        return day + timedelta(weeks=interval.amount * times)
    if interval.unit == "mo":
        return add_months(day, interval.amount * times)
    business = is_business_day or (lambda d: d.weekday() < 5)
    steps, step = abs(interval.amount * times), (1 if times >= 0 else -1)
    current = day
    while steps:
        current += timedelta(days=step)
        if business(current):
            steps -= 1
    return current


def shift_moment(
    moment: datetime,
    interval: Interval,
    times: int = 1,
    *,
    is_business_day: Callable[[date], bool] | None = None,
) -> datetime:
    """``moment`` moved like :func:`shift`, keeping its wall-clock time of day and time zone."""
    day = moment.date()
    return moment + (shift(day, interval, times, is_business_day=is_business_day) - day)


@dataclass(frozen=True)
class Anchor:
    """A phase bound: a holder date (offer, accepted, start) or an absolute date, plus an offset."""

    base: AnchorBase | date
    sign: int = 1
    offset: Interval | None = None

    def __str__(self) -> str:
        base = self.base.isoformat() if isinstance(self.base, date) else self.base
        if self.offset is None:
            return base
        return f"{base} {'+' if self.sign > 0 else '-'} {self.offset}"

    def resolve(
        self,
        dates: dict[str, date | None],
        is_business_day: Callable[[date], bool] | None = None,
    ) -> date | None:
        """The concrete date for one holder; None when the holder lacks the base date (not accepted yet)."""
        base = self.base if isinstance(self.base, date) else dates.get(self.base)
        if base is None:
            return None
        if self.offset is None:
            return base
        return shift(base, self.offset, self.sign, is_business_day=is_business_day)


def parse_anchor(text: str) -> Anchor:
    """``"start - 8w"`` → Anchor("start", -1, 8w); ``"2026-10-01"`` → Anchor(date(2026, 10, 1))."""
    raw = str(text)
    date_match = _DATE.match(raw)
    if date_match:
        try:
            return Anchor(date.fromisoformat(date_match.group(1)))
        except ValueError as exc:
            raise ValueError(f"bad date {raw!r}: {exc}") from None
    match = _ANCHOR.match(raw)
    if not match:
        raise ValueError(
            f"bad anchor {raw!r}: expected offer, accepted or start, optionally followed by "
            "+ or - and a duration (e.g. 'offer + 6w', 'start - 8w'), or a date like 2026-10-01"
        )
    base, sign, offset = match.groups()
    if sign is None:
        return Anchor(base)  # type: ignore[arg-type]
    try:
        interval = parse_interval(offset, allow_zero=True)
    except ValueError as exc:
        raise ValueError(f"bad anchor {raw!r}: {exc}") from None
    return Anchor(base, 1 if sign == "+" else -1, interval)  # type: ignore[arg-type]


_OFFSET = re.compile(r"^\s*([+-]?)\s*(\d{1,4})\s*(d|w|bd|mo)\s*$")


@dataclass(frozen=True)
class Offset:
    """A signed distance from a date: ``-1w`` (a week before), ``+2bd`` (two business days after)."""

    sign: int
    interval: Interval

    def __str__(self) -> str:
        return f"{'+' if self.sign > 0 else '-'}{self.interval}"

    def apply(self, day: date, is_business_day: Callable[[date], bool] | None = None) -> date:
        return shift(day, self.interval, self.sign, is_business_day=is_business_day)


def parse_offset(text: str) -> Offset:
    """``"-1bd"`` → Offset(-1, 1bd); ``"0d"`` is the day itself (no sign means after)."""
    match = _OFFSET.match(str(text))
    if not match:
        raise ValueError(
            f"bad offset {text!r}: expected - (before) or + (after) and a duration, e.g. -1w, -1bd, +2bd, 0d"
        )
    sign, amount, unit = match.groups()
    return Offset(-1 if sign == "-" else 1, Interval(int(amount), unit))  # type: ignore[arg-type]
