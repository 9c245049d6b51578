"""Planning against a real database: exactly once on SQLite and PostgreSQL, across processes, with a lease."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from followup.db.models import ChannelOptOut, OfferHolder, Touch
from followup.db.session import session_scope
from followup.planning.planner import PlannedTouch, PlanResult
from followup.planning.store import apply_plan, load_snapshots, plan_tick, try_acquire_lease
from tests.conftest import REPO, make_context

TOKYO = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 4, 15, 8, 0, tzinfo=TOKYO)


def add_holders(url: str, count: int, *, first_offer: date = date(2026, 4, 13)) -> None:
    with session_scope(url) as session:
        session.add_all(
            OfferHolder(
                external_id=f"NG-{i:05d}",
                name=f"内定者 {i}",
                email=f"holder{i}@example.ac.jp",
                line_user_id=f"U{i:032x}" if i % 2 else None,
                track="new_grad",
                offer_date=first_offer + timedelta(days=i % 5),
                start_date=date(2027, 4, 1),
                status="offered",
            )
            for i in range(count)
        )


def touches(url: str) -> list[Touch]:
    with session_scope(url) as session:
        return list(session.scalars(select(Touch).order_by(Touch.key)))


def test_planning_twice_creates_each_touch_once(any_db_url: str, tmp_path: Path) -> None:
    add_holders(any_db_url, 20)
    context = make_context(any_db_url, tmp_path)
    first = plan_tick(context, NOW)
    assert first.created > 20  # every holder has its first message or president's call in the window
    second = plan_tick(context, NOW)
    assert second.created == 0 and second.moved == 0 and second.cancelled == 0
    rows = touches(any_db_url)
    assert len(rows) == first.created
    assert len({t.key for t in rows}) == len(rows)
    assert all(t.status == "planned" and t.due_at.tzinfo is not None for t in rows)


def test_the_same_plan_applied_twice_inserts_nothing_the_second_time(any_db_url: str, tmp_path: Path) -> None:
    add_holders(any_db_url, 1)
    with session_scope(any_db_url) as session:
        holder_id = session.scalar(select(OfferHolder.id))
    assert holder_id is not None
    touch = PlannedTouch(
        key="NG-00000:new_grad:initial:0",
        holder_id=holder_id,
        cadence="new_grad",
        phase="initial",
        seq=0,
        kind="message",
        channel="email",
        template="welcome_president",
        event=None,
        survey_form=None,
        due_at=datetime(2026, 4, 15, 10, 0, tzinfo=TOKYO),
    )
    with session_scope(any_db_url) as session:
        assert apply_plan(session, PlanResult(create=[touch])).created == 1
    with session_scope(any_db_url) as session:
        assert apply_plan(session, PlanResult(create=[touch])).created == 0
    assert len(touches(any_db_url)) == 1


def test_a_start_date_change_moves_and_a_decline_cancels_in_the_db(any_db_url: str, tmp_path: Path) -> None:
    add_holders(any_db_url, 1, first_offer=date(2026, 4, 15))
    context = make_context(any_db_url, tmp_path)
    now = datetime(2027, 2, 3, 0, 0, tzinfo=TOKYO)
    assert plan_tick(context, now).created == 1  # pre_start:0 on 2/4
    with session_scope(any_db_url) as session:
        holder = session.scalars(select(OfferHolder)).one()
        holder.start_date = date(2027, 4, 15)
    counts = plan_tick(context, now)
    assert (counts.created, counts.moved, counts.cancelled) == (0, 1, 0)
    [moved] = touches(any_db_url)
    assert moved.due_at == datetime(2027, 2, 18, 10, 0, tzinfo=TOKYO)

    with session_scope(any_db_url) as session:
        session.scalars(select(OfferHolder)).one().status = "declined"
    assert plan_tick(context, now).cancelled == 1
    [cancelled] = touches(any_db_url)
    assert cancelled.status == "cancelled" and cancelled.cancel_reason == "内定辞退のため中止"


def test_an_opt_out_switches_a_planned_touch_to_the_next_channel(sqlite_url: str, tmp_path: Path) -> None:
    add_holders(sqlite_url, 2, first_offer=date(2026, 4, 15))  # holder 1 has LINE and e-mail
    context = make_context(sqlite_url, tmp_path)
    plan_tick(context, datetime(2026, 4, 15, 9, 0, tzinfo=TOKYO))
    line_touch = next(t for t in touches(sqlite_url) if t.channel == "line")
    with session_scope(sqlite_url) as session:
        session.add(ChannelOptOut(holder_id=line_touch.holder_id, channel="line"))
    with session_scope(sqlite_url) as session:
        holders, _ = load_snapshots(session, context.policy)
        assert {h.id: h.reachable for h in holders}[line_touch.holder_id] == frozenset({"email"})
    assert plan_tick(context, datetime(2026, 4, 15, 9, 0, tzinfo=TOKYO)).rechannelled == 1
    assert {t.channel for t in touches(sqlite_url)} == {"email", "phone"}


def test_a_sent_touch_is_never_moved_or_cancelled(sqlite_url: str, tmp_path: Path) -> None:
    add_holders(sqlite_url, 1, first_offer=date(2026, 4, 15))
    context = make_context(sqlite_url, tmp_path)
    plan_tick(context, datetime(2026, 4, 14, 9, 0, tzinfo=TOKYO))
    with session_scope(sqlite_url) as session:
        session.scalars(select(Touch)).one().status = "sending"  # a worker claimed it meanwhile
        session.scalars(select(OfferHolder)).one().status = "declined"
    assert plan_tick(context, datetime(2026, 4, 14, 9, 0, tzinfo=TOKYO)).cancelled == 0
    assert touches(sqlite_url)[0].status == "sending"


def test_only_one_scheduler_holds_the_lease_until_it_expires(any_db_url: str) -> None:
    from followup.db.session import get_engine

    get_engine(any_db_url)
    t0 = datetime(2026, 4, 15, 9, 0, tzinfo=TOKYO)
    ttl = timedelta(seconds=60)

    def acquire(owner: str, at: datetime) -> bool:
        with session_scope(any_db_url) as session:
            return try_acquire_lease(session, "scheduler", owner, ttl, at)

    assert acquire("a", t0) is True
    assert acquire("b", t0 + timedelta(seconds=10)) is False  # a holds it
    assert acquire("a", t0 + timedelta(seconds=50)) is True  # a renews until t0 + 110s
    assert acquire("b", t0 + timedelta(seconds=100)) is False
    assert acquire("b", t0 + timedelta(seconds=111)) is True  # a stopped renewing: b takes over
    assert acquire("a", t0 + timedelta(seconds=112)) is False


WORKER = textwrap.dedent(
    """
    import json, sys, time
    from datetime import datetime
    from pathlib import Path
    from followup.config.context import AppContext
    from followup.planning.store import plan_tick, try_acquire_lease
    from followup.config.settings import Settings

    url, var_dir, go_at, now, owner = sys.argv[1:6]
    context = AppContext(settings=Settings(database_url=url, var_dir=Path(var_dir)))
    context.policy  # load before the race
    from followup.db.session import get_engine
    get_engine(url).connect().close()
    time.sleep(max(0.0, float(go_at) - time.time()))
    counts = plan_tick(context, datetime.fromisoformat(now))
    with context.session() as session:
        leader = try_acquire_lease(session, "race", owner, 60, datetime.fromisoformat(now))
    print(json.dumps({"created": counts.created, "leader": leader}))
    """
)


def test_two_planner_processes_at_once_create_no_duplicate(postgres_server, tmp_path: Path) -> None:
    url = postgres_server.create_database("two_planners")
    add_holders(url, 400)
    go_at = time.time() + 4.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, str(tmp_path / name), str(go_at), NOW.isoformat(), name],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("planner-a", "planner-b")
    ]
    outputs = []
    for proc in procs:
        out, errors = proc.communicate(timeout=120)
        assert proc.returncode == 0, errors
        outputs.append(json.loads(out.strip().splitlines()[-1]))
    print("planner outputs:", outputs)
    rows = touches(url)
    assert len(rows) > 400
    assert sum(o["created"] for o in outputs) == len(rows)  # together they made each touch exactly once
    assert len({t.key for t in rows}) == len(rows)
    assert sorted(o["leader"] for o in outputs) == [False, True]  # and only one got the lease
    with session_scope(url) as session:
        assert session.scalar(select(func.count()).select_from(Touch)) == len(rows)


@pytest.mark.parametrize("status", ["joined", "withdrawn"])
def test_inactive_holders_with_pending_touches_are_loaded_for_cancelling(
    sqlite_url: str, tmp_path: Path, status: str
) -> None:
    add_holders(sqlite_url, 1, first_offer=date(2026, 4, 15))
    context = make_context(sqlite_url, tmp_path)
    plan_tick(context, NOW)
    with session_scope(sqlite_url) as session:
        session.scalars(select(OfferHolder)).one().status = status
    assert plan_tick(context, NOW).cancelled == 2
    with session_scope(sqlite_url) as session:
        holders, _ = load_snapshots(session, context.policy, NOW)
    assert holders == []  # nothing pending any more: the holder is no longer read
