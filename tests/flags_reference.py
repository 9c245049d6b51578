"""Persisting flags as it was before issue 18: one ORM object per flag, the reference of the bulk path."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from followup.db.models import Flag
from followup.flags.rules import FlagDecision


@dataclass
class ReferenceChanges:
    new: list[Flag] = field(default_factory=list)
    continuing: list[Flag] = field(default_factory=list)
    resolved: list[Flag] = field(default_factory=list)


def persist_flags_per_row(
    session: Session, decisions: Iterable[FlagDecision], now: datetime
) -> ReferenceChanges:
    """Bring the ``flags`` table in line with this evaluation: a flag that fires again keeps its row
    (``last_seen`` moves on), a new one gets a row, an open one that no longer fires is resolved."""
    changes = ReferenceChanges()
    open_rows = {
        (row.holder_id, row.rule): row
        for row in session.scalars(select(Flag).where(Flag.resolved_at.is_(None)))
    }
    seen: set[tuple[int, str]] = set()
    for decision in decisions:
        key = (decision.holder_id, decision.rule)
        if key in seen:
            continue
        seen.add(key)
        row = open_rows.get(key)
        if row is None:
            row = Flag(
                holder_id=decision.holder_id,
                rule=decision.rule,
                severity=decision.severity,
                reason=decision.reason,
                action=decision.action,
                since=decision.since,
                first_seen=now,
                last_seen=now,
            )
            session.add(row)
            changes.new.append(row)
        else:
            row.severity, row.reason, row.action = decision.severity, decision.reason, decision.action
            row.last_seen = max(row.last_seen, now)
            changes.continuing.append(row)
    for key, row in open_rows.items():
        if key not in seen:
            row.resolved_at = now
            changes.resolved.append(row)
    session.flush()
    return changes
