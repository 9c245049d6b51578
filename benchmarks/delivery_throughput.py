"""Delivery throughput through the production path: PostgreSQL, redis-server, Celery workers, and the loopback
SMTP sink (aiosmtpd) in its own process. Each message is a real touch: claimed in the database, rendered from
the Japanese templates, sent over SMTP, recorded.

The baseline is the broker's own ceiling measured in the same run against the same redis-server and the
same worker settings: a bare no-op Celery task (it only increments a Redis counter so completion can be seen).

    python benchmarks/delivery_throughput.py [--holders 500] [--concurrency 4] [--pool threads]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import redis  # noqa: E402

from tests.delivery_fixtures import (  # noqa: E402
    WorkerProcess,
    add_holder,
    add_touch,
    always_open_config,
    make_context,
    statuses,
)
from tests.services import start_postgres, start_redis  # noqa: E402
from tests.standins import free_port, spawn  # noqa: E402

COUNTER = "bench:noop:done"


def wait_for(condition: Callable[[], bool], timeout: float) -> None:
    """Poll every 0.2 s: a tighter loop over a growing file steals a core from the workers (2 cores)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("benchmark timed out")
        time.sleep(0.2)


def smtp_lines(log: Path) -> int:
    if not log.exists():
        return 0
    with log.open("rb") as handle:
        return sum(1 for _ in handle)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--holders", type=int, default=500, help="messages to deliver (one touch per holder)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--pool", default="threads", choices=("threads", "prefork", "solo"))
    args = parser.parse_args()
    n = args.holders

    tmp = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    redis_server = start_redis(tmp)
    postgres = start_postgres(tmp)
    smtp_port = free_port()
    smtp_log = tmp / "smtp.jsonl"
    sink = spawn("smtp_sink", smtp_port, smtp_log)
    worker: WorkerProcess | None = None
    try:
        db_url = postgres.create_database("bench_delivery")
        # always open: on the real clock outside 09:00–19:00 JST every touch would be deferred
        context = make_context(tmp, db_url, broker_url=redis_server.url, config=always_open_config(tmp))
        due = datetime.now(UTC) - timedelta(minutes=1)
        with context.session() as s:
            for i in range(n):
                holder = add_holder(s, f"BENCH{i:06d}", email=f"bench{i:06d}@example.ac.jp")
                add_touch(s, holder, 1, channel="email", template="checkin", due_at=due)

        env = {
            "FOLLOWUP_DATABASE_URL": db_url,
            "FOLLOWUP_BROKER_URL": redis_server.url,
            "FOLLOWUP_CONFIG": str(context.settings.config),
            "FOLLOWUP_VAR_DIR": str(tmp),
            "FOLLOWUP_SECRET_KEY": "bench-secret-0123456789abcdefghijklmnop",
            "SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
            "BENCH_REDIS_URL": redis_server.url,
        }
        worker = WorkerProcess(
            env,
            tmp / "worker.log",
            concurrency=args.concurrency,
            pool=args.pool,
            extra_args=["--include=benchmarks.bench_tasks"],
        )
        worker.start(timeout=60)

        # Baseline: the broker round trip of a task that does nothing.
        from benchmarks.bench_tasks import noop
        from workers.celery_app import app

        counter = redis.Redis.from_url(redis_server.url)
        counter.delete(COUNTER)
        with app.connection_for_write(redis_server.url) as connection:
            started = time.perf_counter()
            for _ in range(n):
                noop.apply_async(connection=connection)
            wait_for(lambda: int(counter.get(COUNTER) or 0) >= n, timeout=300)
            noop_elapsed = time.perf_counter() - started

        # The real thing: every touch claimed, rendered, sent over SMTP, recorded.
        from followup.delivery.deliver import run_due
        from workers.celery_app import publish_deliveries

        started = time.perf_counter()
        summary = run_due(context, datetime.now(UTC), limit=n, publish=publish_deliveries)
        wait_for(lambda: smtp_lines(smtp_log) >= n, timeout=600)
        wait_for(lambda: statuses(context).get("sent", 0) >= n, timeout=60)
        delivery_elapsed = time.perf_counter() - started
        assert summary.dispatched == n
        assert smtp_lines(smtp_log) == n, "a message arrived twice"

        # For orientation: the SMTP channel alone (same sink, same threads), no database, no broker.
        from concurrent.futures import ThreadPoolExecutor

        from followup.channels.base import OutboundMessage
        from followup.channels.email import EmailChannel
        from followup.rendering.templates import MessageTemplates, sample_context

        rendered = MessageTemplates(context.templates_root).render("checkin", sample_context())
        channel = EmailChannel(f"smtp://127.0.0.1:{smtp_port}", "saiyo@example.co.jp", "人事部")
        messages = [
            OutboundMessage(f"alone-{i}", "email", f"alone{i}@example.ac.jp", rendered.subject, rendered.text,
                            rendered.html)
            for i in range(n)
        ]  # fmt: skip
        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(channel.send, messages))
        channel_rate = n / (time.perf_counter() - started)

        delivery_rate = n / delivery_elapsed
        noop_rate = n / noop_elapsed
        print(f"messages: {n}, workers: {args.pool} x {args.concurrency}, cpus: {os.cpu_count()}")
        print(f"no-op Celery task (broker ceiling): {noop_rate:,.0f} tasks/s ({noop_elapsed:.2f} s)")
        print(
            f"delivery to SMTP sink:             {delivery_rate:,.0f} messages/s ({delivery_elapsed:.2f} s)"
        )
        print(f"SMTP channel alone (no DB, no broker): {channel_rate:,.0f} messages/s")
        print(f"ratio delivery/no-op: {delivery_rate / noop_rate:.2f}")
    finally:
        if worker is not None:
            worker.stop()
        sink.terminate()
        try:
            sink.wait(10)
        except subprocess.TimeoutExpired:
            sink.kill()
        redis_server.stop()
        postgres.stop()


if __name__ == "__main__":
    main()
