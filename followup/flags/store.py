"""The I/O edge of the rules: read every active holder's history in a few bulk queries, run the pure
rule engine, and keep the ``flags`` table in step (first seen, last seen, resolved).

No per-holder query, and only the rows a rule reads (:func:`recent_activity`): the cost grows with the
holders, not with the length of their seasons or with round trips.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    Integer,
    Table,
    and_,
    any_,
    bindparam,
    case,
    func,
    null,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from followup.calendar import BusinessCalendar
from followup.channels import MESSAGE_CHANNELS
from followup.config.context import AppContext
from followup.config.loader import assignee_name
from followup.config.schema import Policy
from followup.db.addresses import address_field, has_column
from followup.db.models import (
    ChannelOptOut,
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
    AUTOMATED_KINDS,
    ENGAGING_MANUAL_CHANNELS,
    EventRecord,
    FlagDecision,
    HolderHistory,
    ManualRecord,
    PulseResponse,
    TaskRecord,
    TouchRecord,
    contact_window_start,
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


@dataclass(frozen=True, slots=True)
class Activity:
    """Per holder id, the touches, survey responses and engagement a history is built from (in time
    order from :func:`recent_activity`, which fills it with only what the rules read; HolderHistory sorts
    anything else, e.g. a test's reference loader that fills it with the whole season)."""

    delivered: dict[int, list[TouchRecord]]
    undelivered: dict[int, list[TouchRecord]]
    responses: dict[int, list[PulseResponse]]
    engagement: dict[int, tuple[datetime, ...]]


def load_histories(
    session: Session, policy: Policy, now: datetime, quiet_templates: frozenset[str] = frozenset()
) -> list[HolderHistory]:
    """Every active holder (offered / accepted, not erased) with the part of its history the rules read
    at ``now`` (:func:`recent_activity`; later rows exist when ``now`` is in the past, e.g. ``flags
    --now``). Touches of ``quiet_templates`` (marked ``expects_reply: false``) are contact, but do not
    await a reply."""
    return assemble_histories(session, policy, now, recent_activity(session, policy, now, quiet_templates))


def _active() -> tuple[Any, ...]:
    return (OfferHolder.status.in_(ACTIVE_STATUSES), OfferHolder.erased_at.is_(None))


def recent_activity(
    session: Session, policy: Policy, now: datetime, quiet_templates: frozenset[str] = frozenset()
) -> Activity:
    """Only the rows the rules read at ``now``, chosen in SQL (two set-based queries, no per-holder one):

    * delivered touches (sent, or a manual touch done) up to ``now`` that are the holder's latest one
      (neglected), or inside the over_contacted window (the longest look-back a rule takes over
      touches), or automated (message, survey) and after the holder's last sign of engagement
      (unresponsive counts them); with the moment of that last engagement (a reply, an answer, a
      button, an RSVP, a survey response, a completed call or meeting), the one ``engaged_at`` the rule
      reads;
    * the latest two survey responses (declining_signal and low_pulse read the latest, pulse_drop the
      one before it), the answers only for a declining one (its reason quotes them).

    Failed sends and suppressed attempts are never contact and no rule reads them: not loaded."""
    touches, holders = _table(Touch), _table(OfferHolder)
    events, answers = _table(EngagementEvent), _table(SurveyResponse)
    active = (holders.c.status.in_(ACTIVE_STATUSES), holders.c.erased_at.is_(None))
    touch_at = func.coalesce(touches.c.sent_at, touches.c.due_at, type_=touches.c.due_at.type)
    # one pass over the season's delivered touches: each row with its holder's latest touch and latest
    # completed call or meeting (window aggregates, no self-join)
    called = case((touches.c.channel.in_(sorted(ENGAGING_MANUAL_CHANNELS)), touch_at), else_=null())
    contact = (
        select(
            touches.c.holder_id,
            touches.c.kind,
            touches.c.channel,
            touch_at.label("at"),
            touches.c.template,
            func.max(touch_at).over(partition_by=touches.c.holder_id).label("latest"),
            func.max(called).over(partition_by=touches.c.holder_id).label("called"),
        )
        .where(touches.c.status.in_(DELIVERED_TOUCH_STATUSES), touch_at <= now)
        .subquery("contact")
    )
    # the other signs of engagement: replies, answers, buttons, RSVPs and survey responses
    signs = union_all(
        select(events.c.holder_id, events.c.at.label("at")).where(
            events.c.kind.in_(ENGAGEMENT_KINDS), events.c.at <= now
        ),
        select(answers.c.holder_id, answers.c.submitted_at).where(answers.c.submitted_at <= now),
    ).subquery("signs")
    engaged = (
        select(signs.c.holder_id, func.max(signs.c.at).label("at"))
        .group_by(signs.c.holder_id)
        .subquery("engaged")
    )
    window_start = contact_window_start(policy.rules.over_contacted.window, now)
    after_engagement = and_(
        contact.c.kind.in_(sorted(AUTOMATED_KINDS)),
        or_(contact.c.called.is_(None), contact.c.at > contact.c.called),
        or_(engaged.c.at.is_(None), contact.c.at > engaged.c.at),
    )
    last_engaged = case(  # the later of the two (NULL only when there is neither)
        (contact.c.called.is_(None), engaged.c.at),
        (or_(engaged.c.at.is_(None), contact.c.called > engaged.c.at), contact.c.called),
        else_=engaged.c.at,
    )
    delivered: dict[int, list[TouchRecord]] = defaultdict(list)
    engagement: dict[int, tuple[datetime, ...]] = {}
    rows = session.execute(
        select(
            contact.c.holder_id,
            contact.c.kind,
            contact.c.channel,
            contact.c.at,
            contact.c.template,
            last_engaged,
        )
        .join(holders, holders.c.id == contact.c.holder_id)
        .outerjoin(engaged, engaged.c.holder_id == contact.c.holder_id)
        .where(
            *active,
            or_(contact.c.at >= contact.c.latest, contact.c.at > window_start, after_engagement),
        )
        .order_by(contact.c.holder_id, contact.c.at)
    ).all()
    for holder_id, kind, channel, at, template, last in rows:
        found = delivered.get(holder_id)
        if found is None:
            found = delivered[holder_id] = []
            if last is not None:
                engagement[holder_id] = (last,)
        found.append(TouchRecord(at, channel, kind, "delivered", template not in quiet_templates))

    newest = (
        func.row_number()
        .over(partition_by=answers.c.holder_id, order_by=(answers.c.submitted_at.desc(), answers.c.id.desc()))
        .label("newest")
    )
    ranked = (
        select(
            answers.c.holder_id,
            answers.c.form,
            case((answers.c.declining, answers.c.answers), else_=null()).label("answers"),
            answers.c.score,
            answers.c.declining,
            answers.c.submitted_at,
            newest,
        )
        .join(holders, holders.c.id == answers.c.holder_id)
        .where(*active, answers.c.submitted_at <= now)
        .subquery("ranked")
    )
    responses: dict[int, list[PulseResponse]] = defaultdict(list)
    for holder_id, form, said, score, declining, at in session.execute(
        select(
            ranked.c.holder_id,
            ranked.c.form,
            ranked.c.answers,
            ranked.c.score,
            ranked.c.declining,
            ranked.c.submitted_at,
        )
        .where(ranked.c.newest <= 2)
        .order_by(ranked.c.holder_id, ranked.c.newest.desc())
    ).all():
        picked = _declining_answers(policy, form, said) if declining else ()
        responses[holder_id].append(PulseResponse(at, score, bool(declining), picked))
    return Activity(delivered, {}, responses, engagement)


def assemble_histories(
    session: Session, policy: Policy, now: datetime, activity: Activity
) -> list[HolderHistory]:
    """The active holders' rows joined with ``activity`` and the small per-holder facts every rule may
    read (opt-outs, events, tasks, reminded manual touches, the cohort channel), in holder id order."""
    active = _active()
    table = _table(OfferHolder)
    # plain Core rows; where each message channel's address lives is worked out once, not per holder
    columns = [
        table.c[name]
        for name in (
            "id",
            "external_id",
            "name",
            "status",
            "offer_date",
            "accepted_date",
            "start_date",
            "track",
            "department",
            "acceptance_deadline",
            "addresses",
        )
    ]
    fields = {channel: address_field(channel) for channel in MESSAGE_CHANNELS}
    stored = [f for f in dict.fromkeys(fields.values()) if has_column(f)]
    position = {f: len(columns) + i for i, f in enumerate(stored)}
    readers = [(channel, position.get(f), f) for channel, f in fields.items()]
    holders = session.execute(
        select(*columns, *(table.c[f] for f in stored))
        .where(table.c.status.in_(ACTIVE_STATUSES), table.c.erased_at.is_(None))
        .order_by(table.c.id)
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

    delivered, undelivered = activity.delivered, activity.undelivered
    responses, engagement = activity.responses, activity.engagement
    events = _event_records(session, policy, active, now)
    tasks_done = task_states(session) if policy.tasks else {}
    task_seasons: dict[tuple[Any, ...], tuple[TaskRecord, ...]] = {}
    calendar = BusinessCalendar.from_policy(policy) if policy.tasks else None
    manual = reminded_manual_touches(session, policy, now)
    cohort = _cohort_times(session, active, now)
    today = now.astimezone(policy.organization.tz).date()
    out: list[HolderHistory] = []
    # holders share their season: the phase and the address readers of the channels the cadence uses
    # (the current phase's, else any phase's; only those can reach the holder) once per distinct season
    phases: dict[tuple[Any, ...], tuple[str | None, str | None, list[tuple[str, int | None, str]]]] = {}
    empty: tuple[Any, ...] = ()
    for row in holders:
        hid, ext, name, status, offer, accepted, start, track, dept, deadline, extra = row[:11]
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
            usable = _cadence_channels(policy, cadence, phase)
            known = phases[season] = (cadence, phase, [r for r in readers if r[0] in usable])
        cadence, phase, usable_readers = known
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
        blocked = opted.get(hid, empty)
        reachable = tuple(
            channel
            for channel, at, f in usable_readers
            if (row[at] if at is not None else (extra or {}).get(f)) and channel not in blocked
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
                delivered=tuple(delivered.get(hid, empty)),
                undelivered=tuple(undelivered.get(hid, empty)),
                responses=tuple(responses.get(hid, empty)),
                engagement=engagement.get(hid, empty),
                opt_outs=tuple(opt_out_times.get(hid, empty)),
                events=tuple(events.get(hid, empty)),
                tasks=tasks,
                acceptance_deadline=deadline,
                manual=tuple(manual.get(hid, empty)),
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
