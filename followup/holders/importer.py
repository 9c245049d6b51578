"""Offer holders: reading the ATS export (CSV), importing it, and their lifecycle.

The CSV is read completely and validated before anything is written, so a file with one bad row
imports nothing (or, with ``skip_invalid``, exactly the good rows). Every change of status, start date
or contact data becomes a :class:`HolderChange` row, which is what the timeline shows.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import Date, String, Table, any_, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from followup.channels import channel_classes
from followup.config.schema import Policy
from followup.db.addresses import has_column
from followup.db.models import AuditEntry, HolderChange, OfferHolder, UTCDateTime
from followup.errors import ImportRowsError, Problem, UserInputError
from followup.vocab import ACTIVE_STATUSES, HOLDER_STATUSES, POOL_STATUSES

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
OPTIONAL_COLUMNS = (
    "accepted_date",
    "decline_reason",
    "phone",
    "acceptance_deadline",
    "rejected_date",
    "left_date",
    "consent_date",
    "consent",
)
OPTIONAL_DATES = ("accepted_date", "acceptance_deadline", "rejected_date", "left_date", "consent_date")
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
    "電話番号": "phone",
    "電話": "phone",
    "携帯電話": "phone",
    "携帯電話番号": "phone",
    "承諾期限": "acceptance_deadline",
    "内定承諾期限": "acceptance_deadline",
    "回答期限": "acceptance_deadline",
    "不採用日": "rejected_date",
    "同意日": "consent_date",
    "連絡同意日": "consent_date",
    "同意": "consent",
    "連絡同意": "consent",
    "配信同意": "consent",
    "メール配信同意": "consent",
}
# the 同意 column: a yes (consent recorded on the import day, unless 同意日 says when) or a no
CONSENT_YES = frozenset(
    {"はい", "有", "あり", "有り", "済", "同意", "同意済み", "○", "〇", "1", "true", "yes", "y"}
)
CONSENT_NO = frozenset({"いいえ", "無", "なし", "無し", "未", "不同意", "×", "0", "false", "no", "n"})
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
    "不採用": "rejected",
    "不合格": "rejected",
    "お見送り": "rejected",
    "見送り": "rejected",
}
TRACK_ALIASES = {"新卒": "new_grad", "中途": "mid_career", "キャリア": "mid_career"}
# offered → accepted → joined; declined / withdrawn end the follow-up.
TRANSITIONS = {
    "offered": {"accepted", "declined", "withdrawn"},
    "accepted": {"joined", "declined", "withdrawn"},
    "joined": set(),
    "declined": {"offered"},
    "withdrawn": {"offered"},
    "rejected": {"offered"},  # applied again and got an offer (a re-application from the talent pool)
}
_BASE_LIMITS = {  # the database column sizes (followup/db/models.py)
    "external_id": 64,
    "name": 200,
    "track": 64,
    "department": 200,
    "mentor_email": 320,
    "phone": 32,
}


def channel_columns() -> tuple[str, ...]:
    """The address column of every registered channel (email, line_user_id, slack_user_id, …)."""
    return tuple(dict.fromkeys(c.address_field for c in channel_classes()))


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
    limits.update({c.address_field: c.address_max_length for c in channel_classes()})
    return {**limits, **_BASE_LIMITS}


_DATE = re.compile(r"^\s*(\d{4})\s*[-/年.]\s*(\d{1,2})\s*[-/月.]\s*(\d{1,2})\s*日?\s*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# NUL (refused by PostgreSQL), CR/LF (a name on two lines breaks subjects and reminders) and the other
# control characters, including Unicode line and paragraph separators: never valid in any column.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_FIELD = 1000  # any column; the named ones in FIELD_LIMITS are shorter


@dataclass(slots=True, unsafe_hash=True)
class HolderRow:
    """One valid CSV row; ``line`` is its line number in the file (the header is line 1).

    Read-only by convention, hashable as before, but not ``frozen``: a frozen dataclass's ``__init__``
    sets each of the 20 fields through ``object.__setattr__``, 10× slower, a large part of the parse of
    a 100,000-row file. ``slots``: a row takes a fraction of the memory of one with a ``__dict__``."""

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
    phone: str | None = None
    acceptance_deadline: date | None = None
    rejected_date: date | None = None
    left_date: date | None = None  # 退職日: early turnover after joining (outcomes)
    consent_date: date | None = None
    consent: bool | None = None  # the 同意 column: True yes, False no, None not given
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
    # what happened to whom: (external_id, "created" | "updated: field, field" | "status offered → declined")
    details: tuple[tuple[str, str], ...] = ()
    ended: tuple[int, ...] = ()  # holder ids that left the follow-up (declined, withdrawn, joined)
    reapplied: int = 0  # people of the talent pool who applied again (same external id or email)


@dataclass(frozen=True)
class HolderFile:
    """A read and validated CSV: rows, row problems, and what was noticed but is not an error."""

    rows: list[HolderRow]
    problems: list[Problem]
    ignored_columns: tuple[str, ...] = ()  # headers that map to no field (フリガナ, 大学名 …)
    no_contact: tuple[int, ...] = ()  # lines of holders without any contact channel (imported, unreachable)


class EncodingProblem(ValueError):
    """The file cannot be read under one encoding; ``line`` is where it stops being consistent."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def _mixed_utf8_line(data: bytes) -> int | None:
    """The first line that is valid UTF-8 with non-ASCII bytes in a file that is not UTF-8 as a whole.

    CP932 Japanese text is almost never valid UTF-8, and UTF-8 Japanese text is very often valid CP932:
    decoding such a file as CP932 would silently turn its UTF-8 rows into mojibake (佐藤 → 菴占陸).
    """
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if raw.isascii():
            continue
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        return number
    return None


