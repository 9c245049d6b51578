"""Where HR sees tasks besides ``followup tasks``: ``holders show --json`` (each task's due date and
status, a mark on the timeline) and ``simulate`` (when the reminders would go)."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from followup.db.models import OfferHolder
from followup.db.session import dispose_engines, get_engine, session_scope
from followup.tasks.store import set_status
from tests.cli import REPO, run_followup

TOKYO = ZoneInfo("Asia/Tokyo")


def test_holders_show_json_lists_tasks_with_due_dates_and_statuses(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/followup.db"
    get_engine(url)
    with session_scope(url) as session:
        holder = OfferHolder(
            external_id="NG-1",
            name="山田 花子",
            track="new_grad",
            offer_date=date(2026, 6, 1),
            start_date=date(2027, 4, 1),
            status="offered",
        )
        session.add(holder)
        session.flush()
        at = datetime(2027, 2, 16, 15, 0, tzinfo=TOKYO)
        set_status(session, holder.id, "guarantee", "confirmed", at=at, actor="suzuki", note="原本受領")
    dispose_engines()
    env = {"FOLLOWUP_DATABASE_URL": url, "FOLLOWUP_VAR_DIR": str(tmp_path)}
    shown = run_followup("holders", "show", "NG-1", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    tasks = {t["task"]: t for t in record["tasks"]}
    assert list(tasks) == ["acceptance_letter", "guarantee", "health_check", "elearning"]
    assert tasks["guarantee"] | {"changed_at": None} == {
        "task": "guarantee",
        "title": "身元保証書",
        "due": "2027-02-18",
        "status": "confirmed",
        "status_label": "確認済",
        "changed_at": None,
        "changed_by": "suzuki",
        "note": "原本受領",
    }
    assert (tasks["acceptance_letter"]["due"], tasks["acceptance_letter"]["status"]) == (
        "2026-06-15",
        "pending",
    )
    [item] = [i for i in record["items"] if i["type"] == "task"]
    assert item["summary"] == "身元保証書: 確認済(原本受領)"
    table = run_followup("holders", "show", "NG-1", env=env)
    assert "提出物" in table.stdout and "2/18(木)" in table.stdout and "確認済" in table.stdout


def test_simulate_shows_when_task_reminders_would_go(tmp_path: Path) -> None:
    env = {"FOLLOWUP_DATABASE_URL": f"sqlite:///{tmp_path}/f.db", "FOLLOWUP_VAR_DIR": str(tmp_path)}
    args = ("simulate", "--start", "2027-02-08", "--end", "2027-02-26", "--holders")
    result = run_followup(*args, str(REPO / "config" / "holders.sample.csv"), env=env)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert (
        "身元保証書のリマインド (guarantee: 期限 start - 6w、期限から -1w・-1bd・+2bd、未提出の方のみ)"
        in text
    )
    section = text.split("身元保証書のリマインド", 1)[1].split("健康診断書のリマインド", 1)[0]
    assert "2027-02-15" in section and "2027-02-17" in section and "2027-02-22" in section
