"""The talent pool's database edge: consent, link clicks, 辞退日 (the planner's members: planning/store).

Consent and its withdrawal are recorded three times on purpose, each for its reader: the holder row
(``consent_date``, ``consent_source``: what delivery checks), a ``HolderChange`` (the person's
timeline) and an ``AuditEntry`` (the audit log, for 特定電子メール法 records of how consent was given).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from followup.config.schema import Policy
from followup.db.models import AuditEntry, ChannelOptOut, EngagementEvent, HolderChange, OfferHolder, Touch
from followup.pool.figures import PoolPerson
from followup.vocab import POOL_CADENCE


def declined_days(
    session: Session, policy: Policy, holder_ids: Sequence[int] | None = None
) -> dict[int, date]:
    """The local day each holder's offer was last declined (辞退日), from the lifecycle history."""
    query = (
        select(HolderChange.holder_id, func.max(HolderChange.at))
        .where(HolderChange.field == "status", HolderChange.new_value == "declined")
        .group_by(HolderChange.holder_id)
    )
    if holder_ids is not None:
        query = query.where(HolderChange.holder_id.in_(list(holder_ids)))
    tz = policy.organization.tz
    return {hid: at.astimezone(tz).date() for hid, at in session.execute(query) if at is not None}


def superseded_ids(session: Session) -> set[int]:
    """Pool records whose person applied again under a new external id (linked by email): they are
    an applicant again, under the new record, and hear nothing more from the pool."""
    query = select(OfferHolder.reapplied_from_id).where(OfferHolder.reapplied_from_id.is_not(None))
    return {hid for hid in session.scalars(query) if hid is not None}


def record_consent(session: Session, holder: OfferHolder, *, at: datetime, source: str, actor: str) -> bool:
    """Consent to hear from us again (the checkbox on /r/TOKEN); False when it was already recorded."""
    if holder.consent_date is not None:
        return False
    day = at.date()
    session.add(
        HolderChange(
            holder=holder,
            at=at,
            field="consent_date",
            old_value=None,
            new_value=day.isoformat(),
            note="連絡への同意(選考結果ページのチェックボックス)",
            source=source,
        )
    )
    holder.consent_date, holder.consent_source = day, source
    session.add(
        AuditEntry(
            at=at,
            actor=actor,
            action="pool_consent",
            detail={"external_id": holder.external_id, "source": source, "date": day.isoformat()},
        )
    )
    return True


def record_click(session: Session, holder_id: int, link: str, *, at: datetime) -> bool:
    """One person opening one pool link (counted once per person and link); False when already counted."""
    try:
        with session.begin_nested():
            session.add(
                EngagementEvent(
                    holder_id=holder_id,
                    at=at,
                    kind="click",
                    channel="email",
                    payload={"link": link},
                    dedupe_key=f"pool-click:{holder_id}:{link}",
                )
            )
        return True
    except IntegrityError:
        return False


def pool_people(session: Session, policy: Policy, now: datetime) -> list[PoolPerson]:
    """Everyone who is or was in the pool up to ``now``, as plain records for :mod:`followup.pool.figures`."""
    statuses = sorted(set(policy.pool.statuses))
    reapplied_ids = set(
        session.scalars(
            select(HolderChange.holder_id).where(HolderChange.field == "reapplied", HolderChange.at <= now)
        )
    )
    with_pool_touch = set(session.scalars(select(Touch.holder_id).where(Touch.cadence == POOL_CADENCE)))
    rows = list(
        session.execute(
            select(
                OfferHolder.id, OfferHolder.status, OfferHolder.consent_source, OfferHolder.erased_at
            ).where(
                or_(
                    OfferHolder.status.in_(statuses),
                    OfferHolder.id.in_(reapplied_ids),
                    OfferHolder.id.in_(with_pool_touch),
                )
            )
        )
    )
    ids = [r.id for r in rows]
    reached: dict[int, set[str]] = defaultdict(set)
    steps: dict[int, set[str]] = defaultdict(set)
    for hid, channel, phase in session.execute(
        select(Touch.holder_id, Touch.channel, Touch.phase).where(
            Touch.cadence == POOL_CADENCE, Touch.status == "sent", Touch.sent_at <= now
        )
    ):
        reached[hid].add(channel)
        steps[hid].add(phase)
    opened: dict[int, set[str]] = defaultdict(set)
    for hid, payload in session.execute(
        select(EngagementEvent.holder_id, EngagementEvent.payload).where(
            EngagementEvent.kind == "click", EngagementEvent.at <= now
        )
    ):
        if hid is not None and isinstance(payload, dict):
            opened[hid].add(str(payload.get("link", "")))
    opted = set(
        session.scalars(
            select(ChannelOptOut.holder_id).where(ChannelOptOut.holder_id.in_(ids), ChannelOptOut.at <= now)
        )
    )
    superseded = superseded_ids(session)
    people: list[PoolPerson] = []
    for row in rows:
        again = row.id in reapplied_ids
        people.append(
            PoolPerson(
                status=row.status,
                in_pool=row.status in statuses and row.erased_at is None and row.id not in superseded,
                consent_source=row.consent_source if row.status in statuses else None,
                reached=frozenset(reached.get(row.id, ())),
                steps=frozenset(steps.get(row.id, ())),
                opened=frozenset(opened.get(row.id, ())),
                opted_out=row.id in opted,
                reapplied=again,
                hired=again and row.status in ("accepted", "joined"),
            )
        )
    return people


