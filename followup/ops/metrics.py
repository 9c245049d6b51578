"""Prometheus metrics, read from the database at scrape time.

The database is the source of truth for touches and flags, so the web app exposes counts from it
rather than per-process counters: every worker and scheduler is covered, and a restart loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from followup.db.models import DeliveryAttempt, Flag, OfferHolder, Touch


class DatabaseCollector(Collector):
    def __init__(
        self, session_factory: Callable[[], Session], clock: Callable[[], datetime] | None = None
    ) -> None:
        self.session_factory = session_factory
        self.clock = clock or (lambda: datetime.now(UTC))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        touches = GaugeMetricFamily(
            "followup_touches", "Touches by status and channel", labels=["status", "channel"]
        )
        attempts = GaugeMetricFamily(
            "followup_delivery_attempts",
            "Delivery attempts by outcome and channel",
            labels=["outcome", "channel"],
        )
        flags = GaugeMetricFamily("followup_open_flags", "Open flags by rule", labels=["rule", "severity"])
        holders = GaugeMetricFamily("followup_holders", "Offer holders by status", labels=["status"])
        lag = GaugeMetricFamily("followup_queue_lag_seconds", "Age of the oldest due touch not yet sent")
        with self.session_factory() as session:
            for status, channel, count in session.execute(
                select(Touch.status, Touch.channel, func.count()).group_by(Touch.status, Touch.channel)
            ):
                touches.add_metric([status, channel], count)
            for outcome, channel, count in session.execute(
                select(DeliveryAttempt.outcome, DeliveryAttempt.channel, func.count()).group_by(
                    DeliveryAttempt.outcome, DeliveryAttempt.channel
                )
            ):
                attempts.add_metric([outcome, channel], count)
            for rule, severity, count in session.execute(
                select(Flag.rule, Flag.severity, func.count())
                .where(Flag.resolved_at.is_(None))
                .group_by(Flag.rule, Flag.severity)
            ):
                flags.add_metric([rule, severity], count)
            for status, count in session.execute(
                select(OfferHolder.status, func.count()).group_by(OfferHolder.status)
            ):
                holders.add_metric([status], count)
            now = self.clock()
            oldest = session.scalar(
                select(func.min(Touch.due_at)).where(
                    Touch.status.in_(("planned", "sending")), Touch.kind != "manual", Touch.due_at <= now
                )
            )
            if oldest is not None and oldest.tzinfo is None:
                oldest = oldest.replace(tzinfo=UTC)
            lag.add_metric([], (now - oldest).total_seconds() if oldest else 0.0)
        yield from (touches, attempts, flags, holders, lag)


def render_metrics(session_factory: Callable[[], Session]) -> bytes:
    """The Prometheus text exposition of the current counts."""
    registry = CollectorRegistry()
    registry.register(DatabaseCollector(session_factory))
    return generate_latest(registry)
