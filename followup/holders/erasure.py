"""Deleting one offer holder's personal data on request (個人情報保護法), keeping anonymous counts.

The holder row stays (so cohort rates and touch counts in past reports still add up) but loses every
field that identifies a person: name, contact ids, the ATS id (also inside touch keys), free-text
survey answers, message payloads of replies, HR notes, provider error texts, and contact values in the
change history. Messages already written to an outbox folder are files the operator removes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from followup.config import Policy
from followup.db.addresses import address_fields, clear_addresses
from followup.db.models import (
    AuditEntry,
    DeliveryAttempt,
    EngagementEvent,
    HolderChange,
    OfferHolder,
    SurveyResponse,
    Touch,
)


def _contact_fields() -> tuple[str, ...]:
    """The change-log fields that hold personal data: the name, the mentor and every channel address."""
    return ("name", "email", *address_fields().values(), "mentor_email", "phone")


def erased_id_hash(external_id: str) -> str:
    """What is kept of an erased ATS id: enough for a later import to recognise and skip the person."""
    return hashlib.sha256(f"followup-erased:{external_id}".encode()).hexdigest()


def erased_ids(session: Session, external_ids: Iterable[str]) -> set[str]:
    """Those of ``external_ids`` whose holder was erased on request (an import must not bring them back)."""
    hashes = {
        str(detail.get("id_hash"))
        for detail in session.scalars(select(AuditEntry.detail).where(AuditEntry.action == "erase_holder"))
    }
    return {external_id for external_id in external_ids if erased_id_hash(external_id) in hashes}


def erase_holder(session: Session, holder: OfferHolder, policy: Policy, *, now: datetime, actor: str) -> str:
    """Anonymise ``holder`` in place and return its new pseudonymous id. Pending touches are cancelled."""
    pseudonym = f"erased-{holder.id}"
    original = holder.external_id
    for touch in session.scalars(select(Touch).where(Touch.holder_id == holder.id)):
        if touch.key.startswith(f"{original}:"):  # idempotency keys begin with the ATS id
            touch.key = pseudonym + touch.key[len(original) :]
    session.execute(
        update(DeliveryAttempt)
        .where(DeliveryAttempt.touch_id.in_(select(Touch.id).where(Touch.holder_id == holder.id)))
        .values(error=None)
    )
    holder.external_id = pseudonym
    holder.name = "(削除済み)"
    clear_addresses(holder)
    holder.email = holder.mentor_email = None
    holder.phone = None
    holder.decline_reason = None
    holder.erased_at = now
    session.execute(
        update(HolderChange)
        .where(HolderChange.holder_id == holder.id, HolderChange.field.in_(_contact_fields()))
        .values(old_value=None, new_value=None)
    )
    session.execute(update(HolderChange).where(HolderChange.holder_id == holder.id).values(note=None))
    session.execute(update(EngagementEvent).where(EngagementEvent.holder_id == holder.id).values(payload={}))
    session.execute(
        update(Touch)
        .where(Touch.holder_id == holder.id, Touch.status == "planned")
        .values(status="cancelled", cancel_reason="personal data erased")
    )
    session.execute(update(Touch).where(Touch.holder_id == holder.id).values(note=None, last_error=None))
    for response in session.scalars(select(SurveyResponse).where(SurveyResponse.holder_id == holder.id)):
        survey = policy.surveys.get(response.form)
        free_text = {q.id for q in survey.questions if q.type == "text"} if survey else set(response.answers)
        response.answers = {k: v for k, v in response.answers.items() if k not in free_text}
    session.add(
        AuditEntry(
            at=now,
            actor=actor,
            action="erase_holder",
            detail={"holder": pseudonym, "id_hash": erased_id_hash(original)},
        )
    )
    return pseudonym
