"""HR's pause (paused_until): no automated touch before the day, planned ones cancelled, manual ones kept."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from followup.calendar import BusinessCalendar
from followup.config import load_policy
from followup.planning.planner import PAUSED_REASON, ExistingTouch, HolderSnapshot, plan

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy
CAL = BusinessCalendar.from_policy(POLICY)
TOKYO = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 6, 15, 9, 0, tzinfo=TOKYO)  # Monday: the 3rd weekly touch (offer + 2w) is due at 10:00
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


def _automated(result_create: list) -> list:  # type: ignore[type-arg]
    return [t for t in result_create if t.kind in ("message", "survey")]


def test_without_a_pause_the_weekly_touch_is_planned() -> None:
    created = _automated(plan([H], POLICY, {}, NOW, CAL).create)
    assert any(t.due_at == datetime(2026, 6, 15, 10, 0, tzinfo=TOKYO) for t in created)


def test_a_paused_holder_gets_no_automated_touch_before_the_day() -> None:
    paused = replace(H, paused_until=date(2026, 6, 29))
    result = plan([paused], POLICY, {}, NOW, CAL)
    pause_end = datetime(2026, 6, 29, 10, 0, tzinfo=TOKYO)
    assert all(t.due_at >= pause_end for t in _automated(result.create))
    assert plan([paused], POLICY, {}, NOW + timedelta(days=14), CAL).create  # the cadence resumes


def test_a_pause_cancels_planned_automated_touches_and_keeps_the_manual_ones() -> None:
    unpaused = plan([H], POLICY, {}, NOW, CAL).create
    existing = [
        ExistingTouch(i + 1, t.key, 1, t.phase, t.seq, t.kind, t.channel, t.due_at, "planned")
        for i, t in enumerate(unpaused)
    ]
    paused = replace(H, paused_until=date(2026, 7, 31))
    result = plan([paused], POLICY, {1: existing}, NOW, CAL)
    cancelled = dict(result.cancel)
    for touch in existing:
        before_end = touch.due_at < datetime(2026, 7, 31, 10, 0, tzinfo=TOKYO)
        expected = touch.kind != "manual" and before_end
        assert (cancelled.get(touch.id) == PAUSED_REASON) is expected, touch.key
    assert any(t.kind == "manual" for t in existing)
