"""The RSVP edge: answers and attendance in ``event_rsvps``, capacity guaranteed by the database.

An attending answer takes the lowest free seat number ``1..capacity``; ``(event, seat)`` is unique, so
when two answers race for the last seat one insert fails and that answer is retried (then waitlisted).
On SQLite the first statement of every attempt is a write, so the attempt holds the write lock before it
reads the seats (no stale read); on PostgreSQL the unique index decides. A seat given up (欠席 / 未定)
goes to the earliest waitlisted answer in the same transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from followup.config.schema import ATTENDANCE_STATES, Event
from followup.db.chunks import in_chunks
from followup.db.models import EventRsvp, OfferHolder
from followup.vocab import ACTIVE_STATUSES

ANSWERS = ("attending", "declined", "maybe")
OpenSession = Callable[[], AbstractContextManager[Session]]


class RsvpError(ValueError):
    """An answer that cannot be taken (unknown answer, closed deadline, event without RSVP)."""


@dataclass(frozen=True)
class RsvpResult:
    status: str  # attending | declined | maybe | waitlisted
    seat: int | None
    changed: bool  # False: the same answer again (nothing changed)


def _lowest_free_seat(session: Session, event: str, capacity: int) -> int | None:
    taken = set(
        session.scalars(select(EventRsvp.seat).where(EventRsvp.event == event, EventRsvp.seat.is_not(None)))
    )
    return next((n for n in range(1, capacity + 1) if n not in taken), None)


def _promote(session: Session, event: str, seat: int) -> None:
    """Give a freed seat to the earliest waitlisted answer."""
    waiting = session.scalars(
        select(EventRsvp)
        .where(EventRsvp.event == event, EventRsvp.status == "waitlisted")
        .order_by(EventRsvp.responded_at, EventRsvp.id)
        .limit(1)
    ).first()
    if waiting is not None:
        waiting.status, waiting.seat = "attending", seat


def _attempt(
    session: Session,
    holder_id: int,
    name: str,
    event: Event,
    answer: str,
    answers: Mapping[str, Any] | None,
    source: str,
    at: datetime,
) -> RsvpResult:
    # a write first: on SQLite this takes the write lock before anything is read
    session.execute(
        update(EventRsvp)
        .where(EventRsvp.holder_id == holder_id, EventRsvp.event == name)
        .values(source=EventRsvp.source)
    )
    row = session.scalars(
        select(EventRsvp).where(EventRsvp.holder_id == holder_id, EventRsvp.event == name)
    ).first()
    if row is None:
        row = EventRsvp(holder_id=holder_id, event=name, status="", seat=None, source=source, responded_at=at)
        session.add(row)
    before = (row.status, row.answers or {})
    wanted_answers = dict(answers) if answers is not None else dict(row.answers or {})
    if answer == "attending":
        if row.status in ("attending", "waitlisted"):
            status, seat = row.status, row.seat  # keeps its seat or its place on the list
        elif event.capacity is None:
            status, seat = "attending", None
        else:
            seat = _lowest_free_seat(session, name, event.capacity)
            status = "attending" if seat is not None else "waitlisted"
    else:
        status, seat = answer, None
    freed = row.seat if row.seat is not None and seat is None else None
    changed = before != (status, wanted_answers)
    row.status, row.seat, row.answers, row.source = status, seat, wanted_answers or None, source
    if changed:
        row.responded_at = at
    session.flush()
    if freed is not None:
        _promote(session, name, freed)
        session.flush()
    return RsvpResult(status, seat, changed)


def record_rsvp(
    open_session: OpenSession,
    holder_id: int,
    name: str,
    event: Event,
    answer: str,
    *,
    at: datetime,
    answers: Mapping[str, Any] | None = None,
    source: str = "web",
    enforce_deadline: bool = True,
) -> RsvpResult:
    """Record one holder's answer for event ``name`` in its own transaction(s); retried on a seat race."""
    if answer not in ANSWERS:
        raise RsvpError(f"unknown answer {answer!r} (attending / declined / maybe)")
    if not event.rsvp:
        raise RsvpError("この行事は出欠の回答を受け付けていません")
    if enforce_deadline:
        local_day = at.astimezone(event.starts_at.tzinfo).date()
        closing = event.deadline or event.starts_at.date()
        if local_day > closing:
            raise RsvpError("回答の締切を過ぎています")
    attempts = (event.capacity or 0) + 20
    for attempt in range(attempts):
        try:
            with open_session() as session:
                return _attempt(session, holder_id, name, event, answer, answers, source, at)
        except (IntegrityError, OperationalError):
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def record_attendance(
    session: Session, holder_id: int, name: str, attendance: str | None, *, at: datetime
) -> bool:
    """HR's record of the day: attended / absent (None clears it). Returns whether anything changed."""
    if attendance is not None and attendance not in ATTENDANCE_STATES:
        raise ValueError(f"unknown attendance {attendance!r} (attended / absent)")
    row = session.scalars(
        select(EventRsvp).where(EventRsvp.holder_id == holder_id, EventRsvp.event == name)
    ).first()
    if row is None:
        if attendance is None:
            return False
        row = EventRsvp(holder_id=holder_id, event=name, status="", source="hr", responded_at=at)
        session.add(row)
    if row.attendance == attendance:
        return False
    row.attendance, row.attendance_at = attendance, at
    session.flush()
    return True


