"""The Celery app: Redis broker from ``FOLLOWUP_BROKER_URL``, no result backend.

Settings chosen for "exactly once" with the database as the arbiter:

- ``task_acks_late`` + ``task_reject_on_worker_lost``: a task whose worker dies is delivered again rather
  than lost; the atomic claim in ``followup.delivery.deliver`` turns the second run into a no-op.
- ``worker_prefetch_multiplier=1``: a killed worker takes at most one reserved task per process with it.
- A long ``visibility_timeout``: Redis redelivers an unacknowledged message after this long. Our tasks
  are short and never carry an ETA (``due_at`` lives in the database and is enqueued only when due), so
  the long timeout only delays the broker's own redelivery; lost work is found by ``dispatch_due``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery import Celery, signals

from followup.ops.logs import protect_handlers

DEFAULT_QUEUE = "followup"
VISIBILITY_TIMEOUT = 12 * 3600


def make_app(broker_url: str | None = None) -> Celery:
    url = broker_url or os.environ.get("FOLLOWUP_BROKER_URL") or "redis://127.0.0.1:6379/0"
    app = Celery("followup", broker=url, include=["workers.tasks"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
        broker_connection_retry_on_startup=True,
        broker_connection_retry=True,
        broker_connection_max_retries=None,  # keep trying while Redis restarts
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_backend=None,
        task_ignore_result=True,
        task_default_queue=DEFAULT_QUEUE,
        task_publish_retry=True,
        task_publish_retry_policy={
            "max_retries": 5,
            "interval_start": 0.2,
            "interval_step": 0.5,
            "interval_max": 2,
        },
        worker_cancel_long_running_tasks_on_connection_loss=False,
        worker_hijack_root_logger=True,
        enable_utc=True,
        timezone="UTC",
    )
    return app


app = make_app()
DELIVER_TASK = "followup.deliver"


def publish_deliveries(broker_url: str, touch_ids: list[int]) -> int:
    """Publish one ``followup.deliver(touch_id)`` per id, by task name. Publishing twice is harmless (the
    claim decides); an id that cannot be published stays ``planned`` and the next dispatch publishes it."""
    sent = 0
    with app.connection_for_write(broker_url) as connection:
        for touch_id in touch_ids:
            app.send_task(DELIVER_TASK, args=[touch_id], connection=connection, queue=DEFAULT_QUEUE)
            sent += 1
    return sent


def _no_personal_data_in_logs(logger: logging.Logger, *args: Any, **kwargs: Any) -> None:
    """Celery configures its own handlers; give them the PII filter and FOLLOWUP_LOG_JSON's format."""
    protect_handlers(
        logger, json_lines=os.environ.get("FOLLOWUP_LOG_JSON", "").lower() in ("1", "true", "yes")
    )


signals.after_setup_logger.connect(_no_personal_data_in_logs, weak=False)
signals.after_setup_task_logger.connect(_no_personal_data_in_logs, weak=False)