def decode_csv(data: bytes) -> str:
    """UTF-8 (with or without BOM) or CP932, the encoding Excel in Japan saves; no flag needed.

    The whole file is decoded under one encoding: a CP932 file with UTF-8 rows pasted in is refused
    (naming the first such line) rather than imported as mojibake.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        not_utf8_line = data.count(b"\n", 0, exc.start) + 1
    mixed = _mixed_utf8_line(data)
    if mixed is not None:
        raise EncodingProblem(
            f"this line is UTF-8 but line {not_utf8_line} is not: the file mixes two encodings; "
            "save the whole file again as UTF-8 (or CP932)",
            mixed,
        )
    try:
        return data.decode("cp932")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise EncodingProblem(
            "the file is neither UTF-8 nor CP932 (Shift_JIS) text; save it again as UTF-8", line
        ) from None


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


def _header_key(raw: str, column_map: dict[str, str] | None = None) -> str:
    cleaned = raw.strip().lower()
    if column_map and cleaned in column_map:
        return column_map[cleaned]
    return header_aliases().get(cleaned, cleaned)


class _RowParser:
    """Validates the rows of one file: the aliases, limits and channel columns are looked up once
    per file, not per row; ISO dates (the usual export) skip the regular expression."""

    def __init__(self, used: list[str]) -> None:
        self.columns = frozenset(used)
        self.limits = tuple(field_limits().items())
        self.channel_fields = tuple(f for f in channel_columns() if f != "email")
        self.dates: dict[str, date] = {}  # date text → date: a file has few distinct days
        self.seen: dict[str, int] = {}

    def date(self, text: str) -> date:
        found = self.dates.get(text)
        if found is not None:
            return found
        if len(text) == 10 and text.isascii() and text[4] == "-" and text[7] == "-":
            y, m, d = text[:4], text[5:7], text[8:]
            if y.isdigit() and m.isdigit() and d.isdigit():
                with contextlib.suppress(ValueError):  # no such day: parse_date says so, in its words
                    found = date(int(y), int(m), int(d))
        if found is None:
            found = parse_date(text)
        self.dates[text] = found
        return found

    def parse(self, line: int, values: dict[str, str]) -> tuple[HolderRow | None, list[str]]:
        """One row: ``values`` maps the known columns of the file (in its order) to their raw text."""
        errors: list[str] = []
        # Messages name the column, never its value: error output carries no personal data.
        joined = "".join(values.values())
        if len(joined) > MAX_FIELD or _CONTROL.search(joined):
            for column, raw in values.items():
                if _CONTROL.search(raw):
                    errors.append(f"{column} contains a control character (NUL, a line break or similar)")
                elif len(raw) > MAX_FIELD:
                    errors.append(f"{column} is longer than {MAX_FIELD} characters")
            if errors:
                return None, errors
        # a column's stripped text, or None when it is empty or the file has no such column
        optional = {key: value.strip() or None for key, value in values.items()}.get
        seen = self.seen
        external_id = optional("external_id")
        name = optional("name")
        if external_id is None:
            errors.append("external_id is empty")
        elif external_id in seen:
            errors.append(f"duplicate external_id (first on line {seen[external_id]})")
        else:
            seen[external_id] = line
        if name is None:
            errors.append("name is empty")
        raw_status = optional("status") or "offered"
        status = STATUS_ALIASES.get(raw_status, raw_status.lower())
        rejected = status == "rejected"
        # 不採用: no offer and no start date; the 不採用日 anchors the talent pool (and stands in for both)
        dates: dict[str, date | None] = {}
        for key in _DATE_KEYS:
            value = optional(key)
            if value is None:
                if key == "rejected_date" and rejected:
                    errors.append("rejected_date (不採用日) is empty: a rejected candidate needs it")
                elif key not in OPTIONAL_DATES and not rejected:
                    errors.append(f"{key} is empty")
                dates[key] = None
                continue
            try:
                dates[key] = self.date(value)
            except ValueError as exc:
                errors.append(f"{key}: {exc}")
                dates[key] = None
        if rejected:
            dates["offer_date"] = dates["offer_date"] or dates["rejected_date"]
            dates["start_date"] = dates["start_date"] or dates["rejected_date"]
        offer, start = dates["offer_date"], dates["start_date"]
        if offer and start and start < offer:
            errors.append(f"start_date {start} is before offer_date {offer}")
        if status not in HOLDER_STATUSES:
            errors.append(
                f"unknown status {raw_status!r} "
                f"(one of {', '.join(HOLDER_STATUSES)} or 内定/承諾/入社/辞退/不採用)"
            )
        consent: bool | None = None
        raw_consent = optional("consent")
        if raw_consent is not None:
            if raw_consent.lower() in CONSENT_YES:
                consent = True
            elif raw_consent.lower() in CONSENT_NO:
                consent = False
            else:
                errors.append("consent (同意) is neither yes nor no (はい/いいえ, 1/0, ○/×)")
        raw_track = optional("track") or "new_grad"
        track = TRACK_ALIASES.get(raw_track, raw_track)
        email = optional("email")
        if email is not None and not _EMAIL.match(email):
            errors.append("email is not an email address")
        mentor = optional("mentor_email")
        if mentor is not None and not _EMAIL.match(mentor):
            errors.append("mentor_email is not an email address")
        contact = tuple([(f, optional(f)) for f in self.channel_fields])
        for key, limit in self.limits:
            value = optional(key)
            if value is not None and len(value) > limit:
                errors.append(f"{key} is longer than {limit} characters")
        # no contact channel is not an error: the holder is imported and flagged 連絡不可 (unreachable)
        if errors:
            return None, errors
        assert external_id and name and offer and start
        return (
            HolderRow(
                line,
                external_id,
                name,
                email,
                track,
                optional("department"),
                offer,
                start,
                status,
                mentor,
                dates["accepted_date"],
                optional("decline_reason"),
                optional("phone"),
                dates["acceptance_deadline"],
                dates["rejected_date"],
                dates["left_date"],
                dates["consent_date"],
                consent,
                self.columns,
                contact,
            ),
            [],
        )


_DATE_KEYS = ("offer_date", "start_date", *OPTIONAL_DATES)


def _parse_row(line: int, values: dict[str, str], seen: dict[str, int]) -> tuple[HolderRow | None, list[str]]:
    """One row on its own (the file reader keeps one :class:`_RowParser` for all of them)."""
    parser = _RowParser([])
    parser.seen = seen
    return parser.parse(line, values)


def read_holders_csv(
    path: Path | str, *, skip_invalid: bool = False
) -> tuple[list[HolderRow], list[Problem]]:
    """Parse and validate the whole file. Without ``skip_invalid`` any bad row raises ImportRowsError."""
    read = read_holders_file(path, skip_invalid=skip_invalid)
    return read.rows, read.problems


def read_holders_file(
    path: Path | str,
    *,
    skip_invalid: bool = False,
    strict: bool = False,
    column_map: dict[str, str] | None = None,
) -> HolderFile:
    """Parse and validate the whole file (see :func:`read_holders_csv`).

    Columns that map to no field (an ATS's フリガナ, 大学名, 備考 …) are ignored and listed in
    ``ignored_columns`` — with ``strict`` they are an error. ``column_map`` (``import.columns`` in the
    YAML) maps the ATS's own header names to fields before the built-in Japanese aliases."""
    path = Path(path)
    known = set(columns()) | set(OPTIONAL_COLUMNS)
    mapping = {k.strip().lower(): v.strip() for k, v in (column_map or {}).items()}
    bad_targets = sorted({v for v in mapping.values() if v not in known})
    if bad_targets:
        raise ImportRowsError(
            [
                Problem(
                    path,
                    1,
                    None,
                    f"import.columns maps to unknown field {target!r} (fields: {', '.join(sorted(known))})",
                )
                for target in bad_targets
            ]
        )
    try:
        text = decode_csv(path.read_bytes())
    except FileNotFoundError:
        raise UserInputError(Problem(path, None, None, "file not found")) from None
    except EncodingProblem as exc:
        raise ImportRowsError(Problem(path, exc.line, None, str(exc))) from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ImportRowsError(Problem(path, 1, None, "the file is empty")) from None
    except csv.Error as exc:
        raise ImportRowsError(Problem(path, reader.line_num, None, f"unreadable CSV ({exc})")) from None
    keys = [_header_key(h, mapping) for h in header]
    ignored = tuple(raw.strip() for raw, key in zip(header, keys, strict=True) if key not in known)
    header_problems: list[str] = []
    if strict:
        header_problems.extend(f"unknown column {raw[:60]!r} (--strict)" for raw in ignored)
    # a file of rejected candidates (with 不採用日) needs no offer or start date column
    dated = (
        ("external_id", "name")
        if "rejected_date" in keys
        else ("external_id", "name", "offer_date", "start_date")
    )
    for required in dated:
        if required not in keys:
            header_problems.append(f"missing column {required!r}")
    used = [k for k in keys if k in known]
    for twice in sorted({k for k in used if used.count(k) > 1}):
        header_problems.append(f"two columns map to {twice!r}")
    if header_problems:
        raise ImportRowsError([Problem(path, 1, None, message) for message in header_problems])
    rows: list[HolderRow] = []
    problems: list[Problem] = []
    no_contact: list[int] = []
    parser = _RowParser(used)
    positions = [(k, i) for i, k in enumerate(keys) if k in known]
    while True:
        line = reader.line_num + 1  # where this record starts (a quoted field may span lines)
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a field over csv's 131,072-character limit: the file stops here
            # the rest of the file cannot be read reliably: refused even with skip_invalid
            problems.append(Problem(path, reader.line_num, None, f"unreadable CSV ({exc})"))
            raise ImportRowsError(problems) from None
        if not "".join(values).strip():  # a blank line, or only separators
            continue
        if len(values) != len(keys):
            problems.append(Problem(path, line, None, f"expected {len(keys)} columns, found {len(values)}"))
            continue
        row, errors = parser.parse(line, {k: values[i] for k, i in positions})
        if errors:
            problems.extend(Problem(path, line, None, message) for message in errors)
        if row is not None:
            rows.append(row)
            if not (row.email or any(value for _, value in row.contact)):
                no_contact.append(line)
    if problems and not skip_invalid:
        raise ImportRowsError(problems)
    return HolderFile(rows, problems, ignored, tuple(no_contact))


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
    "track",
    "department",
    "offer_date",
    "mentor_email",
    "phone",
    "acceptance_deadline",
    "rejected_date",
    "left_date",
)
# the offer_holders columns an import reads and writes (besides id, external_id and the timestamps)
_STATE_COLUMNS = (
    *_PLAIN_FIELDS,
    "start_date",
    "status",
    "accepted_date",
    "decline_reason",
    "consent_date",
    "consent_source",
    "reapplied_from_id",
)
# the offer_holders columns but the JSON addresses: an address field among them has its own column
# (as followup.db.addresses.has_column says; a set lookup, not a call, per row and field)
_HOLDER_COLUMNS = frozenset(c.name for c in OfferHolder.__table__.columns if has_column(c.name))
# rows per chunk: one lookup (an IN list within both backends' bind limits), one insert of the new
# holders, one update of the changed ones and one insert of the change rows
IMPORT_CHUNK = 5_000
_SQLITE_BINDS = 32_766  # older SQLite builds; PostgreSQL allows 65,535
_PG_TYPES = {"Date": "date", "Integer": "integer", "JSON": "json"}


