"""The planner's I/O edge: load snapshots in bulk, apply a plan exactly once, hold the scheduler lease.

Exactly once comes from the database, not from code paths: inserts are ``INSERT … ON CONFLICT (key) DO
NOTHING`` against the unique touch key, and moves/cancels are conditional ``UPDATE … WHERE status =
'planned'`` so a touch a worker already claimed is never changed under it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, Table, and_, any_, bindparam, cast, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from followup.calendar import BusinessCalendar
from followup.config.context import AppContext
from followup.config.schema import Policy
from followup.db.addresses import address_columns, addresses_of
from followup.db.models import (
    ChannelOptOut,
    EngagementEvent,
    OfferHolder,
    SchedulerLease,
    SurveyResponse,
    Touch,
)
from followup.durations import shift_moment
from followup.events.store import event_states
from followup.flags.rules import manual_deadline
from followup.planning.inserts import insert_touches, touch_insert
from followup.planning.planner import (
    PENDING_STATUSES,
    ExistingTouch,
    HolderSnapshot,
    PlanResult,
    SeasonCache,
    catch_up_floor,
    plan,
)
from followup.planning.pool import plan_pool
from followup.pool.rules import PoolMember
from followup.pool.store import declined_days, superseded_ids
from followup.tasks.store import task_states
from followup.vocab import ACTIVE_STATUSES, POOL_CADENCE, POOL_STATUSES, TouchKind, TouchStatus

# Touches older than this before the catch-up window cannot be re-created by a tick, so a tick
# does not need to read them (keys are unique anyway: a missed one would only be a no-op insert).
HISTORY_SLACK = timedelta(days=62)
INSERT_BATCH = 1000
ID_CHUNK = 30_000  # ids per IN list on SQLite (older builds allow 32,766 parameters a statement)
REPLY_KINDS = ("reply", "answer", "button", "rsvp")  # contact from the holder (quiet_after_reply)


@dataclass(frozen=True)
class PlanCounts:
    created: int = 0
    moved: int = 0
    cancelled: int = 0
    rechannelled: int = 0
    skipped: int = 0
    escalated: int = 0  # escalation mails planned for overdue manual touches (manual_overdue)
    skipped_holders: tuple[tuple[str, str], ...] = ()  # (external_id, reason), for `plan` to name them


def _touches() -> Table:
    return Touch.__table__  # type: ignore[return-value]


def _id_chunks(session: Session, column: Any, ids: Sequence[int] | Sequence[str] | None) -> list[Any]:
    """WHERE clauses that keep ``column`` in ``ids``, within the backend's bind-parameter limit
    (one array parameter on PostgreSQL); ``[None]`` (no filter) when ``ids`` is None."""
    if ids is None:
        return [None]
    if session.get_bind().dialect.name == "postgresql":
        values = bindparam(None, list(ids), type_=postgresql.ARRAY(column.type))  # one parameter
        return [column == any_(values)] if ids else []
    return [column.in_(ids[i : i + ID_CHUNK]) for i in range(0, len(ids), ID_CHUNK)]


@dataclass(frozen=True)
class DueHolders:
    """Who a tick must read (:func:`due_holders`) and the part of their history the planner reads."""

    ids: list[int]
    history: dict[int, list[ExistingTouch]]


_TOUCH_COLUMNS = (
    Touch.id,
    Touch.key,
    Touch.holder_id,
    Touch.phase,
    Touch.seq,
    Touch.kind,
    Touch.channel,
    Touch.due_at,
    Touch.status,
    (Touch.attempts + Touch.suppressed_count) > 0,
    Touch.held_at,
)


def _history_since(now: datetime, policy: Policy, calendar: BusinessCalendar) -> datetime:
    """Touches due before this (and not pending) cannot be planned again by a tick at ``now``."""
    return catch_up_floor(now, policy, calendar) - HISTORY_SLACK


def _read_touches(session: Session, query: Any, into: dict[int, list[ExistingTouch]]) -> None:
    for t in session.connection().execute(query):  # Core rows: no ORM result machinery per row
        touch = ExistingTouch(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8])
        into[t[2]].append(replace(touch, deferred=True) if t[9] or t[10] is not None else touch)


def due_holders(session: Session, policy: Policy, now: datetime, seasons: SeasonCache) -> DueHolders:
    """The holders a tick at ``now`` can give or change a touch: the only ones it needs to load.

    The planner's answer for any other holder is empty, by its rules: a touch is created only for a
    season slot between the catch-up floor and the horizon whose key does not exist yet, and moved,
    cancelled or re-channelled only while pending. So: active holders whose season (worked out once
    per distinct set of dates) has a slot in the window with no touch of that key, active holders no
    cadence applies to (the tick names them as skipped), and every holder with a pending touch. Of
    their history the planner reads only the pending touches and the window slots' keys, so only
    those rows are read (by key, on the unique index), and handed on to :func:`load_snapshots`.
    """
    low, high = seasons.window(now)
    wanted: dict[int, list[str]] = {}  # holder → the keys of its window slots
    needed: set[int] = set()
    decided: dict[tuple[Any, ...], tuple[str, ...] | None] = {}
    rows = session.connection().execute(
        select(
            OfferHolder.id,
            OfferHolder.external_id,
            OfferHolder.track,
            OfferHolder.department,
            OfferHolder.offer_date,
            OfferHolder.accepted_date,
            OfferHolder.start_date,
            OfferHolder.timezone,
        ).where(OfferHolder.status.in_(sorted(ACTIVE_STATUSES)), OfferHolder.erased_at.is_(None))
    )
    for holder_id, external_id, track, department, offer, accepted, start, zone in rows.tuples():
        signature = (track, department, offer, accepted, start, zone)
        if signature in decided:
            suffixes = decided[signature]
        else:
            probe = HolderSnapshot(
                0, "", track, department, "offered", offer, accepted, start, frozenset(), zone
            )
            suffixes = decided[signature] = seasons.window_suffixes(probe, low, high)
        if suffixes is None:  # no cadence: planned only to be named as skipped
            needed.add(holder_id)
        elif suffixes:
            wanted[holder_id] = [f"{external_id}:{suffix}" for suffix in suffixes]
    pending = sorted(PENDING_STATUSES)
    history: dict[int, list[ExistingTouch]] = defaultdict(list)
    offer_touches = select(*_TOUCH_COLUMNS).where(Touch.cadence != POOL_CADENCE)  # pool: load_pool_members
    _read_touches(session, offer_touches.where(Touch.status.in_(pending)), history)
    needed.update(history)
    keyed = offer_touches.where(
        Touch.status.not_in(pending), Touch.due_at >= _history_since(now, policy, seasons.calendar)
    )
    keys = [key for holder_keys in wanted.values() for key in holder_keys]
    for where in _id_chunks(session, Touch.key, keys):
        _read_touches(session, keyed.where(where), history)
    for holder_id, holder_keys in wanted.items():
        if holder_id in needed:
            continue
        found = {t.key for t in history.get(holder_id, ())}
        if any(key not in found for key in holder_keys):
            needed.add(holder_id)  # a slot still to create
    ids = sorted(needed)
    return DueHolders(ids, {i: history[i] for i in ids if i in history})


def load_snapshots(
    session: Session,
    policy: Policy,
    now: datetime | None = None,
    due: DueHolders | None = None,
) -> tuple[list[HolderSnapshot], dict[int, list[ExistingTouch]]]:
    """Holders to plan and their touch history, in a few bulk queries (no per-holder ORM loop).

    Active holders are loaded, plus inactive ones that still have pending touches (to cancel them).
    With ``now``, history older than the catch-up window (minus a slack) is not read unless pending.
    With ``due`` (:func:`due_holders`) only those holders are read, with the history it found.
    """
    pending = sorted(PENDING_STATUSES)
    existing: dict[int, list[ExistingTouch]] = defaultdict(list)
    if due is not None:
        existing.update(due.history)
    else:
        touch_query = select(*_TOUCH_COLUMNS).where(Touch.cadence != POOL_CADENCE)  # pool: load_pool_members
        if now is not None:
            since = _history_since(now, policy, BusinessCalendar.from_policy(policy))
            touch_query = touch_query.where(or_(Touch.status.in_(pending), Touch.due_at >= since))
        _read_touches(session, touch_query, existing)

    holder_ids = None if due is None else due.ids
    # the talent pool's pending touches are the pool planner's (load_pool_members), not a reason to load
    pending_holders = (
        select(Touch.holder_id).where(Touch.status.in_(pending), Touch.cadence != POOL_CADENCE).distinct()
    )
    holder_query = select(
        OfferHolder.id,
        OfferHolder.external_id,
        OfferHolder.track,
        OfferHolder.department,
        OfferHolder.status,
        OfferHolder.offer_date,
        OfferHolder.accepted_date,
        OfferHolder.start_date,
        *address_columns(),
        OfferHolder.timezone,
        OfferHolder.erased_at,
        OfferHolder.paused_until,
    ).where(or_(OfferHolder.status.in_(sorted(ACTIVE_STATUSES)), OfferHolder.id.in_(pending_holders)))
    if holder_ids is not None:
        holder_query = select(*holder_query.selected_columns)  # the ids already say who
    opted_out: dict[int, set[str]] = defaultdict(set)
    for where in _id_chunks(session, ChannelOptOut.holder_id, holder_ids):
        opt_query = select(ChannelOptOut.holder_id, ChannelOptOut.channel)
        for holder_id, channel in session.execute(opt_query if where is None else opt_query.where(where)):
            opted_out[holder_id].add(channel)

    states = event_states(session)
    tasks_done = task_states(session) if policy.tasks else {}
    replied: dict[int, datetime] = {}
    if policy.quiet_after_reply is not None:
        for replier, at in session.execute(
            select(EngagementEvent.holder_id, func.max(EngagementEvent.at))
            .where(EngagementEvent.kind.in_(REPLY_KINDS), EngagementEvent.holder_id.is_not(None))
            .group_by(EngagementEvent.holder_id)
        ):
            if replier is not None and at is not None:
                replied[replier] = at
        for responder, answered_at in session.execute(
            select(SurveyResponse.holder_id, func.max(SurveyResponse.submitted_at)).group_by(
                SurveyResponse.holder_id
            )
        ):
            if answered_at is not None:
                replied[responder] = max(answered_at, replied.get(responder, answered_at))
    holders: list[HolderSnapshot] = []
    holder_rows = (
        row
        for where in _id_chunks(session, OfferHolder.id, holder_ids)
        for row in session.execute(holder_query if where is None else holder_query.where(where))
    )
    for row in holder_rows:
        contact = addresses_of(row)
        reachable = frozenset(c for c, v in contact.items() if v) - opted_out.get(row.id, set())
        holders.append(
            HolderSnapshot(
                id=row.id,
                external_id=row.external_id,
                track=row.track,
                department=row.department,
                status="erased" if row.erased_at is not None else row.status,
                offer_date=row.offer_date,
                accepted_date=row.accepted_date,
                start_date=row.start_date,
                reachable=reachable,
                timezone=row.timezone,
                event_states=states.get(row.id, {}),
                last_reply_at=replied.get(row.id),
                paused_until=row.paused_until,
                task_states=tasks_done.get(row.id, {}),
            )
        )
    return holders, dict(existing)


def load_pool_members(
    session: Session, policy: Policy, since: datetime | None = None
) -> tuple[list[PoolMember], dict[int, list[ExistingTouch]]]:
    """Pool members (and anyone with a pending pool touch, to cancel it) with their pool touches.

    ``since``: pool touches due before it are not read unless still pending (their keys stay unique)."""
    pending = sorted(PENDING_STATUSES)
    touch_query = select(
        Touch.id,
        Touch.key,
        Touch.holder_id,
        Touch.phase,
        Touch.seq,
        Touch.kind,
        Touch.channel,
        Touch.due_at,
        Touch.status,
    ).where(Touch.cadence == POOL_CADENCE)
    if since is not None:
        touch_query = touch_query.where(or_(Touch.status.in_(pending), Touch.due_at >= since))
    existing: dict[int, list[ExistingTouch]] = defaultdict(list)
    for row in session.execute(touch_query):
        existing[row[2]].append(ExistingTouch(*row))
    with_pending = select(Touch.holder_id).where(Touch.cadence == POOL_CADENCE, Touch.status.in_(pending))
    statuses = sorted(set(policy.pool.statuses) | set(POOL_STATUSES))
    query = select(
        OfferHolder.id,
        OfferHolder.external_id,
        OfferHolder.status,
        OfferHolder.rejected_date,
        OfferHolder.consent_date,
        OfferHolder.timezone,
        OfferHolder.erased_at,
        *address_columns(),
    ).where(or_(OfferHolder.status.in_(statuses), OfferHolder.id.in_(with_pending)))
    rows = list(session.execute(query))
    superseded = superseded_ids(session)
    declined = declined_days(session, policy, [r.id for r in rows if r.status == "declined"])
    opted_out: dict[int, set[str]] = defaultdict(set)
    for holder_id, channel in session.execute(select(ChannelOptOut.holder_id, ChannelOptOut.channel)):
        opted_out[holder_id].add(channel)
    members: list[PoolMember] = []
    for row in rows:
        contact = addresses_of(row)
        anchor = row.rejected_date if row.status == "rejected" else declined.get(row.id)
        members.append(
            PoolMember(
                id=row.id,
                external_id=row.external_id,
                status=(
                    "erased"
                    if row.erased_at is not None
                    else "reapplied"
                    if row.id in superseded
                    else row.status
                ),
                anchor=anchor,
                consent_date=row.consent_date,
                reachable=frozenset(c for c, v in contact.items() if v) - opted_out.get(row.id, set()),
                timezone=row.timezone,
            )
        )
    return members, dict(existing)


def apply_plan(session: Session, result: PlanResult) -> PlanCounts:
    """Write a plan; counts are what the database actually changed (another planner may have won)."""
    table = _touches()
    created = 0
    rows = [
        {
            "key": t.key,
            "holder_id": t.holder_id,
            "cadence": t.cadence,
            "phase": t.phase,
            "seq": t.seq,
            "kind": t.kind,
            "channel": t.channel,
            "template": t.template,
            "event": t.event,
            "survey_form": t.survey_form,
            "due_at": t.due_at,
            "status": "planned",
            "assignee": t.assignee,
            "note": t.note,
        }
        for t in result.create
    ]
    if rows:
        statement = touch_insert(session).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.id)
        for start in range(0, len(rows), INSERT_BATCH):
            created += len(session.execute(statement, rows[start : start + INSERT_BATCH]).all())

    pending = sorted(PENDING_STATUSES)
    moved = 0
    move = (
        update(table)
        .where(and_(table.c.id == bindparam("touch_id"), table.c.status == "planned"))
        .values(due_at=bindparam("new_due"))
    )
    for touch_id, due_at in result.move:
        moved += session.execute(move, {"touch_id": touch_id, "new_due": due_at}).rowcount  # type: ignore[attr-defined]

    cancelled = 0
    cancel = (
        update(table)
        .where(and_(table.c.id == bindparam("touch_id"), table.c.status.in_(pending)))
        .values(status="cancelled", cancel_reason=bindparam("why"))
    )
    for touch_id, reason in result.cancel:
        cancelled += session.execute(cancel, {"touch_id": touch_id, "why": reason}).rowcount  # type: ignore[attr-defined]

    rechannelled = 0
    rechannel = (
        update(table)
        .where(and_(table.c.id == bindparam("touch_id"), table.c.status == "planned"))
        .values(channel=bindparam("new_channel"))
    )
    for touch_id, channel in result.rechannel:
        rechannelled += session.execute(rechannel, {"touch_id": touch_id, "new_channel": channel}).rowcount  # type: ignore[attr-defined]
    return PlanCounts(created, moved, cancelled, rechannelled, len(result.skipped))


_seasons: list[SeasonCache] = []  # the last policy's seasons, kept across the ticks of a process


def season_cache(policy: Policy) -> SeasonCache:
    """The seasons of ``policy`` computed so far in this process (a new policy object starts afresh).

    A season depends only on the policy, the calendar it implies and the holder's dates, so the
    scheduler's ticks share them: its second tick computes only the seasons of new dates."""
    if not _seasons or _seasons[0].policy is not policy:
        _seasons[:] = [SeasonCache(policy, BusinessCalendar.from_policy(policy))]
    return _seasons[0]


