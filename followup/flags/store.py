"""The I/O edge of the rules: read every active holder's history in a few bulk queries, run the pure
rule engine, and keep the ``flags`` table in step (first seen, last seen, resolved).

No per-holder query: one SELECT per kind of history, grouped in Python, so the cost grows with the
number of rows, not with round trips.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import Integer, Table, any_, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from followup.calendar import BusinessCalendar
from followup.channels import MESSAGE_CHANNELS
from followup.config.context import AppContext
from followup.config.loader import assignee_name
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
    ManualRecord,
    PulseResponse,
    TaskRecord,
    TouchRecord,
    evaluate_many,
)
from followup.labels import MANUAL_CHANNEL_LABELS, MANUAL_WHAT
from followup.tasks.store import late_from, task_states
from followup.vocab import ACTIVE_STATUSES, DELIVERED_TOUCH_STATUSES, TouchKind, TouchStatus


def _table(model: Any) -> Table:
    """A mapped class's Table (typed as such: ``__table__`` is a FromClause to the type checker)."""
    table: Table = model.__table__
    return table


ENGAGEMENT_KINDS = ("reply", "answer", "button", "rsvp")  # an RSVP is an answer too
COHORT_INVITE, COHORT_JOIN = "cohort_invite", "cohort_join"  # engagement_events kinds (内定者同士の交流)
# the touches a history holds: delivered ones (contact) and failed sends (kept, never contact)
HISTORY_TOUCH_STATUSES = (*DELIVERED_TOUCH_STATUSES, TouchStatus.FAILED.value)


@dataclass(frozen=True, slots=True)
class FlagRef:
    """One row of the ``flags`` table that an evaluation touched (``id`` is None for a new row)."""

    id: int | None
    holder_id: int
    rule: str


@dataclass
class FlagChanges:
    """What one evaluation changed in the ``flags`` table."""

    new: list[FlagRef] = field(default_factory=list)
    continuing: list[FlagRef] = field(default_factory=list)
    resolved: list[FlagRef] = field(default_factory=list)


def _declining_answers(policy: Policy, form: str, answers: dict[str, Any] | None) -> tuple[str, ...]:
    """The chosen answers that the survey marks as declining (e.g. 他社も検討している)."""
    survey = policy.surveys.get(form)
    if survey is None or not answers:
        return ()
    return tuple(declining_answers(survey, answers))


