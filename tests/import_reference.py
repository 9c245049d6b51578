"""The per-row import as it was before issue 18 (one ORM OfferHolder and HolderChange per row).

Kept verbatim as the reference the set-based ``followup.holders.importer.import_holders`` is tested
against (tests/holders/test_import_bulk.py) and as the slow baseline of benchmarks/import_holders.py
(``--reference``). Not used by the application.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from followup.db.addresses import get_field, set_address
from followup.db.models import AuditEntry, HolderChange, OfferHolder
from followup.holders.importer import HolderRow, ImportSummary, change_start_date, change_status
from followup.vocab import ACTIVE_STATUSES, POOL_STATUSES


def _record(
    session: Session,
    holder: OfferHolder,
    field: str,
    old: object,
    new: object,
    at: datetime,
    source: str,
    note: str | None = None,
) -> None:
    session.add(
        HolderChange(
            holder=holder,
            at=at,
            field=field,
            old_value=None if old is None else str(old),
            new_value=None if new is None else str(new),
            note=note,
            source=source,
        )
    )


_NOT_HOLDER_FIELDS = ("line", "columns", "contact", "consent")
_PLAIN_FIELDS = (
    "name",
    "email",
    "track",
    "department",
    "offer_date",
    "mentor_email",
    "phone",
    "acceptance_deadline",
    "rejected_date",
    "left_date",
)


def _apply_consent(session: Session, holder: OfferHolder, row: HolderRow, now: datetime, source: str) -> bool:
    """The 同意 / 同意日 columns: consent is recorded (never cleared by an empty cell), or withdrawn by an
    explicit no. A consent given on the web page stays: only a no in the file takes it back."""
    given = row.consent is True or (row.consent is None and row.consent_date is not None)
    if given:
        day = row.consent_date or holder.consent_date or now.date()
        if holder.consent_date == day:
            return False
        _record(
            session, holder, "consent_date", holder.consent_date, day, now, source, "連絡への同意(取り込み)"
        )
        holder.consent_date, holder.consent_source = day, "import"
        return True
    if row.consent is False and holder.consent_date is not None:
        _record(session, holder, "consent_date", holder.consent_date, None, now, source, "同意なし(取り込み)")
        holder.consent_date, holder.consent_source = None, None
        return True
    return False


def _pool_members_by_email(
    session: Session, rows: list[HolderRow], known: set[str]
) -> dict[str, OfferHolder]:
    """Earlier pool members (不採用・辞退) with the email of a new row: the row is their re-application."""
    emails = {r.email.lower() for r in rows if r.email and r.external_id not in known}
    if not emails:
        return {}
    found: dict[str, OfferHolder] = {}
    query = select(OfferHolder).where(OfferHolder.status.in_(POOL_STATUSES), OfferHolder.erased_at.is_(None))
    for holder in session.scalars(query.order_by(OfferHolder.id)):
        if holder.email and holder.email.lower() in emails:
            found[holder.email.lower()] = holder  # the latest record of that person
    return found


# ids per IN list: PostgreSQL allows 65,535 bind parameters a statement, older SQLite builds 32,766
LOOKUP_CHUNK = 30_000


def import_holders_reference(
    session: Session, rows: Iterable[HolderRow], *, now: datetime, source: str = "import", actor: str = "cli"
) -> ImportSummary:
    """Upsert by external_id; unchanged rows touch nothing. The caller commits (all or nothing).

    A row for someone whose data was erased on request is skipped, never re-created."""
    from followup.holders.erasure import erased_ids

    rows = list(rows)
    erased = erased_ids(session, [r.external_id for r in rows])
    rows = [r for r in rows if r.external_id not in erased]
    ids = [r.external_id for r in rows]
    existing = {
        h.external_id: h
        for start in range(0, len(ids), LOOKUP_CHUNK)  # an IN list per chunk: within bind limits
        for h in session.scalars(
            select(OfferHolder).where(OfferHolder.external_id.in_(ids[start : start + LOOKUP_CHUNK]))
        )
    }
    created = updated = unchanged = reapplied = consents = 0
    details: list[tuple[str, str]] = []
    ended: list[int] = []
    earlier_by_email = _pool_members_by_email(session, rows, set(existing))
    for row in rows:
        holder = existing.get(row.external_id)
        if holder is None:
            holder = OfferHolder(
                **{f.name: getattr(row, f.name) for f in fields(row) if f.name not in _NOT_HOLDER_FIELDS},
                created_at=now,
                updated_at=now,
            )
            holder.consent_date = None
            for field, value in row.contact:
                set_address(holder, field, value)
            if holder.status in ("accepted", "joined") and holder.accepted_date is None:
                holder.accepted_date = row.offer_date
            session.add(holder)
            _record(session, holder, "created", None, row.status, now, source)
            consents += _apply_consent(session, holder, row, now, source)
            earlier = earlier_by_email.get((row.email or "").lower())
            if earlier is not None:
                session.flush([earlier])
                holder.reapplied_from_id = earlier.id
                _record(
                    session,
                    holder,
                    "reapplied",
                    earlier.external_id,
                    row.status,
                    now,
                    source,
                    "人材プールからの再応募",
                )
                reapplied += 1
            created += 1
            details.append((row.external_id, "created"))
            continue
        changed = False
        what: list[str] = []
        again = holder.status in POOL_STATUSES and (
            ("status" in row.columns and row.status in ACTIVE_STATUSES)
            or (
                holder.status == row.status == "rejected"
                and holder.rejected_date is not None
                and row.rejected_date is not None
                and row.rejected_date > holder.rejected_date
            )
        )
        for name in _PLAIN_FIELDS:
            if name not in row.columns:
                continue  # a column the file does not have is not a request to clear the field
            new = getattr(row, name)
            if getattr(holder, name) != new:
                _record(session, holder, name, getattr(holder, name), new, now, source)
                setattr(holder, name, new)
                changed = True
                what.append(name)
        for name, new in row.contact:
            if name not in row.columns:
                continue
            if get_field(holder, name) != new:
                _record(session, holder, name, get_field(holder, name), new, now, source)
                set_address(holder, name, new)
                changed = True
                what.append(name)
        if "start_date" in row.columns and holder.start_date != row.start_date:
            what.append(f"start_date {holder.start_date} → {row.start_date}")
            change_start_date(session, holder, row.start_date, at=now, source=source)
            changed = True
        if again:  # the same person applied again (same external id): linked on their own timeline
            _record(
                session, holder, "reapplied", holder.status, row.status, now, source, "人材プールからの再応募"
            )
            reapplied += 1
            what.append("reapplied")
        if _apply_consent(session, holder, row, now, source):
            consents += 1
            changed = True
            what.append("consent_date")
        if "status" in row.columns and holder.status != row.status:
            what.append(f"status {holder.status} → {row.status}")
            if row.status not in ("offered", "accepted"):
                ended.append(holder.id)
            change_status(
                session, holder, row.status, at=now, reason=row.decline_reason, source=source, check=False
            )
            changed = True
        if row.accepted_date is not None and holder.accepted_date != row.accepted_date:
            _record(session, holder, "accepted_date", holder.accepted_date, row.accepted_date, now, source)
            holder.accepted_date = row.accepted_date
            changed = True
            what.append("accepted_date")
        if changed:
            holder.updated_at = now
            updated += 1
            details.append((row.external_id, "updated: " + ", ".join(what)))
        else:
            unchanged += 1
    session.add(
        AuditEntry(
            at=now,
            actor=actor,
            action="import_holders",
            detail={
                "created": created,
                "updated": updated,
                "unchanged": unchanged,
                "reapplied": reapplied,
                # consent given or withdrawn in the file's 同意 / 同意日 columns (特定電子メール法 records)
                "consent_changes": consents,
            },
        )
    )
    return ImportSummary(
        created, updated, unchanged, tuple(sorted(erased)), tuple(details), tuple(ended), reapplied
    )
