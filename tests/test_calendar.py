"""The business calendar: which days are closed, and where a moment outside the window moves to."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from followup.calendar import BusinessCalendar
from followup.config import load_policy

REPO = Path(__file__).resolve().parent.parent
POLICY = load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy
TOKYO = ZoneInfo("Asia/Tokyo")
CAL = BusinessCalendar.from_policy(POLICY)


@pytest.mark.parametrize(
    ("day", "reason"),
    [
        (date(2026, 4, 29), "昭和の日"),
        (date(2026, 5, 4), "みどりの日"),
        (date(2026, 5, 5), "こどもの日"),
        (date(2026, 7, 20), "海の日"),
        (date(2026, 5, 2), "土日"),
        (date(2026, 5, 3), "土日"),  # 憲法記念日 on a Sunday: closed as a weekend day
        (date(2026, 12, 29), "年末年始"),
        (date(2026, 12, 31), "年末年始"),
        (date(2027, 1, 1), "元日"),
        (date(2026, 8, 13), "休業日"),  # an extra closed date from the YAML
        (date(2026, 4, 30), None),
        (date(2026, 12, 28), None),
        (date(2027, 1, 4), None),
    ],
)
def test_it_names_why_a_day_is_closed(day: date, reason: str | None) -> None:
    assert CAL.closed_reason(day) == reason
    assert CAL.is_business_day(day) is (reason is None)


def test_a_substitute_holiday_is_closed() -> None:
    # 2026-05-03 (憲法記念日) falls on a Sunday, so Wednesday 5/6 is a 振替休日
    assert not CAL.is_business_day(date(2026, 5, 6))
    assert "振替休日" in (CAL.closed_reason(date(2026, 5, 6)) or "")


def test_a_moment_inside_the_window_on_a_business_day_stays() -> None:
    moment = datetime(2026, 4, 30, 15, 30, tzinfo=TOKYO)
    assert CAL.next_allowed(moment) == moment


def test_a_moment_before_the_window_waits_for_it_to_open() -> None:
    assert CAL.next_allowed(datetime(2026, 4, 30, 7, 0, tzinfo=TOKYO)) == datetime(
        2026, 4, 30, 9, 0, tzinfo=TOKYO
    )


def test_a_moment_after_the_window_moves_to_the_next_business_day_at_the_send_time() -> None:
    # Thursday evening → Friday 5/1 10:00 (send_time), not the holiday-filled week after
    assert CAL.next_allowed(datetime(2026, 4, 30, 19, 0, tzinfo=TOKYO)) == datetime(
        2026, 5, 1, 10, 0, tzinfo=TOKYO
    )


def test_golden_week_moves_to_the_first_business_day_after_it() -> None:
    assert CAL.next_allowed(datetime(2026, 5, 2, 10, 0, tzinfo=TOKYO)) == datetime(
        2026, 5, 7, 10, 0, tzinfo=TOKYO
    )


def test_year_end_closure_moves_to_the_first_business_day_of_january() -> None:
    assert CAL.next_allowed(datetime(2026, 12, 29, 11, 0, tzinfo=TOKYO)) == datetime(
        2027, 1, 4, 10, 0, tzinfo=TOKYO
    )


def test_a_utc_moment_is_judged_in_the_organisation_zone() -> None:
    # 2026-04-30 01:00 UTC is 10:00 in Tokyo: inside the window
    moment = datetime(2026, 4, 30, 1, 0, tzinfo=ZoneInfo("UTC"))
    assert CAL.next_allowed(moment) == moment
    assert CAL.next_allowed(moment).utcoffset() == TOKYO.utcoffset(moment.replace(tzinfo=None))


def test_a_holder_zone_overrides_the_window() -> None:
    # 10:00 in Tokyo is 02:00 in London: before London's window opens
    moment = datetime(2026, 6, 2, 10, 0, tzinfo=TOKYO)
    moved = CAL.next_allowed(moment, "Europe/London")
    assert moved == datetime(2026, 6, 2, 9, 0, tzinfo=ZoneInfo("Europe/London"))


def test_naive_moments_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        CAL.next_allowed(datetime(2026, 4, 30, 10, 0))


def test_a_calendar_without_holidays_or_closure_only_closes_weekends() -> None:
    cal = BusinessCalendar(TOKYO, japanese_holidays=False, year_end=None, preferred_time=time(9, 30))
    assert cal.is_business_day(date(2026, 4, 29))
    assert cal.is_business_day(date(2026, 12, 30))
    assert not cal.is_business_day(date(2026, 5, 2))
    assert cal.at(date(2026, 5, 2)) == datetime(2026, 5, 4, 9, 30, tzinfo=TOKYO)


def test_a_company_that_works_saturdays_can_say_so() -> None:
    from followup.calendar import BusinessCalendar

    saturday_shop = BusinessCalendar(ZoneInfo("Asia/Tokyo"), workdays=frozenset(range(6)))
    assert saturday_shop.is_business_day(date(2026, 7, 4))  # a Saturday
    assert saturday_shop.closed_reason(date(2026, 7, 5)) == "土日"  # Sunday stays closed
    assert BusinessCalendar(ZoneInfo("Asia/Tokyo")).closed_reason(date(2026, 7, 4)) == "土日"
