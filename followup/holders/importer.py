"""Offer holders: reading the ATS export (CSV), importing it, and their lifecycle.

The CSV is read completely and validated before anything is written, so a file with one bad row
imports nothing (or, with ``skip_invalid``, exactly the good rows). Every change of status, start date
or contact data becomes a :class:`HolderChange` row, which is what the timeline shows.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from followup.db.models import HOLDER_STATUSES, AuditEntry, HolderChange, OfferHolder
from followup.errors import ImportRowsError, Problem, UserInputError

COLUMNS = (
    "external_id",
    "name",
    "email",
    "line_user_id",
    "slack_user_id",
    "track",
    "department",
    "offer_date",
    "start_date",
    "status",
    "mentor_email",
)
OPTIONAL_COLUMNS = ("accepted_date", "decline_reason", "phone")
HEADER_ALIASES = {
    "内定者id": "external_id",
    "内定者番号": "external_id",
    "応募者id": "external_id",
    "候補者id": "external_id",
    "id": "external_id",
    "氏名": "name",
    "名前": "name",
    "メールアドレス": "email",
    "メール": "email",
    "lineユーザーid": "line_user_id",
    "line id": "line_user_id",
    "lineid": "line_user_id",
    "slackユーザーid": "slack_user_id",
    "slack id": "slack_user_id",
    "slackid": "slack_user_id",
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
    "電話番号": "phone",
    "電話": "phone",
    "携帯電話": "phone",
    "携帯電話番号": "phone",
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
FIELD_LIMITS = {  # the database column sizes (followup/db/models.py)
    "external_id": 64,
    "name": 200,
    "email": 320,
    "line_user_id": 64,
    "slack_user_id": 64,
    "track": 64,
    "department": 200,
    "mentor_email": 320,
    "phone": 32,
}
_DATE = re.compile(r"^\s*(\d{4})\s*[-/年.]\s*(\d{1,2})\s*[-/月.]\s*(\d{1,2})\s*日?\s*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class HolderRow:
    """One valid CSV row; ``line`` is its line number in the file (the header is line 1)."""

    line: int
    external_id: str
    name: str
    email: str | None
    line_user_id: str | None
    slack_user_id: str | None
    track: str
    department: str | None
    offer_date: date
    start_date: date
    status: str
    mentor_email: str | None
    accepted_date: date | None = None
    decline_reason: str | None = None
    phone: str | None = None  # shown in the reminder of a call (社長からの電話)
    columns: frozenset[str] = frozenset(COLUMNS)  # the file's columns: an update touches only these


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
    return HEADER_ALIASES.get(cleaned, cleaned)


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
    for key in ("offer_date", "start_date", "accepted_date"):
        text = optional(key)
        if text is None:
            if key != "accepted_date":
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
    line_id, slack_id = optional("line_user_id"), optional("slack_user_id")
    for key, limit in FIELD_LIMITS.items():
        value = optional(key)
        if value is not None and len(value) > limit:
            errors.append(f"{key} is longer than {limit} characters")
    if not (email or line_id or slack_id):
        errors.append("no contact channel: give at least one of email, line_user_id, slack_user_id")
    if errors:
        return None, errors
    assert external_id and name and offer and start
    return (
        HolderRow(
            line=line,
            external_id=external_id,
            name=name,
            email=email,
            line_user_id=line_id,
            slack_user_id=slack_id,
            track=track,
            department=optional("department"),
            offer_date=offer,
            start_date=start,
            status=status,
            mentor_email=mentor,
            accepted_date=dates["accepted_date"],
            decline_reason=optional("decline_reason"),
            phone=optional("phone"),
        ),
        [],
    )


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
    known = set(COLUMNS) | set(OPTIONAL_COLUMNS)
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
            rows.append(replace(row, columns=frozenset(keys)))
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


_PLAIN_FIELDS = (
    "name",
    "email",
    "line_user_id",
    "slack_user_id",
    "track",
    "department",
    "offer_date",
    "mentor_email",
    "phone",
)


def import_holders(
    session: Session, rows: Iterable[HolderRow], *, now: datetime, source: str = "import", actor: str = "cli"
) -> ImportSummary:
    """Upsert by external_id; unchanged rows touch nothing. The caller commits (all or nothing).

    A row for someone whose data was erased on request is skipped, never re-created."""
    from followup.holders.erasure import erased_ids

    rows = list(rows)
    erased = erased_ids(session, [r.external_id for r in rows])
    rows = [r for r in rows if r.external_id not in erased]
    existing = {
        h.external_id: h
        for h in session.scalars(
            select(OfferHolder).where(OfferHolder.external_id.in_([r.external_id for r in rows]))
        )
    }
    created = updated = unchanged = 0
    for row in rows:
        holder = existing.get(row.external_id)
        if holder is None:
            holder = OfferHolder(
                **{f.name: getattr(row, f.name) for f in fields(row) if f.name not in ("line", "columns")},
                created_at=now,
                updated_at=now,
            )
            if holder.status in ("accepted", "joined") and holder.accepted_date is None:
                holder.accepted_date = row.offer_date
            session.add(holder)
            _record(session, holder, "created", None, row.status, now, source)
            created += 1
            continue
        changed = False
        for name in _PLAIN_FIELDS:
            if name not in row.columns:
                continue  # a column the file does not have is not a request to clear the field
            new = getattr(row, name)
            if getattr(holder, name) != new:
                _record(session, holder, name, getattr(holder, name), new, now, source)
                setattr(holder, name, new)
                changed = True
        if holder.start_date != row.start_date:
            change_start_date(session, holder, row.start_date, at=now, source=source)
            changed = True
        if "status" in row.columns and holder.status != row.status:
            change_status(
                session, holder, row.status, at=now, reason=row.decline_reason, source=source, check=False
            )
            changed = True
        if row.accepted_date is not None and holder.accepted_date != row.accepted_date:
            _record(session, holder, "accepted_date", holder.accepted_date, row.accepted_date, now, source)
            holder.accepted_date = row.accepted_date
            changed = True
        if changed:
            holder.updated_at = now
            updated += 1
        else:
            unchanged += 1
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
