"""Importing the ATS export: sample file, CP932 with Japanese headers, bad rows (nothing imported)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.cli import REPO, run_followup

SAMPLE = REPO / "config" / "holders.sample.csv"
JAPANESE_HEADER = [
    "内定者ID",
    "氏名",
    "メールアドレス",
    "LINEユーザーID",
    "SlackユーザーID",
    "採用区分",
    "配属予定部署",
    "内定日",
    "入社予定日",
    "ステータス",
    "メンター",
]


def sample_rows() -> list[list[str]]:
    with SAMPLE.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def write_csv(path: Path, rows: list[list[str]], encoding: str) -> Path:
    with path.open("w", encoding=encoding, newline="") as f:
        csv.writer(f, lineterminator="\r\n").writerows(rows)
    return path


def env_for(tmp_path: Path) -> dict[str, str]:
    return {"FOLLOWUP_DATABASE_URL": f"sqlite:///{tmp_path}/followup.db", "FOLLOWUP_VAR_DIR": str(tmp_path)}


def holders_json(env: dict[str, str]) -> list[dict[str, object]]:
    result = run_followup("holders", "list", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_it_imports_the_sample_then_reports_all_unchanged(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    first = run_followup("import-holders", str(SAMPLE), env=env)
    assert first.returncode == 0, first.stderr
    assert "created 30, updated 0, unchanged 0" in first.stdout
    second = run_followup("import-holders", str(SAMPLE), env=env)
    assert "created 0, updated 0, unchanged 30" in second.stdout
    holders = holders_json(env)
    assert len(holders) == 30
    yamada = next(h for h in holders if h["external_id"] == "NG-2027-001")
    assert yamada["name"] == "山田 花子" and yamada["start_date"] == "2027-04-01"


def test_a_cp932_file_with_japanese_headers_and_slashed_dates_updates_holders(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    run_followup("import-holders", str(SAMPLE), env=env)
    rows = sample_rows()
    rows[0] = JAPANESE_HEADER
    rows[1][8] = "2027/4/5"  # start date moved, Excel style
    rows[2][9] = "辞退"  # declined, in Japanese
    rows[3][5] = "新卒"
    path = write_csv(tmp_path / "excel.csv", rows, "cp932")
    result = run_followup("import-holders", str(path), env=env)
    assert result.returncode == 0, result.stderr
    assert "created 0, updated 2, unchanged 28" in result.stdout
    holders = {h["external_id"]: h for h in holders_json(env)}
    assert holders["NG-2027-001"]["start_date"] == "2027-04-05"
    assert holders["NG-2027-002"]["status"] == "declined"


def test_a_utf8_bom_file_is_read_without_flags(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    path = write_csv(tmp_path / "bom.csv", sample_rows(), "utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    result = run_followup("import-holders", str(path), env=env)
    assert "created 30" in result.stdout, result.stderr


def broken_rows() -> list[list[str]]:
    rows = sample_rows()
    rows[3][1] = ""  # line 4: missing name
    rows[5][7] = "2026/13/40"  # line 6: bad date
    rows[6][8] = "2025-01-01"  # line 7: start before offer
    rows[7][9] = "保留"  # line 8: unknown status
    rows[9][0] = rows[8][0]  # line 10: duplicate id
    return rows


def test_bad_rows_are_reported_by_line_and_nothing_is_imported(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    path = write_csv(tmp_path / "bad.csv", broken_rows(), "utf-8")
    result = run_followup("import-holders", str(path), env=env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert [line.split(":")[1] for line in lines] == ["4", "6", "7", "8", "10"]
    assert "name is empty" in lines[0] and "bad date" in lines[1] and "before offer_date" in lines[2]
    assert "unknown status" in lines[3] and "duplicate external_id" in lines[4]
    assert holders_json(env) == []


def test_skip_invalid_imports_the_good_rows_and_reports_the_rest(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    path = write_csv(tmp_path / "bad.csv", broken_rows(), "utf-8")
    result = run_followup("import-holders", str(path), "--skip-invalid", env=env)
    assert result.returncode == 0, result.stderr
    assert "created 25" in result.stdout and "skipped 5 rows" in result.stdout
    assert len(holders_json(env)) == 25
    assert result.stderr.count("skipped ") == 5


def test_an_unknown_column_is_refused_on_line_1_with_strict(tmp_path: Path) -> None:
    rows = sample_rows()
    rows[0][6] = "部門名"
    path = write_csv(tmp_path / "cols.csv", rows, "utf-8")
    result = run_followup("import-holders", str(path), "--strict", env=env_for(tmp_path))
    assert result.returncode == 2
    assert f"{path}:1: unknown column '部門名'" in result.stderr


def test_erase_needs_confirmation_then_removes_the_holder_from_lists(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    run_followup("import-holders", str(SAMPLE), env=env)
    refused = run_followup("holders", "erase", "NG-2027-001", env=env)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    erased = run_followup("holders", "erase", "NG-2027-001", "--yes", env=env)
    assert erased.returncode == 0, erased.stderr
    ids = {h["external_id"] for h in holders_json(env)}
    assert "NG-2027-001" not in ids and len(ids) == 30
    again = run_followup("import-holders", str(SAMPLE), env=env)  # the next ATS export still lists her
    assert again.returncode == 0 and "NG-2027-001: personal data was erased" in again.stderr
    assert "NG-2027-001" not in {h["external_id"] for h in holders_json(env)}
    assert not any(h["name"] == "山田 花子" for h in holders_json(env))


def test_the_audit_log_records_imports_and_policy_changes(tmp_path: Path) -> None:
    from sqlalchemy import select

    from followup.config import load_policy
    from followup.db.models import AuditEntry
    from followup.db.session import session_scope
    from followup.ops.audit import record_policy

    env = env_for(tmp_path)
    run_followup("import-holders", str(SAMPLE), env=env)
    run_followup("run", "--once", "--now", "2026-06-01T10:00+09:00", env=env)
    url = env["FOLLOWUP_DATABASE_URL"]
    config = tmp_path / "followup.yaml"
    config.write_text((REPO / "config" / "followup.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    loaded = load_policy(config, check_templates=False)
    from datetime import UTC, datetime

    with session_scope(url) as session:
        assert not record_policy(session, loaded, now=datetime.now(UTC))  # same content as the run's
    config.write_text(
        config.read_text(encoding="utf-8").replace("plan_every_minutes: 5", "plan_every_minutes: 10")
    )
    with session_scope(url) as session:
        assert record_policy(session, load_policy(config, check_templates=False), now=datetime.now(UTC))
        actions = session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)).all()
    assert actions == ["import_holders", "config_changed", "config_changed"]


def test_a_reimport_without_some_columns_leaves_those_fields_alone(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    run_followup("import-holders", str(SAMPLE), env=env)
    assert run_followup("holders", "set-status", "NG-2027-003", "accepted", env=env).returncode == 0
    # an export without status, track, mentor or chat ids: external_id, name, email, offer_date, start_date
    rows = [[r[0], r[1], r[2], r[7], r[8]] for r in sample_rows()]
    rows[3][1] = "鈴木 美咲(旧姓 山本)"
    result = run_followup("import-holders", str(write_csv(tmp_path / "few.csv", rows, "utf-8")), env=env)
    assert "created 0, updated 1, unchanged 29" in result.stdout, result.stdout + result.stderr
    holders = {h["external_id"]: h for h in holders_json(env)}
    assert holders["NG-2027-003"]["status"] == "accepted"  # not reset to offered
    assert holders["NG-2027-003"]["name"] == "鈴木 美咲(旧姓 山本)"
    assert holders["NG-2027-003"]["mentor_email"] == "ito.s@example.co.jp"  # not cleared


def test_a_value_longer_than_its_column_is_a_row_error_on_every_database(tmp_path: Path) -> None:
    rows = sample_rows()
    rows[2][0] = "X" * 65
    result = run_followup(
        "import-holders", str(write_csv(tmp_path / "long.csv", rows, "utf-8")), env=env_for(tmp_path)
    )
    assert result.returncode == 2
    assert "long.csv:3: external_id is longer than 64 characters" in result.stderr