def pool_rows(session: Session, policy: Policy, external_id: str | None = None) -> list[dict[str, Any]]:
    """The pool as HR reads it (``followup pool list/show``): one record per member, with its pool
    mails, consent, opt-outs, opened links and re-application. Erased people are left out."""
    statuses = sorted(set(policy.pool.statuses))
    query = select(OfferHolder).where(OfferHolder.erased_at.is_(None))
    if external_id is not None:
        query = query.where(OfferHolder.external_id == external_id)
    else:
        query = query.where(OfferHolder.status.in_(statuses))
    holders = list(session.scalars(query.order_by(OfferHolder.external_id)))
    ids = [h.id for h in holders]
    touches: dict[int, list[Touch]] = defaultdict(list)
    for touch in session.scalars(
        select(Touch).where(Touch.holder_id.in_(ids), Touch.cadence == POOL_CADENCE).order_by(Touch.due_at)
    ):
        touches[touch.holder_id].append(touch)
    opted: dict[int, list[str]] = defaultdict(list)
    for hid, channel in session.execute(
        select(ChannelOptOut.holder_id, ChannelOptOut.channel).where(ChannelOptOut.holder_id.in_(ids))
    ):
        opted[hid].append(channel)
    opened: dict[int, set[str]] = defaultdict(set)
    for hid, payload in session.execute(
        select(EngagementEvent.holder_id, EngagementEvent.payload).where(
            EngagementEvent.kind == "click", EngagementEvent.holder_id.in_(ids)
        )
    ):
        if hid is not None and isinstance(payload, dict):
            opened[hid].add(str(payload.get("link", "")))
    again = {
        hid: (old, new)
        for hid, old, new in session.execute(
            select(HolderChange.holder_id, HolderChange.old_value, HolderChange.new_value).where(
                HolderChange.field == "reapplied", HolderChange.holder_id.in_(ids)
            )
        )
    }
    later = {
        origin: ext
        for origin, ext in session.execute(
            select(OfferHolder.reapplied_from_id, OfferHolder.external_id).where(
                OfferHolder.reapplied_from_id.in_(ids)
            )
        )
    }
    declined = declined_days(session, policy, [h.id for h in holders if h.status == "declined"])
    records: list[dict[str, Any]] = []
    for h in holders:
        mails = touches.get(h.id, [])
        sent = [t for t in mails if t.status == "sent"]
        pending = [t for t in mails if t.status == "planned"]
        anchor = h.rejected_date if h.status == "rejected" else declined.get(h.id)
        records.append(
            {
                "external_id": h.external_id,
                "name": h.name,
                "status": h.status,
                "anchor": anchor.isoformat() if anchor else None,
                "consent_date": h.consent_date.isoformat() if h.consent_date else None,
                "consent_source": h.consent_source,
                "opted_out": sorted(opted.get(h.id, [])),
                "opened": sorted(opened.get(h.id, set())),
                "reapplied": h.id in again or h.id in later,
                "reapplied_as": later.get(h.id),
                "last_sent": sent[-1].sent_at.isoformat() if sent and sent[-1].sent_at else None,
                "next_due": pending[0].due_at.isoformat() if pending else None,
                "touches": [
                    {
                        "step": t.phase,
                        "template": t.template,
                        "channel": t.channel,
                        "due_at": t.due_at.isoformat(),
                        "status": t.status,
                        "cancel_reason": t.cancel_reason,
                    }
                    for t in mails
                ],
            }
        )
    return records


__all__ = ["declined_days", "pool_people", "pool_rows", "record_click", "record_consent", "superseded_ids"]
