"""The flags paths as they were before issue 18, the references of the bulk and trimmed paths:

* :func:`persist_flags_per_row`: one ORM object per flag;
* :func:`load_full_histories`: every touch of the season (failed sends and suppressed attempts too),
  every survey response and every sign of engagement, for each active holder.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from followup.config.schema import Policy
from followup.db.models import (
    DeliveryAttempt,
    EngagementEvent,
    Flag,
    OfferHolder,
    SurveyResponse,
    Touch,
)
from followup.engagement.surveys import declining_answers
from followup.flags.rules import FlagDecision, HolderHistory, PulseResponse, TouchRecord
from followup.flags.store import ENGAGEMENT_KINDS, Activity, assemble_histories
from followup.vocab import ACTIVE_STATUSES, DELIVERED_TOUCH_STATUSES, TouchStatus


@dataclass
class ReferenceChanges:
    new: list[Flag] = field(default_factory=list)
    continuing: list[Flag] = field(default_factory=list)
    resolved: list[Flag] = field(default_factory=list)


def persist_flags_per_row(
    session: Session, decisions: Iterable[FlagDecision], now: datetime
) -> ReferenceChanges:
    """Bring the ``flags`` table in line with this evaluation: a flag that fires again keeps its row
    (``last_seen`` moves on), a new one gets a row, an open one that no longer fires is resolved."""
    changes = ReferenceChanges()
    open_rows = {
        (row.holder_id, row.rule): row
        for row in session.scalars(select(Flag).where(Flag.resolved_at.is_(None)))
    }
    seen: set[tuple[int, str]] = set()
    for decision in decisions:
        key = (decision.holder_id, decision.rule)
        if key in seen:
            continue
        seen.add(key)
        row = open_rows.get(key)
        if row is None:
            row = Flag(
                holder_id=decision.holder_id,
                rule=decision.rule,
                severity=decision.severity,
                reason=decision.reason,
                action=decision.action,
                since=decision.since,
                first_seen=now,
                last_seen=now,
            )
            session.add(row)
            changes.new.append(row)
        else:
            row.severity, row.reason, row.action = decision.severity, decision.reason, decision.action
            row.last_seen = max(row.last_seen, now)
            changes.continuing.append(row)
    for key, row in open_rows.items():
        if key not in seen:
            row.resolved_at = now
            changes.resolved.append(row)
    session.flush()
    return changes


def load_full_histories(
    session: Session, policy: Policy, now: datetime, quiet_templates: frozenset[str] = frozenset()
) -> list[HolderHistory]:
    """Every active holder with its whole history up to ``now``, one SELECT per kind of row."""
    active = (OfferHolder.status.in_(ACTIVE_STATUSES), OfferHolder.erased_at.is_(None))
    touch_at = func.coalesce(Touch.sent_at, Touch.due_at, type_=Touch.due_at.type)
    delivered: dict[int, list[TouchRecord]] = defaultdict(list)
    undelivered: dict[int, list[TouchRecord]] = defaultdict(list)
    for holder_id, kind, channel, status, at, template in session.execute(
        select(Touch.holder_id, Touch.kind, Touch.channel, Touch.status, touch_at, Touch.template)
        .join(OfferHolder, OfferHolder.id == Touch.holder_id)
        .where(
            *active,
            Touch.status.in_((*DELIVERED_TOUCH_STATUSES, TouchStatus.FAILED.value)),
            touch_at <= now,
        )
    ):
        if status == TouchStatus.FAILED.value:
            undelivered[holder_id].append(TouchRecord(at, channel, kind, "failed"))
        else:
            delivered[holder_id].append(
                TouchRecord(at, channel, kind, "delivered", template not in quiet_templates)
            )
    for holder_id, kind, channel, at in session.execute(
        select(Touch.holder_id, Touch.kind, DeliveryAttempt.channel, DeliveryAttempt.started_at)
        .join(Touch, Touch.id == DeliveryAttempt.touch_id)
        .join(OfferHolder, OfferHolder.id == Touch.holder_id)
        .where(*active, DeliveryAttempt.outcome == "suppressed", DeliveryAttempt.started_at <= now)
    ):
        undelivered[holder_id].append(TouchRecord(at, channel, kind, "suppressed"))
    for records in undelivered.values():
        records.sort(key=lambda r: r.at)
    responses: dict[int, list[PulseResponse]] = defaultdict(list)
    for holder_id, form, answers, score, declining, at in session.execute(
        select(
            SurveyResponse.holder_id,
            SurveyResponse.form,
            SurveyResponse.answers,
            SurveyResponse.score,
            SurveyResponse.declining,
            SurveyResponse.submitted_at,
        )
        .join(OfferHolder, OfferHolder.id == SurveyResponse.holder_id)
        .where(*active, SurveyResponse.submitted_at <= now)
        .order_by(SurveyResponse.submitted_at, SurveyResponse.id)
    ):
        survey = policy.surveys.get(form)
        said = tuple(declining_answers(survey, answers)) if declining and survey and answers else ()
        responses[holder_id].append(PulseResponse(at, score, bool(declining), said))
    engagement: dict[int, list[datetime]] = defaultdict(list)
    for event_holder, at in session.execute(
        select(EngagementEvent.holder_id, EngagementEvent.at)
        .join(OfferHolder, OfferHolder.id == EngagementEvent.holder_id)
        .where(*active, EngagementEvent.kind.in_(ENGAGEMENT_KINDS), EngagementEvent.at <= now)
    ):
        if event_holder is not None:
            engagement[event_holder].append(at)
    activity = Activity(
        dict(delivered), dict(undelivered), dict(responses), {h: tuple(v) for h, v in engagement.items()}
    )
    return assemble_histories(session, policy, now, activity)
