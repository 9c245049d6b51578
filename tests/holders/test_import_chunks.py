"""Issue 18: the import looks existing holders up in chunks, so no statement passes the backends'
bind-parameter limits (PostgreSQL 65,535; older SQLite 32,766). At small scale the chunk is made tiny:
the counts and the rows must be what one lookup gives, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from followup.db.models import HolderChange, OfferHolder
from followup.db.session import session_scope
from followup.holders import importer
from followup.holders.importer import import_holders, pending_touches_of, read_holders_csv
from tests.cli import REPO

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
SAMPLE = REPO / "config" / "holders.sample.csv"


def rows_of(path: Path):  # type: ignore[no-untyped-def]
    rows, problems = read_holders_csv(path)
    assert not problems
    return rows


def test_chunked_lookups_give_the_same_counts(
    any_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "LOOKUP_CHUNK", 4)  # 30 sample rows: 8 lookups
    with session_scope(any_db_url) as session:
        first = import_holders(session, rows_of(SAMPLE), now=NOW)
    assert (first.created, first.updated, first.unchanged) == (30, 0, 0)

    with SAMPLE.open(encoding="utf-8", newline="") as f:
        table = list(csv.reader(f))
    header = table[0]
    for row in table[1:6]:  # five holders move their start date, one of each chunk or so
        row[header.index("start_date")] = "2027-10-01"
    changed = tmp_path / "changed.csv"
    with changed.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(table)
    with session_scope(any_db_url) as session:
        second = import_holders(session, rows_of(changed), now=NOW)
        assert (second.created, second.updated, second.unchanged) == (0, 5, 25)
        assert session.scalar(select(func.count()).select_from(OfferHolder)) == 30
        moved = session.scalar(
            select(func.count()).select_from(HolderChange).where(HolderChange.field == "start_date")
        )
        assert moved == 5
        ids = list(session.scalars(select(OfferHolder.id)))
        assert pending_touches_of(session, ids) == 0  # counted chunk by chunk, none planned yet
