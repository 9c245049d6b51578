"""The planner's I/O edge: load snapshots in bulk, apply a plan exactly once, hold the scheduler lease.

Exactly once comes from the database, not from code paths: inserts are ``INSERT … ON CONFLICT (key) DO
NOTHING`` against the unique touch key, and moves/cancels are conditional ``UPDATE … WHERE status =
'planned'`` so a touch a worker already claimed is never changed under it.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from hashlib import blake2b
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
    EventRsvp,
    OfferHolder,
    PlanMark,
    PlanState,
    SchedulerLease,
    SurveyResponse,
    TaskStatus,
    Touch,
)
from followup.durations import shift_moment
from followup.flags.rules import manual_deadline
from followup.planning.inserts import insert_touches, touch_insert
from followup.planning.planner import (
    PENDING_STATUSES,
    ExistingTouch,
    HolderSnapshot,
    PlanResult,
    SeasonCache,
    catch_up_floor,
    gains_slots,
    no_cadence_reason,
    plan,
    unreachable_skip,
    window_suffixes,
)
from followup.planning.pool import plan_pool
from followup.pool.rules import PoolMember
from followup.pool.store import declined_days, superseded_ids
from followup.vocab import (
    ACTIVE_STATUSES,
    POOL_CADENCE,
    POOL_STATUSES,
    TOUCH_STATUSES,
    TouchKind,
    TouchStatus,
)

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
    loaded: int = 0  # holders the tick read and planned (the rest could not change: due_holders)


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
    """Who a tick must read (:func:`due_holders`) and the part of their history the planner reads.

    ``skipped``: what the planner would say of holders left unread (no cadence, a slot with no
    channel), replayed so the tick names them as a full tick does; ``names`` their external ids.
    ``rows``: the digest of each active holder's row and opt-outs (what :func:`record_plan_states`
    combines with the pending touches after the tick); ``marks``: the watermarks to store after it."""

    ids: list[int]
    history: dict[int, list[ExistingTouch]]
    skipped: list[tuple[int, str]] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)
    rows: dict[int, bytes] = field(default_factory=dict)
    marks: dict[str, str] = field(default_factory=dict)
    window: tuple[float, float] = (0.0, 0.0)
    wanted: dict[int, tuple[str, tuple[str, ...]]] = field(default_factory=dict)


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

# Bump when the planner's rules change: every stored plan state is then stale (a full tick).
PLAN_STATE_VERSION = "1"
# Rows stamped this long before the last tick's watermark are read again: a transaction that stamped
# a row before the watermark but committed after the tick read it (or a writer whose clock lags by less
# than this) is still seen. Those holders are loaded each tick until the margin has passed.
MARK_MARGIN = timedelta(hours=1)
REPLY_ID_MARGIN = 1000  # the same for reply ids (sequence values are not handed out in commit order)
PLAN_CHUNK = 20_000  # holders loaded, planned and applied at a time: memory bounded at any size
_STATE_CHUNK = 5000  # plan_states rows per upsert statement (6 columns: 30,000 parameters)


def _history_since(now: datetime, policy: Policy, calendar: BusinessCalendar) -> datetime:
    """Touches due before this (and not pending) cannot be planned again by a tick at ``now``."""
    return catch_up_floor(now, policy, calendar) - HISTORY_SLACK


def _read_touches(session: Session, query: Any, into: dict[int, list[ExistingTouch]]) -> None:
    for t in session.connection().execute(query):  # Core rows: no ORM result machinery per row
        touch = ExistingTouch(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8])
        into[t[2]].append(replace(touch, deferred=True) if t[9] or t[10] is not None else touch)


def policy_fingerprint(policy: Policy) -> str:
    """The policy (and the planner's rules version) a plan state was computed under."""
    text = PLAN_STATE_VERSION + policy.model_dump_json()
    return hashlib.sha256(text.encode()).hexdigest()


def _digest(part: bytes, touches: Sequence[tuple[str, str, str, float, bool]]) -> int:
    """A holder's plan-state digest: its row part and its pending touches, order-free, as a BIGINT."""
    hashed = hashlib.blake2b(part, digest_size=8)
    hashed.update(repr(sorted(touches)).encode())
    return int.from_bytes(hashed.digest(), "big", signed=True)


def _touch_part(touch: ExistingTouch) -> tuple[str, str, str, float, bool]:
    """What the planner reads of a pending touch (its id is not a decision input; the key is)."""
    return (touch.key, touch.status, touch.channel, touch.due_at.timestamp(), touch.deferred)


def _changed_since(
    session: Session, policy: Policy, marks: dict[str, str]
) -> tuple[set[int], dict[str, str]]:
    """Holders with an RSVP, task status, survey answer or reply newer than the last tick's watermarks
    (minus the margin), and the new watermarks. A missing watermark: None (every holder is dirty)."""
    dirty: set[int] = set()
    new: dict[str, str] = {}
    stamped: tuple[tuple[str, Any, Any], ...] = (
        ("rsvps", EventRsvp.updated_at, EventRsvp.holder_id),
        ("tasks", TaskStatus.stamped_at, TaskStatus.holder_id),
        ("surveys", SurveyResponse.stamped_at, SurveyResponse.holder_id),
    )
    for name, column, holder in stamped:
        top = session.scalar(select(func.max(column)))
        new[name] = top.isoformat() if top is not None else ""
        if marks.get(name):
            since = datetime.fromisoformat(marks[name]) - MARK_MARGIN
            dirty.update(
                session.scalars(select(holder).where(or_(column > since, column.is_(None))).distinct())
            )
        elif name in marks:  # the table was empty: every row in it now is new
            dirty.update(session.scalars(select(holder).distinct()))
    replies = EngagementEvent.kind.in_(REPLY_KINDS), EngagementEvent.holder_id.is_not(None)
    top_id = session.scalar(select(func.max(EngagementEvent.id)))
    new["replies"] = str(top_id or 0)
    if "replies" in marks:
        since_id = int(marks["replies"]) - REPLY_ID_MARGIN
        for holder_id in session.scalars(
            select(EngagementEvent.holder_id).where(*replies, EngagementEvent.id > since_id).distinct()
        ):
            if holder_id is not None:
                dirty.add(holder_id)
    new["policy"] = policy_fingerprint(policy)
    return dirty, new


def _driver_rows(session: Session, statement: Any, size: int = 10_000) -> Iterator[tuple[Any, ...]]:
    """The rows of ``statement`` as the driver gives them (no result processing: this read is one row
    per active holder, every tick), streamed: a server-side cursor on PostgreSQL."""
    connection = session.connection()
    compiled = statement.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    params: Any = compiled.params
    if compiled.positiontup is not None:
        params = tuple(params[name] for name in compiled.positiontup)
    dbapi: Any = connection.connection.dbapi_connection
    postgres = connection.dialect.name == "postgresql"
    cursor = dbapi.cursor(name="plan_due_holders") if postgres else dbapi.cursor()
    try:
        cursor.execute(str(compiled), params)
        while batch := cursor.fetchmany(size):
            yield from batch
    finally:
        cursor.close()


def due_holders(session: Session, policy: Policy, now: datetime, seasons: SeasonCache) -> DueHolders:
    """The holders a tick at ``now`` must load: those whose planner answer may differ from empty.

    The planner's answer for a holder is a function of its inputs, the policy and the window. After a
    tick planned a holder and applied the plan, planning it again with the same inputs gives nothing
    (the plan is idempotent), and a later ``now`` adds only the season slots that entered the window:
    a pending touch is moved, cancelled or re-channelled only when an input changed (a move also needs
    ``due_at >= now``, which a later ``now`` only makes rarer). So a holder is loaded when it has no
    plan state, when the digest of its row, opt-outs and pending touches differs from the stored one,
    when an RSVP, task status, survey answer or reply of it is newer than the last tick's watermarks,
    when the policy changed, when ``now`` is before the tick that planned it, or when its season
    (worked out once per distinct set of dates) has a slot in this window that was not in that
    tick's window. Inactive holders with pending touches are loaded to cancel them. A slot that
    stays uncreatable (closed gate, pause, no channel) is not a reason: only an input change can
    open it. For the holders left unread, the skips the planner would report are replayed.
    """
    low, high = seasons.window(now)
    stamp = now.timestamp()
    marks = dict(session.execute(select(PlanMark.name, PlanMark.value)).tuples().all())
    dirty, new_marks = _changed_since(session, policy, marks)
    full = marks.get("policy") != new_marks["policy"]

    opted: dict[int, list[str]] = defaultdict(list)
    for holder_id, channel in session.execute(select(ChannelOptOut.holder_id, ChannelOptOut.channel)):
        opted[holder_id].append(channel)
    pending = sorted(PENDING_STATUSES)
    history: dict[int, list[ExistingTouch]] = defaultdict(list)
    offer_touches = select(*_TOUCH_COLUMNS).where(Touch.cadence != POOL_CADENCE)  # pool: load_pool_members
    _read_touches(session, offer_touches.where(Touch.status.in_(pending)), history)

    needed: set[int] = set()
    rows_part: dict[int, bytes] = {}
    wanted: dict[int, tuple[str, tuple[str, ...]]] = {}  # holder → (external id, its window slots)
    skipped: list[tuple[int, str]] = []
    names: dict[int, str] = {}
    decided: dict[tuple[Any, ...], Any] = {}  # dates → (season | None, its window suffixes once needed)
    no_history: list[ExistingTouch] = []
    # dates as text: parsed once per distinct season, not once per row; hashed as they are
    day_columns = (
        OfferHolder.offer_date,
        OfferHolder.accepted_date,
        OfferHolder.start_date,
        OfferHolder.paused_until,
    )
    dates = tuple(cast(c, String) for c in day_columns)
    rows = _driver_rows(
        session,
        select(
            OfferHolder.id,
            OfferHolder.external_id,
            OfferHolder.track,
            OfferHolder.department,
            OfferHolder.status,
            *dates,
            OfferHolder.timezone,
            *address_columns(),
            PlanState.digest,
            PlanState.planned_at,
            PlanState.low,
            PlanState.high,
            PlanState.unreachable,
        )
        .outerjoin(PlanState, PlanState.holder_id == OfferHolder.id)
        .where(OfferHolder.status.in_(sorted(ACTIVE_STATUSES)), OfferHolder.erased_at.is_(None)),
    )
    seen: set[int] = set()  # active holders with pending touches
    for row in rows:
        holder_id, external_id, track, department, _status, offer, accepted, start, _paused, zone = row[:10]
        signature = (track, department, offer, accepted, start, zone)
        found = decided.get(signature)
        if found is None:
            probe = HolderSnapshot(
                0,
                "",
                track,
                department,
                "offered",
                date.fromisoformat(offer),
                date.fromisoformat(accepted) if accepted else None,
                date.fromisoformat(start),
                frozenset(),
                zone,
            )
            found = decided[signature] = (seasons.season_for(probe), None)
        season, suffixes = found
        touches = history.get(holder_id, no_history)
        if touches:
            seen.add(holder_id)
        part = repr((*row[:-5], sorted(opted[holder_id]) if holder_id in opted else [])).encode()
        if touches:
            digest = _digest(part, [_touch_part(t) for t in touches])
        else:  # _digest(part, ()) without the calls: this runs once per active holder
            digest = int.from_bytes(blake2b(part + b"[]", digest_size=8).digest(), "big", signed=True)
        state: Any = row[-5:]  # the plan state's columns (None when the holder has none)
        state_digest, planned_at, seen_low, seen_high, unreachable = state
        clean = (
            not full
            and state_digest == digest
            and holder_id not in dirty
            and planned_at is not None
            and stamp >= planned_at
        )
        if clean and season is None:  # no cadence: named as skipped, nothing else to do
            skipped.append((holder_id, no_cadence_reason(policy, track, department)))
            names[holder_id] = external_id
            continue
        if clean and season is not None and not gains_slots(season, low, high, seen_low, seen_high):
            if unreachable:
                reason = unreachable_skip(season, low, high, frozenset(unreachable.split("\n")))
                if reason is not None:
                    skipped.append((holder_id, reason))
                    names[holder_id] = external_id
            continue
        needed.add(holder_id)
        rows_part[holder_id] = part
        if season is not None and suffixes is None:  # worked out once per season, for loaded holders only
            suffixes = window_suffixes(season, low, high)
            decided[signature] = (season, suffixes)
        if suffixes:
            wanted[holder_id] = (external_id, suffixes)
    needed.update(h for h in history if h not in seen)  # inactive or erased: pending touches to cancel
    ids = sorted(needed)
    return DueHolders(
        ids,
        {i: history[i] for i in ids if i in history},
        skipped,
        names,
        rows_part,
        new_marks,
        (low, high),
        wanted,
    )


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
        existing.update((i, list(due.history[i])) for i in due.ids if i in due.history)
        keys = [
            f"{due.wanted[i][0]}:{suffix}" for i in due.ids if i in due.wanted for suffix in due.wanted[i][1]
        ]
        if keys and now is not None:  # the window slots' keys: created already, or still to create
            keyed = select(*_TOUCH_COLUMNS).where(
                Touch.cadence != POOL_CADENCE,
                Touch.status.not_in(pending),
                Touch.due_at >= _history_since(now, policy, BusinessCalendar.from_policy(policy)),
            )
            for where in _id_chunks(session, Touch.key, keys):
                _read_touches(session, keyed.where(where), existing)
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

    states: dict[int, dict[str, str]] = defaultdict(dict)
    tasks_done: dict[int, dict[str, str]] = defaultdict(dict)
    replied: dict[int, datetime] = {}
    for where in _id_chunks(session, EventRsvp.holder_id, holder_ids):
        rsvp_query = select(EventRsvp.holder_id, EventRsvp.event, EventRsvp.status, EventRsvp.attendance)
        for holder_id, event, status, attendance in session.execute(
            rsvp_query if where is None else rsvp_query.where(where)
        ):
            if attendance or status:  # the attendance once recorded, else the answer
                states[holder_id][event] = attendance or status
    for where in _id_chunks(session, TaskStatus.holder_id, holder_ids) if policy.tasks else ():
        task_query = select(TaskStatus.holder_id, TaskStatus.task, TaskStatus.status)
        for holder_id, task, status in session.execute(
            task_query if where is None else task_query.where(where)
        ):
            if status != "pending":
                tasks_done[holder_id][task] = status
    if policy.quiet_after_reply is not None:
        for where in _id_chunks(session, EngagementEvent.holder_id, holder_ids):
            reply_query = (
                select(EngagementEvent.holder_id, func.max(EngagementEvent.at))
                .where(EngagementEvent.kind.in_(REPLY_KINDS), EngagementEvent.holder_id.is_not(None))
                .group_by(EngagementEvent.holder_id)
            )
            for replier, at in session.execute(reply_query if where is None else reply_query.where(where)):
                if replier is not None and at is not None:
                    replied[replier] = at
        for where in _id_chunks(session, SurveyResponse.holder_id, holder_ids):
            answer_query = select(SurveyResponse.holder_id, func.max(SurveyResponse.submitted_at)).group_by(
                SurveyResponse.holder_id
            )
            for responder, answered_at in session.execute(
                answer_query if where is None else answer_query.where(where)
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
    queries = [touch_query]
    if since is not None:  # two range scans on (status, due_at), not a scan of every touch each tick
        done = sorted(set(TOUCH_STATUSES) - PENDING_STATUSES)  # touch statuses are the vocabulary's
        queries = [
            touch_query.where(Touch.status.in_(pending)),
            touch_query.where(Touch.status.in_(done), Touch.due_at >= since),
        ]
    existing: dict[int, list[ExistingTouch]] = defaultdict(list)
    for query in queries:
        for row in session.execute(query):
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


def _upsert(session: Session, table: Table, key: str, rows: Sequence[Mapping[str, Any]], chunk: int) -> None:
    """INSERT … ON CONFLICT (key) DO UPDATE, as an executemany of ``chunk`` rows at a time (SQLAlchemy
    batches it into multi-row VALUES within the backend's bind-parameter limit)."""
    if not rows:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    insert = dialect.insert(table)
    statement = insert.on_conflict_do_update(
        index_elements=[key], set_={c.name: insert.excluded[c.name] for c in table.columns if c.name != key}
    )
    for start in range(0, len(rows), chunk):
        session.execute(statement, list(rows[start : start + chunk]))


def plan_due(
    session: Session, policy: Policy, now: datetime, seasons: SeasonCache, due: DueHolders
) -> Iterator[tuple[list[HolderSnapshot], dict[int, list[ExistingTouch]], PlanResult]]:
    """The due holders loaded and planned :data:`PLAN_CHUNK` at a time (the planner is per holder, so
    chunks plan exactly what one call would); each chunk is the caller's to apply before the next."""
    for start in range(0, len(due.ids), PLAN_CHUNK):
        chunk = replace(due, ids=due.ids[start : start + PLAN_CHUNK])
        holders, existing = load_snapshots(session, policy, now=now, due=chunk)
        yield holders, existing, plan(holders, policy, existing, now, seasons.calendar, seasons=seasons)


def record_plan_states(
    session: Session,
    due: DueHolders,
    holders: Sequence[HolderSnapshot],
    existing: Mapping[int, Sequence[ExistingTouch]],
    result: PlanResult,
    counts: PlanCounts,
    now: datetime,
) -> None:
    """Store what this tick saw of each active holder it planned, with its own plan applied.

    The pending touches after the plan are worked out from the plan, not read back: a read would also
    take in a concurrent change this tick did not plan with. When a change did not apply (another
    planner or delivery got there first), the holders the plan changed get no state: the next tick
    loads them again."""
    applied = (counts.created, counts.moved, counts.cancelled, counts.rechannelled) == (
        len(result.create),
        len(result.move),
        len(result.cancel),
        len(result.rechannel),
    )
    cancelled = {touch_id for touch_id, _ in result.cancel}
    moved = dict(result.move)
    rechannelled = dict(result.rechannel)
    created: dict[int, list[tuple[str, str, str, float, bool]]] = defaultdict(list)
    for t in result.create:
        created[t.holder_id].append(
            (t.key, TouchStatus.PLANNED.value, t.channel, t.due_at.timestamp(), False)
        )
    changed = set(created)
    unreachable: dict[int, list[str]] = defaultdict(list)
    for holder_id, suffix in result.unreachable:
        unreachable[holder_id].append(suffix)
    low, high = due.window
    rows: list[dict[str, Any]] = []
    stale: list[int] = []
    for holder in holders:
        part = due.rows.get(holder.id)
        if part is None:
            continue  # inactive or erased: nothing to remember (it is not read unless it has pending touches)
        touches = list(created.get(holder.id, ()))
        for touch in existing.get(holder.id, ()):
            if touch.status not in PENDING_STATUSES:
                continue
            if touch.id in cancelled or touch.id in moved or touch.id in rechannelled:
                changed.add(holder.id)
                if touch.id in cancelled:
                    continue
                touch = replace(
                    touch,
                    due_at=moved.get(touch.id, touch.due_at),
                    channel=rechannelled.get(touch.id, touch.channel),
                )
            touches.append(_touch_part(touch))
        if not applied and holder.id in changed:
            stale.append(holder.id)
            continue
        rows.append(
            {
                "holder_id": holder.id,
                "digest": _digest(part, touches),
                "planned_at": now.timestamp(),
                "low": low,
                "high": high,
                "unreachable": "\n".join(unreachable[holder.id]) if holder.id in unreachable else None,
            }
        )
    _upsert(session, PlanState.__table__, "holder_id", rows, _STATE_CHUNK)  # type: ignore[arg-type]
    for where in _id_chunks(session, PlanState.holder_id, stale) if stale else ():
        session.execute(PlanState.__table__.delete().where(where))  # type: ignore[attr-defined]


def record_marks(session: Session, due: DueHolders) -> None:
    """Store the watermarks and the policy fingerprint :func:`due_holders` read, after the tick."""
    rows = [{"name": name, "value": value} for name, value in due.marks.items()]
    _upsert(session, PlanMark.__table__, "name", rows, 100)  # type: ignore[arg-type]


def plan_tick(context: AppContext, now: datetime) -> PlanCounts:
    """One planning tick: find the holders it can touch, load only them (in chunks), plan, apply, commit.

    :func:`due_holders` says who; each chunk is planned and applied, and what the tick saw of its holders
    is stored (:func:`record_plan_states`) with the watermarks, in the tick's transaction."""
    policy = context.policy
    seasons = season_cache(policy)
    with context.session() as session:
        calendar = seasons.calendar
        due = due_holders(session, policy, now, seasons)
        counts = PlanCounts()
        skipped = list(due.skipped)
        names = dict(due.names)
        for holders, existing, result in plan_due(session, policy, now, seasons, due):
            chunk_counts = apply_plan(session, result)
            record_plan_states(session, due, holders, existing, result, chunk_counts, now)
            counts = _added(counts, chunk_counts)
            skipped.extend(result.skipped)
            names.update((h.id, h.external_id) for h in holders)
        record_marks(session, due)
        low = catch_up_floor(now, policy, calendar)
        members, pool_existing = load_pool_members(session, policy, since=low - HISTORY_SLACK)
        high = shift_moment(now, policy.scheduler.horizon, 1)
        pool_result = plan_pool(members, policy.pool, pool_existing, low=low, high=high, calendar=calendar)
        counts = _added(counts, apply_plan(session, pool_result))
        skipped.extend(pool_result.skipped)
        counts = replace(counts, escalated=plan_escalations(session, policy, now, calendar))
        if policy.cohorts:
            from followup.planning.cohort import plan_cohort_messages

            counts = replace(
                counts, created=counts.created + plan_cohort_messages(session, policy, now, calendar)
            )
    names.update((m.id, m.external_id) for m in members)
    named = tuple(sorted((names.get(hid, str(hid)), reason) for hid, reason in skipped))
    return replace(counts, skipped=len(skipped), skipped_holders=named, loaded=len(due.ids))


def _added(a: PlanCounts, b: PlanCounts) -> PlanCounts:
    return PlanCounts(
        a.created + b.created,
        a.moved + b.moved,
        a.cancelled + b.cancelled,
        a.rechannelled + b.rechannelled,
        a.skipped + b.skipped,
    )


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
    "plan_due",
    "plan_escalations",
    "plan_tick",
    "record_marks",
    "record_plan_states",
    "release_lease",
    "try_acquire_lease",
]
