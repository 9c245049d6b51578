"""The scheduler process: its jobs, and one leader among several processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select

from followup.db.models import OfferHolder, SchedulerLease, Touch
from followup.db.session import get_engine, session_scope
from tests.conftest import REPO, make_context
from workers.scheduler import MISFIRE_GRACE, Leader, add_jobs


def test_the_scheduler_plans_dispatches_and_reports_on_time(sqlite_url: str, tmp_path: Path) -> None:
    context = make_context(sqlite_url, tmp_path)
    scheduler = BackgroundScheduler(timezone=context.policy.organization.tz)
    ids = add_jobs(scheduler, context, Leader(context, "test"))
    assert {"lease", "plan", "dispatch", "flags", "weekly_report"} <= set(ids)
    plan_job = scheduler.get_job("plan")
    assert plan_job.trigger.interval == timedelta(minutes=context.policy.scheduler.plan_every_minutes)
    assert plan_job.coalesce is True and plan_job.max_instances == 1
    assert plan_job.misfire_grace_time == MISFIRE_GRACE  # not APScheduler's silent 1-second default
    report = scheduler.get_job("weekly_report")
    assert report.trigger.interval == timedelta(minutes=10)  # polled: a missed minute is not a lost week


def test_only_the_lease_holder_runs_a_job(sqlite_url: str, tmp_path: Path) -> None:
    context = make_context(sqlite_url, tmp_path)
    get_engine(sqlite_url)
    ran: list[str] = []
    first, second = Leader(context, "a"), Leader(context, "b")
    first.run("job", lambda ctx, now: ran.append("a"))
    second.run("job", lambda ctx, now: ran.append("b"))
    assert ran == ["a"]
    first.release()  # a clean shutdown hands over at once
    second.run("job", lambda ctx, now: ran.append("b"))
    assert ran == ["a", "b"]


def test_two_scheduler_processes_elect_one_leader_and_create_no_duplicate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/f.db"
    get_engine(url)
    today = datetime.now().date()
    with session_scope(url) as session:
        session.add_all(
            OfferHolder(
                external_id=f"NG-{i}",
                name=f"内定者 {i}",
                email=f"h{i}@example.ac.jp",
                track="new_grad",
                offer_date=today - timedelta(days=i),
                start_date=date(today.year + 1, 4, 1),
            )
            for i in range(10)
        )
    env = {**os.environ, "FOLLOWUP_DATABASE_URL": url, "FOLLOWUP_VAR_DIR": str(tmp_path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "followup", "scheduler", "--owner", owner],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for owner in ("sched-a", "sched-b")
    ]
    try:
        deadline = time.monotonic() + 30
        touches: list[Touch] = []
        while time.monotonic() < deadline:
            with session_scope(url) as session:
                touches = list(session.scalars(select(Touch)))
                leases = list(session.scalars(select(SchedulerLease)))
            if touches and leases:
                break
            time.sleep(0.5)
        assert touches, "the leader planned nothing"
        assert len(leases) == 1 and leases[0].owner in ("sched-a", "sched-b")
        assert len({t.key for t in touches}) == len(touches)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    logs = "".join(proc.stdout.read() for proc in procs if proc.stdout)
    assert "is now the leader" in logs


def test_the_weekly_report_is_due_from_its_time_until_the_end_of_its_week() -> None:
    from zoneinfo import ZoneInfo

    from followup.config import load_policy
    from followup.report import report_due_at

    policy = load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy  # mon 08:30
    tokyo = ZoneInfo("Asia/Tokyo")
    monday = datetime(2026, 11, 30, 8, 30, tzinfo=tokyo)
    assert report_due_at(policy, monday) == monday
    assert report_due_at(policy, monday - timedelta(minutes=1)) == monday - timedelta(days=7)
    assert report_due_at(policy, datetime(2026, 12, 3, 23, 0, tzinfo=tokyo)) == monday  # Thursday: still due


def test_a_report_missed_at_its_minute_is_sent_by_a_later_poll_once(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zoneinfo import ZoneInfo

    from followup.db.models import ReportRun
    from followup.report import send_weekly_report_if_due

    monkeypatch.delenv("SMTP_URL", raising=False)  # the report goes to the outbox
    context = make_context(sqlite_url, tmp_path)
    tokyo = ZoneInfo("Asia/Tokyo")
    assert send_weekly_report_if_due(context, datetime(2026, 11, 30, 8, 0, tzinfo=tokyo)) is None  # too early
    sent = send_weekly_report_if_due(context, datetime(2026, 11, 30, 11, 40, tzinfo=tokyo))  # the poll after
    assert sent is not None and Path(str(sent)).name == "weekly-2026-W49.eml" and Path(str(sent)).exists()
    again = send_weekly_report_if_due(context, datetime(2026, 12, 2, 9, 0, tzinfo=tokyo))
    assert again == str(sent)  # already sent this week: the recorded result, nothing new
    with session_scope(sqlite_url) as session:
        assert [r.week for r in session.scalars(select(ReportRun))] == ["2026-W49"]
