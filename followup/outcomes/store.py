"""The database edge of the outcomes: one bulk query per kind of record, grouped in Python, into a
:class:`~followup.outcomes.records.Season` the pure cores read (no per-holder query)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from followup.config.schema import Policy
from followup.db.models import (
    ChannelOptOut,
    DeliveryAttempt,
    EngagementEvent,
    HolderChange,
    OfferHolder,
    SurveyResponse,
    Touch,
)
from followup.flags.rules import PulseResponse, TouchRecord
from followup.outcomes.records import HolderRecord, OptOut, Season, SurveySent, fiscal_year
from followup.vocab import POOL_CADENCE, HolderStatus

ENGAGEMENT_KINDS = ("reply", "answer", "button")


def load_season(session: Session, policy: Policy, now: datetime, *, year: int | None = None) -> Season:
    """Everything recorded up to ``now``; ``year``: only holders starting in that fiscal year (入社年度)."""
    declined_at: dict[int, datetime] = {}
    for holder_id, at in session.execute(
        select(HolderChange.holder_id, func.max(HolderChange.at))
        .where(HolderChange.field == "status", HolderChange.new_value == "declined", HolderChange.at <= now)
        .group_by(HolderChange.holder_id)
    ):
        declined_at[holder_id] = at
    # holders that were never active (imported as joined/declined and never moved back) were not followed
    was_active: set[int] = set()
    created_inactive: set[int] = set()
    for holder_id, kind, new in session.execute(
        select(HolderChange.holder_id, HolderChange.field, HolderChange.new_value).where(
            HolderChange.field.in_(("created", "status"))
        )
    ):
        if new in ("offered", "accepted"):
            was_active.add(holder_id)
        elif kind == "created":
            created_inactive.add(holder_id)
    holders: list[HolderRecord] = []
    for row in session.execute(
        select(
            OfferHolder.id,
            OfferHolder.external_id,
            OfferHolder.status,
            OfferHolder.offer_date,
            OfferHolder.start_date,
            OfferHolder.track,
            OfferHolder.department,
            OfferHolder.accepted_date,
            OfferHolder.decline_reason,
            OfferHolder.left_date,
            OfferHolder.email,
            OfferHolder.slack_user_id,
            OfferHolder.line_user_id,
        )
        .where(OfferHolder.status != HolderStatus.REJECTED.value)  # 不採用: never had an offer
        .order_by(OfferHolder.id)
    ):
        if year is not None and fiscal_year(row.start_date) != year:
            continue
        contacts = tuple(
            c
            for c, value in (("email", row.email), ("slack", row.slack_user_id), ("line", row.line_user_id))
            if value
        )
        holders.append(
            HolderRecord(
                holder_id=row.id,
                external_id=row.external_id,
                status=row.status,
                offer_date=row.offer_date,
                start_date=row.start_date,
                track=row.track,
                department=row.department,
                accepted_date=row.accepted_date,
                decline_reason=row.decline_reason,
                declined_at=declined_at.get(row.id) if row.status == "declined" else None,
                left_date=row.left_date,
                contacts=contacts,
                followed=row.id not in created_inactive or row.id in was_active,
            )
        )
    wanted = {h.holder_id for h in holders}

    touches: dict[int, list[TouchRecord]] = defaultdict(list)
    surveys: list[SurveySent] = []
    answered = {
        touch_id: score
        for touch_id, score in session.execute(
            select(SurveyResponse.touch_id, SurveyResponse.score).where(SurveyResponse.submitted_at <= now)
        )
    }
    touch_at = func.coalesce(Touch.sent_at, Touch.due_at)
    for touch_id, holder_id, kind, channel, status, at in session.execute(
        select(Touch.id, Touch.holder_id, Touch.kind, Touch.channel, Touch.status, touch_at)
        .where(
            Touch.status.in_(("sent", "done", "failed")),
            touch_at <= now,
            Touch.cadence != POOL_CADENCE,  # the talent pool's mail is not offer follow-up
        )
        .order_by(touch_at)
    ):
        if holder_id not in wanted:
            continue
        outcome = "failed" if status == "failed" else "delivered"
        touches[holder_id].append(TouchRecord(at, channel, kind, outcome))
        if kind == "survey" and outcome == "delivered":
            surveys.append(SurveySent(holder_id, at, touch_id in answered, answered.get(touch_id)))
    for holder_id, kind, channel, at in session.execute(
        select(Touch.holder_id, Touch.kind, DeliveryAttempt.channel, DeliveryAttempt.started_at)
        .join(Touch, Touch.id == DeliveryAttempt.touch_id)
        .where(
            DeliveryAttempt.outcome == "suppressed",
            DeliveryAttempt.started_at <= now,
            Touch.cadence != POOL_CADENCE,
        )
        .order_by(DeliveryAttempt.started_at)
    ):
        if holder_id in wanted:
            touches[holder_id].append(TouchRecord(at, channel, kind, "suppressed"))

    responses: dict[int, list[PulseResponse]] = defaultdict(list)
    for holder_id, score, declining, at in session.execute(
        select(
            SurveyResponse.holder_id,
            SurveyResponse.score,
            SurveyResponse.declining,
            SurveyResponse.submitted_at,
        )
        .where(SurveyResponse.submitted_at <= now)
        .order_by(SurveyResponse.submitted_at)
    ):
        if holder_id in wanted:
            responses[holder_id].append(PulseResponse(at, score, bool(declining)))

    engagement: dict[int, list[datetime]] = defaultdict(list)
    for event_holder, at in session.execute(
        select(EngagementEvent.holder_id, EngagementEvent.at)
        .where(EngagementEvent.kind.in_(ENGAGEMENT_KINDS), EngagementEvent.at <= now)
        .order_by(EngagementEvent.at)
    ):
        if event_holder is not None and event_holder in wanted:
            engagement[event_holder].append(at)

    opt_outs: dict[int, list[OptOut]] = defaultdict(list)
    for holder_id, channel, at in session.execute(
        select(ChannelOptOut.holder_id, ChannelOptOut.channel, ChannelOptOut.at)
        .where(ChannelOptOut.at <= now)
        .order_by(ChannelOptOut.at)
    ):
        if holder_id in wanted:
            opt_outs[holder_id].append(OptOut(at, channel))

    return Season(
        holders=tuple(holders),
        recorded_until=now,
        touches={k: tuple(sorted(v, key=lambda t: t.at)) for k, v in touches.items()},
        responses={k: tuple(v) for k, v in responses.items()},
        engagement={k: tuple(v) for k, v in engagement.items()},
        opt_outs={k: tuple(v) for k, v in opt_outs.items()},
        surveys=tuple(surveys),
        events_upcoming=tuple(name for name, event in policy.events.items() if event.starts_at > now),
    )
