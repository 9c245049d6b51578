"""``followup tasks``: 提出状況 counts, the per-task list as a CSV Excel opens (CP932 / UTF-8 with BOM,
Japanese headers), marking receipt, and an edited CSV imported back all or nothing with FILE:LINE errors."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

from sqlalchemy import select

from followup.db.models import AuditEntry, OfferHolder, TaskStatus
from followup.db.session import dispose_engines, get_engine, session_scope
from tests.cli import run_followup

HEADERS = ["内定者ID", "氏名", "部署", "期限", "状況", "更新日時", "更新者", "メモ"]


def _setup(tmp_path: Path) -> dict[str, str]:
    url = f"sqlite:///{tmp_path}/followup.db"
    get_engine(url)
    with session_scope(url) as session:
        for i, (name, track) in enumerate(
            [
                ("山田 花子", "new_grad"),
                ("佐藤 太郎", "new_grad"),
                ("髙橋 一", "new_grad"),
                ("鈴木 次郎", "mid_career"),
            ]
        ):
            session.add(
                OfferHolder(
                    external_id=f"NG-{i}",
                    name=name,
                    track=track,
                    department="営業部",
                    offer_date=date(2026, 6, 1),
                    start_date=date(2027, 4, 1),
                    status="accepted",
                    accepted_date=date(2026, 6, 10),
                )
            )
    dispose_engines()
    return {"FOLLOWUP_DATABASE_URL": url, "FOLLOWUP_VAR_DIR": str(tmp_path)}


def statuses(env: dict[str, str]) -> dict[tuple[str, str], str]:
    with session_scope(env["FOLLOWUP_DATABASE_URL"]) as session:
        rows = session.execute(
            select(OfferHolder.external_id, TaskStatus.task, TaskStatus.status).join(
                OfferHolder, OfferHolder.id == TaskStatus.holder_id
            )
        )
        return {(e, t): s for e, t, s in rows}


def test_mark_then_list_counts_each_status(tmp_path: Path) -> None:
    env = _setup(tmp_path)
    marked = run_followup("tasks", "mark", "guarantee", "NG-0", "--status", "提出済", env=env)
    assert marked.returncode == 0, marked.stderr
    assert "提出済" in marked.stdout
    assert run_followup("tasks", "mark", "guarantee", "NG-1", "--status", "exempt", env=env).returncode == 0
    listed = run_followup("tasks", "list", "--now", "2027-02-19T10:00", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    by_task = {r["task"]: r for r in json.loads(listed.stdout)}
    assert by_task["guarantee"] | {} == {
        "task": "guarantee",
        "title": "身元保証書",
        "due": "start - 6w",
        "pending": 2,
        "submitted": 1,
        "confirmed": 0,
        "exempt": 1,
        "overdue": 2,  # due 2/18: NG-2 and NG-3 are late on 2/19
    }
    assert by_task["health_check"]["pending"] == 3  # new graduates only
    assert by_task["acceptance_letter"]["submitted"] == 4  # accepting is submitting
    table = run_followup("tasks", "list", env=env)
    assert "未提出" in table.stdout and "身元保証書" in table.stdout
    with session_scope(env["FOLLOWUP_DATABASE_URL"]) as session:
        actions = [(a.action, a.detail["status"]) for a in session.scalars(select(AuditEntry))]
    assert actions == [("task_marked", "submitted"), ("task_marked", "exempt")]


def test_the_csv_opens_in_cp932_and_utf8_sig_with_japanese_headers(tmp_path: Path) -> None:
    env = _setup(tmp_path)
    run_followup("tasks", "mark", "guarantee", "NG-0", "--status", "confirmed", "--note", "原本受領", env=env)
    shown = run_followup("tasks", "show", "guarantee", "--csv", str(tmp_path / "c.csv"), env=env)
    assert shown.returncode == 0, shown.stderr
    rows = list(csv.reader(io.StringIO((tmp_path / "c.csv").read_bytes().decode("cp932"))))
    assert rows[0] == HEADERS
    assert rows[1][:5] == ["NG-0", "山田 花子", "営業部", "2027-02-18", "確認済"] and rows[1][7] == "原本受領"
    assert [(r[1], r[4]) for r in rows[1:]] == [
        ("山田 花子", "確認済"),
        ("佐藤 太郎", "未提出"),
        ("髙橋 一", "未提出"),
        ("鈴木 次郎", "未提出"),
    ]
    bom = run_followup(
        "tasks", "show", "guarantee", "--csv", str(tmp_path / "u.csv"), "--encoding", "utf-8-sig", env=env
    )
    assert bom.returncode == 0, bom.stderr
    assert (tmp_path / "u.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert list(csv.reader(io.StringIO((tmp_path / "u.csv").read_text(encoding="utf-8-sig")))) == rows


def test_an_edited_csv_is_imported_back_with_japanese_status_words(tmp_path: Path) -> None:
    env = _setup(tmp_path)
    run_followup(
        "tasks", "show", "guarantee", "--csv", str(tmp_path / "g.csv"), "--encoding", "utf-8-sig", env=env
    )
    rows = list(csv.reader(io.StringIO((tmp_path / "g.csv").read_text(encoding="utf-8-sig"))))
    rows[1][4], rows[2][4], rows[3][4] = "提出済", "対象外", "確認済"
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    (tmp_path / "edited.csv").write_text(buffer.getvalue(), encoding="cp932", errors="replace")
    done = run_followup("tasks", "import", "guarantee", "--csv", str(tmp_path / "edited.csv"), env=env)
    assert done.returncode == 0, done.stderr
    assert "3件を更新" in done.stdout
    assert statuses(env) == {
        ("NG-0", "guarantee"): "submitted",
        ("NG-1", "guarantee"): "exempt",
        ("NG-2", "guarantee"): "confirmed",
    }
    again = run_followup("tasks", "import", "guarantee", "--csv", str(tmp_path / "edited.csv"), env=env)
    assert "0件を更新" in again.stdout


def test_one_bad_line_and_nothing_is_imported(tmp_path: Path) -> None:
    env = _setup(tmp_path)
    path = tmp_path / "bad.csv"
    path.write_text("内定者ID,状況\nNG-0,提出済\nNG-1,もらった\nNG-9,確認済\n", encoding="utf-8")
    result = run_followup("tasks", "import", "guarantee", "--csv", str(path), env=env)
    assert result.returncode == 2
    assert f"{path}:3: 状況は 未提出・提出済・確認済・対象外 のいずれかです: 'もらった'" in result.stderr
    assert statuses(env) == {}
    path.write_text("内定者ID,状況\nNG-0,提出済\nNG-9,確認済\n", encoding="utf-8")
    result = run_followup("tasks", "import", "guarantee", "--csv", str(path), env=env)
    assert result.returncode == 2 and f"{path}:3: 内定者ID 'NG-9' が見つかりません" in result.stderr
    assert statuses(env) == {}


def test_unknown_task_or_status_exits_2(tmp_path: Path) -> None:
    env = _setup(tmp_path)
    result = run_followup("tasks", "show", "nope", env=env)
    assert result.returncode == 2 and "guarantee" in result.stderr
    result = run_followup("tasks", "mark", "guarantee", "NG-0", "--status", "done", env=env)
    assert result.returncode == 2 and "提出済" in result.stderr
    result = run_followup("tasks", "mark", "guarantee", "NG-404", "--status", "submitted", env=env)
    assert result.returncode == 2