def plan_tick(context: AppContext, now: datetime) -> PlanCounts:
    """One planning tick: find the holders it can touch, load only them, plan, apply, commit."""
    policy = context.policy
    seasons = season_cache(policy)
    with context.session() as session:
        calendar = seasons.calendar
        due = due_holders(session, policy, now, seasons)
        holders, existing = load_snapshots(session, policy, now=now, due=due)
        result = plan(holders, policy, existing, now, calendar, seasons=seasons)
        low = catch_up_floor(now, policy, calendar)
        members, pool_existing = load_pool_members(session, policy, since=low - HISTORY_SLACK)
        high = shift_moment(now, policy.scheduler.horizon, 1)
        pool_result = plan_pool(members, policy.pool, pool_existing, low=low, high=high, calendar=calendar)
        result.create.extend(pool_result.create)
        result.cancel.extend(pool_result.cancel)
        result.skipped.extend(pool_result.skipped)
        result.rechannel.extend(pool_result.rechannel)
        counts = apply_plan(session, result)
        counts = replace(counts, escalated=plan_escalations(session, policy, now, calendar))
        if policy.cohorts:
            from followup.planning.cohort import plan_cohort_messages

            counts = replace(
                counts, created=counts.created + plan_cohort_messages(session, policy, now, calendar)
            )
    holders_named = {m.id: m.external_id for m in members}
    names = {**holders_named, **{h.id: h.external_id for h in holders}}
    named = tuple(sorted((names.get(hid, str(hid)), reason) for hid, reason in result.skipped))
    return replace(counts, skipped_holders=named)


