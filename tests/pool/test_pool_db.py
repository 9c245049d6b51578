"""The pool against SQLite and PostgreSQL: migration 0011, planning exactly once, clicks counted once."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from followup.db.models import EngagementEvent, OfferHolder, Touch
from followup.db.session import session_scope
from followup.planning.store import load_pool_members, plan_tick
from followup.pool.figures import compute_pool_figures
from followup.pool.store import pool_people, record_click
from tests.conftest import make_context

TOKYO = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 6, 1, 11, 0, tzinfo=TOKYO)


def test_pool_touches_are_planned_once_and_a_click_counts_once_on_both_databases(
    any_db_url: str, tmp_path: Path
) -> None:
    with session_scope(any_db_url) as session:
        for i, consent in ((1, date(2026, 6, 1)), (2, None), (3, None)):
            session.add(
                OfferHolder(
                    external_id=f"R-{i}",
                    name=f"応募 {i}",
                    email=f"r{i}@example.jp",
                    track="new_grad",
                    offer_date=date(2026, 6, 1),
                    start_date=date(2026, 6, 1),
                    rejected_date=date(2026, 6, 1),
                    status="rejected",
                    consent_date=consent,
                    consent_source="import" if consent else None,
                )
            )
    context = make_context(any_db_url, tmp_path)
    first = plan_tick(context, NOW)
    assert first.created == 3  # the rejection mail for each; nothing else is due yet
    assert plan_tick(context, NOW).created == 0
    with session_scope(any_db_url) as session:
        keys = sorted(session.scalars(select(Touch.key)))
        assert keys == [f"R-{i}:pool:2026-06-01:rejection:0" for i in (1, 2, 3)]
        members, existing = load_pool_members(session, context.policy)
        assert {m.external_id: m.consent_date for m in members} == {
            "R-1": date(2026, 6, 1),
            "R-2": None,
            "R-3": None,
        }
        assert sum(len(v) for v in existing.values()) == 3
        holder_id = members[0].id
        assert record_click(session, holder_id, "career", at=NOW) is True
        assert record_click(session, holder_id, "career", at=NOW) is False  # the same person again
    with session_scope(any_db_url) as session:
        assert len(session.scalars(select(EngagementEvent).where(EngagementEvent.kind == "click")).all()) == 1
        figures = compute_pool_figures(pool_people(session, context.policy, NOW))
    assert (figures.size, figures.consented, figures.opened) == (3, 1, {"career": 1})
