"""The import as it was before issue 18: one ORM object per row, the baseline of the bulk path.

Kept for tests/test_import_bulk.py (the bulk path must give the same holders, changes and counts) and
for benchmarks/import_holders.py (the per-row baseline, measured in the same run)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from followup.db.addresses import get_field, set_address
from followup.db.models import AuditEntry, OfferHolder
from followup.holders.importer import (
    _NOT_HOLDER_FIELDS,
    _PLAIN_FIELDS,
    HolderRow,
    ImportSummary,
    _record,
    change_start_date,
    change_status,
)


def import_holders_per_row(
    session: Session, rows: Iterable[HolderRow], *, now: datetime, source: str = "import", actor: str = "cli"
) -> ImportSummary:
    """Upsert by external_id; unchanged rows touch nothing. The caller commits (all or nothing).

    A row for someone whose data was erased on request is skipped, never re-created."""
    from followup.holders.erasure import erased_ids

    rows = list(rows)
    erased = erased_ids(session, [r.external_id for r in rows])
    rows = [r for r in rows if r.external_id not in erased]
    existing = {
        h.external_id: h
        for h in session.scalars(
            select(OfferHolder).where(OfferHolder.external_id.in_([r.external_id for r in rows]))
        )
    }
    created = updated = unchanged = 0
    for row in rows:
        holder = existing.get(row.external_id)
        if holder is None:
            holder = OfferHolder(
                **{f.name: getattr(row, f.name) for f in fields(row) if f.name not in _NOT_HOLDER_FIELDS},
                created_at=now,
                updated_at=now,
            )
            for field, value in row.contact:
                set_address(holder, field, value)
            if holder.status in ("accepted", "joined") and holder.accepted_date is None:
                holder.accepted_date = row.offer_date
            session.add(holder)
            _record(session, holder, "created", None, row.status, now, source)
            created += 1
            continue
        changed = False
        for name in _PLAIN_FIELDS:
            if name not in row.columns:
                continue  # a column the file does not have is not a request to clear the field
            new = getattr(row, name)
            if getattr(holder, name) != new:
                _record(session, holder, name, getattr(holder, name), new, now, source)
                setattr(holder, name, new)
                changed = True
        for name, new in row.contact:
            if name not in row.columns:
                continue
            if get_field(holder, name) != new:
                _record(session, holder, name, get_field(holder, name), new, now, source)
                set_address(holder, name, new)
                changed = True
        if holder.start_date != row.start_date:
            change_start_date(session, holder, row.start_date, at=now, source=source)
            changed = True
        if "status" in row.columns and holder.status != row.status:
            change_status(
                session, holder, row.status, at=now, reason=row.decline_reason, source=source, check=False
            )
            changed = True
        if row.accepted_date is not None and holder.accepted_date != row.accepted_date:
            _record(session, holder, "accepted_date", holder.accepted_date, row.accepted_date, now, source)
            holder.accepted_date = row.accepted_date
            changed = True
        if changed:
            holder.updated_at = now
            updated += 1
        else:
            unchanged += 1
    session.add(
        AuditEntry(
            at=now,
            actor=actor,
            action="import_holders",
            detail={"created": created, "updated": updated, "unchanged": unchanged},
        )
    )
    return ImportSummary(created, updated, unchanged, tuple(sorted(erased)))
