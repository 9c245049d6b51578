"""cohort_not_joined fires just past ``after`` the invitation, not at it, and not once the holder joined."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from followup.config import load_policy
from followup.flags.rules import HolderHistory, evaluate

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy
TOKYO = ZoneInfo("Asia/Tokyo")
INVITED = datetime(2026, 11, 2, 10, 0, tzinfo=TOKYO)
LIMIT = INVITED + timedelta(weeks=4)


def history(invited: datetime | None = INVITED, joined: datetime | None = None) -> HolderHistory:
    return HolderHistory(
        holder_id=1,
        external_id="NG-1",
        name="山田 花子",
        status="accepted",
        offer_date=date(2026, 6, 1),
        start_date=date(2027, 4, 1),
        cadence="new_grad",
        cohort_invited_at=invited,
        cohort_joined_at=joined,
    )


def fired(h: HolderHistory, now: datetime) -> list[str]:
    return [d.reason for d in evaluate(h, POLICY, now) if d.rule == "cohort_not_joined"]


def test_not_joined_four_weeks_after_the_invitation_is_flagged_one_second_past_the_limit() -> None:
    assert fired(history(), LIMIT) == []
    assert fired(history(), LIMIT + timedelta(seconds=1)) == [
        "内定者同士の交流チャンネルに11/2に招待しましたが、4週間を過ぎても参加していません。"
    ]
    [decision] = [
        d for d in evaluate(history(), POLICY, LIMIT + timedelta(days=1)) if d.rule == "cohort_not_joined"
    ]
    assert decision.since == LIMIT and decision.severity == "low"


def test_a_join_or_no_invitation_raises_nothing_and_a_later_join_is_not_seen_yet() -> None:
    late = LIMIT + timedelta(days=1)
    assert fired(history(joined=INVITED + timedelta(days=20)), late) == []
    assert fired(history(invited=None), late) == []
    assert fired(history(joined=late + timedelta(days=1)), late) != []
