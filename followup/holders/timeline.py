"""One holder's story as JSON-ready data: touches, answers, replies, status changes and flags.

Shared by the dashboard, the JSON API and ``followup holders show ID --json`` so all three say the
same thing. Datetimes are ISO 8601 strings with their offset; dates are ISO dates.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from followup.config.schema import Policy
from followup.db.addresses import address_record
from followup.db.models import (
    ChannelOptOut,
    EngagementEvent,
    EventRsvp,
    Flag,
    FlagAction,
    HolderChange,
    OfferHolder,
    SurveyResponse,
    Touch,
)
from followup.flags.risk import sort_flags
from followup.labels import ATTENDANCE_LABELS, FLAG_ACTION_LABELS, RSVP_LABELS, RULE_LABELS
from followup.tasks.store import holder_tasks
from followup.vocab import DELIVERED_TOUCH_STATUSES, TouchKind, TouchStatus


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def touch_record(touch: Touch, external_id: str) -> dict[str, Any]:
    """The SPEC's touch record (external_id, cadence, phase, kind, channel, template, due_at, status)+."""
    return {
        "external_id": external_id,
        "cadence": touch.cadence,
        "phase": touch.phase,
        # SPEC's kinds are message|survey|manual: an escalation (the assignee asked again about a manual
        # touch, manual_overdue) belongs to the manual follow-up; ``escalation`` says which it is
        "kind": TouchKind.MANUAL.value if touch.kind == TouchKind.ESCALATION.value else touch.kind,
        "escalation": touch.kind == TouchKind.ESCALATION.value,
        "channel": touch.channel,
        "template": touch.template,
        "event": touch.event,
        "due_at": _iso(touch.due_at),
        "status": touch.status,
        "seq": touch.seq,
        "survey_form": touch.survey_form,
        "sent_at": _iso(touch.sent_at),
        "assignee": touch.assignee,
        "note": touch.note,
        "cancel_reason": touch.cancel_reason,
    }


def flag_record(flag: Flag, external_id: str) -> dict[str, Any]:
    """The SPEC's flag record (external_id, rule, severity, reason, since) and its state."""
    return {
        "external_id": external_id,
        "rule": flag.rule,
        "severity": flag.severity,
        "reason": flag.reason,
        "action": flag.action,
        "since": _iso(flag.since or flag.first_seen),  # the same meaning as ``followup flags --json``
        "first_seen": _iso(flag.first_seen),
        "last_seen": _iso(flag.last_seen),
        "resolved_at": _iso(flag.resolved_at),
    }


# What holder_record reads, besides the channel addresses (address_columns()).
_RECORD_FIELDS = (
    "external_id",
    "name",
    "track",
    "department",
    "status",
    "offer_date",
    "accepted_date",
    "start_date",
    "decline_reason",
    "mentor_email",
    "erased_at",
)


def holder_record_columns() -> list[Any]:
    """The columns a Core row needs for :func:`holder_record` (``holders list --json`` reads these
    rather than whole ORM holders), the holder's ``id`` first."""
    from followup.db.addresses import address_columns

    addresses = address_columns()
    names = {c.key for c in addresses}
    fields = [getattr(OfferHolder, f) for f in _RECORD_FIELDS if f not in names]
    return [OfferHolder.id, *fields, *addresses]


def holder_record(holder: OfferHolder | Row[Any], opted_out: list[str]) -> dict[str, Any]:
    """The holder as JSON (``holders list/show --json``, the API): an ORM holder, or a Core row of
    :func:`holder_record_columns`."""
    return {
        "external_id": holder.external_id,
        "name": holder.name,
        "email": holder.email,
        **address_record(holder),
        "track": holder.track,
        "department": holder.department,
        "status": holder.status,
        "offer_date": _iso(holder.offer_date),
        "accepted_date": _iso(holder.accepted_date),
        "start_date": _iso(holder.start_date),
        "decline_reason": holder.decline_reason,
        "mentor_email": holder.mentor_email,
        "opted_out_channels": sorted(opted_out),
        "erased": holder.erased_at is not None,
    }


def _touch_time(touch: Touch) -> datetime:
    return touch.sent_at or touch.due_at


