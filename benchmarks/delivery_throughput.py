"""Delivery throughput to a loopback SMTP sink (aiosmtpd in its own process), against a bare smtplib loop.

Each delivered message is a real touch: claimed in PostgreSQL, rendered from the Japanese templates, sent
over SMTP, recorded with its attempt row. Two delivery paths are timed:

- **embedded**: ``followup run``'s in-process delivery (``run_due`` without a broker), one process;
- **celery**: the same touches published to redis-server and delivered by a real Celery worker.

The baseline, in the same run against the same sink process: a bare ``smtplib`` loop on one connection
sending ready-made bytes of the same size (the rendered ``checkin`` message) to as many recipients. It is
timed before and after the delivery paths, and the ratio uses their mean. The calendar is always open
(on the real clock, outside 09:00–19:00 JST every touch would be deferred), and the Celery path is
watched with one COUNT every 0.25 s, not by reading the sink's growing log.

    python benchmarks/delivery_throughput.py [--messages 500] [--concurrency 2] [--pool threads]

The last line is the ratio delivery / bare smtplib.
"""

from __future__ import annotations

import argparse
import os
import smtplib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import func, select  # noqa: E402

from followup.config.context import AppContext  # noqa: E402
from followup.db.models import DeliveryAttempt, Touch  # noqa: E402
from tests.delivery_fixtures import (  # noqa: E402
    WorkerProcess,
    add_holder,
    add_touch,
    always_open_config,
    make_context,
)
from tests.services import start_postgres, start_redis  # noqa: E402
from tests.standins import free_port, spawn  # noqa: E402

SENDER = "saiyo@example.co.jp"


