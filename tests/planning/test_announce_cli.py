"""``followup announce``: a preview that writes nothing, then one touch per recipient with --yes, delivered
through the normal path (opt-outs, fallback, the send window) exactly once, and counted in the report."""

from __future__ import annotations

import email
import json
from datetime import datetime, timedelta
from email import policy as email_policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from followup.config.context import AppContext
from followup.config.settings import Settings
from followup.db.models import ChannelOptOut, OfferHolder, Touch
from followup.db.session import dispose_engines, get_engine
from followup.delivery.deliver import run_due
from followup.report import build_report, message_titles
from followup.report.render import render_text
from tests.cli import run_followup

REPO = Path(__file__).resolve().parents[2]
TOKYO = ZoneInfo("Asia/Tokyo")
NOW = "2026-11-25T14:00+09:00"
AT = "2026-11-28T10:00"  # a Saturday: it goes on Monday 11/30 at the preferred time
MONDAY = datetime(2026, 11, 30, 10, 0, tzinfo=TOKYO)
CSV = """external_id,name,email,line_user_id,slack_user_id,track,department,offer_date,start_date,status
NG-1,山田 花子,ng1@example.ac.jp,,,new_grad,営業部,2026-06-01,2027-04-01,accepted
NG-2,佐藤 健太,n2@ex.jp,U0123456789abcdef0123456789abcdef,,new_grad,開発,2026-06-01,2027-04-01,accepted
NG-3,鈴木 美咲,ng3@example.ac.jp,,,new_grad,営業部,2026-06-01,2027-04-01,offered
NG-4,高橋 翔太,ng4@example.ac.jp,,,new_grad,営業部,2026-06-01,2027-04-01,declined
MC-1,田中 陽菜,mc1@example.jp,,,mid_career,営業部,2026-09-01,2027-01-04,accepted
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    values = {
        "FOLLOWUP_DATABASE_URL": f"sqlite:///{tmp_path}/f.db",
        "FOLLOWUP_VAR_DIR": str(tmp_path / "var"),
    }
    (tmp_path / "holders.csv").write_text(CSV, encoding="utf-8")
    imported = run_followup("import-holders", str(tmp_path / "holders.csv"), env=values)
    assert imported.returncode == 0, imported.stderr
    return values


@pytest.fixture
def context(env: dict[str, str], tmp_path: Path) -> AppContext:
    get_engine(env["FOLLOWUP_DATABASE_URL"])
    settings = Settings(
        database_url=env["FOLLOWUP_DATABASE_URL"],
        var_dir=tmp_path / "var",
        config=REPO / "config" / "followup.yaml",
        secret_key="test-secret-key-" + "x" * 32,
    )
    ctx = AppContext(settings=settings)
    with ctx.session() as session:
        ids = {h.external_id: h.id for h in session.scalars(select(OfferHolder))}
        # NG-2 stopped email (LINE is next in the phase's list); NG-3 stopped the only channel they have
        session.add(ChannelOptOut(holder_id=ids["NG-2"], channel="email", source="web"))
        session.add(ChannelOptOut(holder_id=ids["NG-3"], channel="email", source="web"))
    yield ctx
    dispose_engines()


def announce(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = run_followup(
        "announce", "year_end_greeting", "--to", "track=new_grad", "--now", NOW, "--at", AT, *args, env=env
    )
    return result.returncode, result.stdout, result.stderr


def touches(context: AppContext) -> list[Touch]:
    with context.session() as session:
        return list(session.scalars(select(Touch).order_by(Touch.key)))


def test_the_preview_names_who_on_which_channel_and_when_and_plans_nothing(
    env: dict[str, str], context: AppContext
) -> None:
    code, out, err = announce(env)

    assert code == 0, err
    assert "送信予定 2件(メール 1件、LINE 1件)" in out
    assert "送信日時: 11/30(月) 10:00" in out
    assert "連絡できるチャネルなし: 1件" in out and "NG-3" in out
    assert "NG-4" not in out and "MC-1" not in out  # declined; another track
    assert "--yes" in err
    assert touches(context) == []


def test_yes_plans_one_touch_per_recipient_and_a_second_run_adds_nothing(
    env: dict[str, str], context: AppContext
) -> None:
    code, out, err = announce(env, "--yes", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["planned"] == 2 and record["per_channel"] == {"email": 1, "line": 1}
    statuses = {r["external_id"]: (r["channel"], r["status"]) for r in record["recipients"]}
    assert statuses == {
        "NG-1": ("email", "to_plan"),
        "NG-2": ("line", "to_plan"),
        "NG-3": (None, "unreachable"),
    }

    again = json.loads(announce(env, "--yes", "--json")[1])
    assert again["planned"] == 0 and {r["status"] for r in again["recipients"]} >= {"already_planned"}

    planned = touches(context)
    assert [(t.key, t.channel, t.template, t.status) for t in planned] == [
        ("announce:year_end_greeting:NG-1", "email", "year_end_greeting", "planned"),
        ("announce:year_end_greeting:NG-2", "line", "year_end_greeting", "planned"),
    ]
    assert {t.due_at for t in planned} == {MONDAY}

    # delivered by the normal path, each once, however often it runs
    assert run_due(context, MONDAY - timedelta(minutes=1)).dispatched == 0
    run_due(context, MONDAY + timedelta(minutes=1))
    run_due(context, MONDAY + timedelta(minutes=2))
    outbox = Path(context.settings.var_dir) / "outbox"
    mails = list(outbox.glob("*.eml"))
    assert len(mails) == 1
    mail = email.message_from_bytes(mails[0].read_bytes(), policy=email_policy.default)
    assert "年末年始のご挨拶" in str(mail["Subject"]) and str(mail["To"]) == "ng1@example.ac.jp"
    assert len([p for p in outbox.iterdir() if p.suffix == ".json"]) == 1  # the LINE push
    assert {t.status for t in touches(context)} == {"sent"}

    with context.session() as session:
        report = build_report(
            session, context.policy, MONDAY + timedelta(hours=3), titles=message_titles(context)
        )
    [row] = report.announcements
    assert (row.name, row.sent_week, row.sent, row.planned, row.failed) == ("year_end_greeting", 2, 2, 0, 0)
    text = render_text(report)  # named as HR calls the message, not by its template's code
    assert "年末年始のご挨拶と休業期間のお知らせ(一斉配信の例・返信不要): 2 / 2 / 0 / 0" in text
    assert "year_end_greeting" not in text


def test_a_missing_template_or_a_bad_filter_exits_2_and_plans_nothing(
    env: dict[str, str], context: AppContext
) -> None:
    missing = run_followup("announce", "no_such_template", "--to", "track=new_grad", "--yes", env=env)
    assert missing.returncode == 2 and "no_such_template" in missing.stderr
    bad = run_followup("announce", "year_end_greeting", "--to", "team=営業", "--yes", env=env)
    assert bad.returncode == 2 and "--to" in bad.stderr and "track" in bad.stderr
    assert touches(context) == []
