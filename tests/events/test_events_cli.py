"""``followup events``: the 出欠一覧 as a CSV Excel opens (CP932 / UTF-8 with BOM, Japanese headers),
attendance recorded from that CSV edited by HR, and answers taken by phone."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from followup.config import load_policy
from followup.db.models import OfferHolder
from followup.db.session import dispose_engines, get_engine, session_scope
from followup.events.store import event_states, record_rsvp
from tests.cli import REPO, run_followup

POLICY = load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy
AT = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
HEADERS = [
    "内定者ID",
    "氏名",
    "部署",
    "回答",
    "席番号",
    "回答日時",
    "回答方法",
    "当日の出欠",
    "食物アレルギーや苦手な食べ物があればお知らせください",
]


def _add_holders(session: Session, numbered: Iterable[tuple[int, str]]) -> list[int]:
    """Accepted new graduates NG-i of 営業部; their ids."""
    ids = []
    for i, name in numbered:
        holder = OfferHolder(
            external_id=f"NG-{i}",
            name=name,
            track="new_grad",
            department="営業部",
            offer_date=date(2026, 6, 1),
            start_date=date(2027, 4, 1),
            status="accepted",
        )
        session.add(holder)
        session.flush()
        ids.append(holder.id)
    return ids


def _setup(tmp_path: Path) -> tuple[dict[str, str], list[int]]:
    url = f"sqlite:///{tmp_path}/followup.db"
    get_engine(url)
    with session_scope(url) as session:
        ids = _add_holders(session, enumerate(["山田 花子", "佐藤 太郎", "髙橋 一", "鈴木 次郎"]))
    event = POLICY.events["konshinkai"]
    record_rsvp(
        lambda: session_scope(url),
        ids[0],
        "konshinkai",
        event,
        "attending",
        at=AT,
        answers={"allergies": "えび・かに"},
    )
    record_rsvp(lambda: session_scope(url), ids[1], "konshinkai", event, "declined", at=AT)
    record_rsvp(lambda: session_scope(url), ids[2], "konshinkai", event, "attending", at=AT)
    dispose_engines()
    return {"FOLLOWUP_DATABASE_URL": url, "FOLLOWUP_VAR_DIR": str(tmp_path)}, ids


def test_the_roster_csv_opens_in_cp932_and_utf8_bom_with_japanese_headers(tmp_path: Path) -> None:
    env, _ = _setup(tmp_path)
    for codec in ("cp932", "utf-8-sig"):
        target = tmp_path / f"roster-{codec}.csv"
        result = run_followup(
            "events", "show", "konshinkai", "--csv", str(target), "--encoding", codec, env=env
        )
        assert result.returncode == 0, result.stderr
        raw = target.read_bytes()
        assert raw.startswith(b"\xef\xbb\xbf") == (codec == "utf-8-sig")
        rows = list(csv.reader(io.StringIO(raw.decode(codec))))
        assert rows[0] == HEADERS
        by_id = {r[0]: r for r in rows[1:]}
        assert by_id["NG-0"][1:5] == ["山田 花子", "営業部", "出席", "1"]
        assert by_id["NG-0"][8] == "えび・かに"
        assert by_id["NG-1"][3] == "欠席" and by_id["NG-2"][1] == "髙橋 一"  # 髙 is in CP932 (IBM ext.)
        assert by_id["NG-3"][3] == "未回答"  # invited, no answer yet


def test_attendance_from_the_edited_roster_csv_and_the_counts(tmp_path: Path) -> None:
    env, ids = _setup(tmp_path)
    target = tmp_path / "roster.csv"
    assert run_followup("events", "show", "konshinkai", "--csv", str(target), env=env).returncode == 0
    rows = list(csv.reader(io.StringIO(target.read_bytes().decode("cp932"))))
    for r in rows[1:]:  # HR fills in the day's column in Excel
        r[7] = {"NG-0": "出席", "NG-2": "欠席"}.get(r[0], "")
    edited = io.StringIO()
    csv.writer(edited).writerows(rows)
    target.write_bytes(edited.getvalue().encode("cp932"))
    result = run_followup("events", "attendance", "konshinkai", "--csv", str(target), env=env)
    assert result.returncode == 0, result.stderr
    assert "2件を記録" in result.stdout
    with session_scope(env["FOLLOWUP_DATABASE_URL"]) as session:
        states = event_states(session)
    assert states[ids[0]] == {"konshinkai": "attended"} and states[ids[2]] == {"konshinkai": "absent"}
    listed = json.loads(run_followup("events", "list", "--json", env=env).stdout)
    konshinkai = next(e for e in listed if e["event"] == "konshinkai")
    assert (konshinkai["attending"], konshinkai["declined"], konshinkai["unanswered"]) == (2, 1, 1)
    assert (konshinkai["attended"], konshinkai["absent"]) == (1, 1)
    dispose_engines()


def test_an_answer_taken_by_phone_and_an_unknown_holder(tmp_path: Path) -> None:
    env, ids = _setup(tmp_path)
    ok = run_followup("events", "rsvp", "konshinkai", "NG-3", "未定", env=env)
    assert ok.returncode == 0, ok.stderr
    bad = run_followup("events", "attendance", "konshinkai", "--holder", "NG-404", "--present", env=env)
    assert bad.returncode == 2 and "NG-404" in bad.stderr
    with session_scope(env["FOLLOWUP_DATABASE_URL"]) as session:
        assert event_states(session)[ids[3]] == {"konshinkai": "maybe"}
    dispose_engines()


def test_the_unanswered_are_listed_in_id_order_whatever_the_lookup_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large audience is looked up in IN lists under the bind-parameter limit; here 2 ids a list."""
    from followup.db import chunks
    from followup.events.store import roster

    env, ids = _setup(tmp_path)
    url = env["FOLLOWUP_DATABASE_URL"]
    with session_scope(url) as session:
        ids += _add_holders(session, ((i, f"内定者 {i}") for i in range(4, 9)))
    monkeypatch.setattr(chunks, "ID_CHUNK", 2)
    with session_scope(url) as session:
        rows = roster(session, "konshinkai", list(reversed(ids)))
    dispose_engines()
    assert [r.external_id for r in rows if not r.status] == [f"NG-{i}" for i in (3, 4, 5, 6, 7, 8)]
    assert len(rows) == 9
