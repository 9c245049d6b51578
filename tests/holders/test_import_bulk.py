"""Issue 18: the set-based import does exactly what the per-row import did (tests/import_reference.py).

Random files (seeded) go through both into fresh databases, on SQLite and on PostgreSQL: a first file
of new holders, then a file of updates (status changes with a decline reason, moved start dates,
contact changes, consent yes and no, re-applications of rejected candidates by external id and by
email, erased ids), then a file without some columns. Summaries, holder rows and change rows must be
identical (ids aside). The chunks are also made tiny, and a failure mid-import must leave nothing.
"""

from __future__ import annotations

import csv
import random
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from followup.db.models import AuditEntry, HolderChange, OfferHolder
from followup.db.session import dispose_engines, session_scope
from followup.holders import importer
from followup.holders.erasure import erased_id_hash
from followup.holders.importer import ImportSummary, import_holders, read_holders_file
from tests.import_reference import import_holders_reference

TOKYO = ZoneInfo("Asia/Tokyo")
FIRST_AT = datetime(2026, 5, 1, 9, 0, tzinfo=TOKYO)
SECOND_AT = datetime(2026, 6, 1, 9, 0, tzinfo=TOKYO)
THIRD_AT = datetime(2026, 6, 15, 9, 0, tzinfo=TOKYO)
HEADER = [
    "external_id", "name", "email", "line_user_id", "slack_user_id", "track", "department",
    "offer_date", "start_date", "status", "mentor_email", "accepted_date", "decline_reason", "phone",
    "rejected_date", "consent", "consent_date",
]  # fmt: skip
N = 120
JAPANESE_STATUS = {"offered": "内定", "accepted": "承諾"}


def _person(rng: random.Random, i: int) -> dict[str, str]:
    status = rng.choice(["offered", "offered", "accepted", "rejected", "declined", "joined"])
    offer = date(2026, 3, 1) + timedelta(days=rng.randrange(60))
    start = offer + timedelta(days=rng.randrange(30, 300))
    return {
        "external_id": f"H{i:05d}",
        "name": f"内定者 {i}",
        "email": f"h{i}@example.ac.jp" if rng.random() < 0.9 else "",
        "line_user_id": f"U{i:032x}" if rng.random() < 0.3 else "",
        "slack_user_id": f"U{i:010d}" if rng.random() < 0.2 else "",
        "track": rng.choice(["new_grad", "新卒", "mid_career"]),
        "department": rng.choice(["営業部", "開発部", ""]),
        "offer_date": offer.isoformat() if status != "rejected" or rng.random() < 0.5 else "",
        "start_date": start.strftime("%Y/%m/%d") if status != "rejected" else "",
        "status": status if rng.random() < 0.7 else JAPANESE_STATUS.get(status, status),
        "mentor_email": f"m{i % 7}@example.co.jp" if rng.random() < 0.5 else "",
        "accepted_date": (offer + timedelta(days=3)).isoformat()
        if status == "accepted" and rng.random() < 0.5
        else "",
        "decline_reason": "他社に決めたため" if status == "declined" else "",
        "phone": f"090-0000-{i:04d}" if rng.random() < 0.3 else "",
        "rejected_date": (offer + timedelta(days=10)).isoformat() if status == "rejected" else "",
        "consent": rng.choice(["", "", "はい", "いいえ"]),
        "consent_date": "2026-04-01" if rng.random() < 0.2 else "",
    }


