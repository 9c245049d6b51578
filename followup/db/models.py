"""The database: offer holders and their history, touches and every delivery attempt, survey
responses, engagement events, flags, the scheduler lease and the audit log.

Uniqueness lives here, not in code paths: ``touches.key`` makes planning idempotent, the status column
with a conditional UPDATE makes a send claim atomic, ``survey_responses.touch_id`` makes answering twice
update one row, ``engagement_events.dedupe_key`` makes a redelivered webhook count once.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# The status and kind columns hold the strings of followup.vocab (re-exported for older imports).
from followup.vocab import ACTIVE_STATUSES as ACTIVE_STATUSES
from followup.vocab import HOLDER_STATUSES as HOLDER_STATUSES
from followup.vocab import TOUCH_KINDS as TOUCH_KINDS
from followup.vocab import TOUCH_STATUSES as TOUCH_STATUSES


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (no time zones) and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; pass an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}  # noqa: RUF012 (SQLAlchemy API)


class OfferHolder(Base):
    __tablename__ = "offer_holders"

    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    line_user_id: Mapped[str | None] = mapped_column(String(64))
    slack_user_id: Mapped[str | None] = mapped_column(String(64))
    # addresses on registered channels without a column of their own: {address_field: address}
    addresses: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    track: Mapped[str] = mapped_column(String(64), default="new_grad")
    department: Mapped[str | None] = mapped_column(String(200), index=True)
    offer_date: Mapped[date] = mapped_column(Date)
    accepted_date: Mapped[date | None] = mapped_column(Date)
    start_date: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="offered", index=True)
    decline_reason: Mapped[str | None] = mapped_column(Text)
    left_date: Mapped[date | None] = mapped_column(Date)  # 退職日 after joining (early turnover)
    mentor_email: Mapped[str | None] = mapped_column(String(320), index=True)
    timezone: Mapped[str | None] = mapped_column(String(64))  # per-holder send-window override
    phone: Mapped[str | None] = mapped_column(String(32))  # for the president's / manager's call
    acceptance_deadline: Mapped[date | None] = mapped_column(Date)  # 内定承諾期限 (the tasks issue uses it)
    rejected_date: Mapped[date | None] = mapped_column(Date)  # 不採用日, as the ATS exports it
    consent_date: Mapped[date | None] = mapped_column(Date)  # 連絡への同意 (talent pool)
    consent_source: Mapped[str | None] = mapped_column(String(32))  # import | web (how consent was given)
    # a re-application under a new external id (same email): the record rejected/declined before
    reapplied_from_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    erased_at: Mapped[datetime | None] = mapped_column()  # personal data deleted on request
    name_kana: Mapped[str | None] = mapped_column(String(200))  # フリガナ, for search and sorting
    paused_until: Mapped[date | None] = mapped_column(Date)  # no automated contact before this day

    touches: Mapped[list[Touch]] = relationship(back_populates="holder", order_by="Touch.due_at")
    history: Mapped[list[HolderChange]] = relationship(back_populates="holder", order_by="HolderChange.at")
    opt_outs: Mapped[list[ChannelOptOut]] = relationship(back_populates="holder")


class HolderChange(Base):
    """One change of a holder's lifecycle (status, start date, contact data), kept for the timeline."""

    __tablename__ = "holder_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("offer_holders.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    field: Mapped[str] = mapped_column(String(32))  # created | status | start_date | email | ...
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(32), default="import")

    holder: Mapped[OfferHolder] = relationship(back_populates="history")