@dataclass(slots=True)
class _Changes:
    """What one import does, gathered in Python before the chunk is written."""

    now: datetime
    source: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    reapplied: int = 0
    consents: int = 0
    details: list[tuple[str, str]] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)


def _consent_change(
    state: dict[str, Any], row: HolderRow, today: date
) -> tuple[date | None, date | None, str] | None:
    """The 同意 / 同意日 columns: (old, new, note) when consent is recorded or withdrawn, else None.

    Consent is recorded (never cleared by an empty cell), or withdrawn by an explicit no: a consent
    given on the web page stays."""
    old = state["consent_date"]
    if row.consent is True or (row.consent is None and row.consent_date is not None):
        day = row.consent_date or old or today
        if old == day:
            return None
        state["consent_date"], state["consent_source"] = day, "import"
        return old, day, "連絡への同意(取り込み)"
    if row.consent is False and old is not None:
        state["consent_date"], state["consent_source"] = None, None
        return old, None, "同意なし(取り込み)"
    return None


def _json(value: object) -> str | None:
    return None if value is None else json.dumps(value)


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _new_state(row: HolderRow, earlier: tuple[int, str] | None) -> dict[str, Any]:
    accepted = row.accepted_date
    if accepted is None and row.status in ("accepted", "joined"):
        accepted = row.offer_date
    state: dict[str, Any] = {
        "name": row.name,
        "email": row.email,
        "track": row.track,
        "department": row.department,
        "offer_date": row.offer_date,
        "mentor_email": row.mentor_email,
        "phone": row.phone,
        "acceptance_deadline": row.acceptance_deadline,
        "rejected_date": row.rejected_date,
        "left_date": row.left_date,
        "external_id": row.external_id,
        "start_date": row.start_date,
        "status": row.status,
        "accepted_date": accepted,
        "decline_reason": row.decline_reason,
        "consent_date": None,
        "consent_source": None,
        "reapplied_from_id": earlier[0] if earlier else None,
        "addresses": None,
    }
    for name, value in row.contact:
        if name in _HOLDER_COLUMNS:
            state[name] = value
        else:
            _set_address(state, name, value)
    return state