def first_file(seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    return [_person(rng, i) for i in range(1, N + 1)]


def second_file(seed: int, first: list[dict[str, str]]) -> list[dict[str, str]]:
    """Updates to most rows, a few new people, re-applications by id and by email."""
    rng = random.Random(seed + 1)
    rows: list[dict[str, str]] = []
    for person in first:
        row = dict(person)
        status = row["status"]
        roll = rng.random()
        if status in ("offered", "内定") and roll < 0.3:
            row["status"] = "declined"
            row["decline_reason"] = rng.choice(["他社に入社を決めたため", ""])
        elif status in ("offered", "内定") and roll < 0.5:
            row["status"] = "accepted"
        elif status in ("accepted", "承諾") and roll < 0.3:
            row["status"] = "withdrawn"
            row["decline_reason"] = "内定取消"
        elif status == "rejected" and roll < 0.4:  # applied again under the same id: an offer this time
            row["status"] = "offered"
            row["offer_date"] = "2026-05-20"
            row["start_date"] = "2027-04-01"
        elif status == "rejected" and roll < 0.6:  # rejected again, later
            row["rejected_date"] = "2026-05-25"
        if rng.random() < 0.2 and row["start_date"] and row["status"] != "rejected":
            row["start_date"] = "2027-10-01"
        if rng.random() < 0.15:
            row["email"] = f"new{person['external_id'].lower()}@example.jp"
        if rng.random() < 0.1:
            row["line_user_id"] = "" if row["line_user_id"] else f"Unew{person['external_id']}"
        if rng.random() < 0.1:
            row["phone"] = "080-1111-2222"
        row["consent"] = rng.choice(["", "", "はい", "いいえ", "1"])
        if rng.random() < 0.1:
            row["consent_date"] = "2026-05-15"
        if rng.random() < 0.1 and row["status"] == "accepted":
            row["accepted_date"] = "2026-05-30"
        if rng.random() < 0.1:
            row["department"] = "人事部"
        rows.append(row)
    # re-applications under a new id, matched by email to a rejected or declined person
    pool = [p for p in first if p["status"] in ("rejected", "declined") and p["email"]]
    for n, person in enumerate(pool[:4]):
        again = _person(rng, 9000 + n)
        again.update(email=person["email"].upper() if n % 2 else person["email"], status="offered")
        again.update(rejected_date="", decline_reason="", offer_date="2026-05-21", start_date="2027-04-01")
        rows.append(again)
    rows.extend(_person(rng, 5000 + n) for n in range(10))  # new people
    rows.extend(_person(rng, 7000 + n) for n in range(3))  # erased on request before this import
    return rows


def third_file(second: list[dict[str, str]]) -> list[dict[str, str]]:
    """No email, phone, status or consent column: those fields stay as they are."""
    keep = ("external_id", "name", "line_user_id", "track", "department", "offer_date", "start_date")
    rows = []
    for n, person in enumerate(second):
        if not person["start_date"] or not person["offer_date"]:
            continue
        row = {k: person[k] for k in keep}
        if n % 5 == 0:
            row["department"] = "総務部"
        if n % 7 == 0:
            row["start_date"] = "2027-11-01"
        rows.append(row)
    return rows


def write(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def erase(url: str, external_ids: list[str]) -> None:
    """What erase_holder leaves for the importer: the hash of the ATS id in the audit log."""
    with session_scope(url) as session:
        for external_id in external_ids:
            session.add(
                AuditEntry(
                    at=FIRST_AT,
                    actor="hr",
                    action="erase_holder",
                    detail={"id_hash": erased_id_hash(external_id)},
                )
            )


def snapshot(url: str, summary: ImportSummary) -> dict[str, Any]:
    """Everything an import leaves, with ids replaced by external ids."""
    with session_scope(url) as session:
        by_id = dict(session.execute(select(OfferHolder.id, OfferHolder.external_id)).tuples().all())
        holders = {}
        for holder in session.execute(select(OfferHolder.__table__)).mappings():
            record = dict(holder)
            record.pop("id")
            record["reapplied_from_id"] = by_id.get(record["reapplied_from_id"])
            holders[record["external_id"]] = record
        changes = sorted(
            (
                (by_id[c.holder_id], c.field, c.old_value, c.new_value, c.note, c.source, c.at.isoformat())
                for c in session.execute(select(HolderChange.__table__))
            ),
            key=repr,
        )
        audit = [
            (a.actor, a.detail)
            for a in session.scalars(select(AuditEntry).where(AuditEntry.action == "import_holders"))
        ]
    result = asdict(summary)
    result["ended"] = sorted(by_id[i] for i in summary.ended)
    return {"summary": result, "holders": holders, "changes": changes, "audit": audit}


@pytest.fixture(params=["sqlite", "postgres"])
def two_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two fresh databases on the same backend: one for the reference, one for the set-based import."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/reference.db", f"sqlite:///{tmp_path}/bulk.db"
    else:
        server = request.getfixturevalue("postgres_server")
        tag = uuid.uuid4().hex[:10]
        yield server.create_database(f"ref_{tag}"), server.create_database(f"bulk_{tag}")
    dispose_engines()


def import_both(urls: tuple[str, str], path: Path, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    rows = read_holders_file(path).rows
    results = []
    for url, function in zip(urls, (import_holders_reference, import_holders), strict=True):
        with session_scope(url) as session:
            summary = function(session, rows, now=now, source=f"import:{path.name}")
        results.append(snapshot(url, summary))
    return results[0], results[1]


def assert_same_imports(urls: tuple[str, str], tmp_path: Path, seed: int) -> None:
    first = first_file(seed)
    second = second_file(seed, first)
    reference, bulk = import_both(urls, write(tmp_path / "first.csv", first), FIRST_AT)
    assert reference["summary"]["created"] == N
    assert bulk == reference
    for url in urls:
        erase(url, [f"H{7000 + n:05d}" for n in range(3)])
    reference, bulk = import_both(urls, write(tmp_path / "second.csv", second), SECOND_AT)
    summary = reference["summary"]
    assert summary["updated"] > 30 and summary["unchanged"] > 0 and summary["created"] == 14
    assert summary["reapplied"] >= 4 and summary["ended"] and len(summary["erased"]) == 3
    fields = {c[1] for c in reference["changes"]}
    assert {"status", "start_date", "consent_date", "reapplied", "email", "line_user_id"} <= fields
    assert sum(1 for h in reference["holders"].values() if h["reapplied_from_id"]) >= 4
    assert bulk == reference
    reference, bulk = import_both(urls, write(tmp_path / "third.csv", third_file(second)), THIRD_AT)
    assert reference["summary"]["updated"] > 0
    assert bulk == reference


def test_the_set_based_import_does_what_the_per_row_import_did(
    two_urls: tuple[str, str], tmp_path: Path
) -> None:
    assert_same_imports(two_urls, tmp_path, seed=18)


def test_tiny_chunks_give_the_same_result(
    two_urls: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "IMPORT_CHUNK", 7)  # 120+ rows: many chunks, re-applications across them
    assert_same_imports(two_urls, tmp_path, seed=7)


def test_a_failure_mid_import_leaves_nothing(
    any_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = first_file(3)
    with session_scope(any_db_url) as session:
        import_holders(session, read_holders_file(write(tmp_path / "first.csv", first)).rows, now=FIRST_AT)
    before = snapshot(any_db_url, ImportSummary(0, 0, 0))
    rows = read_holders_file(write(tmp_path / "second.csv", second_file(3, first))).rows
    monkeypatch.setattr(importer, "IMPORT_CHUNK", 10)
    calls = []
    original = importer._Writer.changes

    def changes_then_fail(self: Any, change_rows: Any) -> None:
        calls.append(len(change_rows))
        if len(calls) == 5:  # four chunks written, then the database goes away
            raise RuntimeError("connection lost")
        original(self, change_rows)

    monkeypatch.setattr(importer._Writer, "changes", changes_then_fail)
    with pytest.raises(RuntimeError), session_scope(any_db_url) as session:
        import_holders(session, rows, now=SECOND_AT)
    assert len(calls) == 5
    assert snapshot(any_db_url, ImportSummary(0, 0, 0)) == before
    with session_scope(any_db_url) as session:
        assert session.scalar(select(func.count()).select_from(OfferHolder)) == N


def test_a_channel_without_a_column_keeps_its_address_in_the_json_column(
    two_urls: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from followup.channels import CHANNELS

    monkeypatch.setitem(CHANNELS, "webhook", "tests.channels.test_channel_registry.WebhookChannel")
    first = [
        {"external_id": f"W{i}", "name": f"N {i}", "offer_date": "2026-04-01", "start_date": "2027-04-01",
         "webhook_url": f"https://hooks.example/{i}" if i % 2 else ""}
        for i in range(6)
    ]  # fmt: skip
    second = [dict(row) for row in first]
    second[0]["webhook_url"] = "https://hooks.example/new"  # added
    second[1]["webhook_url"] = ""  # removed
    second[3]["webhook_url"] = "https://hooks.example/moved"  # changed
    reference, bulk = import_both(two_urls, write(tmp_path / "first.csv", first), FIRST_AT)
    assert reference["holders"]["W1"]["addresses"] == {"webhook_url": "https://hooks.example/1"}
    assert bulk == reference
    reference, bulk = import_both(two_urls, write(tmp_path / "second.csv", second), SECOND_AT)
    assert reference["summary"]["updated"] == 3
    assert reference["holders"]["W1"]["addresses"] is None
    assert bulk == reference
