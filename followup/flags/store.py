"""The I/O edge of the rules: read every active holder's history in a few bulk queries, run the pure
rule engine, and keep the ``flags`` table in step (first seen, last seen, resolved).

No per-holder query: one SELECT per kind of history, grouped in Python, so the cost grows with the
number of rows, not with round trips.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from followup.channels import MESSAGE_CHANNELS
from followup.config.context import AppContext
from followup.config.schema import Policy
from followup.db.addresses import address_columns, addresses_of
from followup.db.models import (
    ChannelOptOut,
    DeliveryAttempt,
    EngagementEvent,
    EventRsvp,
    Flag,
    OfferHolder,
    SurveyResponse,
    Touch,
)
from followup.engagement.surveys import declining_answers
from followup.flags.phase import holder_phase
from followup.flags.rules import (
    EventRecord,
    FlagDecision,
    HolderHistory,
    PulseResponse,
    TouchRecord,
    evaluate_many,
)
from followup.vocab import ACTIVE_STATUSES, DELIVERED_TOUCH_STATUSES, TouchStatus

ENGAGEMENT_KINDS = ("reply", "answer", "button", "rsvp")  # an RSVP is an answer too
# the touches a history holds: delivered ones (contact) and failed sends (kept, never contact)
HISTORY_TOUCH_STATUSES = (*DELIVERED_TOUCH_STATUSES, TouchStatus.FAILED.value)


@dataclass
class FlagChanges:
    """What one evaluation changed in the ``flags`` table."""

    new: list[Flag] = field(default_factory=list)
    continuing: list[Flag] = field(default_factory=list)
    resolved: list[Flag] = field(default_factory=list)


def _declining_answers(policy: Policy, form: str, answers: dict[str, Any] | None) -> tuple[str, ...]:
    """The chosen answers that the survey marks as declining (e.g. 他社も検討している)."""
    survey = policy.surveys.get(form)
    if survey is None or not answers:
        return ()
    return tuple(declining_answers(survey, answers))


def load_histories(session: Session, policy: Policy, now: datetime) -> list[HolderHistory]:
    """Every active holder (offered / accepted, not erased) with the history the rules read, up to
    ``now`` (later rows exist when ``now`` is in the past, e.g. ``flags --now``)."""
    active = (OfferHolder.status.in_(ACTIVE_STATUSES), OfferHolder.erased_at.is_(None))
    holders = session.execute(
        select(
            OfferHolder.id,
            OfferHolder.external_id,
            OfferHolder.name,
            OfferHolder.status,
            OfferHolder.offer_date,
            OfferHolder.accepted_date,
            OfferHolder.start_date,
            OfferHolder.track,
            OfferHolder.department,
            *address_columns(),
            OfferHolder.acceptance_deadline,
        )
        .where(*active)
        .order_by(OfferHolder.id)
    ).all()

    opted: dict[int, set[str]] = defaultdict(set)
    opt_out_times: dict[int, list[datetime]] = defaultdict(list)
    for holder_id, channel, at in session.execute(
        select(ChannelOptOut.holder_id, ChannelOptOut.channel, ChannelOptOut.at)
        .join(OfferHolder, OfferHolder.id == ChannelOptOut.holder_id)
        .where(*active, ChannelOptOut.at <= now)
        .order_by(ChannelOptOut.at)
    ):
        opted[holder_id].add(channel)
        opt_out_times[holder_id].append(at)

    touch_at = func.coalesce(Touch.sent_at, Touch.due_at)
    delivered: dict[int, list[TouchRecord]] = defaultdict(list)
    undelivered: dict[int, list[TouchRecord]] = defaultdict(list)
    for holder_id, kind, channel, status, at in session.execute(
        select(Touch.holder_id, Touch.kind, Touch.channel, Touch.status, touch_at)
        .join(OfferHolder, OfferHolder.id == Touch.holder_id)
        .where(*active, Touch.status.in_(HISTORY_TOUCH_STATUSES), touch_at <= now)
        .order_by(touch_at)
    ):
        if status == TouchStatus.FAILED:
            undelivered[holder_id].append(TouchRecord(at, channel, kind, "failed"))
        else:
            delivered[holder_id].append(TouchRecord(at, channel, kind, "delivered"))
    for holder_id, kind, channel, at in session.execute(
        select(Touch.holder_id, Touch.kind, DeliveryAttempt.channel, DeliveryAttempt.started_at)
        .join(Touch, Touch.id == DeliveryAttempt.touch_id)
        .join(OfferHolder, OfferHolder.id == Touch.holder_id)
        .where(*active, DeliveryAttempt.outcome == "suppressed", DeliveryAttempt.started_at <= now)
        .order_by(DeliveryAttempt.started_at)
    ):
        undelivered[holder_id].append(TouchRecord(at, channel, kind, "suppressed"))

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
        .order_by(SurveyResponse.submitted_at)
    ):
        said = _declining_answers(policy, form, answers) if declining else ()
        responses[holder_id].append(PulseResponse(at, score, bool(declining), said))

    engagement: dict[int, list[datetime]] = defaultdict(list)
    for event_holder, at in session.execute(
        select(EngagementEvent.holder_id, EngagementEvent.at)
        .join(OfferHolder, OfferHolder.id == EngagementEvent.holder_id)
        .where(*active, EngagementEvent.kind.in_(ENGAGEMENT_KINDS), EngagementEvent.at <= now)
        .order_by(EngagementEvent.at)
    ):
        if event_holder is not None:
            engagement[event_holder].append(at)

    events = _event_records(session, policy, active, now)
    today = now.astimezone(policy.organization.tz).date()
    out: list[HolderHistory] = []
    for row in holders:
        (hid, ext, name, status, offer, accepted, start, track, dept) = row[:9]
        cadence, phase = holder_phase(
            policy,
            track=track,
            department=dept,
            offer_date=offer,
            accepted_date=accepted,
            start_date=start,
            today=today,
        )
        contacts = addresses_of(row)
        # only the channels the cadence uses (the current phase's, else any phase's) can reach the holder
        usable = _cadence_channels(policy, cadence, phase)
        reachable = tuple(
            c for c in MESSAGE_CHANNELS if c in usable and contacts[c] and c not in opted.get(hid, ())
        )
        out.append(
            HolderHistory(
                holder_id=hid,
                external_id=ext,
                name=name,
                status=status,
                offer_date=offer,
                start_date=start,
                cadence=cadence,
                track=track,
                phase=phase,
                reachable_channels=reachable,
                delivered=tuple(delivered.get(hid, ())),
                undelivered=tuple(undelivered.get(hid, ())),
                responses=tuple(responses.get(hid, ())),
                engagement=tuple(engagement.get(hid, ())),
                opt_outs=tuple(opt_out_times.get(hid, ())),
                events=tuple(events.get(hid, ())),
                acceptance_deadline=row.acceptance_deadline,
            )
        )
    return out


def _event_records(
    session: Session, policy: Policy, active: Sequence[Any], now: datetime
) -> dict[int, list[EventRecord]]:
    """Per holder, the events they were invited to (a sent invitation) or answered, with the answer and
    the recorded attendance (two bulk queries)."""
    invited: set[tuple[int, str]] = set()
    for holder_id, event_name in session.execute(
        select(Touch.holder_id, Touch.event)
        .join(OfferHolder, OfferHolder.id == Touch.holder_id)
        .where(
            *active, Touch.phase == "event", Touch.status == TouchStatus.SENT, Touch.key.like("%:invitation")
        )
    ):
        if event_name is not None:
            invited.add((holder_id, event_name))
    answers: dict[tuple[int, str], tuple[str, str]] = {}
    for holder_id, answered, status, attendance in session.execute(
        select(EventRsvp.holder_id, EventRsvp.event, EventRsvp.status, EventRsvp.attendance)
        .join(OfferHolder, OfferHolder.id == EventRsvp.holder_id)
        .where(*active, EventRsvp.responded_at <= now)
    ):
        answers[(holder_id, answered)] = (status or "", attendance or "")
    tz = policy.organization.tz
    found: dict[int, list[EventRecord]] = defaultdict(list)
    for holder_id, name in sorted(invited | set(answers)):
        event = policy.events.get(name)
        if event is None:
            continue
        closes = (
            datetime.combine(event.deadline + timedelta(days=1), time(0, 0), tz) if event.deadline else None
        )
        answer, attendance = answers.get((holder_id, name), ("", ""))
        found[holder_id].append(
            EventRecord(
                name, event.title, event.starts_at, closes, (holder_id, name) in invited, answer, attendance
            )
        )
    return found


def _cadence_channels(policy: Policy, cadence: str | None, phase: str | None) -> frozenset[str]:
    if cadence is None:
        return frozenset(MESSAGE_CHANNELS)
    phases = policy.cadences[cadence].phases
    chosen = [p for p in phases if p.name == phase] or list(phases)
    return frozenset(channel for p in chosen for channel in p.channels)


def persist_flags(session: Session, decisions: Iterable[FlagDecision], now: datetime) -> FlagChanges:
    """Bring the ``flags`` table in line with this evaluation: a flag that fires again keeps its row
    (``last_seen`` moves on), a new one gets a row, an open one that no longer fires is resolved."""
    changes = FlagChanges()
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


def evaluate_and_persist(context: AppContext, now: datetime) -> tuple[list[FlagDecision], FlagChanges]:
    """Load, evaluate and persist in one transaction; returns the current flags and what changed."""
    policy = context.policy
    with context.session() as session:
        decisions = evaluate_now(session, policy, now)
        changes = persist_flags(session, decisions, now)
    return decisions, changes


def evaluate_now(session: Session, policy: Policy, now: datetime) -> list[FlagDecision]:
    histories: Sequence[HolderHistory] = load_histories(session, policy, now)
    return evaluate_many(histories, policy, now)
