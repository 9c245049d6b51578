"""Offer holders: reading the ATS export (CSV), importing it, and their lifecycle.

The CSV is read completely and validated before anything is written, so a file with one bad row
imports nothing (or, with ``skip_invalid``, exactly the good rows). Every change of status, start date
or contact data becomes a :class:`HolderChange` row, which is what the timeline shows.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Table, Text, any_, bindparam, cast, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from followup.channels import CHANNELS, channel_classes
from followup.db.addresses import has_column
from followup.db.models import AuditEntry, HolderChange, OfferHolder
from followup.errors import ImportRowsError, Problem, UserInputError
from followup.vocab import HOLDER_STATUSES


def _table(model: Any) -> Table:
    """A mapped class's Table (typed as such: ``__table__`` is a FromClause to the type checker)."""
    table: Table = model.__table__
    return table


if TYPE_CHECKING:
    from followup.channels.base import Channel

BASE_COLUMNS = (
    "external_id",
    "name",
    "track",
    "department",
    "offer_date",
    "start_date",
    "status",
    "mentor_email",
)
OPTIONAL_COLUMNS = ("accepted_date", "decline_reason", "left_date")
_BASE_ALIASES = {
    "内定者id": "external_id",
    "内定者番号": "external_id",
    "応募者id": "external_id",
    "候補者id": "external_id",
    "id": "external_id",
    "氏名": "name",
    "名前": "name",
    "採用区分": "track",
    "区分": "track",
    "部署": "department",
    "配属予定部署": "department",
    "所属": "department",
    "内定日": "offer_date",
    "入社予定日": "start_date",
    "入社日": "start_date",
    "ステータス": "status",
    "状態": "status",
    "メンター": "mentor_email",
    "メンターのメールアドレス": "mentor_email",
    "メンターメール": "mentor_email",
    "承諾日": "accepted_date",
    "内定承諾日": "accepted_date",
    "辞退理由": "decline_reason",
    "退職日": "left_date",
    "離職日": "left_date",
}
STATUS_ALIASES = {
    "内定": "offered",
    "内定中": "offered",
    "承諾": "accepted",
    "内定承諾": "accepted",
    "承諾済み": "accepted",
    "入社": "joined",
    "入社済み": "joined",
    "辞退": "declined",
    "内定辞退": "declined",
    "取消": "withdrawn",
    "取り消し": "withdrawn",
    "内定取消": "withdrawn",
}
TRACK_ALIASES = {"新卒": "new_grad", "中途": "mid_career", "キャリア": "mid_career"}
# offered → accepted → joined; declined / withdrawn end the follow-up.
TRANSITIONS = {
    "offered": {"accepted", "declined", "withdrawn"},
    "accepted": {"joined", "declined", "withdrawn"},
    "joined": set(),
    "declined": {"offered"},
    "withdrawn": {"offered"},
}
_BASE_LIMITS = {  # the database column sizes (followup/db/models.py)
    "external_id": 64,
    "name": 200,
    "track": 64,
    "department": 200,
    "mentor_email": 320,
}


_registered: dict[tuple[str, ...], list[type[Channel]]] = {}


def _channels() -> list[type[Channel]]:
    """:func:`channel_classes`, looked up once per registry state (it is asked twice per CSV row)."""
    key = tuple(CHANNELS.values())
    found = _registered.get(key)
    if found is None:
        found = _registered[key] = channel_classes()
    return found


def channel_columns() -> tuple[str, ...]:
    """The address column of every registered channel (email, line_user_id, slack_user_id, …)."""
    return tuple(dict.fromkeys(c.address_field for c in _channels()))


def columns() -> tuple[str, ...]:
    """The CSV columns, in the documented order: the channels' address columns after the name."""
    return (*BASE_COLUMNS[:2], *channel_columns(), *BASE_COLUMNS[2:])


def header_aliases() -> dict[str, str]:
    aliases = dict(_BASE_ALIASES)
    for channel in channel_classes():
        aliases.update(dict.fromkeys(channel.address_aliases, channel.address_field))
    return aliases


