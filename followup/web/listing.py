"""The holders list of the HR workspace: filters, search, risk-first sort, keyset paging, counts.

Everything is set-based SQL that runs the same on SQLite and PostgreSQL: the page is one query with a
``LIMIT``, the counts are a few ``GROUP BY`` queries, and the page's details (touches, pulse, flags)
are fetched for the page's ids only. Nothing loops over all holders in Python, so a page at 100,000
holders costs what a page at 100 does plus the scans the database does itself.

Paging is by keyset (``(sort value, external_id) > cursor``), not by offset: page 400 is as cheap as
page 1, and a holder added meanwhile does not shift the next page by one.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, case, exists, func, literal, or_, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from followup.db.models import EventRsvp, Flag, OfferHolder, Touch
from followup.flags.risk import SEVERITY_WEIGHTS
from followup.holders.timeline import holder_summaries

PAGE_SIZE = 50
MAX_LIMIT = 500  # the documented maximum of ``GET /api/holders?limit=N``
SORTS = ("risk", "name", "start_date", "external_id")
RSVP_FILTERS = ("attending", "declined", "maybe", "waitlisted", "pending")


@dataclass(frozen=True)
class HolderQuery:
    """What HR asked for: each field narrows the list (None: no filter). ``mentor_scope`` is not a filter
    HR chooses but the limit of a mentor's session: only holders with that ``mentor_email``."""

    status: str | None = None
    track: str | None = None
    department: str | None = None
    phase: str | None = None
    flag: str | None = None  # an open flag of this rule
    severity: str | None = None  # an open flag of this severity (高リスク = high)
    mentor: str | None = None
    event: str | None = None  # with ``rsvp``: that event's answer
    rsvp: str | None = None  # attending | declined | maybe | waitlisted | pending
    q: str | None = None  # name, kana or external id (part of it)
    sort: str = "risk"
    mentor_scope: str | None = None

    def params(self) -> dict[str, str]:
        """The query string that reproduces this query (links keep the filters)."""
        out = {k: v for k, v in self.__dict__.items() if isinstance(v, str) and v and k != "mentor_scope"}
        if out.get("sort") == "risk":
            out.pop("sort")
        return out


@dataclass
class HolderPage:
    rows: list[dict[str, Any]]
    next_cursor: str | None
    total: int
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


def _risk_table() -> Any:
    weight = case(
        *((Flag.severity == severity, literal(w)) for severity, w in SEVERITY_WEIGHTS.items()), else_=0
    )
    return (
        select(Flag.holder_id.label("holder_id"), func.sum(weight).label("risk"))
        .where(Flag.resolved_at.is_(None))
        .group_by(Flag.holder_id)
        .subquery("risk")
    )


