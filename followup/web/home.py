"""今週やること: what HR should do this week, each row with the link to its action.

Four bounded sections (the top ``TOP`` rows and the full count of each), each one or two set-based
queries: open flags by risk, overdue human touches (a manual touch due and not logged), events whose
RSVP is still pending for some of their audience, and holders who opted out of every channel they
have an address for. Read-only; the actions are on the holder page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, exists, func, literal, or_, select
from sqlalchemy.orm import Session

from followup.channels import channel_names
from followup.config.schema import Policy
from followup.db.addresses import address_field, has_column
from followup.db.models import ChannelOptOut, EventRsvp, Flag, OfferHolder, Touch
from followup.flags.risk import SEVERITY_WEIGHTS
from followup.vocab import ACTIVE_STATUSES

TOP = 10


@dataclass
class Section:
    rows: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0


@dataclass
class Home:
    flags: Section
    manual: Section
    events: Section
    opted_out: Section


def _weight() -> Any:
    return case(*((Flag.severity == s, literal(w)) for s, w in SEVERITY_WEIGHTS.items()), else_=0)


def _scope(mentor_scope: str | None) -> list[Any]:
    where: list[Any] = [OfferHolder.erased_at.is_(None)]
    if mentor_scope is not None:
        where.append(OfferHolder.mentor_email == mentor_scope)
    return where


def open_flags(session: Session, top: int = TOP, mentor_scope: str | None = None) -> Section:
    """Open flags, most severe first, then the longest open: whom to call first."""
    where = [Flag.resolved_at.is_(None), *_scope(mentor_scope)]
    rows = session.execute(
        select(Flag, OfferHolder.external_id, OfferHolder.name)
        .join(OfferHolder, OfferHolder.id == Flag.holder_id)
        .where(*where)
        .order_by(_weight().desc(), func.coalesce(Flag.since, Flag.first_seen), Flag.id)
        .limit(top)
    )
    total = session.scalar(
        select(func.count())
        .select_from(Flag)
        .join(OfferHolder, OfferHolder.id == Flag.holder_id)
        .where(*where)
    )
    return Section(
        rows=[
            {
                "flag_id": f.id,
                "external_id": ext,
                "name": name,
                "rule": f.rule,
                "severity": f.severity,
                "reason": f.reason,
                "action": f.action,
                "since": f.since or f.first_seen,
            }
            for f, ext, name in rows
        ],
        total=int(total or 0),
    )


def overdue_manual(
    session: Session, now: datetime, top: int = TOP, mentor_scope: str | None = None
) -> Section:
    """Human touches (a call, a letter, a meeting) that are due and not logged yet, oldest first."""
    where = [
        Touch.kind == "manual",
        Touch.status.in_(("planned", "reminded")),
        Touch.due_at <= now,
        *_scope(mentor_scope),
    ]
    rows = session.execute(
        select(Touch, OfferHolder.external_id, OfferHolder.name)
        .join(OfferHolder, OfferHolder.id == Touch.holder_id)
        .where(*where)
        .order_by(Touch.due_at, Touch.id)
        .limit(top)
    )
    total = session.scalar(
        select(func.count())
        .select_from(Touch)
        .join(OfferHolder, OfferHolder.id == Touch.holder_id)
        .where(*where)
    )
    return Section(
        rows=[
            {
                "touch_id": t.id,
                "external_id": ext,
                "name": name,
                "channel": t.channel,
                "due_at": t.due_at,
                "assignee": t.assignee,
                "status": t.status,
                "task": (t.note or "").split("\n")[0],
            }
            for t, ext, name in rows
        ],
        total=int(total or 0),
    )


def pending_rsvps(session: Session, policy: Policy, now: datetime) -> Section:
    """Events still ahead with an RSVP, and how many of their audience have not answered.

    One scan of the holders counts every event's audience (a ``SUM(CASE …)`` per event); the answers
    come from ``event_rsvps`` by its event index, joined to the same audience conditions."""
    ahead = [(name, event) for name, event in policy.events.items() if event.rsvp and event.starts_at > now]
    if not ahead:
        return Section()

    def audience(event: Any) -> Any:
        where: list[Any] = [
            OfferHolder.status.in_(sorted(ACTIVE_STATUSES)),
            OfferHolder.erased_at.is_(None),
            OfferHolder.offer_date <= event.latest("invitation"),
            OfferHolder.start_date > event.starts_at.date(),
        ]
        if event.audience is not None and event.audience.tracks:
            where.append(OfferHolder.track.in_(event.audience.tracks))
        if event.audience is not None and event.audience.departments:
            where.append(OfferHolder.department.in_(event.audience.departments))
        return and_(*where)

    sizes = session.execute(
        select(*(func.coalesce(func.sum(case((audience(e), 1), else_=0)), 0) for _, e in ahead))
    ).one()
    rows: list[dict[str, Any]] = []
    for (name, event), size in zip(ahead, sizes, strict=True):
        answered = session.scalar(
            select(func.count())
            .select_from(EventRsvp)
            .join(OfferHolder, OfferHolder.id == EventRsvp.holder_id)
            .where(EventRsvp.event == name, EventRsvp.status != "", audience(event))
        )
        pending = int(size or 0) - int(answered or 0)
        if pending > 0:
            rows.append(
                {
                    "event": name,
                    "title": event.title,
                    "starts_at": event.starts_at,
                    "deadline": event.deadline,
                    "audience": int(size or 0),
                    "pending": pending,
                }
            )
    rows.sort(key=lambda r: r["deadline"] or r["starts_at"].date())
    return Section(rows=rows[:TOP], total=len(rows))


def opted_out_everywhere(session: Session, top: int = TOP, mentor_scope: str | None = None) -> Section:
    """Active holders with an opt-out and no channel left: each address they have is opted out.

    Channels whose address lives in the ``addresses`` JSON are not counted (a column per channel
    keeps this one query on both databases)."""
    reachable = []
    for channel in channel_names():
        column_name = address_field(channel)
        if not has_column(column_name):
            continue
        column: Any = getattr(OfferHolder, column_name)
        opted = exists().where(ChannelOptOut.holder_id == OfferHolder.id, ChannelOptOut.channel == channel)
        reachable.append(and_(column.is_not(None), column != "", ~opted))
    where = [
        OfferHolder.status.in_(sorted(ACTIVE_STATUSES)),
        *_scope(mentor_scope),
        OfferHolder.id.in_(select(ChannelOptOut.holder_id)),  # few: the query starts from them
        ~or_(*reachable) if reachable else literal(True),
    ]
    rows = session.execute(
        select(OfferHolder.external_id, OfferHolder.name, OfferHolder.department)
        .where(*where)
        .order_by(OfferHolder.external_id)
        .limit(top)
    )
    total = session.scalar(select(func.count()).select_from(OfferHolder).where(*where))
    return Section(
        rows=[{"external_id": ext, "name": name, "department": dept} for ext, name, dept in rows],
        total=int(total or 0),
    )


def this_week(session: Session, policy: Policy, now: datetime, mentor_scope: str | None = None) -> Home:
    return Home(
        flags=open_flags(session, mentor_scope=mentor_scope),
        manual=overdue_manual(session, now, mentor_scope=mentor_scope),
        events=pending_rsvps(session, policy, now) if mentor_scope is None else Section(),
        opted_out=opted_out_everywhere(session, mentor_scope=mentor_scope),
    )
