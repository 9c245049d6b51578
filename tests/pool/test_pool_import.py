"""Rejected candidates from the same ATS export: Japanese headers and words, consent, re-applications."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from followup.db.models import AuditEntry, HolderChange, OfferHolder
from followup.db.session import session_scope
from followup.errors import ImportRowsError
from followup.holders.importer import import_holders, read_holders_file

TOKYO = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 5, 1, 9, 0, tzinfo=TOKYO)
HEADER = "応募者ID,氏名,メールアドレス,ステータス,不採用日,同意\n"


def write(tmp_path: Path, text: str, name: str = "ats.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_file_of_rejected_candidates_needs_no_offer_or_start_date(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "応募者ID,氏名,メールアドレス,ステータス,不採用日,同意\n"
        "R-1,佐藤 一郎,ichiro@example.jp,不採用,2026/5/1,はい\n"
        "R-2,鈴木 花子,hanako@example.jp,お見送り,2026年5月1日,\n",
    )
    rows = read_holders_file(path).rows
    assert [(r.status, r.rejected_date, r.consent) for r in rows] == [
        ("rejected", date(2026, 5, 1), True),
        ("rejected", date(2026, 5, 1), None),
    ]
    assert rows[0].offer_date == rows[0].start_date == date(2026, 5, 1)  # stands in for the missing dates


def test_a_rejected_row_without_its_date_or_with_an_unclear_consent_names_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "応募者ID,氏名,メールアドレス,ステータス,不採用日,同意\n"
        "R-1,佐藤 一郎,ichiro@example.jp,不採用,,はい\n"
        "R-2,鈴木 花子,hanako@example.jp,不採用,2026-05-01,たぶん\n",
    )
    with pytest.raises(ImportRowsError) as caught:
        read_holders_file(path)
    text = str(caught.value)
    assert "ats.csv:2: rejected_date (不採用日) is empty" in text
    assert "ats.csv:3: consent (同意) is neither yes nor no" in text


def test_consent_from_the_import_is_on_the_timeline_and_a_later_empty_cell_keeps_it(
    sqlite_url: str, tmp_path: Path
) -> None:
    first = write(
        tmp_path,
        HEADER + "R-1,佐藤 一郎,ichiro@example.jp,不採用,2026-05-01,○\n",
    )
    with session_scope(sqlite_url) as session:
        import_holders(session, read_holders_file(first).rows, now=NOW)
    again = write(
        tmp_path,
        HEADER + "R-1,佐藤 一郎,ichiro@example.jp,不採用,2026-05-01,\n",
        "again.csv",
    )
    with session_scope(sqlite_url) as session:
        import_holders(session, read_holders_file(again).rows, now=NOW)
    with session_scope(sqlite_url) as session:
        holder = session.scalars(select(OfferHolder)).one()
        assert (holder.consent_date, holder.consent_source) == (date(2026, 5, 1), "import")
        changes = [(c.field, c.new_value) for c in session.scalars(select(HolderChange))]
        assert ("consent_date", "2026-05-01") in changes
        audits = [
            a.detail["consent_changes"] for a in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        ]
        assert audits == [1, 0]  # recorded once, by the first file


def test_a_later_application_by_id_or_by_email_is_linked_to_the_pool_record(
    sqlite_url: str, tmp_path: Path
) -> None:
    first = write(
        tmp_path,
        "応募者ID,氏名,メールアドレス,ステータス,不採用日\n"
        "R-1,佐藤 一郎,ichiro@example.jp,不採用,2026-05-01\n"
        "R-2,鈴木 花子,Hanako@example.jp,不採用,2026-05-01\n",
    )
    with session_scope(sqlite_url) as session:
        import_holders(session, read_holders_file(first).rows, now=NOW)
    later = write(
        tmp_path,
        "応募者ID,氏名,メールアドレス,ステータス,内定日,入社予定日\n"
        "R-1,佐藤 一郎,ichiro@example.jp,内定,2027-01-15,2027-04-01\n"
        "C-9,鈴木 花子,hanako@example.jp,内定,2027-01-15,2027-04-01\n",
        "later.csv",
    )
    with session_scope(sqlite_url) as session:
        import_holders(session, read_holders_file(later).rows, now=datetime(2027, 1, 15, 9, 0, tzinfo=TOKYO))
    with session_scope(sqlite_url) as session:
        by_id = {h.external_id: h for h in session.scalars(select(OfferHolder))}
        assert by_id["R-1"].status == "offered" and by_id["R-1"].offer_date == date(2027, 1, 15)
        assert by_id["C-9"].reapplied_from_id == by_id["R-2"].id
        reapplied = sorted(
            (c.holder_id, c.old_value)
            for c in session.scalars(select(HolderChange).where(HolderChange.field == "reapplied"))
        )
        assert reapplied == sorted([(by_id["R-1"].id, "rejected"), (by_id["C-9"].id, "R-2")])
        audit = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert audit is not None and audit.detail["reapplied"] == 2
