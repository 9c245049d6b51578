"""What a person does about one holder, shared by the CLI and the workspace: log a call, a letter or a
meeting; acknowledge, assign or resolve a flag (its history kept in ``flag_actions``); pause
automated contact until a day. Each writes an audit entry in the same transaction."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from uuid import uuid4
from zoneinfo import ZoneInfo

from sqlalchemy import case, select
from sqlalchemy.orm import Session

from followup.db.models import AuditEntry, Flag, FlagAction, OfferHolder, Touch
from followup.holders.importer import _record  # the holder_changes row the timeline shows

MANUAL_CHANNELS = ("phone", "meeting", "letter", "other")
FLAG_ACTIONS = ("acknowledge", "assign", "resolve")
NOTE_LIMIT = 1000


def log_touch(
    session: Session,
    holder: OfferHolder,
    channel: str,
    *,
    at: datetime,
    tz: ZoneInfo,
    note: str | None,
    actor: str,
    assignee: str | None = None,
    now: datetime | None = None,
) -> tuple[Touch, bool]:
    """Record that a person contacted the holder: completes the due manual touch on that channel (a
    reminded one first; with ``assignee``, only one assigned to them), else records an ad-hoc one.
    Returns (the touch, whether it completed a planned one)."""
    if channel not in MANUAL_CHANNELS:
        raise ValueError(f"unknown manual channel {channel!r} ({', '.join(MANUAL_CHANNELS)})")
    end_of_day = datetime.combine(at.astimezone(tz).date() + timedelta(days=1), datetime.min.time(), tz)
    query = select(Touch).where(
        Touch.holder_id == holder.id,
        Touch.kind == "manual",
        Touch.channel == channel,
        Touch.status.in_(("reminded", "planned")),
        Touch.due_at < end_of_day,
    )
    if assignee is not None:
        query = query.where(Touch.assignee == assignee)
    touch = session.scalar(
        query.order_by(case((Touch.status == "reminded", 0), else_=1), Touch.due_at).limit(1)
    )
    completed = touch is not None
    if touch is not None:
        touch.status = "done"
        touch.sent_at = at
        if note:
            touch.note = f"{touch.note}\n{note}" if touch.note else note
    else:
        touch = Touch(
            key=f"{holder.external_id}:adhoc:{channel}:{at.astimezone(tz):%Y%m%dT%H%M%S}:{uuid4().hex[:6]}",
            holder_id=holder.id,
            cadence="adhoc",
            phase="log",
            seq=0,
            kind="manual",
            channel=channel,
            due_at=at,
            sent_at=at,
            status="done",
            note=note,
            assignee=assignee,
        )
        session.add(touch)
    session.flush()
    session.add(
        AuditEntry(
            at=now or at,
            actor=actor,
            action="touch_log",
            detail={"holder_id": holder.id, "touch_id": touch.id, "channel": channel},
        )
    )
    return touch, completed


def act_on_flag(
    session: Session,
    flag: Flag,
    action: str,
    *,
    at: datetime,
    actor: str,
    note: str | None = None,
    assignee: str | None = None,
) -> FlagAction:
    """確認 / 担当割当 / 解決 of one flag, kept as a ``flag_actions`` row. Resolving closes the flag; if
    its condition still holds, the next evaluation opens a new one (the rules decide, not the click)."""
    if action not in FLAG_ACTIONS:
        raise ValueError(f"unknown flag action {action!r}")
    if action == "assign" and not assignee:
        raise ValueError("assign needs an assignee")
    if action == "resolve" and flag.resolved_at is None:
        flag.resolved_at = at
    row = FlagAction(
        flag_id=flag.id,
        holder_id=flag.holder_id,
        at=at,
        actor=actor,
        action=action,
        assignee=assignee if action == "assign" else None,
        note=note or None,
    )
    session.add(row)
    session.add(
        AuditEntry(
            at=at,
            actor=actor,
            action=f"flag_{action}",
            detail={"holder_id": flag.holder_id, "flag_id": flag.id, "rule": flag.rule},
        )
    )
    session.flush()
    return row


def pause(session: Session, holder: OfferHolder, until: date | None, *, at: datetime, actor: str) -> None:
    """No automated contact before ``until`` (None lifts the pause); the planner applies it on its tick."""
    if until == holder.paused_until:
        return
    _record(session, holder, "paused_until", holder.paused_until, until, at, "web")
    holder.paused_until = until
    session.add(
        AuditEntry(
            at=at,
            actor=actor,
            action="holder_pause",
            detail={"holder_id": holder.id, "until": until.isoformat() if until else None},
        )
    )
