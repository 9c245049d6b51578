"""Announcements, the pure part: who a filter selects, on which channel after opt-outs, and when."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from followup.calendar import BusinessCalendar
from followup.config import load_policy
from followup.planning.announce import Candidate, FilterError, parse_filters, preview

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy
CALENDAR = BusinessCalendar.from_policy(POLICY)
TOKYO = ZoneInfo("Asia/Tokyo")


def person(
    external_id: str,
    track: str = "new_grad",
    department: str | None = "営業部",
    reachable: tuple[str, ...] = ("email",),
    status: str = "accepted",
    **more: object,
) -> Candidate:
    return Candidate(
        id=int(external_id.rsplit("-", 1)[-1]),
        external_id=external_id,
        name=f"内定者 {external_id}",
        track=track,
        department=department,
        status=status,
        reachable=frozenset(reachable),
        preference=("slack", "email", "line"),
        essential_reachable=frozenset(more.pop("essential", reachable)),  # type: ignore[arg-type]
        **more,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["track=new_grad"], {"track": {"new_grad"}}),
        (["track=new_grad", "department=営業部"], {"track": {"new_grad"}, "department": {"営業部"}}),
        (["department=営業部", "department=開発部"], {"department": {"営業部", "開発部"}}),
        (["department=営業部, 開発部"], {"department": {"営業部", "開発部"}}),
    ],
)
def test_filters_read_key_equals_value_with_repeats_meaning_either(
    values: list[str], expected: dict[str, set[str]]
) -> None:
    assert parse_filters(values) == {k: frozenset(v) for k, v in expected.items()}


@pytest.mark.parametrize("values", [[], ["new_grad"], ["team=営業"], ["track="]])
def test_a_filter_without_a_known_key_and_a_value_is_refused(values: list[str]) -> None:
    with pytest.raises(FilterError):
        parse_filters(values)


def test_keys_must_all_match_and_only_active_holders_are_selected() -> None:
    people = [
        person("NG-1"),
        person("NG-2", department="開発部"),
        person("MC-3", track="mid_career"),
        person("NG-4", status="declined"),
        person("NG-5", status="offered"),
    ]
    at = datetime(2026, 11, 25, 14, 0, tzinfo=TOKYO)
    filters = parse_filters(["track=new_grad", "department=営業部"])
    result = preview("year_end", "year_end_greeting", people, filters, at, CALENDAR)
    assert [r.candidate.external_id for r in result.recipients] == ["NG-1", "NG-5"]
    assert [r.key for r in result.recipients] == ["announce:year_end:NG-1", "announce:year_end:NG-5"]


def test_the_channel_is_the_first_reachable_one_of_the_phase_and_none_is_left_out() -> None:
    people = [
        person("NG-1", reachable=("email", "slack")),
        person("NG-2", reachable=("line",)),
        person("NG-3", reachable=(), essential=("email",)),  # opted out of everything
    ]
    at = datetime(2026, 11, 25, 14, 0, tzinfo=TOKYO)
    result = preview("n", "t", people, parse_filters(["track=new_grad"]), at, CALENDAR)
    assert [(r.candidate.external_id, r.channel) for r in result.recipients] == [
        ("NG-1", "slack"),
        ("NG-2", "line"),
        ("NG-3", None),
    ]
    assert [r.candidate.external_id for r in result.unreachable] == ["NG-3"]
    assert result.per_channel() == {"slack": 1, "line": 1}
    essential = preview("n", "t", people, parse_filters(["track=new_grad"]), at, CALENDAR, essential=True)
    assert essential.recipients[2].channel == "email"  # 入社手続き: opt-outs of follow-up do not stop it


def test_the_send_time_moves_off_a_holiday_and_out_of_the_night_per_holder_zone() -> None:
    saturday = datetime(2026, 11, 21, 10, 0, tzinfo=TOKYO)  # Mon 11/23 is 勤労感謝の日
    people = [person("NG-1"), person("NG-2", timezone="Europe/London")]
    result = preview("n", "t", people, parse_filters(["track=new_grad"]), saturday, CALENDAR)
    tokyo, london = (r.due_at for r in result.recipients)
    assert tokyo == datetime(2026, 11, 24, 10, 0, tzinfo=TOKYO)
    assert london == datetime(2026, 11, 24, 10, 0, tzinfo=ZoneInfo("Europe/London"))  # London's 10:00
    evening = datetime(2026, 11, 25, 19, 30, tzinfo=TOKYO)
    [late] = preview(
        "n", "t", [person("NG-1")], parse_filters(["track=new_grad"]), evening, CALENDAR
    ).recipients
    assert late.due_at == datetime(2026, 11, 26, 10, 0, tzinfo=TOKYO)


def test_holders_planned_by_an_earlier_run_are_marked_and_not_planned_again() -> None:
    at = datetime(2026, 11, 25, 14, 0, tzinfo=TOKYO)
    result = preview(
        "n",
        "t",
        [person("NG-1"), person("NG-2")],
        parse_filters(["track=new_grad"]),
        at,
        CALENDAR,
        frozenset({"announce:n:NG-1"}),
    )
    assert [r.candidate.external_id for r in result.already] == ["NG-1"]
    assert [r.candidate.external_id for r in result.to_plan] == ["NG-2"]
