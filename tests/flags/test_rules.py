"""The rule engine on hand-built histories: which ones raise which flags, at an explicit ``now``."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from followup.config import Policy, load_policy
from followup.flags.phase import holder_phase
from followup.flags.rules import (
    ACTIONS,
    RULES,
    FlagDecision,
    HolderHistory,
    PulseResponse,
    RuleParams,
    TouchRecord,
    current_phase,
    decide,
    evaluate,
    evaluate_many,
    risk_score,
    sort_by_risk,
)
from followup.vocab import HolderStatus

JST = ZoneInfo("Asia/Tokyo")
T0 = datetime(2026, 5, 11, 10, 0, tzinfo=JST)  # a Monday, in the new-grad "initial" phase of a 4/1 offer


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(Path("config/followup.yaml")).policy


def holder(**changes: Any) -> HolderHistory:
    base = HolderHistory(
        holder_id=1,
        external_id="N-001",
        name="山田 太郎",
        status="offered",
        offer_date=date(2026, 4, 1),
        start_date=date(2027, 4, 1),
        cadence="new_grad",
        phase="initial",
        reachable_channels=("email", "line"),
    )
    return replace(base, **changes)


def sent(at: datetime, channel: str = "email", kind: str = "message") -> TouchRecord:
    return TouchRecord(at, channel, kind, "delivered")


def manual(at: datetime, channel: str = "phone") -> TouchRecord:
    return TouchRecord(at, channel, "manual", "delivered")


def rules_of(flags: list[FlagDecision]) -> set[str]:
    return {f.rule for f in flags}


def only(flags: list[FlagDecision], rule: str) -> FlagDecision:
    matching = [f for f in flags if f.rule == rule]
    assert len(matching) == 1, flags
    return matching[0]


# --- neglected ---------------------------------------------------------------------------------


def test_a_holder_contacted_exactly_the_maximum_gap_ago_is_not_yet_neglected(policy: Policy) -> None:
    history = holder(delivered=(sent(T0),))
    assert "neglected" not in rules_of(evaluate(history, policy, T0 + timedelta(days=14)))


def test_one_second_past_the_maximum_gap_the_holder_is_neglected(policy: Policy) -> None:
    history = holder(delivered=(sent(T0),))
    flag = only(evaluate(history, policy, T0 + timedelta(days=14, seconds=1)), "neglected")
    assert flag.severity == "high"
    assert flag.since == T0 + timedelta(days=14)
    assert "最後の連絡(5/11)から14日間" in flag.reason
    assert "内定直後期" in flag.reason
    assert flag.action == ACTIONS["neglected"]
    assert "メンター" in flag.action and "電話" in flag.action


def test_a_manual_touch_clears_neglect(policy: Policy) -> None:
    history = holder(delivered=(sent(T0), manual(T0 + timedelta(days=10))))
    assert "neglected" not in rules_of(evaluate(history, policy, T0 + timedelta(days=20)))


def test_a_failed_send_does_not_clear_neglect(policy: Policy) -> None:
    failed = TouchRecord(T0 + timedelta(days=10), "email", "message", "failed")
    suppressed = TouchRecord(T0 + timedelta(days=11), "line", "message", "suppressed")
    history = holder(delivered=(sent(T0),), undelivered=(failed, suppressed))
    flag = only(evaluate(history, policy, T0 + timedelta(days=20)), "neglected")
    assert flag.since == T0 + timedelta(days=14)


def test_a_holder_never_contacted_counts_from_the_offer_date(policy: Policy) -> None:
    offer_midnight = datetime(2026, 4, 1, tzinfo=JST)
    history = holder(delivered=())
    assert "neglected" not in rules_of(evaluate(history, policy, offer_midnight + timedelta(days=14)))
    flag = only(evaluate(history, policy, offer_midnight + timedelta(days=14, seconds=1)), "neglected")
    assert "内定日(4/1)から14日間、一度も連絡が届いていません" in flag.reason


def test_the_monthly_phase_allows_a_longer_gap(policy: Policy) -> None:
    history = holder(phase="steady", delivered=(sent(T0),))
    assert "neglected" not in rules_of(evaluate(history, policy, T0 + timedelta(days=30)))
    flag = only(evaluate(history, policy, T0 + timedelta(days=45, seconds=1)), "neglected")
    assert "安定期の上限45日" in flag.reason


def test_outside_any_phase_the_rule_default_gap_applies(policy: Policy) -> None:
    history = holder(cadence=None, phase=None, delivered=(sent(T0),))
    assert "neglected" in rules_of(evaluate(history, policy, T0 + timedelta(days=14, seconds=1)))


def test_touches_after_now_do_not_count(policy: Policy) -> None:
    history = holder(delivered=(sent(T0), sent(T0 + timedelta(days=30))))
    assert "neglected" in rules_of(evaluate(history, policy, T0 + timedelta(days=20)))


# --- over_contacted ----------------------------------------------------------------------------


def test_four_touches_in_seven_days_over_all_channels_is_over_contact(policy: Policy) -> None:
    touches = (
        sent(T0),
        sent(T0 + timedelta(days=1), "line"),
        manual(T0 + timedelta(days=2), "meeting"),
        sent(T0 + timedelta(days=3), "slack", "survey"),
    )
    flag = only(evaluate(holder(delivered=touches), policy, T0 + timedelta(days=4)), "over_contacted")
    assert flag.severity == "medium"
    assert "直近7日で4回" in flag.reason and "上限3回" in flag.reason
    assert flag.since == T0 + timedelta(days=3)
    assert "2週間停止" in flag.action


def test_three_touches_in_seven_days_is_fine(policy: Policy) -> None:
    touches = (sent(T0), sent(T0 + timedelta(days=1)), manual(T0 + timedelta(days=2)))
    assert "over_contacted" not in rules_of(
        evaluate(holder(delivered=touches), policy, T0 + timedelta(days=3))
    )


def test_the_window_rolls_old_touches_out(policy: Policy) -> None:
    touches = tuple(sent(T0 + timedelta(days=d)) for d in (0, 3, 5, 7))
    # at T0+7d the window is (T0, T0+7d]: the first touch has left it
    assert "over_contacted" not in rules_of(
        evaluate(holder(delivered=touches), policy, T0 + timedelta(days=7))
    )
    four_in_six_days = holder(delivered=(*touches[:3], sent(T0 + timedelta(days=6))))
    at_six = evaluate(four_in_six_days, policy, T0 + timedelta(days=6))
    assert "over_contacted" in rules_of(at_six)


def test_failed_sends_are_not_over_contact(policy: Policy) -> None:
    failed = tuple(TouchRecord(T0 + timedelta(hours=h), "email", "message", "failed") for h in range(5))
    assert "over_contacted" not in rules_of(
        evaluate(holder(undelivered=failed), policy, T0 + timedelta(days=1))
    )


# --- pulse ---------------------------------------------------------------------------------------


def pulse(at: datetime, score: float | None, declining: bool = False, *answers: str) -> PulseResponse:
    return PulseResponse(at, score, declining, tuple(answers))


def test_a_low_latest_pulse_is_flagged(policy: Policy) -> None:
    history = holder(delivered=(sent(T0),), responses=(pulse(T0 + timedelta(hours=3), 2.0),))
    flag = only(evaluate(history, policy, T0 + timedelta(days=1)), "low_pulse")
    assert "2.0" in flag.reason and "基準2.5未満" in flag.reason
    assert "人事" in flag.action and "面談" in flag.action


def test_a_pulse_at_the_threshold_is_not_low(policy: Policy) -> None:
    history = holder(delivered=(sent(T0),), responses=(pulse(T0, 2.5),))
    assert "low_pulse" not in rules_of(evaluate(history, policy, T0 + timedelta(days=1)))


def test_an_old_low_pulse_followed_by_a_good_one_is_not_flagged(policy: Policy) -> None:
    history = holder(delivered=(sent(T0),), responses=(pulse(T0 - timedelta(days=20), 1.5), pulse(T0, 4.0)))
    assert rules_of(evaluate(history, policy, T0 + timedelta(days=1))) == set()


def test_a_drop_of_one_point_is_a_pulse_drop(policy: Policy) -> None:
    history = holder(delivered=(sent(T0),), responses=(pulse(T0 - timedelta(days=21), 4.0), pulse(T0, 3.0)))
    flag = only(evaluate(history, policy, T0 + timedelta(days=1)), "pulse_drop")
    assert "4.0から3.0に下がりました" in flag.reason


def test_a_smaller_drop_is_not_a_pulse_drop(policy: Policy) -> None:
    history = holder(delivered=(sent(T0),), responses=(pulse(T0 - timedelta(days=21), 4.0), pulse(T0, 3.2)))
    assert "pulse_drop" not in rules_of(evaluate(history, policy, T0 + timedelta(days=1)))


def test_a_response_after_now_is_not_seen(policy: Policy) -> None:
    history = holder(delivered=(sent(T0),), responses=(pulse(T0, 4.0), pulse(T0 + timedelta(days=5), 1.0)))
    assert rules_of(evaluate(history, policy, T0 + timedelta(days=1))) == set()


def test_a_declining_answer_in_the_latest_response_is_a_declining_signal(policy: Policy) -> None:
    history = holder(delivered=(sent(T0),), responses=(pulse(T0, 3.7, True, "他社も検討している"),))
    flag = only(evaluate(history, policy, T0 + timedelta(days=1)), "declining_signal")
    assert "「他社も検討している」と回答しています" in flag.reason
    assert "社長" in flag.action or "役員" in flag.action


def test_a_declining_answer_superseded_by_a_calm_one_is_not_a_signal(policy: Policy) -> None:
    responses = (pulse(T0 - timedelta(days=14), 3.5, True, "迷っている"), pulse(T0, 3.6))
    history = holder(delivered=(sent(T0),), responses=responses)
    assert "declining_signal" not in rules_of(evaluate(history, policy, T0 + timedelta(days=1)))


# --- unresponsive --------------------------------------------------------------------------------


def weekly(n: int, start: datetime = T0) -> tuple[TouchRecord, ...]:
    return tuple(sent(start + timedelta(days=4 * i)) for i in range(n))


def test_three_unanswered_touches_make_a_holder_unresponsive(policy: Policy) -> None:
    history = holder(delivered=weekly(3), engagement=(T0 - timedelta(days=1),))
    flag = only(evaluate(history, policy, T0 + timedelta(days=9)), "unresponsive")
    assert "直近3回の連絡に返信・回答がありません" in flag.reason
    assert flag.since == T0 + timedelta(days=8)


def test_a_reply_between_touches_breaks_the_streak(policy: Policy) -> None:
    history = holder(delivered=weekly(3), engagement=(T0 + timedelta(days=5),))
    assert "unresponsive" not in rules_of(evaluate(history, policy, T0 + timedelta(days=9)))


def test_a_survey_answer_breaks_the_streak(policy: Policy) -> None:
    history = holder(delivered=weekly(3), responses=(pulse(T0 + timedelta(days=5), 4.0),))
    assert "unresponsive" not in rules_of(evaluate(history, policy, T0 + timedelta(days=9)))


def test_a_phone_call_resets_the_streak_but_a_letter_does_not_count(policy: Policy) -> None:
    called = holder(delivered=(*weekly(2), manual(T0 + timedelta(days=5)), sent(T0 + timedelta(days=8))))
    assert "unresponsive" not in rules_of(evaluate(called, policy, T0 + timedelta(days=9)))
    lettered = holder(
        delivered=(*weekly(2), manual(T0 + timedelta(days=5), "letter"), sent(T0 + timedelta(days=8)))
    )
    assert "unresponsive" in rules_of(evaluate(lettered, policy, T0 + timedelta(days=9)))


# --- unreachable, inactive holders, scoring --------------------------------------------------------


def test_a_holder_with_no_reachable_channel_is_unreachable(policy: Policy) -> None:
    opted_out_at = T0 - timedelta(days=2)
    history = holder(reachable_channels=(), delivered=(sent(T0),), opt_outs=(opted_out_at,))
    flag = only(evaluate(history, policy, T0 + timedelta(days=1)), "unreachable")
    assert flag.since == opted_out_at
    assert "連絡先" in flag.action


def test_one_reachable_channel_is_enough(policy: Policy) -> None:
    history = holder(reachable_channels=("line",), delivered=(sent(T0),))
    assert evaluate(history, policy, T0 + timedelta(days=1)) == []


@pytest.mark.parametrize("status", ["declined", "joined", "withdrawn"])
def test_inactive_holders_raise_no_flags(policy: Policy, status: str) -> None:
    history = holder(status=status, reachable_channels=(), responses=(pulse(T0, 1.0, True, "迷っている"),))
    assert evaluate(history, policy, T0 + timedelta(days=60)) == []


def test_an_accepted_holder_is_still_watched(policy: Policy) -> None:
    history = holder(status="accepted", delivered=(sent(T0),))
    assert "neglected" in rules_of(evaluate(history, policy, T0 + timedelta(days=15)))


def test_risk_adds_severity_weights(policy: Policy) -> None:
    history = holder(
        reachable_channels=(),
        delivered=tuple(sent(T0 + timedelta(days=d)) for d in range(4)),
        responses=(pulse(T0 - timedelta(days=30), 4.5), pulse(T0 - timedelta(days=1), 2.0)),
    )
    flags = evaluate(history, policy, T0 + timedelta(days=4))
    assert rules_of(flags) == {"low_pulse", "pulse_drop", "unreachable", "unresponsive", "over_contacted"}
    assert risk_score(flags) == 5 + 3 + 5 + 3 + 3
    assert risk_score([]) == 0


def test_the_batch_path_agrees_with_one_by_one(policy: Policy) -> None:
    histories = [
        holder(
            holder_id=i,
            external_id=f"N-{i:03d}",
            delivered=weekly(i % 5),
            reachable_channels=() if i % 7 == 0 else ("email",),
        )
        for i in range(1, 40)
    ]
    now = T0 + timedelta(days=16)
    one_by_one = [f for h in histories for f in evaluate(h, policy, now)]
    assert evaluate_many(histories, policy, now) == one_by_one
    assert one_by_one  # the mix raises something


def test_flag_records_carry_the_spec_fields(policy: Policy) -> None:
    flag = only(evaluate(holder(), policy, datetime(2026, 4, 20, tzinfo=JST)), "neglected")
    assert set(flag.record()) == {"external_id", "rule", "severity", "reason", "since"}
    assert flag.record()["since"] == "2026-04-15T00:00:00+09:00"


def test_now_must_be_aware(policy: Policy) -> None:
    with pytest.raises(ValueError):
        evaluate(holder(), policy, datetime(2026, 5, 1))


def test_the_current_phase_follows_the_anchors_and_the_later_phase_wins(policy: Policy) -> None:
    dates = {"offer": date(2026, 4, 1), "accepted": None, "start": date(2027, 4, 1)}
    assert current_phase(policy, "new_grad", dates, date(2026, 4, 1)) == "initial"
    assert current_phase(policy, "new_grad", dates, date(2026, 5, 13)) == "steady"
    assert current_phase(policy, "new_grad", dates, date(2027, 3, 1)) == "pre_start"
    assert current_phase(policy, "new_grad", dates, date(2027, 4, 1)) is None
    late = {"offer": date(2027, 3, 1), "accepted": None, "start": date(2027, 4, 1)}
    assert current_phase(policy, "new_grad", late, date(2027, 3, 2)) == "pre_start"  # overlaps initial


def test_holder_phase_picks_the_cadence_for_the_track_and_the_phase_for_the_day(policy: Policy) -> None:
    def phase_on(day: date, track: str = "new_grad") -> tuple[str | None, str | None]:
        return holder_phase(
            policy,
            track=track,
            department=None,
            offer_date=date(2026, 4, 1),
            accepted_date=None,
            start_date=date(2027, 4, 1),
            today=day,
        )

    assert phase_on(date(2026, 4, 1)) == ("new_grad", "initial")
    assert phase_on(date(2026, 5, 13)) == ("new_grad", "steady")
    assert phase_on(date(2027, 4, 1)) == ("new_grad", None)  # follow-up is over on the start date


# --- adding a rule (CONTRIBUTING.md, "How to add a rule") ----------------------------------------

MAX_WAIT = timedelta(days=30)


def awaiting_acceptance(h: HolderHistory, now: datetime, p: RuleParams) -> FlagDecision | None:
    """The worked example: an offer still unanswered 30 days after the offer date (承諾待ち)."""
    if h.status != HolderStatus.OFFERED:
        return None
    deadline = p.offer_at(h.offer_date) + MAX_WAIT
    if now <= deadline:
        return None
    reason = f"内定日({p.local(p.offer_at(h.offer_date))})から30日以上、承諾の回答がありません。"
    return decide(
        h, "awaiting_acceptance", "medium", reason, deadline, action="人事担当から電話してください。"
    )


def test_a_rule_defined_outside_the_engine_runs_when_passed_in(policy: Policy) -> None:
    offer_midnight = datetime(2026, 4, 1, tzinfo=JST)
    history = holder(delivered=(sent(offer_midnight + timedelta(days=29)),))
    rules = (*RULES, awaiting_acceptance)
    assert "awaiting_acceptance" not in rules_of(evaluate(history, policy, offer_midnight + MAX_WAIT, rules))
    later = offer_midnight + MAX_WAIT + timedelta(seconds=1)
    flag = only(evaluate(history, policy, later, rules), "awaiting_acceptance")
    assert flag.since == offer_midnight + MAX_WAIT
    assert "内定日(4/1)から30日以上" in flag.reason and flag.action == "人事担当から電話してください。"
    assert evaluate_many([history], policy, later, rules) == evaluate(history, policy, later, rules)
    # accepted holders are not waiting; inactive ones are skipped by the engine before any rule runs
    assert evaluate(replace(history, status="accepted"), policy, later, (awaiting_acceptance,)) == []
    assert evaluate(replace(history, status="declined"), policy, later, (awaiting_acceptance,)) == []
    # the default is the built-in tuple, which does not know the new rule
    assert "awaiting_acceptance" not in rules_of(evaluate(history, policy, later))


def test_the_engine_runs_exactly_the_rules_it_is_given(policy: Policy) -> None:
    history = holder(reachable_channels=(), delivered=())
    now = datetime(2026, 6, 1, tzinfo=JST)
    assert rules_of(evaluate(history, policy, now)) == {"neglected", "unreachable"}
    assert rules_of(evaluate(history, policy, now, (awaiting_acceptance,))) == {"awaiting_acceptance"}
    assert evaluate(history, policy, now, ()) == []


def test_a_rule_missing_from_the_display_order_sorts_after_the_known_ones(policy: Policy) -> None:
    def a_new_rule(h: HolderHistory, now: datetime, p: RuleParams) -> FlagDecision:
        return decide(h, "a_new_rule", "high", "テスト", now, action="テスト")  # sorts first by name

    now = datetime(2026, 6, 1, tzinfo=JST)
    flags = evaluate(holder(delivered=()), policy, now, (a_new_rule, awaiting_acceptance, *RULES))
    [(risk, ordered)] = sort_by_risk(flags)
    assert [f.rule for f in ordered] == ["neglected", "a_new_rule", "awaiting_acceptance"]
    assert risk == 5 + 5 + 3


def test_every_built_in_rule_has_its_action_label_display_place_and_settings(policy: Policy) -> None:
    from followup.flags.risk import RULE_ORDER
    from followup.labels import RULE_LABELS

    names = [rule.__name__ for rule in RULES]
    assert set(names) == set(ACTIONS) == set(RULE_LABELS) == set(RULE_ORDER)
    assert all(hasattr(policy.rules, name) for name in names)
