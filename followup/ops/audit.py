"""The audit log of HR actions: who imported, logged a touch, changed the policy, erased data.

Policy changes are detected rather than declared: each process that acts on the policy records the
file's SHA-256, and a fingerprint different from the last recorded one becomes a ``config_changed``
entry, so "which cadence was in force when this message went out" has an answer.
"""

from __future__ import annotations

import getpass
import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from followup.config import LoadedPolicy
from followup.db.models import AuditEntry


def current_actor() -> str:
    """The operating-system user running the command (HR's login on a shared server)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def audit(session: Session, action: str, *, now: datetime, actor: str | None = None, **detail: Any) -> None:
    session.add(AuditEntry(at=now, actor=actor or current_actor(), action=action, detail=detail))


def record_policy(session: Session, loaded: LoadedPolicy, *, now: datetime, actor: str | None = None) -> bool:
    """Record the policy file's fingerprint when it differs from the last one seen; True if it changed."""
    fingerprint = hashlib.sha256(loaded.path.read_bytes()).hexdigest()
    last = session.scalar(
        select(AuditEntry)
        .where(AuditEntry.action == "config_changed")
        .order_by(AuditEntry.id.desc())
        .limit(1)
    )
    if last is not None and last.detail.get("sha256") == fingerprint:
        return False
    audit(
        session,
        "config_changed",
        now=now,
        actor=actor,
        path=str(loaded.path),
        sha256=fingerprint,
        previous=last.detail.get("sha256") if last is not None else None,
    )
    return True