def phase_expression(now: datetime) -> Any:
    """The holder's phase as the dashboard has always shown it: that of the latest touch due by now
    (not cancelled), else of the next one (a correlated subquery on ``touches.holder_id``)."""
    past = (
        select(Touch.phase)
        .where(Touch.holder_id == OfferHolder.id, Touch.status != "cancelled", Touch.due_at <= now)
        .order_by(Touch.due_at.desc(), Touch.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    upcoming = (
        select(Touch.phase)
        .where(Touch.holder_id == OfferHolder.id, Touch.status.in_(("planned", "reminded")))
        .order_by(Touch.due_at, Touch.id)
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(past, upcoming)


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _squeezed(column: Any) -> Any:
    """A name without spaces (half- and full-width): 「山田花子」 finds 「山田 花子」."""
    return func.replace(func.replace(column, " ", ""), "\u3000", "")


def _conditions(query: HolderQuery, now: datetime, skip: str | None = None) -> list[ColumnElement[bool]]:
    """The WHERE clauses of ``query``; ``skip`` leaves one facet out (its own counts show the others)."""
    h = OfferHolder
    where: list[ColumnElement[bool]] = [h.erased_at.is_(None)]
    if query.mentor_scope is not None:
        where.append(h.mentor_email == query.mentor_scope)
    for name, column in (("status", h.status), ("track", h.track), ("department", h.department)):
        value = getattr(query, name)
        if value and name != skip:
            where.append(column == value)
    if query.mentor and skip != "mentor":
        where.append(h.mentor_email == query.mentor)
    if query.phase and skip != "phase":
        where.append(phase_expression(now) == query.phase)
    f = aliased(Flag)  # not the outer query's flags (the counts per flag kind join them)
    if query.flag and skip != "flag":
        where.append(exists().where(f.holder_id == h.id, f.resolved_at.is_(None), f.rule == query.flag))
    if query.severity and skip != "severity":
        where.append(
            exists().where(f.holder_id == h.id, f.resolved_at.is_(None), f.severity == query.severity)
        )
    if query.event and query.rsvp:
        answered = exists().where(
            EventRsvp.holder_id == h.id, EventRsvp.event == query.event, EventRsvp.status != ""
        )
        if query.rsvp == "pending":
            where.append(~answered)
        else:
            where.append(
                exists().where(
                    EventRsvp.holder_id == h.id,
                    EventRsvp.event == query.event,
                    EventRsvp.status == query.rsvp,
                )
            )
    if query.q and query.q.strip():
        text = query.q.strip()
        pattern = _like(text.replace(" ", "").replace("\u3000", "").lower())
        where.append(  # lower(): SQLite's LIKE ignores ASCII case, PostgreSQL's does not
            or_(
                func.lower(_squeezed(h.name)).like(pattern, escape="\\"),
                func.lower(_squeezed(func.coalesce(h.name_kana, ""))).like(pattern, escape="\\"),
                func.lower(h.external_id).like(_like(text.lower()), escape="\\"),
            )
        )
    return where


def _sort_key(sort: str, risk: Any) -> tuple[Any, bool]:
    """(the column to sort by, descending?) — ties are always broken by external_id ascending."""
    if sort == "name":
        return func.coalesce(OfferHolder.name_kana, OfferHolder.name), False
    if sort == "start_date":
        return OfferHolder.start_date, False
    if sort == "external_id":
        return OfferHolder.external_id, False
    return risk, True


def encode_cursor(value: Any, external_id: str) -> str:
    raw = json.dumps([value.isoformat() if isinstance(value, date) else value, external_id])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[Any, str] | None:
    """The (sort value, external_id) a cursor carries; None for anything that is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, external_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        return None
    if not isinstance(external_id, str) or not isinstance(value, (int, str)):
        return None
    return value, external_id


def _risk_first(
    session: Session, query: HolderQuery, now: datetime, limit: int, position: tuple[Any, str] | None
) -> list[Any]:
    """The risk-first page in two index-friendly parts instead of one sort of every holder: first the
    holders with open flags (a few per cent: their risk from the flags, sorted), then — once those
    run out — the unflagged ones in ``external_id`` order straight off its unique index."""
    risk_table = _risk_table()
    where = _conditions(query, now)
    found: list[Any] = []
    risk_after: int = 0
    id_after: str | None = None
    if position is not None:
        risk_after = position[0] if isinstance(position[0], int) else 0
        id_after = position[1]
    if position is None or risk_after > 0:
        flagged = (
            select(OfferHolder.id, OfferHolder.external_id, risk_table.c.risk.label("risk"))
            .join(risk_table, risk_table.c.holder_id == OfferHolder.id)
            .where(*where, risk_table.c.risk > 0)
        )
        if position is not None:
            flagged = flagged.where(
                or_(
                    risk_table.c.risk < risk_after,
                    and_(risk_table.c.risk == risk_after, OfferHolder.external_id > id_after),
                )
            )
        found = list(
            session.execute(
                flagged.order_by(risk_table.c.risk.desc(), OfferHolder.external_id).limit(limit + 1)
            )
        )
        id_after = None
    if len(found) <= limit:
        f = aliased(Flag)
        calm = select(OfferHolder.id, OfferHolder.external_id, literal(0).label("risk")).where(
            *where,
            ~exists().where(
                f.holder_id == OfferHolder.id,
                f.resolved_at.is_(None),
                f.severity.in_(tuple(SEVERITY_WEIGHTS)),
            ),
        )
        if id_after is not None:
            calm = calm.where(OfferHolder.external_id > id_after)
        found += list(session.execute(calm.order_by(OfferHolder.external_id).limit(limit + 1 - len(found))))
    return found


def list_holders(
    session: Session,
    query: HolderQuery,
    now: datetime,
    *,
    limit: int = PAGE_SIZE,
    cursor: str | None = None,
    with_counts: bool = True,
) -> HolderPage:
    """One page of holders matching ``query`` (``limit`` clamped to 1…MAX_LIMIT), with its next cursor.

    Counts per filter are left out while searching (a search is for finding one person; the five
    extra scans of a text match would cost more than the page)."""
    limit = max(1, min(limit, MAX_LIMIT))
    if query.sort not in SORTS:
        query = replace(query, sort="risk")
    position = decode_cursor(cursor) if cursor else None
    if query.sort == "risk":
        found = _risk_first(session, query, now, limit, position)
        sort_values = [int(f.risk or 0) for f in found]
    else:
        risk_table = _risk_table()
        risk = func.coalesce(risk_table.c.risk, 0)
        key, descending = _sort_key(query.sort, risk)
        statement = (
            select(OfferHolder.id, OfferHolder.external_id, key.label("sort_value"), risk.label("risk"))
            .select_from(OfferHolder)
            .outerjoin(risk_table, risk_table.c.holder_id == OfferHolder.id)
            .where(*_conditions(query, now))
        )
        if position is not None:
            value, after = position
            if query.sort == "start_date" and isinstance(value, str):
                try:
                    value = date.fromisoformat(value)
                except ValueError:
                    value = date.min
            beyond = key < value if descending else key > value
            statement = statement.where(or_(beyond, and_(key == value, OfferHolder.external_id > after)))
        statement = statement.order_by(key.desc() if descending else key, OfferHolder.external_id)
        found = list(session.execute(statement.limit(limit + 1)))
        sort_values = [f.sort_value for f in found]
    more = len(found) > limit
    found = found[:limit]
    rows = holder_summaries(session, now, [f.id for f in found])
    for row, f in zip(rows, found, strict=True):
        row["risk"] = int(f.risk or 0)
    next_cursor = None
    if more and found:
        next_cursor = encode_cursor(sort_values[len(found) - 1], found[-1].external_id)
    total = int(
        session.scalar(select(func.count()).select_from(OfferHolder).where(*_conditions(query, now))) or 0
    )
    counts = cached_counts(session, query, now) if with_counts and not query.q else {}
    return HolderPage(rows=rows, next_cursor=next_cursor, total=total, counts=counts)


_COLUMN_FACETS = ("status", "track", "department")
COUNTS_TTL = 30.0  # seconds: the counts beside the filters may be this old; the list and total never are
_counts_cache: dict[tuple[str, HolderQuery], tuple[float, dict[str, dict[str, int]]]] = {}
_counts_lock = threading.Lock()


def cached_counts(session: Session, query: HolderQuery, now: datetime) -> dict[str, dict[str, int]]:
    """:func:`facet_counts`, remembered for ``COUNTS_TTL`` per database and filter set: paging through
    a list or coming back to it does not count 100,000 rows again."""
    key = (str(session.get_bind().engine.url), replace(query, sort="risk"))
    moment = time.monotonic()
    with _counts_lock:
        hit = _counts_cache.get(key)
        if hit is not None and moment - hit[0] < COUNTS_TTL:
            return hit[1]
    counts = facet_counts(session, query, now)
    with _counts_lock:
        if len(_counts_cache) > 256:
            _counts_cache.clear()
        _counts_cache[key] = (moment, counts)
    return counts


def facet_counts(session: Session, query: HolderQuery, now: datetime) -> dict[str, dict[str, int]]:
    """For each filter, how many holders each of its values would show (the other filters applied).

    Status, track and department come from one ``GROUP BY`` of the three (their own filters left out,
    then applied here to the few groups), the flag kinds and severities from the open flags."""
    h = OfferHolder
    counts: dict[str, dict[str, int]] = {name: {} for name in _COLUMN_FACETS}
    without = replace(query, status=None, track=None, department=None)
    groups = session.execute(  # track first: SQLite would otherwise walk the status index row by row
        select(h.status, h.track, h.department, func.count())
        .where(*_conditions(without, now))
        .group_by(h.track, h.department, h.status)
    )
    for status, track, department, n in groups:
        values = {"status": status, "track": track, "department": department}
        for name in _COLUMN_FACETS:
            others = all(
                getattr(query, other) in (None, "") or getattr(query, other) == values[other]
                for other in _COLUMN_FACETS
                if other != name
            )
            if others:
                key = str(values[name] or "")
                counts[name][key] = counts[name].get(key, 0) + int(n)
    for name, column in (("flag", Flag.rule), ("severity", Flag.severity)):
        rows = session.execute(
            select(column, func.count(func.distinct(Flag.holder_id)))
            .join(h, h.id == Flag.holder_id)
            .where(Flag.resolved_at.is_(None), *_conditions(query, now, skip=name))
            .group_by(column)
        )
        counts[name] = {str(value): int(n) for value, n in rows}
    return counts


def distinct_values(session: Session, mentor_scope: str | None = None) -> dict[str, list[str]]:
    """The values the filter menus offer (departments and mentors as they are in the data)."""
    h = OfferHolder
    scope = [h.mentor_email == mentor_scope] if mentor_scope else []  # GROUP BY on the indexes alone
    departments = session.scalars(
        select(h.department).where(*scope, h.department.is_not(None)).group_by(h.department)
    )
    mentors = session.scalars(
        select(h.mentor_email).where(*scope, h.mentor_email.is_not(None)).group_by(h.mentor_email)
    )
    return {"department": [d for d in departments if d], "mentor": [m for m in mentors if m]}


__all__ = [
    "MAX_LIMIT",
    "PAGE_SIZE",
    "RSVP_FILTERS",
    "SORTS",
    "HolderPage",
    "HolderQuery",
    "decode_cursor",
    "distinct_values",
    "encode_cursor",
    "facet_counts",
    "list_holders",
    "phase_expression",
]