def field_limits() -> dict[str, int]:
    limits = {"external_id": 64, "name": 200}
    limits.update({c.address_field: c.address_max_length for c in _channels()})
    return {**limits, **_BASE_LIMITS}


_DATE = re.compile(r"^\s*(\d{4})\s*[-/年.]\s*(\d{1,2})\s*[-/月.]\s*(\d{1,2})\s*日?\s*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True, slots=True)
class HolderRow:
    """One valid CSV row; ``line`` is its line number in the file (the header is line 1)."""

    line: int
    external_id: str
    name: str
    email: str | None
    track: str
    department: str | None
    offer_date: date
    start_date: date
    status: str
    mentor_email: str | None
    accepted_date: date | None = None
    decline_reason: str | None = None
    left_date: date | None = None  # 退職日: early turnover after joining (outcomes)
    columns: frozenset[str] = frozenset()  # the file's columns: an update touches only these
    contact: tuple[tuple[str, str | None], ...] = ()  # (address field, value) per registered channel

    def address(self, field: str) -> str | None:
        return dict(self.contact).get(field)

    def addresses(self) -> dict[str, str | None]:
        """channel name → address, for every registered channel."""
        return {
            c.name: self.email if c.address_field == "email" else self.address(c.address_field)
            for c in channel_classes()
        }


@dataclass(frozen=True)
class ImportSummary:
    created: int
    updated: int
    unchanged: int
    erased: tuple[str, ...] = ()  # rows skipped: these people had their data erased on request


def decode_csv(data: bytes) -> str:
    """UTF-8 (with or without BOM) or CP932, the encoding Excel in Japan saves; no flag needed."""
    for encoding in ("utf-8-sig", "cp932"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ValueError("the file is neither UTF-8 nor CP932 (Shift_JIS) text")


def parse_date(text: str) -> date:
    """``2026-04-15``, ``2026/4/15`` or ``2026年4月15日``."""
    match = _DATE.match(text)
    if not match:
        raise ValueError(f"bad date {text!r} (expected 2026-04-15 or 2026/4/15)")
    year, month, day = (int(g) for g in match.groups())
    try:
        return date(year, month, day)
    except ValueError:
        raise ValueError(f"bad date {text!r}: no such day") from None


def _header_key(raw: str) -> str:
    cleaned = raw.strip().lower()
    return header_aliases().get(cleaned, cleaned)


def _parse_row(line: int, values: dict[str, str], seen: dict[str, int]) -> tuple[HolderRow | None, list[str]]:
    errors: list[str] = []

    def optional(key: str) -> str | None:
        return values.get(key, "").strip() or None

    external_id = optional("external_id")
    name = optional("name")
    if external_id is None:
        errors.append("external_id is empty")
    elif external_id in seen:
        errors.append(f"duplicate external_id {external_id!r} (first on line {seen[external_id]})")
    else:
        seen[external_id] = line
    if name is None:
        errors.append("name is empty")
    dates: dict[str, date | None] = {}
    for key in ("offer_date", "start_date", "accepted_date", "left_date"):
        text = optional(key)
        if text is None:
            if key in ("offer_date", "start_date"):
                errors.append(f"{key} is empty")
            dates[key] = None
            continue
        try:
            dates[key] = parse_date(text)
        except ValueError as exc:
            errors.append(f"{key}: {exc}")
            dates[key] = None
    offer, start = dates["offer_date"], dates["start_date"]
    if offer and start and start < offer:
        errors.append(f"start_date {start} is before offer_date {offer}")
    raw_status = optional("status") or "offered"
    status = STATUS_ALIASES.get(raw_status, raw_status.lower())
    if status not in HOLDER_STATUSES:
        errors.append(
            f"unknown status {raw_status!r} (one of {', '.join(HOLDER_STATUSES)} or 内定/承諾/入社/辞退)"
        )
    raw_track = optional("track") or "new_grad"
    track = TRACK_ALIASES.get(raw_track, raw_track)
    email = optional("email")
    if email is not None and not _EMAIL.match(email):
        errors.append(f"email {email!r} is not an email address")
    mentor = optional("mentor_email")
    if mentor is not None and not _EMAIL.match(mentor):
        errors.append(f"mentor_email {mentor!r} is not an email address")
    contact = tuple((field, optional(field)) for field in channel_columns() if field != "email")
    for key, limit in field_limits().items():
        value = optional(key)
        if value is not None and len(value) > limit:
            errors.append(f"{key} is longer than {limit} characters")
    if not (email or any(value for _, value in contact)):
        errors.append(f"no contact channel: give at least one of {', '.join(channel_columns())}")
    if errors:
        return None, errors
    assert external_id and name and offer and start
    return (
        HolderRow(
            line=line,
            external_id=external_id,
            name=name,
            email=email,
            track=track,
            department=optional("department"),
            offer_date=offer,
            start_date=start,
            status=status,
            mentor_email=mentor,
            accepted_date=dates["accepted_date"],
            decline_reason=optional("decline_reason"),
            contact=contact,
            left_date=dates["left_date"],
        ),
        [],
    )


@functools.lru_cache(maxsize=8)
def _file_columns(keys: tuple[str, ...]) -> frozenset[str]:
    """One frozenset per header, shared by all the rows of a file (not one per row)."""
    return frozenset(keys)


def read_holders_csv(
    path: Path | str, *, skip_invalid: bool = False
) -> tuple[list[HolderRow], list[Problem]]:
    """Parse and validate the whole file. Without ``skip_invalid`` any bad row raises ImportRowsError."""
    path = Path(path)
    try:
        text = decode_csv(path.read_bytes())
    except FileNotFoundError:
        raise UserInputError(Problem(path, None, None, "file not found")) from None
    except ValueError as exc:
        raise ImportRowsError(Problem(path, None, None, str(exc))) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ImportRowsError(Problem(path, 1, None, "the file is empty")) from None
    keys = [_header_key(h) for h in header]
    known = set(columns()) | set(OPTIONAL_COLUMNS)
    header_problems = [
        f"unknown column {raw!r}" for raw, key in zip(header, keys, strict=True) if key not in known
    ]
    for required in ("external_id", "name", "offer_date", "start_date"):
        if required not in keys:
            header_problems.append(f"missing column {required!r}")
    if header_problems:
        raise ImportRowsError([Problem(path, 1, None, message) for message in header_problems])
    rows: list[HolderRow] = []
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for values in reader:
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(keys):
            problems.append(Problem(path, line, None, f"expected {len(keys)} columns, found {len(values)}"))
            continue
        row, errors = _parse_row(line, dict(zip(keys, values, strict=True)), seen)
        problems.extend(Problem(path, line, None, message) for message in errors)
        if row is not None:
            rows.append(replace(row, columns=_file_columns(tuple(keys))))
    if problems and not skip_invalid:
        raise ImportRowsError(problems)
    return rows, problems


def _record(
    session: Session,
    holder: OfferHolder,
    field: str,
    old: object,
    new: object,
    at: datetime,
    source: str,
    note: str | None = None,
) -> None:
    session.add(
        HolderChange(
            holder=holder,
            at=at,
            field=field,
            old_value=None if old is None else str(old),
            new_value=None if new is None else str(new),
            note=note,
            source=source,
        )
    )


def change_status(
    session: Session,
    holder: OfferHolder,
    new_status: str,
    *,
    at: datetime,
    reason: str | None = None,
    source: str = "cli",
    check: bool = True,
) -> None:
    """Move a holder along offered → accepted → joined, or to declined / withdrawn (with a reason)."""
    if new_status not in HOLDER_STATUSES:
        raise ValueError(f"unknown status {new_status!r}")
    if new_status == holder.status:
        return
    if check and new_status not in TRANSITIONS[holder.status]:
        allowed = ", ".join(sorted(TRANSITIONS[holder.status])) or "none"
        raise ValueError(f"cannot change status from {holder.status} to {new_status} (allowed: {allowed})")
    _record(session, holder, "status", holder.status, new_status, at, source, reason)
    holder.status = new_status
    if new_status == "accepted" and holder.accepted_date is None:
        holder.accepted_date = at.date()  # ``at`` is in the organisation's zone (callers pass it so)
    if new_status in ("declined", "withdrawn"):
        holder.decline_reason = reason


def change_start_date(
    session: Session,
    holder: OfferHolder,
    new_date: date,
    *,
    at: datetime,
    source: str = "cli",
    note: str | None = None,
) -> None:
    """A new start date; the planner moves the future touches on its next tick."""
    if new_date == holder.start_date:
        return
    if new_date < holder.offer_date:
        raise ValueError(f"start date {new_date} is before the offer date {holder.offer_date}")
    _record(session, holder, "start_date", holder.start_date, new_date, at, source, note)
    holder.start_date = new_date


_NOT_HOLDER_FIELDS = ("line", "columns", "contact")
_PLAIN_FIELDS = ("left_date", "name", "email", "track", "department", "offer_date", "mentor_email")


# The columns the import writes (id is the database's; timezone and erasure are not the ATS's business).
_KEEP_COLUMNS = ("id", "timezone", "erased_at")
# One statement never carries more bind parameters than the backend allows (PostgreSQL 65,535;
# SQLite builds before 3.32 stop at 999, later ones at 32,766: the smaller of the two modern limits).
_MAX_PARAMETERS = {"postgresql": 65_535, "sqlite": 32_766}


def _write_columns() -> tuple[str, ...]:
    return tuple(c.name for c in _table(OfferHolder).columns if c.name not in _KEEP_COLUMNS)


def _state_get(state: dict[str, Any], field: str) -> Any:
    return state.get(field) if has_column(field) else (state.get("addresses") or {}).get(field)


def _state_set(state: dict[str, Any], field: str, value: Any) -> None:
    if has_column(field):
        state[field] = value
        return
    extra = dict(state.get("addresses") or {})
    if value is None:
        extra.pop(field, None)
    else:
        extra[field] = value
    state["addresses"] = extra or None


_Change = tuple[str, str, object, object, str | None]  # external_id, field, old, new, note


@functools.cache
def _holder_fields() -> tuple[str, ...]:
    return tuple(f.name for f in fields(HolderRow) if f.name not in _NOT_HOLDER_FIELDS)


def _new_state(row: HolderRow, now: datetime, write: tuple[str, ...]) -> dict[str, Any]:
    """The column values of a holder created from ``row`` (what ``OfferHolder(**row)`` would hold)."""
    state: dict[str, Any] = dict.fromkeys(write)
    state.update({name: getattr(row, name) for name in _holder_fields()})
    state["created_at"] = state["updated_at"] = now
    for field, value in row.contact:
        _state_set(state, field, value)
    if state["status"] in ("accepted", "joined") and state["accepted_date"] is None:
        state["accepted_date"] = row.offer_date
    return state


def _apply_row(state: dict[str, Any], row: HolderRow, now: datetime, changes: list[_Change]) -> bool:
    """Update ``state`` (an existing holder's columns) from ``row`` in place, appending the changes.

    The same steps, in the same order, as :func:`change_status` / :func:`change_start_date` on an ORM
    holder, so the timeline records exactly what the per-row path recorded."""
    key = row.external_id
    before = len(changes)
    for name in _PLAIN_FIELDS:
        if name not in row.columns:
            continue  # a column the file does not have is not a request to clear the field
        new = getattr(row, name)
        if state[name] != new:
            changes.append((key, name, state[name], new, None))
            state[name] = new
    for name, new in row.contact:
        if name not in row.columns:
            continue
        if _state_get(state, name) != new:
            changes.append((key, name, _state_get(state, name), new, None))
            _state_set(state, name, new)
    if state["start_date"] != row.start_date:
        if row.start_date < state["offer_date"]:
            raise ValueError(f"start date {row.start_date} is before the offer date {state['offer_date']}")
        changes.append((key, "start_date", state["start_date"], row.start_date, None))
        state["start_date"] = row.start_date
    if "status" in row.columns and state["status"] != row.status:
        if row.status not in HOLDER_STATUSES:
            raise ValueError(f"unknown status {row.status!r}")
        changes.append((key, "status", state["status"], row.status, row.decline_reason))
        state["status"] = row.status
        if row.status == "accepted" and state["accepted_date"] is None:
            state["accepted_date"] = now.date()
        if row.status in ("declined", "withdrawn"):
            state["decline_reason"] = row.decline_reason
    if row.accepted_date is not None and state["accepted_date"] != row.accepted_date:
        changes.append((key, "accepted_date", state["accepted_date"], row.accepted_date, None))
        state["accepted_date"] = row.accepted_date
    if len(changes) == before:
        return False
    state["updated_at"] = now
    return True


def _upsert_statement(dialect: str, write: tuple[str, ...]) -> Any:
    table = _table(OfferHolder)
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(table)
    return statement.on_conflict_do_update(
        index_elements=[table.c.external_id],
        set_={name: statement.excluded[name] for name in write if name not in ("external_id", "created_at")},
    ).returning(table.c.id, table.c.external_id)


def _upsert_from_arrays(write: tuple[str, ...]) -> Any:
    """PostgreSQL: the chunk as one array per column, ``INSERT … SELECT unnest(…), … ON CONFLICT``.

    One bind parameter per column however many rows: psycopg parses a short statement instead of one
    with tens of thousands of placeholders (which costs more than the insert itself)."""
    table = _table(OfferHolder)
    arrays = [name for name in write if name not in ("created_at", "updated_at")]
    selected: list[Any] = []
    for name in arrays:
        column = table.c[name]
        if isinstance(column.type, JSON):
            selected.append(cast(func.unnest(bindparam(name, type_=ARRAY(Text))), JSON))
        else:
            selected.append(func.unnest(bindparam(name, type_=ARRAY(column.type))))
    selected += [
        bindparam("created_at", type_=table.c.created_at.type),
        bindparam("updated_at", type_=table.c.updated_at.type),
    ]
    statement = postgresql_insert(table).from_select([*arrays, "created_at", "updated_at"], select(*selected))
    return statement.on_conflict_do_update(
        index_elements=[table.c.external_id],
        set_={name: statement.excluded[name] for name in write if name not in ("external_id", "created_at")},
    ).returning(table.c.id, table.c.external_id)


def _among(dialect: str, external_ids: list[str]) -> Any:
    """``external_id IN (…)``; on PostgreSQL ``= ANY(array)``: one bind parameter, not one per id."""
    column = _table(OfferHolder).c.external_id
    if dialect == "postgresql":
        return column == any_(bindparam("external_ids", external_ids, type_=ARRAY(column.type)))
    return column.in_(external_ids)


def _write_holders(
    session: Session,
    dialect: str,
    upsert: Any,
    states: list[dict[str, Any]],
    write: tuple[str, ...],
    now: datetime,
) -> dict[str, int]:
    """Upsert the chunk's created and changed holders in one statement; external_id → id."""
    if dialect == "postgresql":
        params: dict[str, Any] = {"created_at": now, "updated_at": now}
        for name in write:
            if name in ("created_at", "updated_at"):
                continue
            values = [state[name] for state in states]
            if isinstance(_table(OfferHolder).c[name].type, JSON):
                values = [None if value is None else json.dumps(value) for value in values]
            params[name] = values
        result = session.execute(_upsert_from_arrays(write), params)
    else:
        result = session.execute(upsert, states)
    return {external_id: id_ for id_, external_id in result}


def _write_changes(
    session: Session, dialect: str, changes: list[_Change], ids: dict[str, int], now: datetime, source: str
) -> None:
    """The chunk's HolderChange rows in one multi-row INSERT (PostgreSQL: from arrays, as above)."""
    table = _table(HolderChange)
    rows = {
        "holder_id": [ids[key] for key, *_ in changes],
        "field": [field for _, field, *_ in changes],
        "old_value": [None if old is None else str(old) for _, _, old, _, _ in changes],
        "new_value": [None if new is None else str(new) for _, _, _, new, _ in changes],
        "note": [note for *_, note in changes],
    }
    if dialect == "postgresql":
        selected: list[Any] = [func.unnest(bindparam(name, type_=ARRAY(table.c[name].type))) for name in rows]
        selected += [bindparam("at", type_=table.c.at.type), bindparam("source", type_=table.c.source.type)]
        statement = table.insert().from_select([*rows, "at", "source"], select(*selected))
        session.execute(statement, {**rows, "at": now, "source": source})
        return
    names = list(rows)
    session.execute(
        table.insert(),
        [
            {**dict(zip(names, values, strict=True)), "at": now, "source": source}
            for values in zip(*rows.values(), strict=True)
        ],
    )


def import_holders(
    session: Session, rows: Iterable[HolderRow], *, now: datetime, source: str = "import", actor: str = "cli"
) -> ImportSummary:
    """Upsert by external_id; unchanged rows touch nothing. The caller commits (all or nothing).

    Set-based: per chunk of rows one SELECT of the existing holders (plain tuples, no ORM objects), one
    ``INSERT … ON CONFLICT (external_id) DO UPDATE … RETURNING`` of the created and changed holders
    and one multi-row INSERT of their :class:`HolderChange` rows; a chunk stays under the backend's bind
    parameter limit. Everything runs in the caller's transaction.

    A row for someone whose data was erased on request is skipped, never re-created."""
    from followup.holders.erasure import erased_ids

    session.flush()  # the caller's pending objects first: the statements below bypass the unit of work
    rows = list(rows)
    erased = erased_ids(session, [r.external_id for r in rows])
    if erased:
        rows = [r for r in rows if r.external_id not in erased]
    dialect = session.get_bind().dialect.name
    write = _write_columns()
    limit = _MAX_PARAMETERS.get(dialect, 999)
    chunk_size = limit // len(write)  # rows × columns ≤ the limit
    upsert = _upsert_statement(dialect, write).execution_options(insertmanyvalues_page_size=chunk_size)
    table = _table(OfferHolder)
    read = select(table.c.id, *(table.c[name] for name in write))
    created = updated = unchanged = 0
    for start in range(0, len(rows), chunk_size):
        chunk = rows[start : start + chunk_size]
        existing = {
            r.external_id: r._asdict()
            for r in session.execute(read.where(_among(dialect, [r.external_id for r in chunk])))
        }
        states: list[dict[str, Any]] = []
        changes: list[_Change] = []
        for row in chunk:
            state = existing.get(row.external_id)
            if state is None:
                states.append(_new_state(row, now, write))
                changes.append((row.external_id, "created", None, row.status, None))
                created += 1
            elif _apply_row(state, row, now, changes):
                del state["id"]
                states.append(state)
                updated += 1
            else:
                unchanged += 1
        if not states:
            continue
        ids = _write_holders(session, dialect, upsert, states, write, now)
        if changes:
            _write_changes(session, dialect, changes, ids, now, source)
    if created or updated:
        session.expire_all()  # holders the caller loaded before now read the imported values
    session.add(
        AuditEntry(
            at=now,
            actor=actor,
            action="import_holders",
            detail={"created": created, "updated": updated, "unchanged": unchanged},
        )
    )
    return ImportSummary(created, updated, unchanged, tuple(sorted(erased)))


def find_holder(session: Session, external_id: str) -> OfferHolder | None:
    return session.scalar(select(OfferHolder).where(OfferHolder.external_id == external_id))
