"""A 身元保証書 season against a real database on the real 2027 calendar: the reminder goes before the
due date (2/18) to the pending holders, never to the one marked 提出済, and stops once receipt is marked;
the 0009 migration upgrades and downgrades on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, select

from followup.db.models import OfferHolder, TaskStatus, Touch
from followup.db.session import alembic_config, dispose_engines, session_scope
from followup.delivery.deliver import run_due
from followup.planning.store import plan_tick
from followup.tasks.store import set_status, status_rows
from tests.conftest import make_context
from tests.standins.fixtures import smtp_sink_fixture  # noqa: F401
from tests.standins.smtp_sink import SmtpSink

TOKYO = ZoneInfo("Asia/Tokyo")


def add_holders(url: str) -> dict[str, int]:
    with session_scope(url) as session:
        for i in (1, 2, 3):
            session.add(
                OfferHolder(
                    external_id=f"NG-{i:03d}",
                    name=f"内定 {['', '一郎', '二郎', '三郎'][i]}",
                    email=f"holder{i}@example.ac.jp",
                    track="new_grad",
                    offer_date=date(2026, 6, 1),
                    accepted_date=date(2026, 6, 10),
                    start_date=date(2027, 4, 1),
                    status="accepted",
                )
            )
    with session_scope(url) as session:
        return {h.external_id: h.id for h in session.scalars(select(OfferHolder))}


def guarantee_touches(url: str) -> dict[str, tuple[str, str]]:
    """key → (status, local due day) of the 身元保証書 reminders."""
    with session_scope(url) as session:
        rows = session.scalars(select(Touch).where(Touch.key.like("%:task:guarantee:%")).order_by(Touch.key))
        return {t.key: (t.status, t.due_at.astimezone(TOKYO).strftime("%m-%d")) for t in rows}


def test_the_reminder_goes_to_pending_holders_and_stops_when_receipt_is_marked(
    sqlite_url: str, tmp_path: Path, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("SLACK_BOT_TOKEN", "LINE_CHANNEL_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SMTP_URL", smtp_sink.url)  # real SMTP on loopback: counted at the sink
    ids = add_holders(sqlite_url)
    context = make_context(sqlite_url, tmp_path)
    with session_scope(sqlite_url) as session:  # NG-002 sent it early; HR marked it 提出済
        set_status(
            session,
            ids["NG-002"],
            "guarantee",
            "submitted",
            at=datetime(2027, 2, 1, tzinfo=TOKYO),
            actor="hr",
        )
    day = datetime(2027, 2, 10, 9, 0, tzinfo=TOKYO)
    while day.date() <= date(2027, 2, 16):
        for hour in (9, 11):  # a tick before the send time and one after it
            moment = day.replace(hour=hour)
            plan_tick(context, moment)
            run_due(context, moment)
        day += timedelta(days=1)
    got = guarantee_touches(sqlite_url)
    # -1w (2/11 建国記念の日 → 2/12, taken by the weekly touch → 2/15) went to NG-001 and NG-003
    assert got["NG-001:new_grad:task:guarantee:-1w"] == ("sent", "02-15")
    assert got["NG-003:new_grad:task:guarantee:-1w"] == ("sent", "02-15")
    assert not any(key.startswith("NG-002:") for key in got)
    # the -1bd reminder (2/17) is planned for both; NG-003 hands it in on 2/16 evening
    assert got["NG-003:new_grad:task:guarantee:-1bd"][0] == "planned"
    with session_scope(sqlite_url) as session:
        set_status(
            session,
            ids["NG-003"],
            "guarantee",
            "submitted",
            at=datetime(2027, 2, 16, 18, tzinfo=TOKYO),
            actor="hr",
        )
    for moment in (datetime(2027, 2, 17, 9, tzinfo=TOKYO), datetime(2027, 2, 17, 11, tzinfo=TOKYO)):
        plan_tick(context, moment)
        run_due(context, moment)
    got = guarantee_touches(sqlite_url)
    assert got["NG-001:new_grad:task:guarantee:-1bd"] == ("sent", "02-17")
    assert got["NG-003:new_grad:task:guarantee:-1bd"] == ("cancelled", "02-17")
    # what NG-001 received: the keigo reminder naming the task and its due date
    reminders = [m.message() for m in smtp_sink.messages if "身元保証書" in str(m.message()["Subject"])]
    assert sorted(m["To"] for m in reminders) == [
        "holder1@example.ac.jp",
        "holder1@example.ac.jp",
        "holder3@example.ac.jp",
    ]
    body = reminders[0].get_body(preferencelist=("plain",))
    assert body is not None and "2027年2月18日" in body.get_content()
    rows = {r.external_id: r.status for r in status_rows_of(sqlite_url, context)}
    assert rows == {"NG-001": "pending", "NG-002": "submitted", "NG-003": "submitted"}


def status_rows_of(url: str, context: object) -> list:  # type: ignore[type-arg]
    with session_scope(url) as session:
        return status_rows(session, context.policy, "guarantee")  # type: ignore[attr-defined]


def test_the_task_status_migration_upgrades_and_downgrades(any_db_url: str) -> None:
    command.upgrade(alembic_config(any_db_url), "head")
    engine = create_engine(any_db_url)
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("task_statuses")}
        assert {"holder_id", "task", "status", "changed_at", "changed_by", "source", "note"} <= columns
        uniques = [u["column_names"] for u in inspect(engine).get_unique_constraints("task_statuses")]
        assert ["holder_id", "task"] in uniques
        command.downgrade(alembic_config(any_db_url), "0008")
        assert "task_statuses" not in inspect(engine).get_table_names()
        command.upgrade(alembic_config(any_db_url), "head")
        assert "task_statuses" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
        dispose_engines()


def test_one_row_per_holder_and_task(any_db_url: str) -> None:
    ids = add_holders(any_db_url)
    at = datetime(2027, 2, 1, tzinfo=TOKYO)
    with session_scope(any_db_url) as session:
        assert set_status(session, ids["NG-001"], "guarantee", "submitted", at=at, actor="hr")
        assert not set_status(session, ids["NG-001"], "guarantee", "submitted", at=at, actor="hr")
        assert set_status(session, ids["NG-001"], "guarantee", "confirmed", at=at, actor="suzuki")
        assert not set_status(session, ids["NG-002"], "guarantee", "pending", at=at, actor="hr")
    with session_scope(any_db_url) as session:
        rows = list(session.scalars(select(TaskStatus)))
        assert [(r.holder_id, r.task, r.status, r.changed_by) for r in rows] == [
            (ids["NG-001"], "guarantee", "confirmed", "suzuki")
        ]