def load_histories(
    session: Session, policy: Policy, now: datetime, quiet_templates: frozenset[str] = frozenset()
) -> list[HolderHistory]:
    """Every active holder (offered / accepted, not erased) with the history the rules read, up to
    ``now`` (later rows exist when ``now`` is in the past, e.g. ``flags --now``). Touches of
    ``quiet_templates`` (marked ``expects_reply: false``) are contact, but do not await a reply."""
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

    # the biggest table: plain Core columns (no ORM row processing) and no ORDER BY (HolderHistory
    # sorts what it binary-searches; the undelivered ones are sorted below)
    touches, holders_table = _table(Touch), _table(OfferHolder)
    touch_at = func.coalesce(touches.c.sent_at, touches.c.due_at, type_=touches.c.due_at.type)
    delivered: dict[int, list[TouchRecord]] = defaultdict(list)
    undelivered: dict[int, list[TouchRecord]] = defaultdict(list)
    failed = TouchStatus.FAILED.value
    for holder_id, kind, channel, status, at, template in session.execute(
        select(
            touches.c.holder_id,
            touches.c.kind,
            touches.c.channel,
            touches.c.status,
            touch_at,
            touches.c.template,
        )
        .join(holders_table, holders_table.c.id == touches.c.holder_id)
        .where(
            holders_table.c.status.in_(ACTIVE_STATUSES),
            holders_table.c.erased_at.is_(None),
            touches.c.status.in_(HISTORY_TOUCH_STATUSES),
            touch_at <= now,
        )
    ):
        if status == failed:
            undelivered[holder_id].append(TouchRecord(at, channel, kind, "failed"))
        else:
            expects = template not in quiet_templates
            delivered[holder_id].append(TouchRecord(at, channel, kind, "delivered", expects))
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
    tasks_done = task_states(session) if policy.tasks else {}
    task_seasons: dict[tuple[Any, ...], tuple[TaskRecord, ...]] = {}
    calendar = BusinessCalendar.from_policy(policy) if policy.tasks else None
    manual = reminded_manual_touches(session, policy, now)
    cohort = _cohort_times(session, active, now)
    today = now.astimezone(policy.organization.tz).date()
    out: list[HolderHistory] = []
    # holders share their season: the phase and usable channels once per distinct (track, dates)
    phases: dict[tuple[Any, ...], tuple[str | None, str | None, frozenset[str]]] = {}
    for row in holders:
        (hid, ext, name, status, offer, accepted, start, track, dept) = row[:9]
        season = (track, dept, offer, accepted, start)
        known = phases.get(season)
        if known is None:
            cadence, phase = holder_phase(
                policy,
                track=track,
                department=dept,
                offer_date=offer,
                accepted_date=accepted,
                start_date=start,
                today=today,
            )
            known = phases[season] = (cadence, phase, _cadence_channels(policy, cadence, phase))
        cadence, phase, usable = known
        tasks: tuple[TaskRecord, ...] = ()
        if calendar is not None and cadence is not None:
            tasks = task_seasons.get(season) or ()
            if season not in task_seasons:
                tasks = task_seasons[season] = _task_records(policy, calendar, season)
            done = tasks_done.get(hid)
            if done:
                tasks = tuple(
                    TaskRecord(t.task, t.title, t.due, t.late_from, done.get(t.task, t.status)) for t in tasks
                )
        contacts = addresses_of(row)
        # only the channels the cadence uses (the current phase's, else any phase's) can reach the holder
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
                undelivered=tuple(sorted(undelivered.get(hid, ()), key=_record_at)),
                responses=tuple(responses.get(hid, ())),
                engagement=tuple(engagement.get(hid, ())),
                opt_outs=tuple(opt_out_times.get(hid, ())),
                events=tuple(events.get(hid, ())),
                tasks=tasks,
                acceptance_deadline=row.acceptance_deadline,
                manual=tuple(manual.get(hid, ())),
                cohort_invited_at=cohort.get((hid, COHORT_INVITE)),
                cohort_joined_at=cohort.get((hid, COHORT_JOIN)),
            )
        )
    return out


def _task_records(
    policy: Policy, calendar: BusinessCalendar, season: tuple[Any, ...]
) -> tuple[TaskRecord, ...]:
    """The tasks of a (track, department, offer, accepted, start) season, each with its due date and
    the moment it becomes late: the start of the first business day after the due date."""
    track, dept, offer, accepted, start = season
    dates = {"offer": offer, "accepted": accepted, "start": start}
    found = []
    for name, task in policy.tasks.items():
        if not task.applies(track, dept) or task.done_on_acceptance:
            continue  # a task done by accepting: acceptance_pending watches the holders still offered
        due = task.due_on(dates, calendar.is_business_day)
        if due is None or due < offer:
            continue  # not accepted yet, or due before the holder was offered
        late = late_from(due, calendar)
        found.append(
            TaskRecord(name, task.title, due, datetime.combine(late, time(0, 0), policy.organization.tz))
        )
    return tuple(found)


def _cohort_times(session: Session, active: Sequence[Any], now: datetime) -> dict[tuple[int, str], datetime]:
    """(holder, cohort_invite | cohort_join) → the first such event up to ``now`` (one grouped query)."""
    found: dict[tuple[int, str], datetime] = {}
    for holder_id, kind, at in session.execute(
        select(EngagementEvent.holder_id, EngagementEvent.kind, func.min(EngagementEvent.at))
        .join(OfferHolder, OfferHolder.id == EngagementEvent.holder_id)
        .where(*active, EngagementEvent.kind.in_((COHORT_INVITE, COHORT_JOIN)), EngagementEvent.at <= now)
        .group_by(EngagementEvent.holder_id, EngagementEvent.kind)
    ):
        if holder_id is not None and at is not None:
            found[(holder_id, kind)] = at
    return found


