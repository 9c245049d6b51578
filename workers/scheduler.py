"""The scheduler process (``followup scheduler``): plan, dispatch and report on time, one leader at a time.

APScheduler 3.11 runs the jobs; a database lease decides which of several scheduler processes does
the work (the others stand by and keep trying, so one takes over within the lease TTL when the leader
dies). Misfires after downtime are coalesced into one run; the planner's catch-up window, not the
number of missed runs, decides what is created, so a restart never bursts.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from followup.config.context import AppContext
from followup.delivery.deliver import EnqueueMemo, FailureTally, dispatch_due
from followup.flags.store import evaluate_and_persist
from followup.planning.store import plan_tick, release_lease, try_acquire_lease
from followup.report import send_weekly_report_if_due
from workers.celery_app import publish_deliveries

log = logging.getLogger("followup.scheduler")

LEASE_NAME = "scheduler"
LEASE_TTL = timedelta(seconds=90)
HEARTBEAT_SECONDS = 20
MISFIRE_GRACE = 6 * 3600
BACKOFF_BASE = 1.0  # seconds: the first pause after a failed job; doubling up to BACKOFF_CAP
BACKOFF_CAP = 300.0
REPORT_POLL_MINUTES = 10  # run a missed job late (once, coalesced) rather than silently skip it


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Leader:
    """Runs work only while this process holds the scheduler lease."""

    def __init__(self, context: AppContext, owner: str, ttl: timedelta = LEASE_TTL) -> None:
        self.context = context
        self.owner = owner
        self.ttl = ttl
        self.leading = False
        self.failures: Counter[str] = Counter()  # consecutive failures, by kind (database away, …)
        self.resume_at = 0.0  # monotonic: no job touches the database before this (back-off)

    def now(self) -> datetime:
        return datetime.now(self.context.policy.organization.tz)

    def renew(self) -> bool:
        with self.context.session() as session:
            leading = try_acquire_lease(session, LEASE_NAME, self.owner, self.ttl, self.now())
        if leading != self.leading:
            log.info("scheduler %s is now %s", self.owner, "the leader" if leading else "standing by")
        self.leading = leading
        return leading

    def run(self, name: str, work: Callable[[AppContext, datetime], Any]) -> Any:
        if time.monotonic() < self.resume_at:
            return None  # backing off after failures: the next job after the pause is the probe
        try:
            if not self.renew():
                return None
            result = work(self.context, self.now())
        except Exception as exc:  # one failing job must not stop the scheduler
            self.failed(name, exc)
            return None
        self.recovered()
        log.info("job %s: %s", name, result)
        return result

    def heartbeat(self) -> bool:
        """The lease job: renew, with the same back-off and one-line logging as the other jobs."""
        if time.monotonic() < self.resume_at:
            return self.leading
        try:
            leading = self.renew()
        except Exception as exc:
            self.failed("lease", exc)
            self.leading = False  # cannot prove the lease: act as a standby until the database is back
            return False
        self.recovered()
        return leading

    def failed(self, job: str, exc: BaseException) -> None:
        """One line per failure with the kind's count, no traceback (DEBUG has it); back off 1 s → 5 min."""
        kind = FailureTally.kind(exc)
        self.failures[kind] += 1
        wait = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (sum(self.failures.values()) - 1))
        self.resume_at = time.monotonic() + wait
        log.debug("job %s failed", job, exc_info=exc)
        log.error("job %s failed: %s ×%d (consecutive); pausing %g s", job, kind, self.failures[kind], wait)

    def recovered(self) -> None:
        if self.failures:
            log.warning(
                "scheduler recovered after %d failure(s): %s", self.failures.total(), dict(self.failures)
            )
            self.failures.clear()

    def release(self) -> None:
        with self.context.session() as session:
            release_lease(session, LEASE_NAME, self.owner)
        self.leading = False


def add_jobs(scheduler: BaseScheduler, context: AppContext, leader: Leader) -> list[str]:
    """Register the jobs on ``scheduler``; returns their ids (the tests read them)."""
    policy = context.policy
    defaults: dict[str, Any] = {"coalesce": True, "max_instances": 1, "misfire_grace_time": MISFIRE_GRACE}
    scheduler.add_job(leader.heartbeat, "interval", seconds=HEARTBEAT_SECONDS, id="lease", **defaults)
    scheduler.add_job(
        leader.run,
        "interval",
        minutes=policy.scheduler.plan_every_minutes,
        args=["plan", plan_tick],
        id="plan",
        next_run_time=datetime.now(policy.organization.tz),
        **defaults,
    )
    # the memo keeps a frequent dispatch from publishing a still-queued id again on every run
    dispatch = functools.partial(
        dispatch_due, memo=EnqueueMemo(context.settings.claim_timeout), publish=publish_deliveries
    )
    scheduler.add_job(
        leader.run,
        "interval",
        seconds=context.settings.dispatch_interval,
        args=["dispatch", dispatch],
        id="dispatch",
        **defaults,
    )
    # flags are kept current (dashboard, metrics) between the weekly reports
    scheduler.add_job(
        leader.run, "interval", hours=1, args=["flags", evaluate_and_persist], id="flags", **defaults
    )
    # polled, not a single cron firing: a failed or missed send is retried within the week
    scheduler.add_job(
        leader.run,
        "interval",
        minutes=REPORT_POLL_MINUTES,
        args=["weekly_report", send_weekly_report_if_due],
        id="weekly_report",
        **defaults,
    )
    return [job.id for job in scheduler.get_jobs()]


def build_scheduler(context: AppContext, owner: str) -> tuple[BlockingScheduler, Leader]:
    scheduler = BlockingScheduler(timezone=context.policy.organization.tz)
    leader = Leader(context, owner)
    add_jobs(scheduler, context, leader)
    return scheduler, leader


def run_scheduler(context: AppContext, owner: str | None = None) -> None:
    """Block running the jobs until interrupted; gives the lease up on the way out."""
    scheduler, leader = build_scheduler(context, owner or default_owner())
    log.info("scheduler %s starting (%s)", leader.owner, context.policy.organization.timezone)
    # docker stop sends SIGTERM: leave through the finally below, so the standby takes over at once
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    try:
        scheduler.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        if scheduler.running:
            scheduler.shutdown(wait=False)
        leader.release()