def escalation_key(touch_id: int) -> str:
    """The escalation touch of manual touch ``touch_id``: one per manual touch, whoever plans it."""
    return f"escalation:{touch_id}"


def plan_escalations(
    session: Session, policy: Policy, now: datetime, calendar: BusinessCalendar | None = None
) -> int:
    """Plan one escalation mail for each reminded manual touch not logged past ``manual_overdue.after``.

    The deadline is the rule's (:func:`followup.flags.rules.manual_deadline`), so the flag and the mail
    agree. The escalation is a touch like any other (kind ``escalation``, key ``escalation:<touch id>``,
    INSERT … ON CONFLICT DO NOTHING): delivery claims it once, mails the assignee and records the attempt;
    a touch logged before the mail goes cancels it there. Holders who left or started are not chased."""
    calendar = calendar or BusinessCalendar.from_policy(policy)
    tz = policy.organization.tz
    after = policy.rules.manual_overdue.after
    today = now.astimezone(tz).date()
    escalations = _touches().alias("escalations")  # already escalated: not read again every tick
    escalated_key = literal("escalation:") + cast(Touch.id, String)
    rows: list[dict[str, Any]] = []
    for touch in session.execute(
        select(
            Touch.id,
            Touch.holder_id,
            Touch.cadence,
            Touch.phase,
            Touch.seq,
            Touch.channel,
            Touch.assignee,
            Touch.note,
            Touch.sent_at,
        )
        .join(OfferHolder, OfferHolder.id == Touch.holder_id)
        .where(
            Touch.kind == TouchKind.MANUAL.value,
            Touch.status == TouchStatus.REMINDED.value,
            Touch.sent_at.is_not(None),
            OfferHolder.status.in_(sorted(ACTIVE_STATUSES)),
            OfferHolder.erased_at.is_(None),
            OfferHolder.start_date > today,
            ~select(escalations.c.id).where(escalations.c.key == escalated_key).exists(),
        )
    ):
        deadline = manual_deadline(touch.sent_at, after, tz, calendar)
        if now <= deadline:
            continue
        rows.append(
            {
                "key": escalation_key(touch.id),
                "holder_id": touch.holder_id,
                "cadence": touch.cadence,
                "phase": touch.phase,
                "seq": touch.seq,
                "kind": TouchKind.ESCALATION.value,
                "channel": touch.channel,
                "due_at": calendar.next_allowed(deadline),
                "status": TouchStatus.PLANNED.value,
                "assignee": touch.assignee,
                "note": touch.note,
            }
        )
    return insert_touches(session, rows)


