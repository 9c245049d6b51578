"""RSVPs in the database: one row per holder and event, seats never over capacity, the waiting list."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from followup.config import load_policy
from followup.db.models import EventRsvp, OfferHolder
from followup.db.session import get_engine, session_scope
from followup.events.store import RsvpError, event_states, record_attendance, record_rsvp

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy
AT = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)


def _event(capacity: int | None = 10):  # type: ignore[no-untyped-def]
    return POLICY.events["konshinkai"].model_copy(update={"capacity": capacity})


def _holders(url: str, n: int) -> list[int]:
    get_engine(url)
    ids = []
    with session_scope(url) as session:
        for i in range(n):
            h = OfferHolder(
                external_id=f"NG-{i:03d}",
                name=f"内定者 {i}",
                track="new_grad",
                offer_date=date(2026, 6, 1),
                start_date=date(2027, 4, 1),
                status="accepted",
            )
            session.add(h)
            session.flush()
            ids.append(h.id)
    return ids


def _opener(url: str):  # type: ignore[no-untyped-def]
    return lambda: session_scope(url)


def _rows(url: str) -> list[EventRsvp]:
    with session_scope(url) as session:
        return list(session.scalars(select(EventRsvp).order_by(EventRsvp.id)))


def test_capacity_holds_under_16_concurrent_rsvps(any_db_url: str) -> None:
    ids = _holders(any_db_url, 16)
    event = _event(capacity=10)
    barrier = threading.Barrier(16)
    results: list[str] = []
    errors: list[BaseException] = []

    def answer(holder_id: int) -> None:
        try:
            barrier.wait()
            r = record_rsvp(_opener(any_db_url), holder_id, "konshinkai", event, "attending", at=AT)
            results.append(r.status)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=answer, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert Counter(results) == {"attending": 10, "waitlisted": 6}
    rows = _rows(any_db_url)
    assert len(rows) == 16
    seats = sorted(r.seat for r in rows if r.seat is not None)
    assert seats == list(range(1, 11))  # every seat once, none over capacity


def test_a_freed_seat_goes_to_the_first_on_the_waiting_list(sqlite_url: str) -> None:
    a, b, c = _holders(sqlite_url, 3)
    event = _event(capacity=1)
    open_ = _opener(sqlite_url)
    assert record_rsvp(open_, a, "konshinkai", event, "attending", at=AT).status == "attending"
    assert (
        record_rsvp(open_, b, "konshinkai", event, "attending", at=AT.replace(hour=4)).status == "waitlisted"
    )
    assert (
        record_rsvp(open_, c, "konshinkai", event, "attending", at=AT.replace(hour=5)).status == "waitlisted"
    )
    assert record_rsvp(open_, a, "konshinkai", event, "declined", at=AT.replace(hour=6)).status == "declined"
    by_holder = {r.holder_id: (r.status, r.seat) for r in _rows(sqlite_url)}
    assert by_holder == {a: ("declined", None), b: ("attending", 1), c: ("waitlisted", None)}


def test_the_same_answer_twice_changes_nothing_and_late_answers_are_refused(sqlite_url: str) -> None:
    (a,) = _holders(sqlite_url, 1)
    event, open_ = _event(), _opener(sqlite_url)
    assert record_rsvp(open_, a, "konshinkai", event, "maybe", at=AT).changed
    assert not record_rsvp(open_, a, "konshinkai", event, "maybe", at=AT).changed
    assert len(_rows(sqlite_url)) == 1
    after_deadline = datetime(2026, 11, 14, 3, 0, tzinfo=UTC)  # 11/13 was the deadline
    with pytest.raises(RsvpError):
        record_rsvp(open_, a, "konshinkai", event, "attending", at=after_deadline)


def test_attendance_overrides_the_answer_in_the_planners_view(sqlite_url: str) -> None:
    a, b = _holders(sqlite_url, 2)
    event, open_ = _event(), _opener(sqlite_url)
    record_rsvp(open_, a, "konshinkai", event, "attending", at=AT)
    with session_scope(sqlite_url) as session:
        assert event_states(session) == {a: {"konshinkai": "attending"}}
        assert record_attendance(session, a, "konshinkai", "absent", at=AT)
        assert record_attendance(session, b, "konshinkai", "attended", at=AT)  # walked in without answering
        assert not record_attendance(session, b, "konshinkai", "attended", at=AT)
    with session_scope(sqlite_url) as session:
        assert event_states(session) == {a: {"konshinkai": "absent"}, b: {"konshinkai": "attended"}}
