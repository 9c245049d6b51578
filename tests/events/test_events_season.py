"""An event's follow-through on the real 2026 calendar: invitation, reminder, day-before note, thanks and
follow-up reach the right holders at the right moments (懇親会 11/20 (金), deadline 11/13 (金))."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from followup.calendar import BusinessCalendar
from followup.config import load_policy
from followup.planning.planner import ExistingTouch, HolderSnapshot, plan

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy
CAL = BusinessCalendar.from_policy(POLICY)
TOKYO = ZoneInfo("Asia/Tokyo")


def tokyo(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TOKYO)


def holder(id: int, **states: str) -> HolderSnapshot:
    return HolderSnapshot(
        id=id,
        external_id=f"H-{id:03d}",
        track="new_grad",
        department=None,
        status="accepted",
        offer_date=date(2026, 6, 1),
        accepted_date=date(2026, 6, 10),
        start_date=date(2027, 4, 1),
        reachable=frozenset({"email"}),
        event_states=states,
    )


def konshinkai(now: str, holders: list[HolderSnapshot], existing=None) -> dict[str, list[tuple[str, str]]]:  # type: ignore[no-untyped-def]
    """kind → [(holder, local due time)] of the 懇親会 touches a tick at ``now`` creates."""
    result = plan(holders, POLICY, existing or {}, tokyo(now), CAL)
    found: dict[str, list[tuple[str, str]]] = {}
    for t in result.create:
        if ":event:konshinkai:" in t.key:
            kind = t.key.rsplit(":", 1)[1]
            local = t.due_at.astimezone(TOKYO).strftime("%Y-%m-%d %H:%M")
            found.setdefault(kind, []).append((t.key.split(":", 1)[0], local))
    return found


def test_the_invitation_goes_to_everyone_who_has_not_answered() -> None:
    got = konshinkai("2026-10-30T07:00", [holder(1), holder(2, konshinkai="attending")])
    assert got["invitation"] == [("H-001", "2026-10-30 10:00")]  # deadline 11/13 - 2w


def test_the_reminder_goes_three_business_days_before_the_deadline_to_the_unanswered_and_undecided() -> None:
    holders = [
        holder(1),
        holder(2, konshinkai="attending"),
        holder(3, konshinkai="declined"),
        holder(4, konshinkai="maybe"),
        holder(5, konshinkai="waitlisted"),
    ]
    got = konshinkai("2026-11-10T07:00", holders)
    assert got["reminder"] == [("H-001", "2026-11-10 10:00"), ("H-004", "2026-11-10 10:00")]


def test_the_day_before_note_goes_on_the_business_day_before_to_attendees_only() -> None:
    holders = [
        holder(1),
        holder(2, konshinkai="attending"),
        holder(4, konshinkai="maybe"),
        holder(5, konshinkai="waitlisted"),
    ]
    got = konshinkai("2026-11-19T07:00", holders)
    assert got["day_before"] == [("H-002", "2026-11-19 10:00")]


def test_after_the_event_thanks_to_those_present_and_a_follow_up_to_those_absent() -> None:
    # 11/21-22 weekend, 11/23 勤労感謝の日: the first business day after the event is 11/24 (火)
    holders = [
        holder(2, konshinkai="attended"),
        holder(3, konshinkai="declined"),
        holder(6, konshinkai="absent"),  # said 出席, did not come
        holder(7, konshinkai="attending"),  # attendance not recorded yet: neither
    ]
    got = konshinkai("2026-11-26T07:00", holders)
    assert got["thanks"] == [("H-002", "2026-11-24 10:00")]
    # the follow-up's nominal day is taken by the thanks slot in the shared season, so it goes the day after
    assert got["follow_up"] == [("H-003", "2026-11-25 10:00"), ("H-006", "2026-11-25 10:00")]


def test_a_planned_reminder_is_cancelled_when_the_holder_answers() -> None:
    h = holder(1)
    created = plan([h], POLICY, {}, tokyo("2026-11-09T12:00"), CAL).create
    reminder = next(t for t in created if t.key.endswith(":event:konshinkai:reminder"))
    existing = ExistingTouch(
        1, reminder.key, 1, "event", reminder.seq, "message", "email", reminder.due_at, "planned"
    )
    kept = plan([h], POLICY, {1: [existing]}, tokyo("2026-11-09T13:00"), CAL)
    assert kept.cancel == []
    answered = plan(
        [replace(h, event_states={"konshinkai": "attending"})],
        POLICY,
        {1: [existing]},
        tokyo("2026-11-09T13:00"),
        CAL,
    )
    assert answered.cancel == [(1, "出席と回答済みのため中止")]


def test_holders_with_other_answers_on_other_events_are_not_confused() -> None:
    got = konshinkai("2026-11-10T07:00", [holder(1, naiteishiki="attending")])
    assert got["reminder"] == [("H-001", "2026-11-10 10:00")]
