"""The production topology: PostgreSQL, a real redis-server, a real ``celery worker`` process, and the SMTP,
Slack and LINE stand-ins each in their own process on 127.0.0.1. The sinks count what they accepted;
every touch must arrive exactly once through worker kills, broker restarts and outages."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from followup.config.context import AppContext
from followup.delivery.deliver import EnqueueMemo, run_due
from tests.delivery_fixtures import (
    CHANNEL_ENV,
    HoldingProxy,
    StandInProcesses,
    WorkerProcess,
    add_holder,
    add_touch,
    always_open_config,
    make_context,
    statuses,
    wait_until,
    worker_env,
)
from tests.services import PostgresServer, RedisServer
from workers.celery_app import publish_deliveries

_db_seq = itertools.count(1)


@pytest.fixture
def standins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StandInProcesses]:
    for name in CHANNEL_ENV:
        monkeypatch.delenv(name, raising=False)
    procs = StandInProcesses(tmp_path).start()
    yield procs
    procs.stop()


@pytest.fixture
def context(tmp_path: Path, postgres_server: PostgresServer, redis_server: RedisServer) -> AppContext:
    n = next(_db_seq)
    db_url = postgres_server.create_database(f"delivery_{n}_{int(time.time())}")
    return make_context(
        tmp_path,
        db_url,
        broker_url=redis_server.db_url(n % 15 + 1),
        config=always_open_config(tmp_path / "cfg"),
    )


def seed_batch(context: AppContext, count: int, *, first_due: datetime | None = None) -> dict[str, int]:
    """``count`` holders with one touch each, rotating email / Slack / LINE; returns recipient → touch id."""
    start = first_due or datetime.now(UTC) - timedelta(minutes=10)
    recipients: dict[str, int] = {}
    with context.session() as s:
        for i in range(count):
            channel = ("email", "slack", "line")[i % 3]
            holder = add_holder(
                s,
                f"B{i:03d}",
                email=f"holder{i:03d}@example.ac.jp" if channel == "email" else None,
                slack=f"U{i:03d}" if channel == "slack" else None,
                line=f"U{i:03d}L" if channel == "line" else None,
            )
            touch = add_touch(s, holder, 1, channel=channel, due_at=start + timedelta(seconds=i))
            recipients[holder.email or holder.slack_user_id or holder.line_user_id or ""] = touch.id
    return recipients


def drive(context: AppContext, until_done: int, timeout: float, during: object = None) -> None:
    """The scheduler's part: dispatch what is due every 0.2 s until ``until_done`` touches are sent."""
    memo = EnqueueMemo(context.settings.claim_timeout)
    deadline = time.monotonic() + timeout
    while statuses(context).get("sent", 0) < until_done:
        if time.monotonic() > deadline:
            raise AssertionError(f"not all sent after {timeout}s: {statuses(context)}")
        try:
            run_due(context, datetime.now(UTC), memo=memo, publish=publish_deliveries)
        except Exception as exc:  # the broker may be restarting: the next tick tries again
            print(f"dispatch failed: {type(exc).__name__}: {exc}")
        time.sleep(0.2)


def assert_exactly_once(standins: StandInProcesses, recipients: dict[str, int]) -> None:
    received = standins.received()
    assert {r: received.get(r, 0) for r in recipients} == dict.fromkeys(recipients, 1)
    assert sum(received.values()) == len(recipients)


def test_a_celery_worker_delivers_a_mixed_batch_exactly_once(
    context: AppContext, standins: StandInProcesses, tmp_path: Path
) -> None:
    recipients = seed_batch(context, 30)
    worker = WorkerProcess(worker_env(context, standins), tmp_path / "worker.log").start()
    try:
        drive(context, until_done=30, timeout=60)
        run_due(
            context, datetime.now(UTC), publish=publish_deliveries
        )  # a late duplicate enqueue changes nothing
        time.sleep(0.5)
    finally:
        worker.stop()
    assert_exactly_once(standins, recipients)
    assert statuses(context) == {"sent": 30}


