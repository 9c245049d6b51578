"""A small cohort written straight into the database, each holder built to raise (or not) one rule."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from itertools import count
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from followup.db.models import (
    ChannelOptOut,
    DeliveryAttempt,
    EngagementEvent,
    HolderChange,
    OfferHolder,
    SurveyResponse,
    Touch,
)

JST = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 5, 25, 8, 30, tzinfo=JST)  # Monday morning, weekly report time
_seq = count(1)


def add_holder(session: Session, external_id: str, name: str, **fields: Any) -> OfferHolder:
    values: dict[str, Any] = {
        "email": f"{external_id.lower()}@example.jp",
        "track": "new_grad",
        "offer_date": date(2026, 4, 1),
        "start_date": date(2027, 4, 1),
        "status": "offered",
    }
    values.update(fields)
    holder = OfferHolder(external_id=external_id, name=name, **values)
    session.add(holder)
    session.flush()
    return holder


def add_touch(
    session: Session,
    holder: OfferHolder,
    at: datetime,
    *,
    status: str = "sent",
    channel: str = "email",
    kind: str = "message",
    outcome: str | None = None,
) -> Touch:
    """A touch with the attempt the delivery area would record (``outcome`` defaults from the status)."""
    touch = Touch(
        key=f"{holder.external_id}:t{next(_seq)}",
        holder_id=holder.id,
        cadence="new_grad",
        phase="initial",
        seq=1,
        kind=kind,
        channel=channel,
        template=None if kind == "manual" else "checkin",
        due_at=at,
        status=status,
        sent_at=at if status in ("sent", "done") else None,
    )
    session.add(touch)
    session.flush()
    attempt_outcome = outcome or {"sent": "sent", "failed": "permanent"}.get(status)
    if attempt_outcome and kind != "manual":
        session.add(
            DeliveryAttempt(
                touch_id=touch.id, channel=channel, started_at=at, finished_at=at, outcome=attempt_outcome
            )
        )
    return touch


def add_response(
    session: Session, holder: OfferHolder, at: datetime, score: float, *, situation: str = "就職活動は終えた"
) -> SurveyResponse:
    touch = add_touch(session, holder, at - timedelta(hours=2), kind="survey")
    declining = situation in ("他社も検討している", "迷っている")
    response = SurveyResponse(
        touch_id=touch.id,
        holder_id=holder.id,
        form="pulse",
        answers={"motivation": round(score), "anxiety": 2, "understanding": 4, "situation": situation},
        score=score,
        declining=declining,
        submitted_at=at,
        updated_at=at,
    )
    session.add(response)
    session.add(
        EngagementEvent(holder_id=holder.id, touch_id=touch.id, at=at, kind="answer", channel="email")
    )
    return response


def seed_cohort(session: Session, now: datetime = NOW) -> dict[str, OfferHolder]:
    """Eight holders; the comment on each says which flags it should raise at ``now``."""
    h: dict[str, OfferHolder] = {}
    d = lambda days: now - timedelta(days=days)  # noqa: E731

    # fine: weekly touches, good pulse, replied
    h["fine"] = add_holder(session, "N-001", "青木 花子", offer_date=date(2026, 4, 20))
    add_touch(session, h["fine"], d(3))
    add_response(session, h["fine"], d(10), 4.3)
    # neglected: last delivered 20 days ago; a failed send 5 days ago does not count
    h["neglected"] = add_holder(session, "N-002", "井上 大輔", offer_date=date(2026, 4, 27))
    add_touch(session, h["neglected"], d(20))
    add_touch(session, h["neglected"], d(5), status="failed")
    # called: same, but a mentor phoned 6 days ago (manual touch clears neglect)
    h["called"] = add_holder(session, "N-003", "上田 美咲", offer_date=date(2026, 4, 27))
    add_touch(session, h["called"], d(20))
    add_touch(session, h["called"], d(6), status="done", channel="phone", kind="manual")
    # over-contacted: four touches in five days, one suppressed attempt
    h["over"] = add_holder(session, "N-004", "江藤 翔", accepted_date=date(2026, 5, 10), status="accepted")
    for days, channel in ((5, "email"), (4, "line"), (2, "slack"), (1, "email")):
        add_touch(session, h["over"], d(days), channel=channel)
    session.add(EngagementEvent(holder_id=h["over"].id, at=d(3), kind="reply", channel="line"))
    pending = add_touch(session, h["over"], d(0.5), status="planned", channel="email")
    session.add(
        DeliveryAttempt(touch_id=pending.id, channel="email", started_at=d(0.5), outcome="suppressed")
    )
    # low pulse and a drop
    h["low"] = add_holder(session, "N-005", "岡田 健")
    add_touch(session, h["low"], d(2))
    add_response(session, h["low"], d(30), 4.2)
    add_response(session, h["low"], d(3), 2.0)
    # declining answer
    h["declining"] = add_holder(session, "N-006", "加藤 優")
    add_touch(session, h["declining"], d(2))
    add_response(session, h["declining"], d(4), 3.7, situation="他社も検討している")
    # unreachable: no LINE/Slack, opted out of email
    h["unreachable"] = add_holder(session, "N-007", "木村 亮")
    add_touch(session, h["unreachable"], d(2))
    session.add(ChannelOptOut(holder_id=h["unreachable"].id, channel="email", at=d(1)))
    # declined last week: inactive, raises nothing; counts for the KPI
    h["declined"] = add_holder(session, "N-008", "工藤 茜", status="declined")
    session.add(
        HolderChange(
            holder_id=h["declined"].id,
            at=d(3),
            field="status",
            old_value="offered",
            new_value="declined",
            source="test",
        )
    )
    session.flush()
    return h


EXPECTED_FLAGS = {
    ("N-002", "neglected"),
    ("N-004", "over_contacted"),
    ("N-005", "low_pulse"),
    ("N-005", "pulse_drop"),
    ("N-006", "declining_signal"),
    ("N-007", "unreachable"),
}