def holder_timeline(session: Session, holder: OfferHolder, policy: Policy | None = None) -> dict[str, Any]:
    """Everything known about ``holder``, each list oldest first, plus ``items``: one merged, dated list.
    With ``policy``, ``tasks`` lists every task of the holder's audience with its due date and status."""
    touches = list(
        session.scalars(select(Touch).where(Touch.holder_id == holder.id).order_by(Touch.due_at, Touch.id))
    )
    responses = list(
        session.scalars(
            select(SurveyResponse)
            .where(SurveyResponse.holder_id == holder.id)
            .order_by(SurveyResponse.submitted_at)
        )
    )
    events = list(
        session.scalars(
            select(EngagementEvent).where(EngagementEvent.holder_id == holder.id).order_by(EngagementEvent.at)
        )
    )
    changes = list(
        session.scalars(
            select(HolderChange).where(HolderChange.holder_id == holder.id).order_by(HolderChange.at)
        )
    )
    flags = list(session.scalars(select(Flag).where(Flag.holder_id == holder.id).order_by(Flag.first_seen)))
    opted_out = list(
        session.scalars(select(ChannelOptOut.channel).where(ChannelOptOut.holder_id == holder.id))
    )
    rsvps = list(
        session.scalars(select(EventRsvp).where(EventRsvp.holder_id == holder.id).order_by(EventRsvp.event))
    )
    flag_actions = list(
        session.scalars(
            select(FlagAction).where(FlagAction.holder_id == holder.id).order_by(FlagAction.at, FlagAction.id)
        )
    )
    ext = holder.external_id
    rules = {f.id: f.rule for f in flags}
    tasks = holder_tasks(session, policy, holder) if policy is not None else []

    items: list[dict[str, Any]] = []
    for t in touches:
        items.append(
            {
                "at": _iso(_touch_time(t)),
                "type": "touch",
                "summary": f"{t.kind} / {t.channel} / {t.template or t.note or ''}".rstrip(" /"),
                "status": t.status,
                "kind": t.kind,
                "channel": t.channel,
                "template": t.template,
                "note": t.note,
                "event": t.event,
                "cadence": t.cadence,
                "phase": t.phase,
            }
        )
    for r in responses:
        items.append(
            {
                "at": _iso(r.updated_at),
                "type": "answer",
                "summary": r.form,
                "score": r.score,
                "declining": r.declining,
            }
        )
    for e in events:
        if e.kind == "answer":
            continue  # shown through the response itself
        if e.kind == "rsvp" and isinstance(e.payload, dict):
            said = RSVP_LABELS.get(str(e.payload.get("status", "")), str(e.payload.get("status", "")))
            seat = f"(席 {e.payload['seat']})" if e.payload.get("seat") else ""
            summary = f"{e.payload.get('event', '')}: {said}{seat} / {e.channel}"
            items.append({"at": _iso(e.at), "type": "rsvp", "summary": summary})
            continue
        text = e.payload.get("text") if isinstance(e.payload, dict) else None
        items.append({"at": _iso(e.at), "type": e.kind, "summary": f"{e.channel}: {text or ''}".rstrip(": ")})
    for rsvp in rsvps:
        if rsvp.attendance:
            label = ATTENDANCE_LABELS.get(rsvp.attendance, rsvp.attendance)
            summary = f"{rsvp.event}: 当日{label}"
            items.append({"at": _iso(rsvp.attendance_at), "type": "attendance", "summary": summary})
    for task in tasks:
        if task["changed_at"] is not None:
            summary = f"{task['title']}: {task['status_label']}" + (
                f"({task['note']})" if task["note"] else ""
            )
            items.append({"at": task["changed_at"], "type": "task", "summary": summary, "task": task["task"]})
    for c in changes:
        items.append(
            {
                "at": _iso(c.at),
                "type": "change",
                "summary": f"{c.field}: {c.old_value or '—'} → {c.new_value or '—'}",
            }
        )
    for f in flags:
        items.append(
            {"at": _iso(f.first_seen), "type": "flag", "rule": f.rule, "summary": f"{f.rule}: {f.reason}"}
        )
    for a in flag_actions:
        rule = rules.get(a.flag_id, "")
        what = f"{RULE_LABELS.get(rule, rule)}を{FLAG_ACTION_LABELS.get(a.action, a.action)}"
        if a.assignee:
            what += f"(担当: {a.assignee})"
        items.append(
            {
                "at": _iso(a.at),
                "type": "flag_action",
                "summary": f"{what}{' — ' + a.note if a.note else ''}",
                "actor": a.actor,
            }
        )
    items.sort(key=lambda item: item["at"] or "")

    return {
        "holder": holder_record(holder, opted_out),
        "touches": [touch_record(t, ext) for t in touches],
        "responses": [
            {
                "form": r.form,
                "submitted_at": _iso(r.submitted_at),
                "updated_at": _iso(r.updated_at),
                "score": r.score,
                "declining": r.declining,
                "answers": r.answers,
            }
            for r in responses
        ],
        "events": [
            {"at": _iso(e.at), "kind": e.kind, "channel": e.channel, "payload": e.payload} for e in events
        ],
        "event_rsvps": [
            {
                "event": r.event,
                "status": r.status or None,
                "seat": r.seat,
                "answers": r.answers or {},
                "source": r.source,
                "responded_at": _iso(r.responded_at) if r.status else None,
                "attendance": r.attendance,
                "attendance_at": _iso(r.attendance_at),
            }
            for r in rsvps
        ],
        "tasks": tasks,
        "changes": [
            {
                "at": _iso(c.at),
                "field": c.field,
                "old_value": c.old_value,
                "new_value": c.new_value,
                "note": c.note,
                "source": c.source,
            }
            for c in changes
        ],
        "flags": [flag_record(f, ext) | {"id": f.id} for f in flags],
        "flag_actions": [
            {
                "flag_id": a.flag_id,
                "at": _iso(a.at),
                "actor": a.actor,
                "action": a.action,
                "assignee": a.assignee,
                "note": a.note,
            }
            for a in flag_actions
        ],
        "paused_until": _iso(holder.paused_until),
        "pulse": [{"at": _iso(r.submitted_at), "score": r.score} for r in responses if r.score is not None],
        "items": items,
    }


