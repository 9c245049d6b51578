"""no_rsvp and event_absent fire just past their boundary and not at it."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from followup.config import load_policy
from followup.flags.rules import EventRecord, HolderHistory, evaluate

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy
TOKYO = ZoneInfo("Asia/Tokyo")
STARTS = datetime(2026, 11, 20, 18, 30, tzinfo=TOKYO)
CLOSES = datetime(2026, 11, 14, 0, 0, tzinfo=TOKYO)  # the deadline 11/13 has ended


def history(*events: EventRecord) -> HolderHistory:
    return HolderHistory(
        holder_id=1,
        external_id="NG-1",
        name="山田 花子",
        status="accepted",
        offer_date=date(2026, 6, 1),
        start_date=date(2027, 4, 1),
        cadence="new_grad",
        reachable_channels=("email",),
        events=events,
    )


def record(answer: str = "", attendance: str = "", invited: bool = True) -> EventRecord:
    return EventRecord("konshinkai", "内定者懇親会", STARTS, CLOSES, invited, answer, attendance)


def rules_at(h: HolderHistory, now: datetime) -> dict[str, str]:
    # the other rules (neglected …) are not under test here
    return {d.rule: d.reason for d in evaluate(h, POLICY, now) if d.rule in ("no_rsvp", "event_absent")}


def test_no_rsvp_fires_once_the_deadlines_day_is_over_and_not_at_its_end() -> None:
    h = history(record())
    assert rules_at(h, CLOSES) == {}
    fired = rules_at(h, CLOSES + timedelta(seconds=1))
    assert fired["no_rsvp"] == "「内定者懇親会」(11/20)の出欠が、締切(11/13)を過ぎても回答がなく未確定です。"
    [decision] = [d for d in evaluate(h, POLICY, CLOSES + timedelta(hours=1)) if d.rule == "no_rsvp"]
    assert decision.since == CLOSES and decision.severity == "medium" and "電話" in decision.action


def test_no_rsvp_counts_undecided_but_not_an_answer_an_uninvited_holder_or_after_the_event() -> None:
    late = CLOSES + timedelta(days=1)
    assert "no_rsvp" in rules_at(history(record("maybe")), late)
    assert rules_at(history(record("attending")), late) == {}
    assert rules_at(history(record("declined")), late) == {}
    assert rules_at(history(record(invited=False)), late) == {}
    assert rules_at(history(record()), STARTS) == {}  # the event has started: nothing to ask any more


def test_event_absent_fires_for_a_said_attending_recorded_absent_within_the_window() -> None:
    h = history(record("attending", "absent"))
    assert rules_at(h, STARTS - timedelta(seconds=1)) == {}
    fired = rules_at(h, STARTS)
    assert fired["event_absent"] == "「内定者懇親会」(11/20)に出席と回答していましたが、当日は欠席でした。"
    assert "event_absent" in rules_at(h, STARTS + timedelta(weeks=4))
    assert rules_at(h, STARTS + timedelta(weeks=4, seconds=1)) == {}


def test_event_absent_needs_both_the_answer_and_the_record() -> None:
    after = STARTS + timedelta(days=1)
    assert rules_at(history(record("declined", "absent")), after) == {}  # said so: no surprise
    assert rules_at(history(record("attending", "attended")), after) == {}
    assert rules_at(history(record("attending")), after) == {}  # not recorded yet


def pending(status: str = "offered", deadline: date | None = None) -> HolderHistory:
    from dataclasses import replace

    return replace(history(), status=status, acceptance_deadline=deadline)


def acceptance_at(h: HolderHistory, now: datetime) -> str | None:
    found = [d for d in evaluate(h, POLICY, now) if d.rule == "acceptance_pending"]
    return found[0].reason if found else None


def test_acceptance_pending_fires_after_the_deadline_day_and_not_at_its_end() -> None:
    h = pending(deadline=date(2026, 6, 15))
    end = datetime(2026, 6, 16, 0, 0, tzinfo=TOKYO)
    assert acceptance_at(h, end) is None
    assert (
        acceptance_at(h, end + timedelta(seconds=1)) == "承諾期限(6/15)を過ぎても内定承諾の回答がありません。"
    )
    assert acceptance_at(pending("accepted", date(2026, 6, 15)), end + timedelta(days=3)) is None


def test_acceptance_pending_without_a_deadline_waits_default_wait_after_the_offer() -> None:
    from followup.durations import Interval

    h = pending()  # offered 6/1, no deadline column
    limit = datetime(2026, 6, 15, 0, 0, tzinfo=TOKYO)
    assert acceptance_at(h, limit + timedelta(days=30)) is None  # default_wait unset: not flagged
    setting = POLICY.rules.acceptance_pending.model_copy(update={"default_wait": Interval(2, "w")})
    policy = POLICY.model_copy(
        update={"rules": POLICY.rules.model_copy(update={"acceptance_pending": setting})}
    )

    def at(now: datetime) -> str | None:
        found = [d for d in evaluate(h, policy, now) if d.rule == "acceptance_pending"]
        return found[0].reason if found else None

    assert at(limit) is None
    assert at(limit + timedelta(seconds=1)) == "内定日(6/1)から2週間を過ぎても内定承諾の回答がありません。"