def _set_address(state: dict[str, Any], name: str, value: str | None) -> None:
    if name in _HOLDER_COLUMNS:
        state[name] = value
        return
    extra = dict(state["addresses"] or {})
    if value is None:
        extra.pop(name, None)
    else:
        extra[name] = value
    state["addresses"] = extra or None


def _get_address(state: dict[str, Any], name: str) -> Any:
    return state[name] if name in _HOLDER_COLUMNS else (state["addresses"] or {}).get(name)


def _diff(
    state: dict[str, Any], row: HolderRow, changes: _Changes, out: list[tuple[str, Any, Any, str | None]]
) -> bool:
    """Apply ``row`` to an existing holder's ``state`` in place, in the order the timeline shows it.

    Appends (field, old, new, note) to ``out`` and returns whether the holder row changed."""
    cols = row.columns
    changed = False
    what: list[str] = []
    status = state["status"]
    again = status in POOL_STATUSES and (
        ("status" in cols and row.status in ACTIVE_STATUSES)
        or (
            status == row.status == "rejected"
            and state["rejected_date"] is not None
            and row.rejected_date is not None
            and row.rejected_date > state["rejected_date"]
        )
    )
    for name in _PLAIN_FIELDS:
        if name not in cols:
            continue  # a column the file does not have is not a request to clear the field
        new = getattr(row, name)
        if state[name] != new:
            out.append((name, state[name], new, None))
            state[name] = new
            changed = True
            what.append(name)
    for name, new in row.contact:
        if name not in cols:
            continue
        old = _get_address(state, name)
        if old != new:
            out.append((name, old, new, None))
            _set_address(state, name, new)
            changed = True
            what.append(name)
    if "start_date" in cols and state["start_date"] != row.start_date:
        what.append(f"start_date {state['start_date']} → {row.start_date}")
        if row.start_date < state["offer_date"]:  # as change_start_date refuses it
            raise ValueError(f"start date {row.start_date} is before the offer date {state['offer_date']}")
        out.append(("start_date", state["start_date"], row.start_date, None))
        state["start_date"] = row.start_date
        changed = True
    if again:  # the same person applied again (same external id): linked on their own timeline
        out.append(("reapplied", status, row.status, "人材プールからの再応募"))
        changes.reapplied += 1
        what.append("reapplied")
    consent = _consent_change(state, row, changes.now.date())
    if consent is not None:
        out.append(("consent_date", *consent))
        changes.consents += 1
        changed = True
        what.append("consent_date")
    if "status" in cols and status != row.status:  # as change_status(check=False)
        what.append(f"status {status} → {row.status}")
        if row.status not in ("offered", "accepted"):
            changes.ended.append(state["id"])
        out.append(("status", status, row.status, row.decline_reason))
        state["status"] = row.status
        if row.status == "accepted" and state["accepted_date"] is None:
            state["accepted_date"] = changes.now.date()  # ``now`` is in the organisation's zone
        if row.status in ("declined", "withdrawn"):
            state["decline_reason"] = row.decline_reason
        changed = True
    if row.accepted_date is not None and state["accepted_date"] != row.accepted_date:
        out.append(("accepted_date", state["accepted_date"], row.accepted_date, None))
        state["accepted_date"] = row.accepted_date
        changed = True
        what.append("accepted_date")
    if changed:
        changes.updated += 1
        changes.details.append((row.external_id, "updated: " + ", ".join(what)))
    else:
        changes.unchanged += 1
    return changed


