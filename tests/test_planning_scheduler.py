"""The scheduler process: its jobs, and one leader among several processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

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
    report = str(scheduler.get_job("weekly_report").trigger)
    assert "day_of_week='mon'" in report and "hour='8'" in report and "minute='30'" in report


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