def wait_for(condition: Callable[[], bool], timeout: float, every: float = 0.25) -> None:
    """Poll sparsely: a tight loop steals a core from the workers (2 cores)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("benchmark timed out")
        time.sleep(every)


def count_sent(context: AppContext) -> int:
    with context.session() as session:
        return int(session.scalar(select(func.count()).where(Touch.status == "sent")) or 0)


def count_attempts(context: AppContext) -> int:
    with context.session() as session:
        return int(session.scalar(select(func.count()).select_from(DeliveryAttempt)) or 0)


def sink_lines(log: Path) -> int:
    """Messages the sink received (read once, at the end of a path)."""
    if not log.exists():
        return 0
    with log.open("rb") as handle:
        return sum(1 for _ in handle)


def seed(context: AppContext, prefix: str, n: int) -> None:
    due = datetime.now(UTC) - timedelta(minutes=1)
    with context.session() as s:
        for i in range(n):
            holder = add_holder(s, f"{prefix}{i:06d}", email=f"{prefix.lower()}{i:06d}@example.ac.jp")
            add_touch(s, holder, 1, channel="email", template="checkin", due_at=due)


def sample_payload(context: AppContext) -> bytes:
    """The bytes of one rendered ``checkin`` mail as the channel builds it (the baseline's message size)."""
    from email.utils import formatdate

    from followup.channels.base import OutboundMessage
    from followup.channels.email import MAIL_POLICY, build_email
    from followup.rendering.templates import MessageTemplates, sample_context

    rendered = MessageTemplates(context.templates_root).render("checkin", sample_context())
    message = OutboundMessage(
        "bare:0", "email", "bare@example.ac.jp", rendered.subject, rendered.text, rendered.html
    )
    msg = build_email(message, SENDER, "人事部")
    msg["Date"] = formatdate(localtime=True)
    return msg.as_bytes(policy=MAIL_POLICY)


def bare_smtplib(port: int, payload: bytes, n: int) -> float:
    """The baseline: one connection, ``sendmail`` of ready bytes n times. Returns messages per second."""
    started = time.perf_counter()
    smtp = smtplib.SMTP("127.0.0.1", port, timeout=30)
    try:
        for i in range(n):
            smtp.sendmail(SENDER, [f"bare{i:06d}@example.ac.jp"], payload)
        smtp.quit()
    finally:
        smtp.close()
    return n / (time.perf_counter() - started)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", "--holders", type=int, default=500, help="messages per path")
    parser.add_argument("--concurrency", type=int, default=2, help="Celery worker threads/processes")
    parser.add_argument("--pool", default="threads", choices=("threads", "prefork", "solo"))
    parser.add_argument("--skip-celery", action="store_true", help="time only the embedded path")
    args = parser.parse_args()
    n = args.messages

    tmp = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    postgres = start_postgres(tmp)
    redis_server = None if args.skip_celery else start_redis(tmp)
    smtp_port = free_port()
    smtp_log = tmp / "smtp.jsonl"
    sink = spawn("smtp_sink", smtp_port, smtp_log)
    smtp_url = f"smtp://127.0.0.1:{smtp_port}"
    os.environ["SMTP_URL"] = smtp_url  # the example config's channels.email.smtp_url
    os.environ.pop("FOLLOWUP_BROKER_URL", None)
    config = always_open_config(tmp)
    worker: WorkerProcess | None = None
    lines: list[str] = []
    try:
        embedded = make_context(tmp, postgres.create_database("bench_embedded"), config=config)
        seed(embedded, "EMB", n)
        payload = sample_payload(embedded)

        bare_before = bare_smtplib(smtp_port, payload, n)
        lines.append(f"bare smtplib, one connection (before): {bare_before:7.1f} msg/s  [{load()}]")

        # embedded: what `followup run` does after planning, in this process
        from followup.delivery.deliver import deliverer_for, run_due

        deliverer_for(embedded)  # as `followup run` does before its first pass: policy loaded, channels built
        received = sink_lines(smtp_log)
        started = time.perf_counter()
        summary = run_due(embedded, datetime.now(UTC), limit=n)
        embedded_rate = n / (time.perf_counter() - started)
        assert summary.count("sent") == n, summary.outcomes
        assert count_sent(embedded) == n and count_attempts(embedded) == n
        assert sink_lines(smtp_log) - received == n, "a message was lost or arrived twice"
        lines.append(f"embedded run (in-process delivery):    {embedded_rate:7.1f} msg/s  [{load()}]")

        celery_rate = None
        if redis_server is not None:
            db_url = postgres.create_database("bench_celery")
            celery = make_context(tmp, db_url, broker_url=redis_server.url, config=config)
            seed(celery, "CEL", n)
            env = {
                "FOLLOWUP_DATABASE_URL": db_url,
                "FOLLOWUP_BROKER_URL": redis_server.url,
                "FOLLOWUP_CONFIG": str(config),
                "FOLLOWUP_VAR_DIR": str(tmp),
                "FOLLOWUP_SECRET_KEY": "bench-secret-0123456789abcdefghijklmnop",
                "SMTP_URL": smtp_url,
            }
            worker = WorkerProcess(env, tmp / "worker.log", concurrency=args.concurrency, pool=args.pool)
            worker.start(timeout=60)
            from workers.celery_app import publish_deliveries

            received = sink_lines(smtp_log)
            started = time.perf_counter()
            summary = run_due(celery, datetime.now(UTC), limit=n, publish=publish_deliveries)
            wait_for(lambda: count_sent(celery) >= n, timeout=600)
            celery_rate = n / (time.perf_counter() - started)
            assert summary.dispatched == n
            assert count_attempts(celery) == n
            assert sink_lines(smtp_log) - received == n, "a message was lost or arrived twice"
            label = f"celery worker ({args.pool} x {args.concurrency}):"
            lines.append(f"{label:<39} {celery_rate:7.1f} msg/s  [{load()}]")

        bare_after = bare_smtplib(smtp_port, payload, n)
        lines.append(f"bare smtplib, one connection (after):  {bare_after:7.1f} msg/s  [{load()}]")
        bare = (bare_before + bare_after) / 2
        print(f"messages per path: {n}, message size: {len(payload)} bytes, cpus: {os.cpu_count()}")
        print("\n".join(lines))
        celery_ratio = f", celery {celery_rate / bare:.2f}" if celery_rate is not None else ""
        print(f"ratio delivery/bare smtplib: {embedded_rate / bare:.2f} (embedded run{celery_ratio})")
    finally:
        if worker is not None:
            worker.stop()
        sink.terminate()
        try:
            sink.wait(10)
        except subprocess.TimeoutExpired:
            sink.kill()
        if redis_server is not None:
            redis_server.stop()
        postgres.stop()


if __name__ == "__main__":
    main()
