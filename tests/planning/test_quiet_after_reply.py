"""quiet_after_reply: after a reply the next automated touch waits; event and manual touches do not."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from followup.calendar import BusinessCalendar
from followup.config import load_policy
from followup.durations import Interval
from followup.planning.planner import HolderSnapshot, plan

REPO = Path(__file__).resolve().parents[2]
BASE = load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy
POLICY = BASE.model_copy(update={"quiet_after_reply": Interval(7, "d")})
CAL = BusinessCalendar.from_policy(POLICY)
TOKYO = ZoneInfo("Asia/Tokyo")
H = HolderSnapshot(
    id=1,
    external_id="H-001",
    track="new_grad",
    department=None,
    status="offered",
    offer_date=date(2026, 6, 1),
    accepted_date=None,
    start_date=date(2027, 4, 1),
    reachable=frozenset({"email"}),
)


def _regular(policy, holder, now):  # type: ignore[no-untyped-def]
    return [
        t
        for t in plan([holder], policy, {}, now, CAL).create
        if ":initial:" in t.key and ":once:" not in t.key
    ]


def test_without_a_reply_or_the_setting_the_weekly_touch_goes_on_its_day() -> None:
    now = datetime(2026, 6, 15, 9, 0, tzinfo=TOKYO)  # Monday: the 3rd weekly touch (offer + 2w)
    [touch] = _regular(POLICY, H, now)
    assert touch.due_at == datetime(2026, 6, 15, 10, 0, tzinfo=TOKYO)
    replied = replace(H, last_reply_at=datetime(2026, 6, 12, 20, 0, tzinfo=TOKYO))
    [same] = _regular(BASE, replied, now)  # quiet_after_reply unset
    assert same.due_at == touch.due_at


def test_a_touch_due_within_seven_days_of_a_reply_waits_until_after_them() -> None:
    replied = replace(H, last_reply_at=datetime(2026, 6, 12, 20, 0, tzinfo=TOKYO))  # Friday evening
    [touch] = _regular(POLICY, replied, datetime(2026, 6, 15, 9, 0, tzinfo=TOKYO))
    # 6/19 20:00 + nothing sooner: the next send moment after the quiet week is Monday 6/22 10:00
    assert touch.due_at == datetime(2026, 6, 22, 10, 0, tzinfo=TOKYO)
    assert "返信後の待機期間のため延期" in touch.reason


def test_a_reply_long_before_changes_nothing() -> None:
    replied = replace(H, last_reply_at=datetime(2026, 6, 1, 12, 0, tzinfo=TOKYO))
    [touch] = _regular(POLICY, replied, datetime(2026, 6, 15, 9, 0, tzinfo=TOKYO))
    assert touch.due_at == datetime(2026, 6, 15, 10, 0, tzinfo=TOKYO)


def test_once_the_quiet_week_is_over_the_postponed_touch_keeps_its_new_time() -> None:
    from followup.planning.planner import ExistingTouch

    replied = replace(H, last_reply_at=datetime(2026, 6, 12, 20, 0, tzinfo=TOKYO))
    [touch] = _regular(POLICY, replied, datetime(2026, 6, 15, 9, 0, tzinfo=TOKYO))
    existing = ExistingTouch(
        7, touch.key, 1, "initial", touch.seq, "message", "email", touch.due_at, "planned"
    )
    later = plan([replied], POLICY, {1: [existing]}, datetime(2026, 6, 20, 9, 0, tzinfo=TOKYO), CAL)
    assert later.cancel == [] and later.move == []