def _pool_members_by_email(session: Session, emails: set[str]) -> dict[str, tuple[int, str]]:
    """lower(email) → (id, external_id) of the latest pool member (不採用・辞退) with that email.

    Read once before anything is written, as plain rows: a new row with such an email is their
    re-application."""
    if not emails:
        return {}
    found: dict[str, tuple[int, str]] = {}
    query = (
        select(OfferHolder.id, OfferHolder.external_id, OfferHolder.email)
        .where(
            OfferHolder.status.in_(POOL_STATUSES),
            OfferHolder.erased_at.is_(None),
            OfferHolder.email.is_not(None),
        )
        .order_by(OfferHolder.id)
    )
    for holder_id, external_id, email in session.execute(query):
        key = str(email).lower()
        if key in emails:
            found[key] = (holder_id, external_id)
    return found


class _Converted(dict[Any, Any]):
    """value → what the driver is given, converted once per distinct value (a file has few days)."""

    def __init__(self, convert: Callable[[Any], Any] | None) -> None:
        super().__init__({None: None})
        self.convert = convert

    def __missing__(self, key: Any) -> Any:
        value = self[key] = self.convert(key) if self.convert else key
        return value


class _Writer:
    """The statements of one chunk: set-based on both backends, within their bind-parameter limits.

    PostgreSQL gets one array per column (``INSERT … SELECT … FROM unnest(…)``): psycopg parses a
    statement with tens of thousands of placeholders slower than the server inserts the rows. SQLite
    gets prepared-once ``executemany`` statements (multi-row VALUES with RETURNING for new holders)."""

    def __init__(self, session: Session, now: datetime, source: str) -> None:
        self.session = session
        self.now, self.source = now, source
        self.postgres = session.get_bind().dialect.name == "postgresql"
        table: Table = OfferHolder.__table__  # type: ignore[assignment]
        self.table = table
        self.json_fields = tuple(f for f in channel_columns() if not has_column(f))
        # addresses (JSON) only when a registered channel keeps its address there; else left NULL
        self.columns: tuple[str, ...] = (
            *dict.fromkeys((*_STATE_COLUMNS, *(f for f in channel_columns() if has_column(f)))),
            *(("addresses",) if self.json_fields else ()),
        )
        self.pg_types = {
            name: _PG_TYPES.get(type(table.c[name].type).__name__, "text") for name in self.columns
        }
        dialect = session.get_bind().dialect
        # SQLite: the driver's own executemany with values converted as the column types would
        # (SQLAlchemy's per-value processing cost more than the writes); each date converted once
        stamp = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
        self.sqlite_now = stamp(now) if stamp else now
        self.dates = _Converted(Date().dialect_impl(dialect).bind_processor(dialect))
        self.date_columns = frozenset(n for n in self.columns if self.pg_types[n] == "date")

    def _sqlite_rows(self, names: tuple[str, ...], states: list[dict[str, Any]]) -> list[list[Any]]:
        get = itemgetter(*names)
        records = [list(get(s)) for s in states]
        dates = self.dates
        for j, name in enumerate(names):
            if name in self.date_columns:
                for record in records:
                    record[j] = dates[record[j]]
            elif name == "addresses":
                for record in records:
                    record[j] = None if record[j] is None else json.dumps(record[j])
        return records

    def _copy(self, table: str, names: tuple[str, ...], records: Iterable[tuple[Any, ...]]) -> None:
        """PostgreSQL's COPY on the session's own connection (same transaction): the fastest way in."""
        driver = self.session.connection().connection.driver_connection
        assert driver is not None
        with driver.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
            for record in records:
                copy.write_row(record)

    def _pg_rows(self, names: tuple[str, ...], states: list[dict[str, Any]]) -> Iterator[tuple[Any, ...]]:
        get = itemgetter(*names)
        if not self.json_fields:
            return (get(s) for s in states)
        last = len(names) - 1  # addresses, as JSON text
        return ((*get(s)[:last], _json(s["addresses"])) for s in states)

    def _pg_arrays(self, names: tuple[str, ...], states: list[dict[str, Any]]) -> dict[str, list[Any]]:
        arrays: dict[str, list[Any]] = {}
        for i, name in enumerate(names):
            values = [s[name] for s in states]
            if name == "addresses":
                values = [None if v is None else json.dumps(v) for v in values]
            arrays[f"a{i}"] = values
        return arrays

    def _unnest(self, names: tuple[str, ...], types: dict[str, str]) -> str:
        return ", ".join(f"CAST(:a{i} AS {types[name]}[])" for i, name in enumerate(names))

    def insert(self, states: list[dict[str, Any]]) -> dict[str, int]:
        """New holders; external_id → id."""
        if not states:
            return {}
        names = ("external_id", *self.columns)
        if self.postgres:  # COPY, then the new ids by one array of external ids
            stamps = (self.now, self.now)
            copied = ((*record, *stamps) for record in self._pg_rows(names, states))
            self._copy("offer_holders", (*names, "created_at", "updated_at"), copied)
            sql = "SELECT id, external_id FROM offer_holders WHERE external_id = ANY(CAST(:ids AS text[]))"
            result = self.session.execute(text(sql), {"ids": [s["external_id"] for s in states]})
            return {external_id: holder_id for holder_id, external_id in result}
        # multi-row VALUES … RETURNING, as many rows a statement as SQLite's bind limit allows
        width = len(names) + 2
        per_statement = _SQLITE_BINDS // width
        ids: dict[str, int] = {}
        connection = self.session.connection()
        records = self._sqlite_rows(names, states)
        for start in range(0, len(records), per_statement):
            batch = records[start : start + per_statement]
            values = ", ".join(["(" + ", ".join("?" * width) + ")"] * len(batch))
            sql = (
                f"INSERT INTO offer_holders ({', '.join(names)}, created_at, updated_at) VALUES {values} "
                "RETURNING id, external_id"
            )
            stamps = (self.sqlite_now, self.sqlite_now)
            flat = tuple(chain.from_iterable(chain(record, stamps) for record in batch))
            ids.update(
                (external_id, holder_id) for holder_id, external_id in connection.exec_driver_sql(sql, flat)
            )
        return ids

    def update(self, states: list[dict[str, Any]]) -> None:
        """Changed holders: every column an import may change, from the state the diff left."""
        if not states:
            return
        names = ("id", *self.columns)
        if self.postgres:
            types = {**self.pg_types, "id": "integer"}
            sets = ", ".join(f"{n} = v.{n}" for n in self.columns)
            sql = (
                f"UPDATE offer_holders AS h SET {sets}, updated_at = CAST(:now AS timestamptz) "
                f"FROM unnest({self._unnest(names, types)}) AS v({', '.join(names)}) WHERE h.id = v.id"
            )
            self.session.execute(text(sql), {**self._pg_arrays(names, states), "now": self.now})
            return
        sets = ", ".join(f"{n} = ?" for n in self.columns)
        sql = f"UPDATE offer_holders SET {sets}, updated_at = ? WHERE id = ?"
        records = [(*record[1:], self.sqlite_now, record[0]) for record in self._sqlite_rows(names, states)]
        self.session.connection().exec_driver_sql(sql, records)

    def changes(self, rows: list[tuple[int, str, Any, Any, str | None]]) -> None:
        """The HolderChange rows: (holder_id, field, old, new, note), all at ``now`` from ``source``."""
        if not rows:
            return
        if self.postgres:
            at, source = self.now, self.source
            self._copy(
                "holder_changes",
                ("holder_id", "field", "old_value", "new_value", "note", "at", "source"),
                (
                    (holder_id, name, _text(old), _text(new), note, at, source)
                    for holder_id, name, old, new, note in rows
                ),
            )
            return
        sql = (
            "INSERT INTO holder_changes (holder_id, field, old_value, new_value, note, at, source) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        records = [
            (holder_id, name, _text(old), _text(new), note, self.sqlite_now, self.source)
            for holder_id, name, old, new, note in rows
        ]
        self.session.connection().exec_driver_sql(sql, records)


