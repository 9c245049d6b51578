"""The weekly report lists upcoming events with their RSVP counts (出席 / 待ち / 欠席 / 未定 / 未回答)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from followup.config import load_policy
from followup.db.models import OfferHolder, Touch
from followup.db.session import get_engine, session_scope
from followup.events.store import record_rsvp
from followup.report import build_report

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy
NOW = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)


def test_upcoming_events_with_rsvp_counts(sqlite_url: str) -> None:
    get_engine(sqlite_url)
    ids = []
    with session_scope(sqlite_url) as session:
        for i in range(4):
            h = OfferHolder(
                external_id=f"NG-{i}",
                name=f"内定者 {i}",
                track="new_grad",
                offer_date=date(2026, 6, 1),
                start_date=date(2027, 4, 1),
                status="accepted",
            )
            session.add(h)
            session.flush()
            ids.append(h.id)
            due = datetime(2026, 10, 30, 1, 0, tzinfo=UTC)
            session.add(
                Touch(
                    key=f"NG-{i}:new_grad:event:konshinkai:invitation",
                    holder_id=h.id,
                    cadence="new_grad",
                    phase="event",
                    seq=-120,
                    kind="message",
                    channel="email",
                    template="konshinkai_invite",
                    event="konshinkai",
                    due_at=due,
                    status="sent",
                    sent_at=due,
                )
            )
    event = POLICY.events["konshinkai"]
    record_rsvp(lambda: session_scope(sqlite_url), ids[0], "konshinkai", event, "attending", at=NOW)
    record_rsvp(lambda: session_scope(sqlite_url), ids[1], "konshinkai", event, "declined", at=NOW)
    with session_scope(sqlite_url) as session:
        report = build_report(session, POLICY, NOW)
    [row] = report.upcoming_events  # 内定式 (10/1) is past; 懇親会 11/20 is within eight weeks
    assert (row.event, row.attending, row.declined, row.maybe, row.unanswered, row.capacity) == (
        "konshinkai",
        1,
        1,
        0,
        2,
        40,
    )
