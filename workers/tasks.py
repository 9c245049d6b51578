"""Thin tasks: they take ids, build the process's AppContext once, and call ``followup.delivery.deliver``."""

from __future__ import annotations

import os
import socket
import threading
from datetime import UTC, datetime
from typing import Any

from celery.signals import worker_process_init

from followup.config.context import AppContext
from followup.db.session import dispose_engines
from followup.delivery.deliver import deliver_touch
from workers.celery_app import app

_context: AppContext | None = None
_lock = threading.Lock()


@worker_process_init.connect  # type: ignore[untyped-decorator]
def _after_fork(**_: Any) -> None:
    """A forked child must not share the parent's pooled database connections."""
    global _context
    dispose_engines()
    _context = None


def process_context() -> AppContext:
    """Settings and policy from the environment, loaded once per worker process."""
    global _context
    with _lock:
        if _context is None:
            _context = AppContext()
        return _context


def worker_name() -> str:
    return f"celery@{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


@app.task(name="followup.deliver", ignore_result=True)  # type: ignore[untyped-decorator]
def deliver(touch_id: int) -> str:
    """Deliver one touch if it is still planned and due; anything else is a no-op by design."""
    return deliver_touch(process_context(), int(touch_id), now=datetime.now(UTC), worker=worker_name())


@app.task(name="followup.ping", ignore_result=True)  # type: ignore[untyped-decorator]
def ping() -> None:
    """Does nothing: a health check, and the broker round-trip baseline in the throughput benchmark."""