def import_holders(
    session: Session, rows: Iterable[HolderRow], *, now: datetime, source: str = "import", actor: str = "cli"
) -> ImportSummary:
    """Upsert by external_id; unchanged rows touch nothing. The caller commits (all or nothing).

    Set-based, chunk by chunk (no ORM object per row): one lookup of the existing holders as plain rows,
    the diff in Python, one insert of the new holders, one update of the changed ones, one insert of
    the change rows. A row for someone whose data was erased on request is skipped, never re-created."""
    from followup.holders.erasure import erased_ids

    rows = list(rows)
    session.flush()  # pending ORM changes first: the lookups below must see them
    erased = erased_ids(session, [r.external_id for r in rows])
    if erased:
        rows = [r for r in rows if r.external_id not in erased]
    # pool members are matched by email as they were before this import wrote anything
    earlier_by_email = _pool_members_by_email(session, {r.email.lower() for r in rows if r.email})
    changes = _Changes(now, source)
    writer = _Writer(session, now, source)
    read_columns = [OfferHolder.id, OfferHolder.external_id, *(writer.table.c[n] for n in writer.columns)]
    size = max(1, min(IMPORT_CHUNK, LOOKUP_CHUNK))
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        wanted = [r.external_id for r in chunk]
        if writer.postgres:  # one array, not thousands of placeholders for psycopg to parse
            where = OfferHolder.external_id == any_(bindparam("ids", wanted, type_=ARRAY(String)))
        else:
            where = OfferHolder.external_id.in_(wanted)
        query = select(*read_columns).where(where)
        existing = {m["external_id"]: dict(m) for m in session.execute(query).mappings()}
        new_states: list[dict[str, Any]] = []
        new_changes: list[tuple[str, str, Any, Any, str | None]] = []
        changed_states: list[dict[str, Any]] = []
        change_rows: list[tuple[int, str, Any, Any, str | None]] = []
        for row in chunk:
            state = existing.get(row.external_id)
            if state is None:
                earlier = earlier_by_email.get((row.email or "").lower())
                new = _new_state(row, earlier)
                eid = row.external_id
                new_changes.append((eid, "created", None, row.status, None))
                consent = _consent_change(new, row, now.date())
                if consent is not None:
                    new_changes.append((eid, "consent_date", *consent))
                    changes.consents += 1
                if earlier is not None:
                    new_changes.append((eid, "reapplied", earlier[1], row.status, "人材プールからの再応募"))
                    changes.reapplied += 1
                new_states.append(new)
                changes.created += 1
                changes.details.append((eid, "created"))
                continue
            out: list[tuple[str, Any, Any, str | None]] = []
            if _diff(state, row, changes, out):
                changed_states.append(state)
            holder_id = state["id"]
            change_rows.extend((holder_id, *change) for change in out)
        ids = writer.insert(new_states)
        change_rows.extend((ids[eid], *change) for eid, *change in new_changes)
        writer.update(changed_states)
        writer.changes(change_rows)
    for obj in list(session.identity_map.values()):
        if isinstance(obj, OfferHolder):
            session.expire(obj)  # written around the ORM: loaded holders re-read their rows
    session.add(
        AuditEntry(
            at=now,
            actor=actor,
            action="import_holders",
            detail={
                "created": changes.created,
                "updated": changes.updated,
                "unchanged": changes.unchanged,
                "reapplied": changes.reapplied,
                # consent given or withdrawn in the file's 同意 / 同意日 columns (特定電子メール法 records)
                "consent_changes": changes.consents,
            },
        )
    )
    return ImportSummary(
        changes.created,
        changes.updated,
        changes.unchanged,
        tuple(sorted(erased)),
        tuple(changes.details),
        tuple(changes.ended),
        changes.reapplied,
    )


