"""Touch inserts that skip existing keys (``INSERT … ON CONFLICT (key) DO NOTHING``), shared by the planner's
edge, escalations, announcements and cohort invitations: the unique key is what makes each of them once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from followup.db.models import Touch

INSERT_BATCH = 1000


def _touches() -> Table:
    return Touch.__table__  # type: ignore[return-value]


def touch_insert(session: Session) -> Any:
    """The dialect's INSERT into ``touches``, which knows ON CONFLICT."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(_touches())
    return sqlite.insert(_touches())


def insert_touches(session: Session, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert touch rows, skipping every key that exists already; returns how many were new."""
    if not rows:
        return 0
    statement = (
        touch_insert(session).on_conflict_do_nothing(index_elements=["key"]).returning(_touches().c.id)
    )
    return sum(
        len(session.execute(statement, list(rows[i : i + INSERT_BATCH])).all())
        for i in range(0, len(rows), INSERT_BATCH)
    )
