"""The planner as a pure function: given holders, the example policy, history and an explicit now."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import jpholiday

from followup.calendar import BusinessCalendar
from followup.config import load_policy
from followup.config.schema import Cadence
from followup.durations import parse_interval
from followup.planning.planner import ExistingTouch, HolderSnapshot, PlannedTouch, plan, season_schedule

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy
TOKYO = ZoneInfo("Asia/Tokyo")
CAL = BusinessCalendar.from_policy(POLICY)
ALL = frozenset({"email", "line", "slack"})


def holder(
    offer: str,
    start: str = "2027-04-01",
    *,
    id: int = 1,
    status: str = "offered",
    reachable: frozenset[str] = ALL,
    track: str = "new_grad",
) -> HolderSnapshot:
    return HolderSnapshot(
        id=id,
        external_id=f"NG-{id:03d}",
        track=track,
        department=None,
        status=status,
        offer_date=date.fromisoformat(offer),
        accepted_date=None,
        start_date=date.fromisoformat(start),
        reachable=reachable,
    )


def season(h: HolderSnapshot, policy=POLICY) -> list[PlannedTouch]:
    name, cadence = policy.cadence_for(h.track, h.department)
    return season_schedule(h, name, cadence, policy, CAL)


def days(touches: list[PlannedTouch], phase: str | None = None, kinds=("message", "survey")) -> list[str]:
    return [
        t.due_at.date().isoformat()
        for t in touches
        if (phase is None or t.phase == phase) and t.kind in kinds
    ]


def tokyo(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TOKYO)


def as_existing(
    touches: list[PlannedTouch], *, status: str = "planned", first_id: int = 1
) -> list[ExistingTouch]:
    return [
        ExistingTouch(first_id + i, t.key, t.holder_id, t.phase, t.seq, t.kind, t.channel, t.due_at, status)
        for i, t in enumerate(touches)
    ]


# --- the season of a new graduate (offer 2026-04-15, start 2027-04-01) -----------------------------

NEW_GRAD = holder("2026-04-15")


def test_a_new_graduate_is_contacted_weekly_after_the_offer() -> None:
    # offer + 6w = 2026-05-27; 4/29 昭和の日 → 4/30, 5/6 振替休日 → 5/7
    assert days(season(NEW_GRAD), "initial") == [
        "2026-04-15",
        "2026-04-22",
        "2026-04-30",
        "2026-05-07",
        "2026-05-13",
        "2026-05-20",
    ]


def test_a_new_graduate_is_contacted_monthly_in_the_steady_phase() -> None:
    # from offer + 6w (5/27) to start - 8w (2027-02-04); Saturdays and Sundays move to Monday
    assert days(season(NEW_GRAD), "steady") == [
        "2026-05-27",
        "2026-06-29",  # 6/27 is a Saturday
        "2026-07-27",
        "2026-08-27",
        "2026-09-28",  # 9/27 is a Sunday
        "2026-10-27",
        "2026-11-27",
        "2026-12-28",  # 12/27 is a Sunday; 12/28 is before the year-end closure
        "2027-01-27",
    ]


def test_a_new_graduate_is_contacted_weekly_in_the_last_eight_weeks() -> None:
    # 2/11 建国記念の日 → 2/12
    assert days(season(NEW_GRAD), "pre_start") == [
        "2027-02-04",
        "2027-02-12",
        "2027-02-18",
        "2027-02-25",
        "2027-03-04",
        "2027-03-11",
        "2027-03-18",
        "2027-03-25",
        "2027-03-29",  # the first-day schedule, a one-off at start - 3bd
    ]


def test_the_presidents_call_and_the_letter_are_manual_touches_for_a_person() -> None:
    manual = [t for t in season(NEW_GRAD) if t.kind == "manual"]
    assert [(t.due_at.date().isoformat(), t.channel, t.assignee) for t in manual] == [
        ("2026-04-16", "phone", "president@example.co.jp"),
        # offer + 2w is 4/29 (昭和の日); 4/30 already has the weekly touch, so the letter goes on 5/1
        ("2026-05-01", "letter", "saiyo@example.co.jp"),
    ]
    assert manual[0].key == "NG-001:new_grad:initial:once:president_call"
    assert manual[0].note == "社長から内定のお祝いの電話をする"


def test_templates_rotate_and_every_third_touch_is_a_pulse_survey() -> None:
    initial = [t for t in season(NEW_GRAD) if t.phase == "initial" and t.kind != "manual"]
    assert [t.template for t in initial] == [
        "welcome_president",
        "mentor_intro",
        "pulse_survey",  # the survey's own message: the rotation waits, "checkin" comes next
        "checkin",
        "monthly_update",
        "pulse_survey",
    ]
    assert [t.kind for t in initial] == ["message", "message", "survey", "message", "message", "survey"]
    assert {t.survey_form for t in initial if t.kind == "survey"} == {"pulse"}
    assert all(t.event is None for t in initial)  # events are planned from their own dates
    assert [t.key for t in initial[:2]] == ["NG-001:new_grad:initial:0", "NG-001:new_grad:initial:1"]


def _closed(day: date) -> bool:
    md = (day.month, day.day)
    return (
        day.weekday() >= 5
        or jpholiday.is_holiday(day)
        or md >= (12, 29)
        or md <= (1, 3)
        or day in POLICY.calendar.closed_dates
    )


def test_no_touch_falls_on_a_closed_day_or_outside_the_send_window() -> None:
    holders = [
        holder(offer) for offer in ("2026-04-15", "2026-04-20", "2026-06-15", "2026-07-31", "2026-12-01")
    ]
    for h in holders:
        for touch in season(h):
            local = touch.due_at.astimezone(TOKYO)
            assert not _closed(local.date()), touch
            assert time(9, 0) <= local.time() < time(19, 0), touch
            assert local.time() == time(10, 0)  # send_time


def test_golden_week_umi_no_hi_and_new_year_move_to_the_next_business_day() -> None:
    assert "2026-07-21" in days(season(holder("2026-06-15")), "initial")  # 7/20 海の日
    assert "2027-01-04" in days(season(holder("2026-04-20")), "steady")  # 1/1 元日 and year-end closure
    reasons = [t.reason for t in season(holder("2026-06-15")) if t.due_at.date() == date(2026, 7, 21)]
    assert reasons and "海の日" in reasons[0]


def test_a_holder_never_gets_two_touches_on_one_day() -> None:
    for offer in ("2026-04-15", "2026-06-15", "2027-02-15", "2026-09-30"):
        touches = season(holder(offer))
        local_days = [t.due_at.astimezone(TOKYO).date() for t in touches]
        assert len(local_days) == len(set(local_days)), offer


def test_month_end_offer_is_clamped_to_each_months_last_day() -> None:
    monthly = Cadence.model_validate(
        {
            "applies_to": {"tracks": ["new_grad"]},
            "phases": [
                {
                    "name": "monthly",
                    "from": "offer",
                    "to": "offer + 8mo",
                    "every": "1mo",
                    "channels": ["email"],
                    "templates": ["checkin"],
                }
            ],
        }
    )
    policy = POLICY.model_copy(update={"cadences": {"monthly_only": monthly}, "events": {}, "tasks": {}})
    touches = season(holder("2026-01-31"), policy)
    # nominal 1/31, 2/28, 3/31, 4/30, 5/31, 6/30, 7/31, 8/31 (each counted from 1/31, never drifting to 28)
    assert days(touches) == [
        "2026-02-02",  # 1/31 is a Saturday
        "2026-03-02",  # 2/28 is a Saturday
        "2026-03-31",
        "2026-04-30",
        "2026-06-01",  # 5/31 is a Sunday
        "2026-06-30",
        "2026-07-31",
        "2026-08-31",
    ]
    assert "2026-02-28" in touches[1].reason


def test_a_late_offer_lets_the_pre_start_phase_win() -> None:
    # offer 2027-02-15 is after start - 8w (2/4): the initial phase is overridden, steady is empty,
    # and the pre-start phase runs weekly from the offer; the one-off touches still happen
    touches = season(holder("2027-02-15"))
    assert days(touches, "initial") == []
    assert days(touches, "steady") == []
    assert days(touches, "pre_start") == [
        "2027-02-15",
        "2027-02-22",
        "2027-03-01",
        "2027-03-08",
        "2027-03-15",
        "2027-03-23",  # 3/22 is the 振替休日 of 春分の日
        "2027-03-29",
        "2027-03-30",  # the first-day schedule (start - 3bd = 3/29) yields to the weekly touch
    ]
    assert days(touches, kinds=("manual",)) == ["2027-02-16", "2027-03-02"]  # letter yields to 3/01


def test_a_phase_anchored_on_acceptance_waits_for_the_acceptance_date() -> None:
    accepted = Cadence.model_validate(
        {
            "applies_to": {"tracks": ["new_grad"]},
            "phases": [
                {
                    "name": "after_yes",
                    "from": "accepted",
                    "to": "accepted + 3w",
                    "every": "1w",
                    "channels": ["email"],
                    "templates": ["checkin"],
                }
            ],
        }
    )
    policy = POLICY.model_copy(update={"cadences": {"after_yes": accepted}, "events": {}, "tasks": {}})
    undecided = holder("2026-04-15")
    assert season(undecided, policy) == []
    said_yes = replace(undecided, accepted_date=date(2026, 5, 11), status="accepted")
    assert days(season(said_yes, policy)) == ["2026-05-11", "2026-05-18", "2026-05-25"]


# --- ticks: what a planning run creates, moves and cancels -----------------------------------------


def test_a_tick_creates_only_what_is_due_within_the_horizon() -> None:
    result = plan([NEW_GRAD], POLICY, {}, tokyo("2026-04-14T09:00"), CAL)
    # due 4/15 10:00 is within 2 days; the president's call (4/16 10:00) is one hour too far
    assert [t.key for t in result.create] == ["NG-001:new_grad:initial:0"]
    assert result.create[0].due_at == tokyo("2026-04-15T10:00")
    assert result.create[0].channel == "line"


def test_planning_again_with_the_history_creates_nothing() -> None:
    now = tokyo("2026-04-15T08:00")
    first = plan([NEW_GRAD], POLICY, {}, now, CAL)
    assert len(first.create) == 2  # the first message (4/15) and the president's call (4/16)
    again = plan([NEW_GRAD], POLICY, {1: as_existing(first.create)}, now, CAL)
    assert again.create == [] and again.move == [] and again.cancel == []


def test_after_downtime_only_the_catch_up_window_is_created_not_a_burst() -> None:
    # the scheduler was down from April to 5/21: 4/15..5/13 are skipped, only 5/20 (within 3 days) is made
    result = plan([NEW_GRAD], POLICY, {}, tokyo("2026-05-21T12:00"), CAL)
    assert [t.due_at.date().isoformat() for t in result.create] == ["2026-05-20"]


def test_a_start_date_change_moves_future_planned_touches() -> None:
    now = tokyo("2027-02-03T00:00")
    created = plan([NEW_GRAD], POLICY, {}, now, CAL).create
    assert [t.key for t in created] == ["NG-001:new_grad:pre_start:0"]
    assert created[0].due_at == tokyo("2027-02-04T10:00")
    later = replace(NEW_GRAD, start_date=date(2027, 4, 15))
    result = plan([later], POLICY, {1: as_existing(created, first_id=50)}, now, CAL)
    # start - 8w is now 2027-02-18: the first pre-start touch moves there; nothing new is due
    assert result.move == [(50, tokyo("2027-02-18T10:00"))]
    assert result.create == [] and result.cancel == []


def test_an_earlier_start_date_cancels_touches_that_left_the_schedule() -> None:
    now = tokyo("2027-01-25T12:00")
    created = plan([NEW_GRAD], POLICY, {}, now, CAL).create
    assert [t.key for t in created] == ["NG-001:new_grad:steady:8"]  # 1/27
    # start 3/18: the steady phase now ends on 1/21 (start - 8w), so its 9th touch no longer exists
    earlier = replace(NEW_GRAD, start_date=date(2027, 3, 18))
    result = plan([earlier], POLICY, {1: as_existing(created, first_id=7)}, now, CAL)
    assert result.cancel == [(7, "日程の変更で予定から外れたため中止")]
    # pre_start:0 (1/21) is within the last three business days (catch-up counts business days)
    assert [t.key for t in result.create] == ["NG-001:new_grad:pre_start:0"]


def test_a_touch_whose_new_date_is_long_past_is_cancelled_not_sent_late() -> None:
    now = tokyo("2027-03-24T12:00")
    created = plan([NEW_GRAD], POLICY, {}, now, CAL).create
    assert "NG-001:new_grad:pre_start:7" in [t.key for t in created]  # 3/25
    created = [t for t in created if t.key == "NG-001:new_grad:pre_start:7"]
    # start 3/25: pre_start:7 would have been 3/18, before the catch-up window of three business days
    # (3/23, 3/19, 3/18 12:00 — 3/20–3/22 are a weekend and 春分の日's 振替休日)
    earlier = replace(NEW_GRAD, start_date=date(2027, 3, 25))
    result = plan([earlier], POLICY, {1: as_existing(created, first_id=7)}, now, CAL)
    assert result.cancel == [(7, "日程の変更で送信時期を過ぎたため中止")]


def test_a_decline_cancels_every_pending_touch() -> None:
    now = tokyo("2026-04-15T08:00")
    created = plan([NEW_GRAD], POLICY, {}, now, CAL).create
    history = as_existing(created)
    history[0] = replace(history[0], status="sent")
    declined = replace(NEW_GRAD, status="declined")
    result = plan([declined], POLICY, {1: history}, tokyo("2026-04-15T12:00"), CAL)
    assert result.create == []
    assert result.cancel == [(2, "内定辞退のため中止")]  # the president's call; the sent one stays


def test_joining_and_withdrawal_also_cancel() -> None:
    created = plan([NEW_GRAD], POLICY, {}, tokyo("2026-04-15T08:00"), CAL).create
    for status in ("joined", "withdrawn"):
        result = plan(
            [replace(NEW_GRAD, status=status)],
            POLICY,
            {1: as_existing(created)},
            tokyo("2026-04-15T09:00"),
            CAL,
        )
        assert [touch_id for touch_id, _ in result.cancel] == [1, 2]


def test_an_opt_out_from_the_preferred_channel_uses_the_next_channel() -> None:
    now = tokyo("2026-04-14T09:00")
    created = plan([NEW_GRAD], POLICY, {}, now, CAL).create
    assert created[0].channel == "line"
    no_line = replace(NEW_GRAD, reachable=frozenset({"email", "slack"}))
    # a touch planned on LINE before the opt-out switches to e-mail, on the same day
    result = plan([no_line], POLICY, {1: as_existing(created)}, now, CAL)
    assert result.rechannel == [(1, "email")]
    assert result.move == []
    # and new touches are planned on e-mail from the start
    fresh = plan([no_line], POLICY, {}, now, CAL).create
    assert [(t.key, t.channel) for t in fresh] == [("NG-001:new_grad:initial:0", "email")]


def test_a_holder_with_no_reachable_channel_is_skipped_with_a_reason() -> None:
    nobody = replace(NEW_GRAD, reachable=frozenset())
    result = plan([nobody], POLICY, {}, tokyo("2026-04-15T08:00"), CAL)
    # no message on a channel the holder lacks; the president's phone call still happens
    assert [(t.key, t.channel) for t in result.create] == [
        ("NG-001:new_grad:initial:once:president_call", "phone")
    ]
    assert len(result.skipped) == 1
    holder_id, reason = result.skipped[0]
    assert holder_id == 1 and reason.startswith("no reachable channel")


def test_a_holder_without_a_matching_cadence_is_skipped() -> None:
    result = plan([replace(NEW_GRAD, track="intern")], POLICY, {}, tokyo("2026-04-15T08:00"), CAL)
    assert result.create == []
    [(holder_id, reason)] = result.skipped
    assert holder_id == 1 and "'intern'" in reason and "new_grad" in reason  # and the tracks that exist


def test_ad_hoc_touches_are_never_cancelled_by_the_planner() -> None:
    adhoc = ExistingTouch(
        9, "NG-001:adhoc:log:1", 1, "log", 0, "manual", "phone", tokyo("2026-04-15T12:00"), "planned"
    )
    result = plan([NEW_GRAD], POLICY, {1: [adhoc]}, tokyo("2026-04-15T08:00"), CAL)
    assert result.cancel == []


def test_a_holder_time_zone_sends_at_ten_local() -> None:
    abroad = replace(NEW_GRAD, timezone="Europe/Berlin")
    first = season(abroad)[0]
    assert first.due_at == datetime(2026, 4, 15, 10, 0, tzinfo=ZoneInfo("Europe/Berlin"))


def test_mid_career_holders_are_contacted_weekly_until_the_start() -> None:
    mid = holder("2026-06-01", "2026-08-03", track="mid_career")
    touches = season(mid)
    assert days(touches, "initial") == [
        "2026-06-01",
        "2026-06-08",
        "2026-06-15",
        "2026-06-22",
        "2026-06-29",
        "2026-07-06",
        "2026-07-13",
    ]
    # every 2w from start - 2w (7/20 海の日 → 7/21), and the first-day schedule at start - 3bd
    assert days(touches, "pre_start") == ["2026-07-21", "2026-07-29"]
    assert touches[0].channel == "email"


def test_plan_refuses_a_naive_now() -> None:
    import pytest

    with pytest.raises(ValueError, match="aware"):
        plan([NEW_GRAD], POLICY, {}, datetime(2026, 4, 15, 8, 0), CAL)


def test_a_touch_delivery_deferred_keeps_its_new_due_time_and_is_not_cancelled() -> None:
    # delivery held the 4/15 touch back (over the contact cap, or a retry): it now waits until 4/22 09:00
    now = tokyo("2026-04-15T08:00")
    created = plan([NEW_GRAD], POLICY, {}, now, CAL).create
    first = as_existing(created, first_id=1)
    deferred = [
        replace(t, due_at=tokyo("2026-04-22T09:00"), deferred=True) if t.seq == 0 else t for t in first
    ]
    for later in ("2026-04-16T08:00", "2026-04-21T08:00"):
        result = plan([NEW_GRAD], POLICY, {1: deferred}, tokyo(later), CAL)
        assert all(touch_id != 1 for touch_id, _ in result.move)
        assert all(touch_id != 1 for touch_id, _ in result.cancel)


def test_a_touch_pushed_past_the_year_end_closure_moves_before_a_january_start_instead() -> None:
    # start Monday 2026-01-05: a weekly start - 1w is 12/29, inside 年末年始; forward would be the first
    # working day, so it moves back to the last business day before the closure
    cadence = POLICY.cadences["mid_career"]
    weekly = cadence.phases[1].model_copy(update={"every": parse_interval("1w"), "one_off": ()})
    policy = POLICY.model_copy(
        update={
            "cadences": {"mid_career": cadence.model_copy(update={"phases": (cadence.phases[0], weekly)})}
        }
    )
    mid = holder("2025-11-17", "2026-01-05", track="mid_career")
    pre_start = [t for t in season(mid, policy) if t.phase == "pre_start"]
    assert [(t.template, t.due_at.date().isoformat()) for t in pre_start] == [
        ("prestart_checklist", "2025-12-22"),
        ("prestart_checklist", "2025-12-26"),  # the last business day before the closure
    ]
    # the example's first-day schedule (start - 3bd) counts business days over the closure: 12/24
    first_day = [t for t in season(mid) if t.template == "first_day_schedule"]
    assert [t.due_at.date().isoformat() for t in first_day] == ["2025-12-24"]


def test_no_touch_is_ever_due_on_or_after_the_start_date() -> None:
    offers = [date(2026, 4, 1) + timedelta(days=d) for d in range(0, 330, 7)]
    starts = [date(2026, 10, 1) + timedelta(days=d) for d in range(0, 200, 3)]
    checked = 0
    for offer in offers:
        for start in starts:
            if start <= offer + timedelta(days=14):
                continue
            for track in ("new_grad", "mid_career"):
                h = holder(offer.isoformat(), start.isoformat(), track=track)
                late = [t for t in season(h) if t.due_at.astimezone(TOKYO).date() >= start]
                assert late == [], (offer, start, track, late[:1])
                checked += 1
    assert checked > 1000


def test_a_planned_touch_is_kept_when_every_channel_is_briefly_lost() -> None:
    now = tokyo("2026-04-14T09:00")
    created = plan([NEW_GRAD], POLICY, {}, now, CAL).create
    nobody = replace(NEW_GRAD, reachable=frozenset())  # opted out of the only channel an hour ago
    result = plan([nobody], POLICY, {1: as_existing(created)}, now, CAL)
    assert result.cancel == [] and result.rechannel == []  # not burnt: a new LINE id can still carry it
    back = replace(NEW_GRAD, reachable=frozenset({"line"}))
    assert plan([back], POLICY, {1: as_existing(created)}, now, CAL).cancel == []