def event_states(session: Session) -> dict[int, dict[str, str]]:
    """holder id → {event: state} for the planner: the attendance once recorded, else the answer."""
    states: dict[int, dict[str, str]] = defaultdict(dict)
    for holder_id, event, status, attendance in session.execute(
        select(EventRsvp.holder_id, EventRsvp.event, EventRsvp.status, EventRsvp.attendance)
    ):
        state = attendance or status
        if state:
            states[holder_id][event] = state
    return states


@dataclass(frozen=True)
class RosterRow:
    """One line of an event's 出欠一覧."""

    external_id: str
    name: str
    department: str
    status: str  # "" = no answer
    seat: int | None
    answers: dict[str, Any]
    responded_at: datetime | None
    attendance: str  # "" = not recorded
    source: str


def roster(session: Session, name: str, audience_ids: list[int] | None = None) -> list[RosterRow]:
    """The event's answers, plus (with ``audience_ids``) the invited holders who have not answered."""
    rows: list[RosterRow] = []
    seen: set[int] = set()
    query = (
        select(EventRsvp, OfferHolder)
        .join(OfferHolder, OfferHolder.id == EventRsvp.holder_id)
        .where(EventRsvp.event == name)
        .order_by(OfferHolder.external_id)
    )
    for rsvp, holder in session.execute(query).tuples():
        seen.add(holder.id)
        rows.append(
            RosterRow(
                holder.external_id,
                holder.name,
                holder.department or "",
                rsvp.status,
                rsvp.seat,
                dict(rsvp.answers or {}),
                rsvp.responded_at if rsvp.status else None,
                rsvp.attendance or "",
                rsvp.source,
            )
        )
    missing = [i for i in audience_ids or [] if i not in seen]
    unanswered: list[RosterRow] = []
    for chunk in in_chunks(missing):
        for external_id, holder_name, department in session.execute(
            select(OfferHolder.external_id, OfferHolder.name, OfferHolder.department).where(
                OfferHolder.id.in_(chunk)
            )
        ):
            unanswered.append(
                RosterRow(external_id, holder_name, department or "", "", None, {}, None, "", "")
            )
    unanswered.sort(key=lambda row: row.external_id)
    return rows + unanswered


def audience_ids(session: Session, event: Event) -> list[int]:
    """The active holders the event is for: in its audience, offered by the deadline, starting after it."""
    latest = event.latest("invitation")
    ids = []
    query = select(OfferHolder).where(
        OfferHolder.status.in_(sorted(ACTIVE_STATUSES)), OfferHolder.erased_at.is_(None)
    )
    for holder in session.scalars(query):
        if event.audience is not None and not event.audience.matches(holder.track, holder.department):
            continue
        if holder.offer_date > latest or holder.start_date <= event.starts_at.date():
            continue
        ids.append(holder.id)
    return ids
