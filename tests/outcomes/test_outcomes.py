"""Outcomes, cost, experiment arms and the backtest on small hand-checked seasons (every expected
number is worked out by hand in the comments), and the backtest on a generated season where the
decliners drift."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from followup.config import Policy, load_policy
from followup.flags.rules import TouchRecord
from followup.outcomes.backtest import run_backtest
from followup.outcomes.compare import assign_arm, compare_arms, newcombe, wilson
from followup.outcomes.cost import compute_cost
from followup.outcomes.figures import compute_outcomes, months_between
from followup.outcomes.records import HolderRecord, Season, SurveySent
from followup.outcomes.synthetic import generated_season
from tests.cli import REPO

JST = ZoneInfo("Asia/Tokyo")


def at(y: int, m: int, d: int, hour: int = 10) -> datetime:
    return datetime(y, m, d, hour, tzinfo=JST)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(REPO / "config" / "followup.yaml").policy


def strict(policy: Policy) -> Policy:
    rules = policy.rules
    return policy.model_copy(
        update={
            "rules": rules.model_copy(
                update={
                    "low_pulse": rules.low_pulse.model_copy(update={"threshold": 3.0}),
                    "unresponsive": rules.unresponsive.model_copy(update={"consecutive": 2}),
                    "pulse_drop": rules.pulse_drop.model_copy(update={"drop": 0.7}),
                }
            )
        }
    )


def hand_season(until: datetime) -> Season:
    holders = (
        HolderRecord(1, "H1", "joined", date(2026, 4, 10), date(2027, 4, 1), "new_grad", "営業部",
                     left_date=date(2027, 5, 20)),
        HolderRecord(2, "H2", "joined", date(2026, 4, 20), date(2027, 4, 1), "new_grad", "開発部"),
        HolderRecord(3, "H3", "declined", date(2026, 5, 15), date(2027, 4, 1), "new_grad", "営業部",
                     decline_reason="他社への入社を決めたため", declined_at=at(2026, 7, 20, 15)),
        HolderRecord(4, "H4", "declined", date(2026, 5, 1), date(2026, 8, 1), "mid_career", "開発部",
                     declined_at=at(2026, 5, 25, 15)),
        HolderRecord(5, "H5", "accepted", date(2026, 6, 1), date(2027, 4, 1), "new_grad", "開発部"),
        HolderRecord(6, "H6", "withdrawn", date(2026, 6, 10), date(2027, 4, 1), "new_grad", "営業部"),
    )  # fmt: skip
    touches = {
        1: (
            TouchRecord(at(2026, 4, 17), "line"),
            TouchRecord(at(2026, 4, 24), "line"),
            TouchRecord(at(2026, 5, 1), "line", "message", "failed"),
            TouchRecord(at(2026, 4, 11), "phone", "manual"),
            TouchRecord(at(2026, 4, 24), "letter", "manual"),
        ),
        2: (TouchRecord(at(2026, 4, 27), "email"),),
    }
    surveys = (
        SurveySent(1, at(2026, 5, 1), True, 4.0),
        SurveySent(1, at(2026, 6, 1), True, 3.0),
        SurveySent(3, at(2026, 6, 1), False),
        SurveySent(2, at(2026, 5, 10), True, 5.0),
    )
    return Season(holders, until, touches=touches, surveys=surveys, events_upcoming=("konshinkai",))


def test_outcome_figures_on_a_hand_checked_season() -> None:
    o = compute_outcomes(hand_season(at(2028, 4, 2)), JST)
    # 6 offers; accepted or joined: H1, H2, H5 → 50 %; declined: H3, H4 → 33.3 %
    assert (o.total.offers, o.total.accepted, o.total.declined) == (6, 3, 2)
    assert o.total.acceptance_rate == pytest.approx(0.5)
    assert o.total.decline_rate == pytest.approx(2 / 6)
    assert [(g.key, g.offers, g.accepted, g.declined) for g in o.by_track] == [
        ("mid_career", 1, 0, 1),
        ("new_grad", 5, 3, 1),
    ]
    assert [(g.key, g.offers, g.accepted, g.declined) for g in o.by_department] == [
        ("営業部", 3, 1, 1),
        ("開発部", 3, 2, 1),
    ]
    assert [(g.key, g.offers, g.accepted, g.declined) for g in o.by_offer_month] == [
        ("2026-04", 2, 2, 0),
        ("2026-05", 2, 0, 2),
        ("2026-06", 2, 1, 0),
    ]
    assert [(g.key, g.offers, g.declined) for g in o.by_season] == [
        ("2026年度入社", 1, 1),
        ("2027年度入社", 5, 1),
    ]
    assert [(r.reason, r.count, r.share) for r in o.decline_reasons] == [
        ("他社への入社を決めたため", 1, 0.5),
        ("未記入", 1, 0.5),
    ]
    # H4: 5/1 → 5/25 is month 0; H3: 5/15 → 7/20 is month 2
    assert o.declines_by_months_since_offer == [(0, 1), (1, 0), (2, 1)]
    assert o.declines_by_calendar_month == [("2026-05", 1), ("2026-07", 1)]
    # surveys: 4 delivered, 3 answered; May: 2/2 (mean of 4.0 and 5.0), June: 1/2 (3.0)
    assert (o.surveys_sent, o.surveys_answered, o.response_rate) == (4, 3, 0.75)
    assert [(m.month, m.sent, m.answered, m.mean_score) for m in o.survey_months] == [
        ("2026-05", 2, 2, 4.5),
        ("2026-06", 2, 1, 3.0),
    ]
    # joined H1 (left 2027-05-20) and H2, both started 2027-04-01 and observed for a year
    t = o.turnover
    assert (t.observed_3m, t.left_3m, t.observed_1y, t.left_1y) == (2, 1, 2, 1)
    assert (t.rate_3m, t.rate_1y) == (0.5, 0.5)


def test_early_turnover_leaves_out_holders_not_yet_observed_for_the_span() -> None:
    t = compute_outcomes(hand_season(at(2027, 12, 1)), JST).turnover
    assert (t.observed_3m, t.left_3m) == (2, 1)
    assert (t.observed_1y, t.left_1y, t.rate_1y) == (0, 0, None)  # a year has not passed yet


def test_months_since_the_offer_are_whole_calendar_months() -> None:
    assert months_between(date(2026, 4, 15), date(2026, 5, 14)) == 0
    assert months_between(date(2026, 4, 15), date(2026, 5, 15)) == 1
    assert months_between(date(2026, 1, 31), date(2026, 3, 1)) == 1


def test_cost_per_holder_per_hire_cost_per_hire_and_roi(policy: Policy) -> None:
    assert policy.budget is not None
    c = compute_cost(hand_season(at(2028, 4, 2)), policy.budget)
    # external: LINE 2 delivered × 3 = 6, letter 1 × 120 = 120, 内定式 150,000 (懇親会 not held yet: 0),
    # zadankai 0, tool 60,000 → 210,126; internal: phone 0.5 h + letter 0.5 h = 1 h × 4,000 = 4,000
    assert c.external == 210_126
    assert c.internal_hours == 1.0
    assert c.internal == 4_000
    assert c.follow_up_total == 214_126
    assert c.per_holder == pytest.approx(214_126 / 6)  # 35,687.67 per holder followed
    assert c.per_hire == 107_063  # 2 hires
    assert c.cost_per_hire == (2_400_000 + 214_126) / 2  # 採用単価 1,307,063
    # ROI = (5,000,000 × 2 − 2,614,126) ÷ 2,614,126 × 100
    assert c.roi == pytest.approx(282.537, abs=1e-3)


def test_wilson_and_newcombe_intervals_match_the_published_examples() -> None:
    low, high = wilson(8, 10)  # type: ignore[misc]
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    low, high = newcombe(56, 70, 48, 80)  # type: ignore[misc]  # Newcombe (1998): 0.0524 to 0.3339
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)
    assert wilson(0, 0) is None


def test_experiment_arms_are_stable_and_small_differences_are_called_chance() -> None:
    arms = ("A", "B")
    assert assign_arm("NG-2027-001", arms) == assign_arm("NG-2027-001", arms)
    ids = [f"X-{i:04d}" for i in range(2000)]
    share = sum(assign_arm(i, arms) == "A" for i in ids) / len(ids)
    assert 0.45 < share < 0.55  # balanced in expectation
    holders = [(i, "accepted" if n % 2 else "declined") for n, i in enumerate(ids[:40])]
    comparison = compare_arms(holders, arms)
    assert sum(a.holders for a in comparison.arms) == 40
    assert not comparison.distinguishable
    assert "偶然の範囲内" in comparison.verdict()


def test_backtest_on_a_hand_checked_season(policy: Policy) -> None:
    # Neither holder is ever contacted: neglected from offer + 14 days (4/15 00:00), seen at 08:30 that day.
    holders = (
        HolderRecord(1, "D1", "declined", date(2026, 4, 1), date(2027, 4, 1), declined_at=at(2026, 5, 5, 15)),
        HolderRecord(2, "J1", "joined", date(2026, 4, 1), date(2026, 5, 1), "mid_career"),
    )
    result = run_backtest(Season(holders, at(2026, 6, 1)), policy)
    assert (result.decliners, result.decliners_flagged, result.recall) == (1, 1, 1.0)
    assert result.lead_days == [20]  # flagged 4/15, declined 5/5
    assert result.lead_quartiles() == (20.0, 20.0, 20.0)
    assert result.first_rules() == {"neglected": 1}
    # J1: followed 4/1–4/30 (30 days), one flag onset (4/15): 1 ÷ (30 / 30.4375) × 100
    assert (result.joined, result.joined_flagged, result.false_alarms) == (1, 1, 1)
    assert result.false_alarms_per_100_per_month == pytest.approx(101.458, abs=1e-3)
    naive = run_backtest(Season(holders, at(2026, 6, 1)), policy, strategy="naive")
    assert naive.replays == result.replays


def test_backtest_on_a_drifting_season_shows_recall_lead_time_and_a_stricter_policy(policy: Policy) -> None:
    season = generated_season(300, seed=3)
    default = run_backtest(season, policy, label="default")
    stricter = run_backtest(season, strict(policy), label="strict")
    assert default.decliners == stricter.decliners == 91
    assert 0.55 < (default.recall or 0) < 0.8
    q = default.lead_quartiles()
    assert q is not None and 15 <= q[1] <= 60  # warned weeks before the decline
    assert (stricter.recall or 0) > (default.recall or 0) + 0.1
    assert (stricter.false_alarms_per_100_per_month or 0) > (default.false_alarms_per_100_per_month or 0)
    assert stricter.joined_flagged >= default.joined_flagged
    record = default.to_json()
    assert record["declined"] == 91 and record["recall"] == default.recall
    assert record["lead_days"]["median"] == q[1]


def test_the_incremental_replay_equals_rebuilding_every_history_every_day(policy: Policy) -> None:
    season = generated_season(300, seed=11)
    subset = season.only({h.holder_id for h in season.holders[:60]})
    for p in (policy, strict(policy)):
        fast = run_backtest(subset, p)
        slow = run_backtest(subset, p, strategy="naive")
        assert fast.replays == slow.replays
        assert fast.evaluations < slow.evaluations / 3