def try_acquire_lease(session: Session, name: str, owner: str, ttl: timedelta | float, now: datetime) -> bool:
    """Take or renew the lease ``name`` for ``owner`` until ``now + ttl``; False while another holds it.

    One statement (an upsert whose update only applies when the lease expired or is ours), so two
    schedulers racing for it cannot both win. The caller commits (session_scope does).
    """
    if not isinstance(ttl, timedelta):
        ttl = timedelta(seconds=ttl)
    table: Table = SchedulerLease.__table__  # type: ignore[assignment]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    statement = (
        insert.values(name=name, owner=owner, expires_at=now + ttl)
        .on_conflict_do_update(
            index_elements=["name"],
            set_={"owner": owner, "expires_at": now + ttl},
            where=or_(table.c.expires_at < now, table.c.owner == owner),
        )
        .returning(table.c.owner)
    )
    return session.execute(statement).first() is not None


def release_lease(session: Session, name: str, owner: str) -> None:
    """Give the lease up at shutdown so a standby takes over at once instead of after the TTL."""
    table: Table = SchedulerLease.__table__  # type: ignore[assignment]
    session.execute(table.delete().where(and_(table.c.name == name, table.c.owner == owner)))


def group_existing(touches: Sequence[ExistingTouch]) -> Mapping[int, list[ExistingTouch]]:
    """History grouped by holder, the shape :func:`followup.planning.planner.plan` takes."""
    grouped: dict[int, list[ExistingTouch]] = defaultdict(list)
    for touch in touches:
        grouped[touch.holder_id].append(touch)
    return grouped


__all__ = [
    "DueHolders",
    "PlanCounts",
    "apply_plan",
    "due_holders",
    "escalation_key",
    "group_existing",
    "insert_touches",
    "load_pool_members",
    "load_snapshots",
    "plan_escalations",
    "plan_tick",
    "release_lease",
    "try_acquire_lease",
]
