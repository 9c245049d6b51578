"""The set-based import (issue 18) keeps the per-row ORM import's behaviour, on SQLite and PostgreSQL.

The reference is the per-row path as it was (tests/import_reference.py): the same sequence of files
imported through both must leave the same holders, the same HolderChange rows (in the same order per
holder) and report the same created/updated/unchanged counts. Small chunks force several statements.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from followup.db.models import AuditEntry, HolderChange, OfferHolder
from followup.db.session import dispose_engines, session_scope
from followup.holders import importer
from followup.holders.importer import ImportSummary, import_holders, read_holders_csv
from tests.import_reference import import_holders_per_row

JST = timezone(timedelta(hours=9))
NOW = datetime(2026, 6, 1, 10, 0, tzinfo=JST)
FULL = [
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
    "accepted_date",
    "decline_reason",
]
STATUSES = ["offered", "accepted", "offered", "joined", "内定", "承諾"]


def _row(i: int, **over: str) -> dict[str, str]:
    row = {
        "external_id": f"H{i:04d}",
        "name": f"内定者 {i}",
        "email": f"h{i}@example.jp" if i % 5 else "",
        "line_user_id": f"U{i:08d}" if i % 3 == 0 or i % 5 == 0 else "",
        "slack_user_id": "",
        "track": "中途" if i % 4 == 0 else "new_grad",
        "department": "営業部" if i % 2 else "",
        "offer_date": "2026-04-15",
        "start_date": "2027/4/1",
        "status": STATUSES[i % len(STATUSES)],
        "mentor_email": "mentor@example.co.jp" if i % 7 else "",
        "accepted_date": "",
        "decline_reason": "",
    }
    row.update(over)
    return row


def _write(path: Path, rows: list[dict[str, str]], header: list[str] = FULL) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([[r[k] for k in header] for r in rows])
    return path


def _files(tmp: Path) -> list[Path]:
    first = [_row(i) for i in range(40)]
    # without status, mentor or accepted_date: those fields must stay as they are
    partial = [
        _row(i, name=f"内定者 {i} (改)" if i % 6 == 0 else f"内定者 {i}", start_date="2027-04-05")
        for i in range(0, 40, 2)
    ]
    partial_header = [
        c for c in FULL if c not in ("status", "mentor_email", "accepted_date", "decline_reason")
    ]
    third = []
    for i in range(50):  # 40..49 are new
        over: dict[str, str] = {}
        if i % 10 == 1:
            over = {"status": "declined", "decline_reason": "他社に決定"}
        elif i % 10 == 2:
            over = {"status": "accepted"}  # offered → accepted without a date: the import's day
        elif i % 10 == 3:
            over = {"status": "accepted", "accepted_date": "2026-05-20"}
        elif i % 10 == 4:
            over = {"line_user_id": "", "email": f"new{i}@example.jp"}
        elif i % 10 == 5:
            over = {"track": "new_grad", "department": "開発部", "offer_date": "2026-04-01"}
        third.append(_row(i, **over))
    return [
        _write(tmp / "1.csv", first),
        _write(tmp / "2.csv", partial, partial_header),
        _write(tmp / "3.csv", third),
        _write(tmp / "4.csv", third),  # all unchanged
    ]


def _snapshot(session: Session) -> tuple[list[tuple[Any, ...]], dict[str, list[tuple[Any, ...]]]]:
    holder_columns = [c for c in OfferHolder.__table__.columns if c.name != "id"]
    holders = sorted(tuple(r) for r in session.execute(select(*holder_columns)))
    changes: dict[str, list[tuple[Any, ...]]] = {}
    query = (
        select(
            OfferHolder.external_id,
            HolderChange.at,
            HolderChange.field,
            HolderChange.old_value,
            HolderChange.new_value,
            HolderChange.note,
            HolderChange.source,
        )
        .join(OfferHolder, OfferHolder.id == HolderChange.holder_id)
        .order_by(HolderChange.id)
    )
    for external_id, *rest in session.execute(query):
        changes.setdefault(external_id, []).append(tuple(rest))
    return holders, changes


Importer = Callable[..., ImportSummary]


def _run(url: str, files: list[Path], run: Importer) -> tuple[list[tuple[int, int, int]], Any]:
    counts = []
    for n, path in enumerate(files):
        rows, problems = read_holders_csv(path)
        assert problems == []
        with session_scope(url) as session:
            summary = run(session, rows, now=NOW + timedelta(days=n), source=f"import:{path.name}")
            counts.append((summary.created, summary.updated, summary.unchanged))
    with session_scope(url) as session:
        audits = list(session.scalars(select(AuditEntry.detail).where(AuditEntry.action == "import_holders")))
        return counts, (_snapshot(session), audits)


@pytest.fixture
def two_dbs(any_db_url: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if any_db_url.startswith("sqlite"):
        other = f"sqlite:///{tmp_path}/reference.db"
    else:
        other = request.getfixturevalue("postgres_server").create_database(f"r_{uuid.uuid4().hex[:12]}")
    yield any_db_url, other
    dispose_engines()


def test_bulk_import_gives_the_same_holders_changes_and_counts_as_the_per_row_import(
    two_dbs: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bulk_url, reference_url = two_dbs
    files = _files(tmp_path)
    reference_counts, reference_state = _run(reference_url, files, import_holders_per_row)
    # 3 rows per statement: every file spans several chunks
    monkeypatch.setattr(importer, "_MAX_PARAMETERS", {"sqlite": 60, "postgresql": 60})
    bulk_counts, bulk_state = _run(bulk_url, files, import_holders)
    assert bulk_counts == reference_counts
    assert reference_counts[0] == (40, 0, 0) and reference_counts[-1] == (0, 0, 50)
    assert reference_counts[1][1] > 0 and reference_counts[2][0] == 10 and reference_counts[2][1] > 0
    assert bulk_state == reference_state
    (_, changes), _ = bulk_state
    assert ("status", "offered", "accepted") in {c[1:4] for c in changes["H0002"]}


def test_bulk_import_is_all_or_nothing_when_a_later_chunk_fails(
    any_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows, _ = read_holders_csv(_write(tmp_path / "h.csv", [_row(i) for i in range(30)]))
    monkeypatch.setattr(importer, "_MAX_PARAMETERS", {"sqlite": 60, "postgresql": 60})
    calls = {"n": 0}
    original = Session.execute

    def failing(self: Session, statement: Any, *args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 8:  # some chunks are written by now
            raise RuntimeError("the database went away")
        return original(self, statement, *args, **kwargs)

    with pytest.raises(RuntimeError), session_scope(any_db_url) as session:
        monkeypatch.setattr(Session, "execute", failing)
        import_holders(session, rows, now=NOW)
    monkeypatch.setattr(Session, "execute", original)
    with session_scope(any_db_url) as session:
        assert session.scalars(select(OfferHolder.id)).all() == []
        assert session.scalars(select(HolderChange.id)).all() == []


def test_bulk_import_stays_under_the_bind_parameter_limit(any_db_url: str, tmp_path: Path) -> None:
    """4,000 rows × 17 columns is over PostgreSQL's 65,535 parameters in one statement."""
    rows, _ = read_holders_csv(_write(tmp_path / "h.csv", [_row(i) for i in range(4000)]))
    with session_scope(any_db_url) as session:
        summary = import_holders(session, rows, now=NOW)
    assert (summary.created, summary.updated, summary.unchanged) == (4000, 0, 0)
    with session_scope(any_db_url) as session:
        summary = import_holders(session, rows, now=NOW)
        assert (summary.created, summary.updated, summary.unchanged) == (0, 0, 4000)
        assert len(session.scalars(select(HolderChange.id)).all()) == 4000
