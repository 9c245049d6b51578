"""Issue 18: a tick loads only the holders it can touch (``due_holders``) and plans exactly what the
full tick plans: the same creates, moves, cancels, re-channels and skips, day after day, while holders
change under it (a start date moved, a decline, an opt-out, a holder no cadence applies to, an erased
holder), on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from followup.calendar import BusinessCalendar
from followup.db.models import ChannelOptOut, OfferHolder
from followup.db.session import session_scope
from followup.planning.planner import PlanResult, SeasonCache, plan
from followup.planning.store import apply_plan, due_holders, load_snapshots, plan_tick
from tests.conftest import make_context

TOKYO = ZoneInfo("Asia/Tokyo")


def seed(url: str) -> None:
    with session_scope(url) as session:
        session.add_all(
            OfferHolder(
                external_id=f"H-{i:03d}",
                name=f"内定者 {i}",
                email=f"h{i}@example.ac.jp" if i % 4 else None,
                line_user_id=f"U{i:032x}" if i % 3 == 0 else None,
                track="mid_career" if i % 5 == 0 else ("intern" if i == 7 else "new_grad"),
                offer_date=date(2026, 4, 1) + timedelta(days=(i * 11) % 90),
                accepted_date=date(2026, 4, 20) if i % 2 else None,
                start_date=date(2026, 8, 1) if i % 5 == 0 else date(2027, 4, 1),
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


def change_something(url: str, day: int) -> None:
    """Between ticks: what HR and holders do (each changes what the next tick must move or cancel)."""
    with session_scope(url) as session:
        holders = {h.external_id: h for h in session.scalars(select(OfferHolder))}
        if day == 3:  # planned touches move (nobody sends in this test: they stay planned)
            holders["H-005"].start_date = date(2026, 7, 1)
            holders["H-010"].offer_date = date(2026, 4, 3)
            holders["H-004"].start_date = date(2027, 1, 5)
        elif day == 6:
            holders["H-009"].status = "declined"  # pending touches are cancelled
        elif day == 9:
            for holder in holders.values():  # the LINE users opt out: planned LINE touches re-channel
                if holder.line_user_id is not None:
                    session.add(ChannelOptOut(holder_id=holder.id, channel="line"))
        elif day in (10, 11, 17):  # offers re-dated a day later: the planned touches move a day
            for holder in holders.values():
                holder.offer_date += timedelta(days=1)
        elif day == 12:
            holders["H-015"].erased_at = datetime(2026, 5, 1, tzinfo=TOKYO)
        elif day == 15:
            holders["H-021"].track = "intern"  # no cadence any more: its planned touches go


def test_the_due_tick_plans_exactly_what_the_full_tick_plans(any_db_url: str, tmp_path: Path) -> None:
    seed(any_db_url)
    policy = make_context(any_db_url, tmp_path).policy
    calendar = BusinessCalendar.from_policy(policy)
    touched = {"create": 0, "move": 0, "cancel": 0, "rechannel": 0, "skipped": 0}
    loaded = []
    for day in range(40):
        now = datetime(2026, 4, 10, 9, 0, tzinfo=TOKYO) + timedelta(days=day)
        change_something(any_db_url, day)
        with session_scope(any_db_url) as session:
            holders, existing = load_snapshots(session, policy, now)
            full = plan(holders, policy, existing, now, calendar)
            seasons = SeasonCache(policy, calendar)
            due = due_holders(session, policy, now, seasons)
            few, few_existing = load_snapshots(session, policy, now, due=due)
            fast = plan(few, policy, few_existing, now, calendar, seasons=seasons)
            assert normalised(fast) == normalised(full), now
            loaded.append((len(few), len(holders)))
            for kind in touched:
                touched[kind] += len(getattr(full, kind))
            apply_plan(session, full)
    assert all(touched.values()), touched  # every kind of decision was really compared
    assert sum(f for f, _ in loaded) < sum(a for _, a in loaded)  # and fewer holders were read


def test_plan_tick_uses_the_due_holders_and_stays_exactly_once(any_db_url: str, tmp_path: Path) -> None:
    seed(any_db_url)
    context = make_context(any_db_url, tmp_path)
    now = datetime(2026, 4, 15, 9, 0, tzinfo=TOKYO)
    first = plan_tick(context, now)
    assert first.created > 0
    assert ("H-007", first.skipped_holders[0][1]) in first.skipped_holders  # the intern is named
    again = plan_tick(context, now)
    assert (again.created, again.moved, again.cancelled) == (0, 0, 0)