class ChannelOptOut(Base):
    __tablename__ = "channel_opt_outs"
    __table_args__ = (UniqueConstraint("holder_id", "channel"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("offer_holders.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    source: Mapped[str] = mapped_column(String(32), default="web")

    holder: Mapped[OfferHolder] = relationship(back_populates="opt_outs")


class Touch(Base):
    """One planned contact with a holder. ``key`` is the idempotency key (holder, cadence, phase, seq)."""

    __tablename__ = "touches"
    __table_args__ = (Index("ix_touches_status_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("offer_holders.id", ondelete="CASCADE"), index=True)
    cadence: Mapped[str] = mapped_column(String(64))
    phase: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # message | survey | manual
    channel: Mapped[str] = mapped_column(String(16))  # email|slack|line|phone|letter|meeting|other
    template: Mapped[str | None] = mapped_column(String(100))
    event: Mapped[str | None] = mapped_column(String(100))
    survey_form: Mapped[str | None] = mapped_column(String(100))
    due_at: Mapped[datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="planned")
    assignee: Mapped[str | None] = mapped_column(String(320))
    note: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    suppressed_count: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[datetime | None] = mapped_column()
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    sent_at: Mapped[datetime | None] = mapped_column()
    provider_id: Mapped[str | None] = mapped_column(String(300))
    last_error: Mapped[str | None] = mapped_column(Text)
    # set, durably, just before the provider is called; cleared once the outcome is known. Still set on a
    # touch found again: an earlier send may have been accepted (in doubt), see followup.delivery.deliver
    send_started_at: Mapped[datetime | None] = mapped_column()
    in_doubt_resends: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    # delivery held it back (outside the send window, a closed day): its due time is delivery's now
    held_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    holder: Mapped[OfferHolder] = relationship(back_populates="touches")
    attempts_log: Mapped[list[DeliveryAttempt]] = relationship(back_populates="touch")


class DeliveryAttempt(Base):
    """Every try to send a touch, with its outcome: sent | transient | permanent | suppressed."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    touch_id: Mapped[int] = mapped_column(ForeignKey("touches.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    provider_id: Mapped[str | None] = mapped_column(String(300))
    worker: Mapped[str | None] = mapped_column(String(200))

    touch: Mapped[Touch] = relationship(back_populates="attempts_log")


class SurveyResponse(Base):
    __tablename__ = "survey_responses"

    id: Mapped[int] = mapped_column(primary_key=True)
    touch_id: Mapped[int] = mapped_column(ForeignKey("touches.id", ondelete="CASCADE"), unique=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("offer_holders.id", ondelete="CASCADE"), index=True)
    form: Mapped[str] = mapped_column(String(100))
    answers: Mapped[dict[str, Any]] = mapped_column(JSON)
    score: Mapped[float | None] = mapped_column(Float)
    declining: Mapped[bool] = mapped_column(Boolean, default=False)
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # when the row was written, by this machine's clock (never a --now): the plan tick's watermark
    stamped_at: Mapped[datetime | None] = mapped_column(default=utcnow, onupdate=utcnow, index=True)


class EventRsvp(Base):
    """One holder's answer for one event (出席 / 欠席 / 未定) and, after the day, the attendance HR recorded.

    Capacity is the database's: an attending answer holds a seat number 1..capacity and ``(event, seat)``
    is unique, so two answers racing for the last seat cannot both get it (the loser is waitlisted).
    """

    __tablename__ = "event_rsvps"
    __table_args__ = (
        UniqueConstraint("holder_id", "event", name="uq_event_rsvps_holder_event"),
        UniqueConstraint("event", "seat", name="uq_event_rsvps_event_seat"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("offer_holders.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(100), index=True)
    status: Mapped[str] = mapped_column(String(16))  # attending | declined | maybe | waitlisted
    seat: Mapped[int | None] = mapped_column(Integer)
    answers: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(16), default="web")  # web | slack | line | hr
    responded_at: Mapped[datetime] = mapped_column(default=utcnow)
    attendance: Mapped[str | None] = mapped_column(String(16))  # attended | absent (recorded by HR)
    attendance_at: Mapped[datetime | None] = mapped_column()
    # any change to the row (an answer, a waitlist promotion, attendance): the plan tick's watermark
    updated_at: Mapped[datetime | None] = mapped_column(default=utcnow, onupdate=utcnow, index=True)


class TaskStatus(Base):
    """One holder's status for one task: 未提出 (pending) → 提出済 (submitted) → 確認済 (confirmed), or 対象外
    (exempt). No row means pending; ``(holder, task)`` is unique, so a mark or an import updates one row."""

    __tablename__ = "task_statuses"
    __table_args__ = (UniqueConstraint("holder_id", "task", name="uq_task_statuses_holder_task"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("offer_holders.id", ondelete="CASCADE"), index=True)
    task: Mapped[str] = mapped_column(String(100), index=True)
    status: Mapped[str] = mapped_column(String(16))  # pending | submitted | confirmed | exempt
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)  # as marked (an import's or --now's time)
    # when the row was written, by this machine's clock (never a --now): the plan tick's watermark
    stamped_at: Mapped[datetime | None] = mapped_column(default=utcnow, onupdate=utcnow, index=True)
    changed_by: Mapped[str] = mapped_column(String(200))  # who marked it (the OS user, or the web user)
    source: Mapped[str] = mapped_column(String(16), default="cli")  # cli | csv | web
    note: Mapped[str | None] = mapped_column(Text)


class EngagementEvent(Base):
    """Something the holder did: replied, pressed a button, followed/unfollowed, opted out, answered."""

    __tablename__ = "engagement_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    holder_id: Mapped[int | None] = mapped_column(
        ForeignKey("offer_holders.id", ondelete="CASCADE"), index=True
    )
    touch_id: Mapped[int | None] = mapped_column(ForeignKey("touches.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))  # reply|answer|button|follow|unfollow|opt_out|open
    channel: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)


class Flag(Base):
    """A rule's finding about one holder; open while ``resolved_at`` is null."""

    __tablename__ = "flags"
    __table_args__ = (
        Index("ix_flags_holder_rule", "holder_id", "rule"),
        Index("ix_flags_open_holder", "resolved_at", "holder_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("offer_holders.id", ondelete="CASCADE"))
    rule: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text, default="")
    since: Mapped[datetime | None] = mapped_column()  # when the condition began (e.g. the neglect deadline)
    first_seen: Mapped[datetime] = mapped_column()  # when an evaluation first noticed it
    last_seen: Mapped[datetime] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column()


class FlagAction(Base):
    """What a person did about a flag (確認 / 担当割当 / 解決) — who, when, with which note. The flag
    row keeps only its state; this is its history, shown on the holder's timeline."""

    __tablename__ = "flag_actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    flag_id: Mapped[int] = mapped_column(ForeignKey("flags.id", ondelete="CASCADE"), index=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("offer_holders.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(16))  # acknowledge | assign | resolve
    assignee: Mapped[str | None] = mapped_column(String(320))
    note: Mapped[str | None] = mapped_column(Text)


class SchedulerLease(Base):
    """Only the holder of an unexpired lease plans; other schedulers stand by."""

    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column()


class AuditEntry(Base):
    """What HR did and when: imports, manual touch logs, config checks, erasures."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ReportRun(Base):
    """Each weekly report sent (one per week: the unique week key keeps two schedulers from both sending)."""

    __tablename__ = "report_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    week: Mapped[str] = mapped_column(String(16), unique=True)  # ISO week, e.g. 2026-W48
    generated_at: Mapped[datetime] = mapped_column(default=utcnow)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class PlanState(Base):
    """What the plan tick that last planned a holder saw, so a later tick can leave the holder unread.

    ``digest`` covers every planner input on the holder row, its opt-outs and its pending touches (after
    that tick's own changes); ``low``/``high`` are that tick's window and ``planned_at`` its ``now``
    (timestamps); ``unreachable`` the window slots it could not create for want of a channel (key
    suffixes, one a line), so the tick can still name the holder as skipped without loading it."""

    __tablename__ = "plan_states"

    holder_id: Mapped[int] = mapped_column(
        ForeignKey("offer_holders.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    digest: Mapped[int] = mapped_column(BigInteger)
    planned_at: Mapped[float] = mapped_column(Float)
    low: Mapped[float] = mapped_column(Float)
    high: Mapped[float] = mapped_column(Float)
    unreachable: Mapped[str | None] = mapped_column(Text)


class PlanMark(Base):
    """The plan tick's watermarks over the other tables' inputs, and the policy fingerprint it planned."""

    __tablename__ = "plan_marks"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