def test_a_worker_killed_mid_batch_and_restarted_delivers_each_touch_once(
    context: AppContext, standins: StandInProcesses, tmp_path: Path
) -> None:
    """The worker is SIGKILLed while its four threads each hold a claimed email touch whose SMTP
    connection is open but not yet greeted; Slack and LINE touches before them were sent, the rest
    are still queued or reserved by the dead worker."""
    proxy = HoldingProxy(standins.smtp_port)
    env = worker_env(context, standins, SMTP_URL=f"smtp://127.0.0.1:{proxy.port}")
    recipients: dict[str, int] = {}
    start = datetime.now(UTC) - timedelta(minutes=10)
    with context.session() as s:
        for i in range(24):  # 6 chat touches, then 6 emails, then 12 mixed
            channel = (
                "slack" if i < 3 else "line" if i < 6 else "email" if i < 12 else ("slack", "line")[i % 2]
            )
            holder = add_holder(
                s,
                f"K{i:03d}",
                email=f"k{i:03d}@example.ac.jp" if channel == "email" else None,
                slack=f"U{i:03d}" if channel == "slack" else None,
                line=f"U{i:03d}L" if channel == "line" else None,
            )
            touch = add_touch(s, holder, 1, channel=channel, due_at=start + timedelta(seconds=i))
            recipients[holder.email or holder.slack_user_id or holder.line_user_id or ""] = touch.id
    proxy.hold = True
    worker = WorkerProcess(env, tmp_path / "worker.log", concurrency=4).start()
    memo = EnqueueMemo(context.settings.claim_timeout)
    try:
        run_due(context, datetime.now(UTC), memo=memo, publish=publish_deliveries)
        wait_until(lambda: proxy.held >= 4, timeout=30, what="four SMTP connections held")
        assert statuses(context).get("sending", 0) == 4
        worker.kill9()
        proxy.drop_held()
        assert statuses(context)["sending"] == 4  # claims left behind by the dead worker

        worker = WorkerProcess(env, tmp_path / "worker.log", concurrency=4).start()
        drive(context, until_done=24, timeout=60)
        time.sleep(0.5)
    finally:
        worker.stop()
        proxy.close()
    assert_exactly_once(standins, recipients)
    assert statuses(context) == {"sent": 24}


def test_a_redis_restart_mid_run_loses_no_touch_and_doubles_none(
    context: AppContext, standins: StandInProcesses, redis_server: RedisServer, tmp_path: Path
) -> None:
    recipients = seed_batch(context, 60)
    worker = WorkerProcess(worker_env(context, standins), tmp_path / "worker.log", concurrency=1).start()
    try:
        memo = EnqueueMemo(context.settings.claim_timeout)
        run_due(context, datetime.now(UTC), memo=memo, publish=publish_deliveries)
        wait_until(
            lambda: statuses(context).get("sent", 0) >= 3, timeout=30, interval=0.02, what="a few sent"
        )
        redis_server.restart(downtime=1.0)  # no persistence: the queued tasks are gone
        assert statuses(context).get("planned", 0) > 20  # still to do, and no longer in any queue
        drive(context, until_done=60, timeout=90)
        time.sleep(0.5)
    finally:
        worker.stop()
    assert_exactly_once(standins, recipients)


def test_an_smtp_outage_during_a_batch_is_retried_until_delivered_once(
    context: AppContext, standins: StandInProcesses, tmp_path: Path
) -> None:
    recipients = seed_batch(context, 9)
    standins.stop_smtp()
    worker = WorkerProcess(worker_env(context, standins), tmp_path / "worker.log").start()
    try:
        memo = EnqueueMemo(context.settings.claim_timeout)
        run_due(context, datetime.now(UTC), memo=memo, publish=publish_deliveries)
        wait_until(lambda: statuses(context).get("sent", 0) >= 6, timeout=30, what="chat touches sent")
        time.sleep(1.5)  # emails fail and are re-planned with backoff while the relay is down
        assert statuses(context).get("sent", 0) == 6
        standins.start_smtp()
        drive(context, until_done=9, timeout=60)
    finally:
        worker.stop()
    assert_exactly_once(standins, recipients)


def test_a_slack_429_is_honoured_by_the_worker(
    context: AppContext, standins: StandInProcesses, tmp_path: Path
) -> None:
    with context.session() as s:
        touch_id = add_touch(
            s, add_holder(s, "S1", slack="US1"), 1, channel="slack", due_at=datetime.now(UTC)
        ).id
    standins.slack_control("rate_limit", n=1, retry_after=2)
    worker = WorkerProcess(worker_env(context, standins), tmp_path / "worker.log").start()
    try:
        started = time.monotonic()
        drive(context, until_done=1, timeout=30)
        elapsed = time.monotonic() - started
    finally:
        worker.stop()
    assert elapsed >= 2.0
    assert standins.received() == {"US1": 1}
    with context.session() as s:
        from followup.db.models import DeliveryAttempt

        outcomes = [a.outcome for a in s.query(DeliveryAttempt).filter_by(touch_id=touch_id)]
    assert outcomes == ["transient", "sent"]
