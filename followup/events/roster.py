"""出欠一覧 as rows and as a CSV Excel in Japan opens (pure: rows in, bytes out).

Headers are Japanese; the encoding is CP932 (Excel's default in Japan) or UTF-8 with a BOM. A name
CP932 cannot spell (e.g. 髙 in some fonts, emoji) is refused rather than silently changed: the
caller is told to use ``utf-8-sig``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import datetime, tzinfo
from typing import Any, Protocol

from followup.labels import ATTENDANCE_LABELS, RSVP_LABELS

ENCODINGS = ("cp932", "utf-8-sig")
BASE_HEADERS = ("内定者ID", "氏名", "部署", "回答", "席番号", "回答日時", "回答方法", "当日の出欠")
SOURCE_LABELS = {"web": "リンク", "slack": "Slack", "line": "LINE", "hr": "人事", "": ""}


class Row(Protocol):
    @property
    def external_id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def department(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def seat(self) -> int | None: ...

    @property
    def answers(self) -> dict[str, Any]: ...

    @property
    def responded_at(self) -> datetime | None: ...

    @property
    def attendance(self) -> str: ...

    @property
    def source(self) -> str: ...


class Question(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def text(self) -> str: ...


def counts(rows: Iterable[Row]) -> dict[str, int]:
    """{attending, waitlisted, declined, maybe, unanswered, attended, absent} counts."""
    found = dict.fromkeys(
        ("attending", "waitlisted", "declined", "maybe", "unanswered", "attended", "absent"), 0
    )
    for row in rows:
        found[row.status or "unanswered"] += 1
        if row.attendance:
            found[row.attendance] += 1
    return found


def table(rows: Iterable[Row], questions: Sequence[Question], zone: tzinfo) -> list[list[str]]:
    """Header line, then one line per holder, in Japanese words."""
    lines = [[*BASE_HEADERS, *(q.text for q in questions)]]
    for row in rows:
        when = row.responded_at.astimezone(zone).strftime("%Y-%m-%d %H:%M") if row.responded_at else ""
        lines.append(
            [
                row.external_id,
                row.name,
                row.department,
                RSVP_LABELS.get(row.status, row.status),
                "" if row.seat is None else str(row.seat),
                when,
                SOURCE_LABELS.get(row.source, row.source),
                ATTENDANCE_LABELS.get(row.attendance, row.attendance),
                *(str(row.answers.get(q.id, "")) for q in questions),
            ]
        )
    return lines


def _safe(cell: str) -> str:
    """A cell Excel would run as a formula (=, +, -, @) is quoted with a leading apostrophe."""
    return "'" + cell if cell[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def to_csv(lines: Sequence[Sequence[str]], encoding: str = "cp932") -> bytes:
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}")
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    for line in lines:
        writer.writerow([_safe(cell) for cell in line])
    text = buffer.getvalue()
    try:
        return text.encode(encoding)
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end]
        raise ValueError(
            f"CP932 で表せない文字 {bad!r} があります: --encoding utf-8-sig を使ってください"
        ) from None
