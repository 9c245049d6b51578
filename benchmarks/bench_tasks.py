"""The benchmark's baseline task, loaded into the worker with ``--include=benchmarks.bench_tasks``."""

from __future__ import annotations

import os

import redis

from workers.celery_app import app

_client: redis.Redis | None = None


@app.task(name="bench.noop", ignore_result=True)
def noop() -> None:
    """Nothing but a counter bump, so the benchmark can see when all of them ran."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    _client.incr("bench:noop:done")
