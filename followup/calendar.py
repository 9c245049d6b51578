"""When the organisation may contact a holder: business days and the send window.

Closed days are weekends, Japanese public holidays (jpholiday, maintained upstream), the year-end
closure (12/29–1/3 by default) and HR's extra closed dates. Answers are cached per date, so planning
100,000 holders asks jpholiday about each calendar day once, not once per touch.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import jpholiday

from followup.config.schema import Policy
from followup.vocab import WEEKDAYS

WEEKEND = "土日"
DAY_OFF = "定休日"
YEAR_END = "年末年始"
CLOSED = "休業日"


def _month_day(text: str) -> tuple[int, int]:
    month, day = text.split("-")
    return int(month), int(day)


WEEKDAY_NAMES = WEEKDAYS  # the policy's names, Monday first (followup.vocab)


class BusinessCalendar:
    """Business days and the send window of one organisation (per-holder time zones allowed)."""

    def __init__(
        self,
        tz: ZoneInfo,
        *,
        japanese_holidays: bool = True,
        year_end: tuple[str, str] | None = ("12-29", "01-03"),
        closed_dates: frozenset[date] = frozenset(),
        window_start: time = time(9, 0),
        window_end: time = time(19, 0),
        preferred_time: time | None = None,
        workdays: frozenset[int] = frozenset(range(5)),
    ) -> None:
        if window_start >= window_end:
            raise ValueError("send window start must be before its end")
        self.tz = tz
        self.workdays = workdays  # date.weekday() numbers: 0 = Monday
        self.japanese_holidays = japanese_holidays
        self.year_end = (_month_day(year_end[0]), _month_day(year_end[1])) if year_end else None
        self.closed_dates = closed_dates
        self.window_start = window_start
        self.window_end = window_end
        self.preferred_time = preferred_time or window_start
        if not window_start <= self.preferred_time < window_end:
            raise ValueError("preferred send time must fall inside the send window")
        self._reasons: dict[date, str | None] = {}
        self._next: dict[date, date] = {}
        self._zones: dict[str, ZoneInfo] = {}
        self._moments: dict[tuple[date, ZoneInfo], tuple[datetime, float]] = {}

    @classmethod
    def from_policy(cls, policy: Policy, tz: ZoneInfo | None = None) -> BusinessCalendar:
        cal = policy.calendar
        closure = cal.year_end_closure
        return cls(
            tz or policy.organization.tz,
            japanese_holidays=cal.holidays == "japan",
            year_end=(closure.start, closure.end) if closure else None,
            closed_dates=frozenset(cal.closed_dates),
            window_start=cal.send_window.start,
            window_end=cal.send_window.end,
            preferred_time=cal.preferred_time,
            workdays=frozenset(WEEKDAY_NAMES.index(d) for d in cal.workdays),
        )

    def zone(self, name: str | None) -> ZoneInfo:
        """The holder's zone when it has one (a valid IANA name), else the organisation's."""
        if not name:
            return self.tz
        zone = self._zones.get(name)
        if zone is None:
            try:
                zone = ZoneInfo(name)
            except (KeyError, ValueError):
                zone = self.tz
            self._zones[name] = zone
        return zone

    def closed_reason(self, day: date) -> str | None:
        """Why ``day`` is not a business day (土日, the holiday's name, 年末年始, 休業日), or None."""
        if day in self._reasons:
            return self._reasons[day]
        reason: str | None = None
        if day.weekday() not in self.workdays:
            reason = WEEKEND if day.weekday() >= 5 else DAY_OFF
        elif self.japanese_holidays and (name := jpholiday.is_holiday_name(day)):
            reason = str(name)
        elif self._in_year_end(day):
            reason = YEAR_END
        elif day in self.closed_dates:
            reason = CLOSED
        self._reasons[day] = reason
        return reason

    def _in_year_end(self, day: date) -> bool:
        if self.year_end is None:
            return False
        (m1, d1), (m2, d2) = self.year_end
        md = (day.month, day.day)
        if (m1, d1) <= (m2, d2):  # a closure inside one year
            return (m1, d1) <= md <= (m2, d2)
        return md >= (m1, d1) or md <= (m2, d2)

    def is_business_day(self, day: date) -> bool:
        return self.closed_reason(day) is None

    def next_business_day(self, day: date) -> date:
        """``day`` itself when it is a business day, else the first business day after it."""
        found = self._next.get(day)
        if found is None:
            found = day
            while not self.is_business_day(found):
                found += timedelta(days=1)
            self._next[day] = found
        return found

    def at(self, day: date, tz: ZoneInfo | None = None) -> datetime:
        """The preferred send moment on the first business day on or after ``day``."""
        return _local(self.next_business_day(day), self.preferred_time, tz or self.tz)

    def moment(self, day: date, zone: ZoneInfo) -> tuple[datetime, float]:
        """``day`` at the preferred send time in ``zone`` and its POSIX timestamp (cached for the planner)."""
        key = (day, zone)
        found = self._moments.get(key)
        if found is None:
            moment = _local(day, self.preferred_time, zone)
            found = (moment, moment.timestamp())
            self._moments[key] = found
        return found

    def next_allowed(self, moment: datetime, tz: ZoneInfo | str | None = None) -> datetime:
        """``moment`` if it lies in the send window of a business day; else the next allowed moment.

        Before the window on a business day: the window opens that day. After it, or on a closed day:
        the preferred send time of the next business day. Returned in the holder's (or org's) zone.
        """
        if moment.tzinfo is None:
            raise ValueError("next_allowed needs an aware datetime")
        zone = self.zone(tz) if isinstance(tz, str) or tz is None else tz
        local = moment.astimezone(zone)
        day, clock = local.date(), local.timetz().replace(tzinfo=None)
        if self.is_business_day(day):
            if clock < self.window_start:
                return _local(day, self.window_start, zone)
            if clock < self.window_end:
                return local
        return _local(self.next_business_day(day + timedelta(days=1)), self.preferred_time, zone)


def _local(day: date, clock: time, zone: ZoneInfo) -> datetime:
    """``day`` at ``clock`` in ``zone``; a wall time skipped by a DST jump is moved past the gap."""
    moment = datetime.combine(day, clock, tzinfo=zone)
    return moment.astimezone(ZoneInfo("UTC")).astimezone(zone)
