"""``followup pool list/show`` and the season report's pool figures, through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli import run_followup


def test_hr_imports_rejected_candidates_and_reads_the_pool_from_the_command_line(
    tmp_path: Path, sqlite_url: str
) -> None:
    env = {"FOLLOWUP_DATABASE_URL": sqlite_url, "FOLLOWUP_VAR_DIR": str(tmp_path), "SMTP_URL": ""}
    ats = tmp_path / "ats.csv"
    ats.write_text(
        "応募者ID,氏名,メールアドレス,ステータス,不採用日,同意\n"
        "R-1,佐藤 一郎,ichiro@example.jp,不採用,2026/06/01,はい\n"
        "R-2,鈴木 花子,hanako@example.jp,お見送り,2026/06/01,\n",
        encoding="cp932",
    )
    imported = run_followup("import-holders", str(ats), env=env)
    assert imported.returncode == 0, imported.stderr
    assert "人材プール: 不採用 2名(うち連絡への同意あり 1名)、再応募 0名" in imported.stdout
    late = tmp_path / "late.csv"  # a rejection from last month, imported today: no rejection mail
    late.write_text(
        "応募者ID,氏名,メールアドレス,ステータス,不採用日\nR-9,田中 次郎,jiro@example.jp,不採用,2026-04-01\n"
    )
    warned = run_followup("import-holders", str(late), "--dry-run", env=env)
    assert warned.returncode == 0 and "選考結果のご連絡は自動では送られません" in warned.stderr
    sent = run_followup("run", "--once", "--now", "2026-06-02T10:30:00+09:00", env=env)
    assert sent.returncode == 0, sent.stderr

    listed = run_followup("pool", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {r["external_id"]: r for r in json.loads(listed.stdout)}
    assert rows["R-1"]["consent_source"] == "import" and rows["R-2"]["consent_date"] is None
    assert rows["R-1"]["last_sent"] and rows["R-2"]["last_sent"]  # the rejection mail went to both
    without = run_followup("pool", "list", "--no-consent", env=env)
    assert "R-2" in without.stdout and "R-1" not in without.stdout and "人材プール 1名" in without.stdout
    shown = run_followup("pool", "show", "R-1", env=env)
    assert shown.returncode == 0 and "選考結果のご連絡" in shown.stdout and "送信済み" in shown.stdout
    assert run_followup("pool", "list", "--status", "offered", env=env).returncode == 2
    timeline = run_followup("holders", "show", "R-1", env=env)  # the person's own timeline, in Japanese
    assert timeline.returncode == 0, timeline.stderr
    assert "連絡への同意(人材プール)" in timeline.stdout and "選考結果のご連絡" in timeline.stdout

    report = run_followup(
        "report",
        "--season",
        "--now",
        "2026-06-30T12:00:00+09:00",
        "--out",
        str(tmp_path / "s.html"),
        "--json",
        env=env,
    )
    assert report.returncode == 0, report.stderr
    pool = json.loads(report.stdout)["pool"]
    assert (pool["size"], pool["consented"], pool["reached"], pool["sent_by_step"]) == (
        2,
        1,
        {"email": 2},
        {"rejection": 2},
    )
    assert json.loads(report.stdout)["outcomes"]["total"]["offers"] == 0  # 不採用 is not an offer