def holder_summaries(
    session: Session, now: datetime, holder_ids: Sequence[int] | None = None
) -> list[dict[str, Any]]:
    """One row per holder for the dashboard list: status, phase, last and next touch, pulse trend, open flags.

    A handful of queries for all holders (no query per holder), or for ``holder_ids`` only (a page of
    the workspace list, returned in that order). The phase is the phase of the latest touch due by
    ``now`` (else of the next one): the planner's own view, as recorded on its touches.
    """
    holder_query = select(OfferHolder).order_by(OfferHolder.external_id)
    touch_query = select(Touch).order_by(Touch.due_at, Touch.id)
    pulse_query = (
        select(SurveyResponse.holder_id, SurveyResponse.score)
        .where(SurveyResponse.score.is_not(None))
        .order_by(SurveyResponse.submitted_at)
    )
    flag_query = select(Flag).where(Flag.resolved_at.is_(None))
    if holder_ids is not None:
        ids = list(holder_ids)
        holder_query = holder_query.where(OfferHolder.id.in_(ids))
        touch_query = touch_query.where(Touch.holder_id.in_(ids))
        pulse_query = pulse_query.where(SurveyResponse.holder_id.in_(ids))
        flag_query = flag_query.where(Flag.holder_id.in_(ids))
    holders = list(session.scalars(holder_query))
    if holder_ids is not None:
        place = {holder_id: i for i, holder_id in enumerate(holder_ids)}
        holders.sort(key=lambda h: place[h.id])
    touches_by: dict[int, list[Touch]] = defaultdict(list)
    for t in session.scalars(touch_query):
        touches_by[t.holder_id].append(t)
    pulse_by: dict[int, list[float]] = defaultdict(list)
    for holder_id, score in session.execute(pulse_query):
        if score is not None:
            pulse_by[holder_id].append(float(score))
    flags_by: dict[int, list[Flag]] = defaultdict(list)
    for f in session.scalars(flag_query):
        flags_by[f.holder_id].append(f)

    rows: list[dict[str, Any]] = []
    for h in holders:
        touches = touches_by[h.id]
        done = [t for t in touches if t.status in DELIVERED_TOUCH_STATUSES]
        last = max(done, key=_touch_time, default=None)
        upcoming = [t for t in touches if t.status in (TouchStatus.PLANNED, TouchStatus.REMINDED)]
        nxt = min(upcoming, key=lambda t: t.due_at, default=None)
        past = [t for t in touches if t.due_at <= now and t.status != TouchStatus.CANCELLED]
        phase_touch = past[-1] if past else nxt
        flags = sort_flags(flags_by[h.id])
        rows.append(
            {
                "external_id": h.external_id,
                "name": h.name,
                "track": h.track,
                "department": h.department,
                "status": h.status,
                "start_date": _iso(h.start_date),
                "mentor_email": h.mentor_email,
                "phase": phase_touch.phase if phase_touch else None,
                "last_touch": touch_record(last, h.external_id) if last else None,
                "next_touch": touch_record(nxt, h.external_id) if nxt else None,
                "pulse": pulse_by[h.id],
                "flags": [flag_record(f, h.external_id) for f in flags],
            }
        )
    return rows
