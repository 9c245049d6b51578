"""Issue 18: a tick loads only the holders whose plan can differ from empty (``due_holders``: no plan
state, inputs changed since the tick that planned them, or a new slot in the window) and plans exactly
what the full tick plans: the same creates, moves, cancels, re-channels and skips, day after day, while
every kind of input changes under it (holder fields, a pause, opt-outs added and removed, RSVPs, a
waitlist promotion by a Core UPDATE, attendance, task statuses, replies, survey answers, delivery's
changes to pending touches, a policy change), on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from followup.calendar import BusinessCalendar
from followup.config.schema import Policy
from followup.db.models import (
    ChannelOptOut,
    EngagementEvent,
    EventRsvp,
    OfferHolder,
    SurveyResponse,
    TaskStatus,
    Touch,
)
from followup.db.session import session_scope
from followup.durations import Interval
from followup.planning.planner import PlanResult, SeasonCache, plan
from followup.planning.store import (
    apply_plan,
    due_holders,
    load_snapshots,
    plan_due,
    plan_tick,
    record_marks,
    record_plan_states,
)
from followup.vocab import ACTIVE_STATUSES
from tests.conftest import make_context

TOKYO = ZoneInfo("Asia/Tokyo")
START = datetime(2026, 10, 20, 9, 0, tzinfo=TOKYO)  # the 懇親会 invitation, reminder, day-before, thanks


def seed(url: str) -> None:
    with session_scope(url) as session:
        session.add_all(
            OfferHolder(
                external_id=f"H-{i:03d}",
                name=f"内定者 {i}",
                email=f"h{i}@example.ac.jp" if i % 4 else None,  # H-004, H-008, …: no channel at all
                line_user_id=f"U{i:032x}" if i % 3 == 0 else None,
                track="mid_career" if i % 5 == 0 else ("intern" if i == 7 else "new_grad"),
                offer_date=date(2026, 4, 1) + timedelta(days=(i * 11) % 90),
                accepted_date=date(2026, 4, 20) if i % 2 else None,
                start_date=date(2026, 12, 15) if i % 5 == 0 else date(2027, 4, 1),
                status="accepted" if i % 2 else "offered",
            )
            for i in range(1, 41)
        )


def normalised(result: PlanResult) -> dict[str, Any]:
    return {
        "create": sorted((asdict(t) for t in result.create), key=lambda t: t["key"]),
        "move": sorted(result.move),
        "cancel": sorted(result.cancel),
        "skipped": sorted(result.skipped),
        "rechannel": sorted(result.rechannel),
    }


def _planned(session: Session, external_id: str) -> Touch | None:
    return session.scalars(
        select(Touch)
        .join(OfferHolder)
        .where(OfferHolder.external_id == external_id, Touch.status == "planned")
        .order_by(Touch.due_at)
    ).first()


def change_something(url: str, day: int) -> None:
    """Between ticks: what HR, holders and delivery do (each changes what the next tick must plan)."""
    at = START + timedelta(days=day) - timedelta(hours=12)
    with session_scope(url) as session:
        holders = {h.external_id: h for h in session.scalars(select(OfferHolder))}
        ids = {k: h.id for k, h in holders.items()}
        if day == 2:  # planned touches move
            holders["H-005"].start_date = date(2026, 12, 1)
            holders["H-010"].offer_date = date(2026, 4, 3)
            holders["H-012"].start_date = date(2027, 1, 5)
        elif day == 3:
            holders["H-009"].status = "declined"  # pending touches are cancelled
        elif day == 4:  # the LINE users opt out of e-mail: their planned e-mails re-channel to LINE
            for holder in holders.values():
                if holder.line_user_id is not None:
                    session.add(ChannelOptOut(holder_id=holder.id, channel="email", at=at))
        elif day == 5:  # an address removed: H-011 has no channel left (a skip from now on)
            holders["H-011"].email = None
        elif day == 6:  # one opts in again (the opt-out row deleted, as the LINE follow webhook does)
            session.execute(delete(ChannelOptOut).where(ChannelOptOut.holder_id == ids["H-003"]))
        elif day == 7:  # RSVPs: the 懇親会 reminder's gate closes for them
            for key, status, seat in (("H-002", "attending", 1), ("H-006", "declined", None)):
                session.add(EventRsvp(holder_id=ids[key], event="konshinkai", status=status, seat=seat))
            session.add(EventRsvp(holder_id=ids["H-014"], event="konshinkai", status="waitlisted"))
        elif day == 8:  # a waitlist promotion by a Core UPDATE (no code path marks anything)
            session.execute(
                update(EventRsvp)
                .where(EventRsvp.holder_id == ids["H-014"])
                .values(status="attending", seat=2)
            )
        elif day == 9:  # HR pauses two holders (planned touches in the pause are cancelled)
            holders["H-013"].paused_until = date(2026, 11, 20)
            holders["H-017"].paused_until = date(2026, 11, 6)
        elif day == 10:  # replies: the next automated touch waits out the quiet period
            for key in ("H-018", "H-019"):
                session.add(EngagementEvent(holder_id=ids[key], kind="reply", channel="email", at=at))
        elif day == 11:  # a survey answer counts as a reply
            touch = session.scalars(select(Touch).where(Touch.holder_id == ids["H-021"])).first()
            assert touch is not None
            session.add(
                SurveyResponse(
                    touch_id=touch.id, holder_id=ids["H-021"], form="pulse", answers={}, submitted_at=at
                )
            )
        elif day in (12, 19):  # offers re-dated a day later: planned touches move a day
            for holder in holders.values():
                holder.offer_date += timedelta(days=1)
        elif day == 13:  # task statuses: reminders' gates close; one marked with a later --now
            for key in ("H-005", "H-015", "H-020"):
                session.add(
                    TaskStatus(holder_id=ids[key], task="guarantee", status="submitted", changed_by="hr")
                )
            session.add(
                TaskStatus(
                    holder_id=ids["H-008"],
                    task="guarantee",
                    status="submitted",
                    changed_by="hr",
                    changed_at=datetime(2027, 3, 1, tzinfo=TOKYO),
                )
            )
        elif day == 22:  # marked afterwards with an earlier time than that one (a --now in the past):
            session.add(  # H-012's 身元保証書 reminders (start moved to 2027-01-05) are pending now
                TaskStatus(
                    holder_id=ids["H-012"],
                    task="guarantee",
                    status="submitted",
                    changed_by="hr",
                    changed_at=at - timedelta(days=30),
                )
            )
        elif day == 14:  # the pause lifted early
            holders["H-013"].paused_until = None
        elif day == 15:  # delivery: one touch held back to a later time, one claimed then released
            held = _planned(session, "H-022")
            if held is not None:
                held.held_at, held.due_at = at, held.due_at + timedelta(hours=20)
            released = _planned(session, "H-024")
            if released is not None:
                released.status = "sending"
        elif day == 16:
            holders["H-025"].erased_at = datetime(2026, 11, 5, tzinfo=TOKYO)
        elif day == 17:  # while its LINE touch is claimed, H-024 moves from LINE back to e-mail
            session.execute(delete(ChannelOptOut).where(ChannelOptOut.holder_id == ids["H-024"]))
            session.add(ChannelOptOut(holder_id=ids["H-024"], channel="line", at=at))
        elif day == 18:
            session.execute(update(Touch).where(Touch.status == "sending").values(status="planned"))
        elif day == 20:
            holders["H-021"].track = "intern"  # no cadence any more: its planned touches go
        elif day == 26:  # after the event: attendance recorded (thanks / follow-up gates)
            session.execute(
                update(EventRsvp).where(EventRsvp.holder_id == ids["H-002"]).values(attendance="attended")
            )
            session.execute(
                update(EventRsvp).where(EventRsvp.holder_id == ids["H-014"]).values(attendance="absent")
            )
        elif day == 27:
            session.execute(
                update(TaskStatus).where(TaskStatus.holder_id == ids["H-020"]).values(status="pending")
            )
        elif day == 28:  # the holder's time zone (send moments move)
            holders["H-026"].timezone = "Asia/Singapore"


def policies(url: str, tmp_path: Path) -> tuple[Policy, Policy]:
    """The example policy with a quiet period after replies, and the same with a shorter one."""
    example = make_context(url, tmp_path).policy
    fortnight = example.scheduler.model_copy(update={"horizon": Interval(14, "d")})  # more to move
    base = example.model_copy(update={"scheduler": fortnight})
    week = base.model_copy(update={"quiet_after_reply": Interval(7, "d")})
    return week, base.model_copy(update={"quiet_after_reply": Interval(3, "d")})


def due_tick(session: Session, policy: Policy, now: datetime, seasons: SeasonCache) -> tuple[PlanResult, int]:
    """What plan_tick does for the offer holders, with the plan handed back before it is applied."""
    due = due_holders(session, policy, now, seasons)
    chunks = list(plan_due(session, policy, now, seasons, due))
    fast = PlanResult(skipped=list(due.skipped))
    for _holders, _existing, result in chunks:
        for kind in ("create", "move", "cancel", "skipped", "rechannel"):
            getattr(fast, kind).extend(getattr(result, kind))
    for holders, existing, result in chunks:
        record_plan_states(session, due, holders, existing, result, apply_plan(session, result), now)
    record_marks(session, due)
    return fast, len(due.ids)


def test_the_due_tick_plans_exactly_what_the_full_tick_plans(any_db_url: str, tmp_path: Path) -> None:
    seed(any_db_url)
    week, three_days = policies(any_db_url, tmp_path)
    touched = {"create": 0, "move": 0, "cancel": 0, "rechannel": 0, "skipped": 0}
    loaded = []
    seasons = {id(p): SeasonCache(p, BusinessCalendar.from_policy(p)) for p in (week, three_days)}
    for day in range(40):
        policy = three_days if day >= 30 else week  # day 30: the policy changed (a full tick)
        now = START + timedelta(days=day)
        change_something(any_db_url, day)
        with session_scope(any_db_url) as session:
            holders, existing = load_snapshots(session, policy, now)
            full = plan(holders, policy, existing, now, BusinessCalendar.from_policy(policy))
        with session_scope(any_db_url) as session:
            fast, few = due_tick(session, policy, now, seasons[id(policy)])
        assert normalised(fast) == normalised(full), (day, now)
        loaded.append((few, len(holders)))
        for kind in touched:
            touched[kind] += len(getattr(full, kind))
    assert all(touched.values()), touched  # every kind of decision was really compared
    assert loaded[0][0] == loaded[0][1]  # the first tick plans everyone; later ticks far fewer
    assert sum(f for f, _ in loaded[1:]) < sum(a for _, a in loaded[1:]) / 2, loaded
    with session_scope(any_db_url) as session:
        active = session.scalars(
            select(OfferHolder.id).where(
                OfferHolder.status.in_(sorted(ACTIVE_STATUSES)), OfferHolder.erased_at.is_(None)
            )
        ).all()
    assert loaded[30][0] >= len(active)  # a changed policy: everyone planned again


def test_a_steady_tick_loads_nobody_and_still_names_the_skipped(any_db_url: str, tmp_path: Path) -> None:
    """Holders whose slots cannot be created (no channel; a closed RSVP gate) are not read again while
    nothing changes, yet the tick names the unreachable ones exactly as a full tick does."""
    seed(any_db_url)
    policy, _ = policies(any_db_url, tmp_path)
    seasons = SeasonCache(policy, BusinessCalendar.from_policy(policy))
    now = datetime(2026, 11, 9, 9, 0, tzinfo=TOKYO)  # the 懇親会 reminder is in the window
    with session_scope(any_db_url) as session:
        first, planned = due_tick(session, policy, now, seasons)
    assert planned == 40 and first.create
    for later in (now, now + timedelta(minutes=10)):
        with session_scope(any_db_url) as session:
            holders, existing = load_snapshots(session, policy, later)
            full = plan(holders, policy, existing, later, BusinessCalendar.from_policy(policy))
            again, loaded = due_tick(session, policy, later, seasons)
        assert loaded == 0
        assert normalised(again) == normalised(full)
        assert any("no reachable channel" in reason for _, reason in again.skipped)
    with session_scope(any_db_url) as session:  # an earlier `plan --now`: planned again, not trusted
        _, loaded = due_tick(session, policy, now - timedelta(days=1), seasons)
    assert loaded == 40


def test_plan_tick_uses_the_due_holders_and_stays_exactly_once(any_db_url: str, tmp_path: Path) -> None:
    seed(any_db_url)
    context = make_context(any_db_url, tmp_path)
    now = datetime(2026, 4, 15, 9, 0, tzinfo=TOKYO)
    first = plan_tick(context, now)
    assert first.created > 0
    assert ("H-007", first.skipped_holders[0][1]) in first.skipped_holders  # the intern is named
    again = plan_tick(context, now)
    assert (again.created, again.moved, again.cancelled) == (0, 0, 0)
    assert again.skipped_holders == first.skipped_holders  # named again without being loaded


def test_a_mark_with_an_earlier_time_than_the_last_one_is_still_seen(any_db_url: str, tmp_path: Path) -> None:
    """HR's times (``tasks mark --now``, an imported sheet's dates) need not grow with the writes: the
    tick's watermark is the write time, so a 提出 marked with an earlier time still reaches the planner."""
    seed(any_db_url)
    policy, _ = policies(any_db_url, tmp_path)
    seasons = SeasonCache(policy, BusinessCalendar.from_policy(policy))
    now = datetime(2026, 11, 9, 9, 0, tzinfo=TOKYO)
    with session_scope(any_db_url) as session:
        ids = {h.external_id: h.id for h in session.scalars(select(OfferHolder))}
        session.add(  # marked first, with a time far ahead (a --now in March)
            TaskStatus(
                holder_id=ids["H-005"],
                task="guarantee",
                status="submitted",
                changed_by="hr",
                changed_at=datetime(2027, 3, 1, tzinfo=TOKYO),
            )
        )
    with session_scope(any_db_url) as session:
        due_tick(session, policy, now, seasons)
    with session_scope(any_db_url) as session:
        session.add(  # then one marked with an earlier time
            TaskStatus(
                holder_id=ids["H-010"],
                task="guarantee",
                status="submitted",
                changed_by="hr",
                changed_at=now - timedelta(days=30),
            )
        )
    with session_scope(any_db_url) as session:
        assert ids["H-010"] in due_holders(session, policy, now, seasons).ids
