"""manual_overdue fires just past N business days after the reminder, not at it, and counts holidays."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from followup.config import load_policy
from followup.durations import Interval
from followup.flags.rules import FlagDecision, HolderHistory, ManualRecord, evaluate

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy
TOKYO = ZoneInfo("Asia/Tokyo")
REMINDED = datetime(2026, 12, 1, 10, 0, tzinfo=TOKYO)  # Tue
DEADLINE = datetime(2026, 12, 4, 10, 0, tzinfo=TOKYO)  # Fri: three business days later


def call(
    touch_id: int = 7, at: datetime = REMINDED, what: str = "社長から内定のお祝いの電話"
) -> ManualRecord:
    return ManualRecord(touch_id, "phone", what, "佐藤社長", at)


def history(*manual: ManualRecord) -> HolderHistory:
    return HolderHistory(
        holder_id=1,
        external_id="NG-1",
        name="山田 花子",
        status="accepted",
        offer_date=date(2026, 11, 2),
        start_date=date(2027, 4, 1),
        cadence="new_grad",
        reachable_channels=("email",),
        manual=manual,
    )


def overdue(h: HolderHistory, now: datetime) -> FlagDecision | None:
    found = [d for d in evaluate(h, POLICY, now) if d.rule == "manual_overdue"]
    return found[0] if found else None


def test_a_reminded_call_is_not_overdue_at_three_business_days_and_is_one_second_later() -> None:
    h = history(call())
    assert overdue(h, DEADLINE) is None
    decision = overdue(h, DEADLINE + timedelta(seconds=1))
    assert decision is not None
    assert decision.reason == (
        "佐藤社長に12/1にお願いした「社長から内定のお祝いの電話」が、3営業日を過ぎても実施済みになっていません。"
    )
    assert decision.since == DEADLINE and decision.severity == "medium"
    assert "実施済みにする" in decision.action


def test_a_public_holiday_does_not_count_as_a_business_day() -> None:
    friday = datetime(2026, 11, 20, 10, 0, tzinfo=TOKYO)  # Mon 11/23 is 勤労感謝の日
    h = history(call(at=friday))
    assert overdue(h, datetime(2026, 11, 26, 10, 0, tzinfo=TOKYO)) is None  # Tue, Wed, Thu
    assert overdue(h, datetime(2026, 11, 26, 10, 0, 1, tzinfo=TOKYO)) is not None


def test_no_reminder_yet_or_a_reminder_after_now_is_not_overdue() -> None:
    assert overdue(history(), DEADLINE + timedelta(days=30)) is None
    later = call(at=DEADLINE + timedelta(days=1))
    assert overdue(history(later), DEADLINE + timedelta(days=2)) is None


def test_the_oldest_overdue_touch_is_named_and_the_others_counted() -> None:
    letter = ManualRecord(9, "letter", "手書きのお手紙", "人事部 田中", REMINDED + timedelta(days=1))
    decision = overdue(history(letter, call()), DEADLINE + timedelta(days=5))
    assert decision is not None and decision.since == DEADLINE
    assert "社長から内定のお祝いの電話" in decision.reason and "ほか1件も未実施です。" in decision.reason


def test_the_limit_comes_from_the_policy() -> None:
    rules = POLICY.rules.model_copy(
        update={"manual_overdue": POLICY.rules.manual_overdue.model_copy(update={"after": Interval(1, "bd")})}
    )
    policy = POLICY.model_copy(update={"rules": rules})
    h = history(call())
    wednesday = datetime(2026, 12, 2, 10, 0, tzinfo=TOKYO)
    assert not [d for d in evaluate(h, policy, wednesday) if d.rule == "manual_overdue"]
    fired = [d for d in evaluate(h, policy, wednesday + timedelta(seconds=1)) if d.rule == "manual_overdue"]
    assert fired and "1営業日" in fired[0].reason


def test_a_holder_who_declined_raises_nothing() -> None:
    assert overdue(replace(history(call()), status="declined"), DEADLINE + timedelta(days=1)) is None