def reminded_manual_touches(session: Session, policy: Policy, now: datetime) -> dict[int, list[ManualRecord]]:
    """Per active holder, the manual touches whose assignee was reminded by ``now`` and which nobody has
    logged yet (one query; the status stays ``reminded`` until ``touch log`` or the 実施済み link)."""
    found: dict[int, list[ManualRecord]] = defaultdict(list)
    for touch_id, holder_id, cadence, phase, key, channel, assignee, note, at in session.execute(
        select(
            Touch.id,
            Touch.holder_id,
            Touch.cadence,
            Touch.phase,
            Touch.key,
            Touch.channel,
            Touch.assignee,
            Touch.note,
            Touch.sent_at,
        )
        .join(OfferHolder, OfferHolder.id == Touch.holder_id)
        .where(
            OfferHolder.status.in_(ACTIVE_STATUSES),
            OfferHolder.erased_at.is_(None),
            Touch.kind == TouchKind.MANUAL.value,
            Touch.status == TouchStatus.REMINDED.value,
            Touch.sent_at.is_not(None),
            Touch.sent_at <= now,
        )
        .order_by(Touch.sent_at, Touch.id)
    ):
        if at is None:  # excluded by the query; says so to the type checker
            continue
        what = (note or "").split("\n")[0] or MANUAL_WHAT.get(
            channel, MANUAL_CHANNEL_LABELS.get(channel, "連絡")
        )
        who = manual_assignee(policy, cadence, phase, key, assignee)
        found[holder_id].append(ManualRecord(touch_id, channel, what, who, at))
    return found


def manual_assignee(policy: Policy, cadence: str, phase: str, key: str, assignee: str | None) -> str:
    """How the reminder addressed the touch's assignee (佐藤社長, a mentor's name), else the address."""
    configured = ""
    found = policy.cadences.get(cadence)
    for p in found.phases if found is not None else ():
        if p.name == phase:
            configured = next((o.assignee_name for o in p.one_off if f":once:{o.name}" in key), "")
    address = assignee or policy.organization.hr_email
    return assignee_name(policy, address, configured) or address or "担当者"


