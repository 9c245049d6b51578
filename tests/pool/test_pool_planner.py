"""The talent pool's planner: pure, through the business calendar, consent first, exactly-once keys."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from followup.calendar import BusinessCalendar
from followup.config.loader import load_policy
from followup.config.schema import Policy, PoolPolicy
from followup.planning.planner import ExistingTouch, HolderSnapshot, plan
from followup.planning.pool import member_slots, plan_pool
from followup.pool.rules import PoolMember, block_reason, is_pool_key
from tests.conftest import REPO

TOKYO = ZoneInfo("Asia/Tokyo")


def policy() -> Policy:
    return load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy


def member(id: int = 1, *, status: str = "rejected", consent: date | None = None, **kw: object) -> PoolMember:
    values: dict[str, object] = {
        "id": id,
        "external_id": f"R-{id:03d}",
        "status": status,
        "anchor": date(2026, 5, 1),  # a Friday, before Golden Week
        "consent_date": consent,
        "reachable": frozenset({"email"}),
    }
    values.update(kw)
    return PoolMember(**values)  # type: ignore[arg-type]


def tick(members: list[PoolMember], now: datetime, existing=None, pool: PoolPolicy | None = None):  # type: ignore[no-untyped-def]
    p = policy()
    calendar = BusinessCalendar.from_policy(p)
    return plan_pool(
        members,
        pool or p.pool,
        existing or {},
        low=now - timedelta(days=3),
        high=now + timedelta(days=2),
        calendar=calendar,
    )


def test_the_package_default_keeps_the_pool_off_and_the_example_turns_it_on() -> None:
    assert PoolPolicy().enabled is False
    assert policy().pool.enabled is True
    assert [s.name for s in policy().pool.steps] == ["rejection", "follow_up", "news"]


def test_the_rejection_mail_goes_at_once_to_a_candidate_without_consent_and_nothing_else() -> None:
    result = tick([member()], datetime(2026, 5, 1, 11, 0, tzinfo=TOKYO))
    assert [(t.key, t.template, t.channel) for t in result.create] == [
        ("R-001:pool:2026-05-01:rejection:0", "pool_rejection", "email")
    ]
    assert result.create[0].due_at == datetime(2026, 5, 1, 10, 0, tzinfo=TOKYO)  # preferred send time
    slots = member_slots(member(), policy().pool, BusinessCalendar.from_policy(policy()))
    later = tick([member()], slots[1].due_at)
    assert later.create == []  # the follow-up needs consent


def test_nurture_goes_only_with_consent_recorded_on_or_before_its_day_and_on_business_days() -> None:
    p = policy()
    calendar = BusinessCalendar.from_policy(p)
    consented = member(consent=date(2026, 5, 2))
    slots = member_slots(consented, p.pool, calendar)
    names = [s.suffix.split(":")[-2] for s in slots]
    assert names[:3] == ["rejection", "follow_up", "news"]
    assert names.count("news") == 6  # 3, 6, 9, 12, 15, 18 months: stop_after 18mo
    assert all(calendar.is_business_day(s.due_at.astimezone(TOKYO).date()) for s in slots)
    assert slots[-1].nominal <= date(2027, 11, 1)
    follow_up = slots[1]
    assert follow_up.nominal == date(2026, 6, 1)
    created = tick([consented], follow_up.due_at)
    assert [t.phase for t in created.create] == ["follow_up"]
    too_late = member(consent=date(2026, 6, 5))  # consent after the follow-up's day: it does not go late
    assert tick([too_late], follow_up.due_at).create == []


def test_a_holiday_moves_a_pool_touch_to_the_next_business_day() -> None:
    p = policy()
    calendar = BusinessCalendar.from_policy(p)
    on_holiday = member(anchor=date(2026, 5, 4))  # みどりの日
    (first,) = [s for s in member_slots(on_holiday, p.pool, calendar) if s.seq == 0][:1]
    assert first.nominal == date(2026, 5, 4)
    assert first.due_at.astimezone(TOKYO).date() == date(2026, 5, 7)  # after Golden Week


def test_an_opted_out_member_gets_nothing_and_pending_pool_touches_are_cancelled() -> None:
    now = datetime(2026, 6, 1, 9, 0, tzinfo=TOKYO)
    pending = ExistingTouch(
        7, "R-001:pool:2026-05-01:follow_up:0", 1, "follow_up", 0, "message", "email", now, "planned"
    )
    silent = member(consent=date(2026, 5, 2), reachable=frozenset())
    result = tick([silent], now, {1: [pending]})
    assert result.create == [] and result.cancel == [(7, "配信停止・連絡先なしのため中止")]
    withdrawn = member(consent=None)
    assert tick([withdrawn], now, {1: [pending]}).cancel == [(7, "連絡への同意がないため中止")]


def test_a_member_who_applied_again_and_got_an_offer_leaves_the_pool() -> None:
    now = datetime(2026, 6, 1, 9, 0, tzinfo=TOKYO)
    pending = ExistingTouch(
        7, "R-001:pool:2026-05-01:follow_up:0", 1, "follow_up", 0, "message", "email", now, "planned"
    )
    result = tick([member(status="offered", consent=date(2026, 5, 2))], now, {1: [pending]})
    assert result.create == [] and [c[0] for c in result.cancel] == [7]
    assert block_reason(policy().pool, "offered", date(2026, 5, 2), "follow_up") is not None
    assert block_reason(policy().pool, "rejected", None, "rejection") is None
    assert block_reason(policy().pool, "rejected", None, "news") == "連絡への同意がないため中止"


def test_planning_twice_creates_nothing_new_and_a_disabled_pool_plans_nothing() -> None:
    now = datetime(2026, 5, 1, 11, 0, tzinfo=TOKYO)
    first = tick([member()], now)
    existing = {
        1: [
            ExistingTouch(1, t.key, 1, t.phase, t.seq, t.kind, t.channel, t.due_at, "sent")
            for t in first.create
        ]
    }
    assert tick([member()], now, existing).create == []
    off = policy().pool.model_copy(update={"enabled": False})
    assert tick([member()], now, pool=off).create == []


def test_declined_offer_holders_get_no_rejection_mail_and_the_offer_planner_leaves_pool_touches() -> None:
    p = policy()
    calendar = BusinessCalendar.from_policy(p)
    declined = member(status="declined", consent=date(2026, 5, 1))
    assert [s.step.name for s in member_slots(declined, p.pool, calendar)][:2] == ["follow_up", "news"]
    now = datetime(2026, 6, 1, 9, 0, tzinfo=TOKYO)
    holder = HolderSnapshot(
        1,
        "R-001",
        "new_grad",
        None,
        "declined",
        date(2026, 4, 1),
        None,
        date(2027, 4, 1),
        frozenset({"email"}),
    )
    pool_touch = ExistingTouch(
        7, "R-001:pool:2026-05-01:follow_up:0", 1, "follow_up", 0, "message", "email", now, "planned"
    )
    offer_touch = ExistingTouch(
        8, "R-001:new_grad:initial:3", 1, "initial", 3, "message", "email", now, "planned"
    )
    result = plan([holder], p, {1: [pool_touch, offer_touch]}, now, calendar)
    assert [c[0] for c in result.cancel] == [8]
    assert is_pool_key(pool_touch.key) and not is_pool_key(offer_touch.key)
