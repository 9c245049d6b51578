"""Issue 18: the simulation computes each season once and plans only the holders a day can touch.

The fast path must give exactly what the straightforward one gives (every holder planned every day,
seasons recomputed daily, the reference flag observer): the same touch records, skip reasons and
flag notes, on a small varied population (shared and unique dates, accepted and declined holders,
no channel, no cadence, a 7-day quiet period after a reply, RSVP answers, mid-career starts inside
the span)."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from followup.calendar import BusinessCalendar
from followup.config import load_policy
from followup.durations import Interval
from followup.planning.planner import HolderSnapshot, SeasonCache, plan
from followup.planning.simulate import FlagTimeline, simulate_season
from tests.cli import REPO
from tests.planning.simulate_reference import ReferenceFlagTimeline

TOKYO = ZoneInfo("Asia/Tokyo")
BASE = load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy
QUIET = BASE.model_copy(update={"quiet_after_reply": Interval(7, "d")})


def over_contact(window: Interval) -> object:
    """A cap the example cadence breaks (counted, not enforced): ``over_contacted`` fires."""
    rule = BASE.rules.over_contacted.model_copy(update={"max_touches": 1, "window": window, "enforce": False})
    return BASE.model_copy(update={"rules": BASE.rules.model_copy(update={"over_contacted": rule})})


CAPPED_DAYS = over_contact(Interval(14, "d"))
CAPPED_MONTH = over_contact(Interval(1, "mo"))  # a calendar window: shifted, not subtracted
CHANNELS = [frozenset({"email", "line"}), frozenset({"email"}), frozenset({"line", "slack"}), frozenset()]


def population(n: int, seed: int) -> list[HolderSnapshot]:
    rng = random.Random(seed)
    holders = []
    for i in range(1, n + 1):
        track = rng.choice(["new_grad", "new_grad", "mid_career", "intern"])  # intern: no cadence
        offer = date(2026, 4, 1) + timedelta(days=rng.choice([0, 0, 14, rng.randrange(200)]))
        start = offer + timedelta(days=rng.randrange(30, 90)) if track == "mid_career" else date(2027, 4, 1)
        status = rng.choice(["offered", "accepted", "accepted", "declined"])
        replied = rng.random() < 0.3
        holders.append(
            HolderSnapshot(
                id=i,
                external_id=f"H{i:04d}",
                track=track,
                department=None,
                status=status,
                offer_date=offer,
                accepted_date=offer + timedelta(days=5) if status == "accepted" else None,
                start_date=start,
                reachable=rng.choice(CHANNELS),
                event_states={"zadankai": "attending"} if rng.random() < 0.3 else {},
                last_reply_at=datetime(2026, 6, 10, 12, 0, tzinfo=TOKYO) if replied else None,
            )
        )
    return holders


@pytest.mark.parametrize(
    "policy",
    [BASE, QUIET, CAPPED_DAYS, CAPPED_MONTH],
    ids=["example", "quiet_after_reply", "over_contact_14d", "over_contact_1mo"],
)
def test_cached_and_straightforward_simulations_agree(policy) -> None:  # type: ignore[no-untyped-def]
    holders = population(120, seed=3)
    start, end = date(2026, 4, 1), date(2026, 12, 31)
    fast = simulate_season(holders, policy, start, end, observers=[FlagTimeline(policy)])
    slow = simulate_season(
        holders, policy, start, end, observers=[ReferenceFlagTimeline(policy)], cache_seasons=False
    )
    assert len(fast.records()) > 500  # a real season, not an empty comparison
    assert fast.records() == slow.records()
    assert {h: sorted(r) for h, r in fast.skipped.items()} == {h: sorted(r) for h, r in slow.skipped.items()}
    assert fast.notes and fast.notes == slow.notes
    rules = {note["rule"] for note in fast.notes}
    assert {"neglected", "unreachable"} <= rules  # the cadence flags were really exercised
    if policy in (CAPPED_DAYS, CAPPED_MONTH):
        assert "over_contacted" in rules


def test_a_span_starting_mid_season_catches_up_the_same_way() -> None:
    holders = population(60, seed=11)
    start, end = date(2026, 9, 18), date(2026, 10, 20)  # シルバーウィーク inside the span
    fast = simulate_season(holders, BASE, start, end)
    slow = simulate_season(holders, BASE, start, end, cache_seasons=False)
    assert fast.records() and fast.records() == slow.records()


def test_each_distinct_season_is_computed_once_per_run() -> None:
    holders = population(80, seed=5)
    calendar = BusinessCalendar.from_policy(BASE)
    seasons = SeasonCache(BASE, calendar)
    for day in range(30):
        now = datetime(2026, 5, 1, tzinfo=TOKYO) + timedelta(days=day)
        plan(holders, BASE, {}, now, calendar, seasons=seasons)
    distinct = {
        (h.track, h.offer_date, h.accepted_date, h.start_date)
        for h in holders
        if h.status != "declined" and h.track != "intern"
    }
    assert len(seasons) == len(distinct)


def test_a_season_cache_is_bound_to_its_policy() -> None:
    seasons = SeasonCache(BASE, BusinessCalendar.from_policy(BASE))
    with pytest.raises(ValueError, match="one policy"):
        plan([], QUIET, {}, datetime(2026, 5, 1, tzinfo=TOKYO), seasons=seasons)