def _record_at(record: TouchRecord) -> datetime:
    return record.at


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
    (``last_seen`` moves on), a new one gets a row, an open one that no longer fires is resolved.

    Set-based: one SELECT of the open flags (plain tuples), one UPDATE resolving the ones that stopped,
    one moving ``last_seen`` of the ones that continue, one multi-row INSERT of the new ones, and an
    UPDATE only for the rows whose wording changed (all from arrays on PostgreSQL)."""
    session.flush()
    changes = FlagChanges()
    table = _table(Flag)
    open_rows = {
        (holder_id, rule): (id_, severity, reason, action, last_seen)
        for id_, holder_id, rule, severity, reason, action, last_seen in session.execute(
            select(
                table.c.id,
                table.c.holder_id,
                table.c.rule,
                table.c.severity,
                table.c.reason,
                table.c.action,
                table.c.last_seen,
            ).where(table.c.resolved_at.is_(None))
        )
    }
    seen: set[tuple[int, str]] = set()
    new: list[FlagDecision] = []
    reworded: list[dict[str, Any]] = []
    for decision in decisions:
        key = (decision.holder_id, decision.rule)
        if key in seen:
            continue
        seen.add(key)
        row = open_rows.get(key)
        if row is None:
            new.append(decision)
            changes.new.append(FlagRef(None, decision.holder_id, decision.rule))
            continue
        id_, severity, reason, action, _ = row
        if (severity, reason, action) != (decision.severity, decision.reason, decision.action):
            reworded.append(
                {
                    "id": id_,
                    "severity": decision.severity,
                    "reason": decision.reason,
                    "action": decision.action,
                }
            )
        changes.continuing.append(FlagRef(id_, decision.holder_id, decision.rule))
    resolved = [row[0] for key, row in open_rows.items() if key not in seen]
    changes.resolved = [FlagRef(row[0], *key) for key, row in open_rows.items() if key not in seen]
    postgres = session.get_bind().dialect.name == "postgresql"
    for ids in _chunks(resolved):
        session.execute(update(table).where(_id_among(table.c.id, ids, postgres)).values(resolved_at=now))
    if changes.continuing:  # every open row not resolved above is continuing (the new ones come below)
        session.execute(
            update(table).where(table.c.resolved_at.is_(None), table.c.last_seen < now).values(last_seen=now)
        )
    for chunk in _chunks(reworded):
        if postgres:
            session.execute(
                text(
                    "UPDATE flags AS f SET severity = v.severity, reason = v.reason, action = v.action"
                    " FROM unnest(CAST(:id AS integer[]), CAST(:severity AS varchar[]),"
                    " CAST(:reason AS text[]), CAST(:action AS text[])) AS v(id, severity, reason, action)"
                    " WHERE f.id = v.id"
                ),
                {name: [r[name] for r in chunk] for name in ("id", "severity", "reason", "action")},
            )
        else:
            session.execute(
                update(table)
                .where(table.c.id == bindparam("flag_id"))
                .values(
                    severity=bindparam("severity"), reason=bindparam("reason"), action=bindparam("action")
                ),
                [{**r, "flag_id": r["id"]} for r in chunk],
            )
    for chunk in _chunks(new):
        columns = {
            "holder_id": [d.holder_id for d in chunk],
            "rule": [d.rule for d in chunk],
            "severity": [d.severity for d in chunk],
            "reason": [d.reason for d in chunk],
            "action": [d.action for d in chunk],
            "since": [d.since for d in chunk],
        }
        if postgres:
            selected: list[Any] = [
                func.unnest(bindparam(name, type_=ARRAY(table.c[name].type))) for name in columns
            ]
            selected += [
                bindparam("first_seen", type_=table.c.first_seen.type),
                bindparam("last_seen", type_=table.c.last_seen.type),
            ]
            statement = table.insert().from_select([*columns, "first_seen", "last_seen"], select(*selected))
            session.execute(statement, {**columns, "first_seen": now, "last_seen": now})
        else:
            names = list(columns)
            session.execute(
                table.insert(),
                [
                    {**dict(zip(names, values, strict=True)), "first_seen": now, "last_seen": now}
                    for values in zip(*columns.values(), strict=True)
                ],
            )
    if resolved or changes.continuing or new:
        session.expire_all()  # Flag objects loaded before read the new state
    return changes


_CHUNK = 10_000


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _id_among(column: Any, ids: list[int], postgres: bool) -> Any:
    if postgres:
        return column == any_(bindparam("ids", ids, type_=ARRAY(Integer)))
    return column.in_(ids)  # 10,000 per chunk: under SQLite's 32,766 bind parameters


def evaluate_and_persist(context: AppContext, now: datetime) -> tuple[list[FlagDecision], FlagChanges]:
    """Load, evaluate and persist in one transaction; returns the current flags and what changed."""
    policy = context.policy
    quiet = no_reply_templates(context)
    with context.session() as session:
        decisions = evaluate_now(session, policy, now, quiet)
        changes = persist_flags(session, decisions, now)
    return decisions, changes


def no_reply_templates(context: AppContext) -> frozenset[str]:
    """The policy's templates marked ``expects_reply: false`` (they say 「ご返信は不要です」)."""
    from followup.rendering.templates import MessageTemplates, TemplateProblem

    templates = MessageTemplates(context.templates_root, context.policy.organization.locale)
    quiet: set[str] = set()
    for name in templates.names():
        try:
            if not templates.meta(name).expects_reply:
                quiet.add(name)
        except TemplateProblem:  # reported by check-config; the rules count such a touch as usual
            continue
    return frozenset(quiet)


def evaluate_now(
    session: Session, policy: Policy, now: datetime, quiet_templates: frozenset[str] = frozenset()
) -> list[FlagDecision]:
    histories: Sequence[HolderHistory] = load_histories(session, policy, now, quiet_templates)
    return evaluate_many(histories, policy, now)