# ids per IN list: PostgreSQL allows 65,535 bind parameters a statement, older SQLite builds 32,766
LOOKUP_CHUNK = 30_000


def pending_touches_of(session: Session, holder_ids: Iterable[int]) -> int:
    """How many not-yet-done touches these holders have (what the next planning tick cancels)."""
    from sqlalchemy import func

    from followup.db.models import Touch

    ids = list(holder_ids)
    total = 0
    for start in range(0, len(ids), LOOKUP_CHUNK):
        chunk = ids[start : start + LOOKUP_CHUNK]
        query = select(func.count()).where(
            Touch.holder_id.in_(chunk), Touch.status.in_(("planned", "reminded"))
        )
        total += int(session.scalar(query) or 0)
    return total


def no_cadence_rows(rows: Iterable[HolderRow], policy: Policy) -> list[tuple[HolderRow, str]]:
    """Active rows that no cadence applies to, with a sentence naming the tracks that do have one."""
    tracks = sorted({t for c in policy.cadences.values() for t in c.applies_to.tracks})
    found = []
    for row in rows:
        if row.status in ("offered", "accepted") and policy.cadence_for(row.track, row.department) is None:
            found.append(
                (
                    row,
                    f"採用区分 {row.track!r} に合うケイデンスがありません。"
                    "取り込みましたが自動連絡は送られず、no_cadence のフラグが立ちます "
                    f"(no cadence for track {row.track!r}; "
                    f"tracks with a cadence: {', '.join(tracks) or 'none'})",
                )
            )
    return found


def find_holder(session: Session, external_id: str) -> OfferHolder | None:
    return session.scalar(select(OfferHolder).where(OfferHolder.external_id == external_id))
