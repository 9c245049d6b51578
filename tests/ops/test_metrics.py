"""Prometheus metrics count what the database holds: touches, attempts, flags, queue lag."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from followup.db.models import DeliveryAttempt, Flag, OfferHolder, Touch
from followup.db.session import session_factory, session_scope
from followup.ops.metrics import render_metrics


def test_metrics_report_touches_flags_and_lag(sqlite_url: str) -> None:
    due = datetime.now(UTC) - timedelta(minutes=10)
    with session_scope(sqlite_url) as session:
        holder = OfferHolder(
            external_id="M1",
            name="計測 花子",
            email="m@example.jp",
            offer_date=date(2026, 4, 1),
            start_date=date(2027, 4, 1),
        )
        session.add(holder)
        session.flush()
        sent = Touch(
            key="a",
            holder_id=holder.id,
            cadence="c",
            phase="p",
            seq=0,
            kind="message",
            channel="email",
            due_at=due,
            status="sent",
        )
        session.add_all(
            [
                sent,
                Touch(
                    key="b",
                    holder_id=holder.id,
                    cadence="c",
                    phase="p",
                    seq=1,
                    kind="message",
                    channel="line",
                    due_at=due,
                    status="planned",
                ),
            ]
        )
        session.flush()
        session.add(DeliveryAttempt(touch_id=sent.id, channel="email", outcome="sent"))
        session.add(
            Flag(
                holder_id=holder.id,
                rule="neglected",
                severity="high",
                reason="r",
                first_seen=due,
                last_seen=due,
            )
        )
    text = render_metrics(session_factory(sqlite_url)).decode()
    assert 'followup_touches{channel="email",status="sent"} 1.0' in text
    assert 'followup_touches{channel="line",status="planned"} 1.0' in text
    assert 'followup_delivery_attempts{channel="email",outcome="sent"} 1.0' in text
    assert 'followup_open_flags{rule="neglected",severity="high"} 1.0' in text
    lag = float(
        next(line for line in text.splitlines() if line.startswith("followup_queue_lag_seconds ")).split()[1]
    )
    assert 590 < lag < 700


def test_the_web_app_serves_metrics_and_health(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from followup.web import create_app
    from tests.web_fixtures import make_web_context

    with TestClient(create_app(make_web_context(tmp_path))) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 200
        response = client.get("/metrics")
        assert response.status_code == 200
        assert "followup_queue_lag_seconds 0.0" in response.text
