"""提出状況 as rows and as a CSV Excel in Japan opens (pure: rows in, lines out), and the status words
HR writes in a CSV or on the command line (提出済・確認済・対象外, or the English keys)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, tzinfo

from followup.config.schema import TASK_STATUSES
from followup.labels import TASK_STATUS_LABELS

HEADERS = ("内定者ID", "氏名", "部署", "期限", "状況", "更新日時", "更新者", "メモ")
ID_HEADERS = ("内定者ID", "external_id")
STATUS_HEADERS = ("状況", "提出状況", "status")
NOTE_HEADERS = ("メモ", "備考", "note")
STATUS_WORDS: dict[str, str] = {
    **{status: status for status in TASK_STATUSES},
    **{word: status for status, word in TASK_STATUS_LABELS.items()},
    "提出済み": "submitted",
    "確認済み": "confirmed",
    "受講済": "submitted",
    "受講済み": "submitted",
}


def task_of(key: str) -> str | None:
    """The task name of a touch key (or key suffix) ``…:CADENCE:task:NAME:OFFSET``; None for others."""
    parts = key.split(":")
    return parts[-2] if len(parts) >= 4 and parts[-3] == "task" else None


def parse_status(text: str) -> str:
    """``提出済`` / ``submitted`` → ``submitted``; ValueError in Japanese for anything else."""
    found = STATUS_WORDS.get(text.strip())
    if found is None:
        raise ValueError(f"状況は 未提出・提出済・確認済・対象外 のいずれかです: {text.strip()!r}")
    return found


@dataclass(frozen=True)
class TaskRow:
    """One line of a task's 提出状況: a holder of the audience, their due date and status."""

    holder_id: int
    external_id: str
    name: str
    department: str
    due: date | None  # None: anchored on an acceptance date the holder does not have yet
    status: str  # pending | submitted | confirmed | exempt
    changed_at: datetime | None
    changed_by: str
    note: str
    late_from: date | None = None  # the business day after ``due``: from then a pending task is late


def counts(rows: Iterable[TaskRow]) -> dict[str, int]:
    """{pending, submitted, confirmed, exempt} counts."""
    found = dict.fromkeys(TASK_STATUSES, 0)
    for row in rows:
        found[row.status] += 1
    return found


def overdue(rows: Iterable[TaskRow], today: date) -> list[TaskRow]:
    """Pending rows late on ``today`` (organisation's time zone): from the business day after the due
    date, as ``task_overdue`` and the weekly report count."""
    return [r for r in rows if r.status == "pending" and r.late_from is not None and r.late_from <= today]


def table(rows: Iterable[TaskRow], zone: tzinfo) -> list[list[str]]:
    """Header line, then one line per holder, in Japanese words (the CSV ``tasks import`` reads back)."""
    lines = [list(HEADERS)]
    for row in rows:
        when = row.changed_at.astimezone(zone).strftime("%Y-%m-%d %H:%M") if row.changed_at else ""
        lines.append(
            [
                row.external_id,
                row.name,
                row.department,
                row.due.isoformat() if row.due else "",
                TASK_STATUS_LABELS.get(row.status, row.status),
                when,
                row.changed_by,
                row.note,
            ]
        )
    return lines
