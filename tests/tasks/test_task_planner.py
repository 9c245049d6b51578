"""Task reminders in the pure planner, on the real 2027 calendar: 身元保証書 due start - 6w = 2/18 (木),
reminders -1w / -1bd / +2bd, only to holders whose status is 未提出."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from followup.calendar import BusinessCalendar
from followup.config import load_policy
from followup.planning.planner import ExistingTouch, HolderSnapshot, plan, season_schedule

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy
CAL = BusinessCalendar.from_policy(POLICY)
TOKYO = ZoneInfo("Asia/Tokyo")


def tokyo(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TOKYO)


def holder(id: int, track: str = "new_grad", **states: str) -> HolderSnapshot:
    return HolderSnapshot(
        id=id,
        external_id=f"H-{id:03d}",
        track=track,
        department=None,
        status="accepted",
        offer_date=date(2026, 6, 1),
        accepted_date=date(2026, 6, 10),
        start_date=date(2027, 4, 1),
        reachable=frozenset({"email"}),
        task_states=states,
    )


def reminders(h: HolderSnapshot, task: str) -> list[tuple[str, str]]:
    """(offset, local due day) of the task's reminders in the holder's whole season."""
    cadence = POLICY.cadence_for(h.track, h.department)
    assert cadence is not None
    return [
        (t.key.rsplit(":", 1)[1], t.due_at.astimezone(TOKYO).strftime("%Y-%m-%d %a %H:%M"))
        for t in season_schedule(h, *cadence, POLICY, CAL)
        if f":task:{task}:" in t.key
    ]


def test_guarantee_reminders_fall_before_and_after_the_due_date_on_business_days() -> None:
    # -1w = 2/11 建国記念の日 → 2/12 (金), taken by the weekly pre_start touch → 2/15 (月): still before 2/18
    # -1bd = 2/17 (水); +2bd = 2/22 (月) (2/19 金 is the first business day after the due date)
    assert reminders(holder(1), "guarantee") == [
        ("-1w", "2027-02-15 Mon 10:00"),
        ("-1bd", "2027-02-17 Wed 10:00"),
        ("+2bd", "2027-02-22 Mon 10:00"),
    ]


def test_task_reminders_never_move_a_cadence_touch() -> None:
    h = holder(1)
    cadence = POLICY.cadence_for(h.track, h.department)
    assert cadence is not None
    with_tasks = season_schedule(h, *cadence, POLICY, CAL)
    without = season_schedule(h, *cadence, POLICY.model_copy(update={"tasks": {}}), CAL)
    regular = [(t.key, t.due_at) for t in with_tasks if t.phase != "task"]
    assert regular == [(t.key, t.due_at) for t in without]
    days = [t.due_at.astimezone(TOKYO).date() for t in with_tasks]
    assert len(days) == len(set(days))  # still one touch a day at most


def test_the_audience_decides_who_is_reminded() -> None:
    assert reminders(holder(1), "health_check")
    assert reminders(replace(holder(2), track="mid_career"), "health_check") == []


def test_only_pending_holders_get_the_reminder_due_at_a_tick() -> None:
    holders = [
        holder(1),
        holder(2, guarantee="submitted"),
        holder(3, guarantee="confirmed"),
        holder(4, guarantee="exempt"),
    ]
    created = plan(holders, POLICY, {}, tokyo("2027-02-17T07:00"), CAL).create
    got = [t.key for t in created if ":task:guarantee:" in t.key]
    # the tick's window (catch-up of 3 business days back, 2 days ahead) holds -1w (2/15) and -1bd (2/17)
    assert got == ["H-001:new_grad:task:guarantee:-1w", "H-001:new_grad:task:guarantee:-1bd"]
    assert all(t.template == "task_reminder" and t.channel == "email" for t in created if t.phase == "task")


def test_a_planned_reminder_is_cancelled_once_receipt_is_marked() -> None:
    h = holder(1)
    created = plan([h], POLICY, {}, tokyo("2027-02-16T12:00"), CAL).create
    reminder = next(t for t in created if t.key.endswith(":task:guarantee:-1bd"))
    existing = ExistingTouch(
        1, reminder.key, 1, "task", reminder.seq, "message", "email", reminder.due_at, "planned"
    )
    assert plan([h], POLICY, {1: [existing]}, tokyo("2027-02-16T13:00"), CAL).cancel == []
    marked = plan(
        [replace(h, task_states={"guarantee": "submitted"})],
        POLICY,
        {1: [existing]},
        tokyo("2027-02-16T13:00"),
        CAL,
    )
    assert marked.cancel == [(1, "提出済みのため中止")]
    exempt = plan(
        [replace(h, task_states={"guarantee": "exempt"})],
        POLICY,
        {1: [existing]},
        tokyo("2027-02-16T13:00"),
        CAL,
    )
    assert exempt.cancel == [(1, "対象外のため中止")]


def test_a_task_due_before_the_offer_is_not_reminded() -> None:
    late = replace(holder(1), offer_date=date(2027, 2, 25), accepted_date=None)  # after 身元保証書's 2/18
    assert reminders(late, "guarantee") == []
    assert reminders(late, "health_check")  # due 3/4: still reminded


def test_reminders_do_not_wait_for_quiet_after_reply() -> None:
    policy = POLICY.model_copy(update={"quiet_after_reply": POLICY.scheduler.horizon})
    h = replace(holder(1), last_reply_at=tokyo("2027-02-16T18:00"))
    created = plan([h], policy, {}, tokyo("2027-02-17T07:00"), CAL).create
    reminder = next(t for t in created if t.key.endswith(":task:guarantee:-1bd"))
    assert reminder.due_at == tokyo("2027-02-17T10:00")


def test_accepting_the_offer_hands_in_the_acceptance_letter() -> None:
    offered = replace(holder(1), status="offered", accepted_date=None)
    assert reminders(offered, "acceptance_letter") == [("+2bd", "2026-06-17 Wed 10:00")]  # due 6/15 (月)
    created = plan([offered], POLICY, {}, tokyo("2026-06-16T12:00"), CAL).create
    reminder = next(t for t in created if ":task:acceptance_letter:" in t.key)
    existing = ExistingTouch(
        1, reminder.key, 1, "task", reminder.seq, "message", "email", reminder.due_at, "planned"
    )
    accepted = replace(offered, status="accepted", accepted_date=date(2026, 6, 16))
    assert reminders(accepted, "acceptance_letter") == []
    result = plan([accepted], POLICY, {1: [existing]}, tokyo("2026-06-16T13:00"), CAL)
    assert result.cancel == [(1, "内定承諾済み(提出済み)のため中止")]
