"""Delivery: turn a due touch into exactly one message, whoever runs it (``followup run`` or a worker).

The database is the source of truth, the queue only a doorbell. A touch is claimed with one conditional
UPDATE (``planned → sending``, exactly one row or someone else got there first), so a redelivered or
duplicated Celery task does nothing. Retries are not Celery ETAs: a transient failure puts the touch back
to ``planned`` with a later ``due_at``, and the next dispatch enqueues it when it is due. Every attempt
(sent, transient, permanent, suppressed) is a ``DeliveryAttempt`` row; nothing is dropped silently.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, literal, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, joinedload

from followup.calendar import BusinessCalendar
from followup.channels import (
    MESSAGE_CHANNELS,
    Channel,
    DeliveryError,
    DeliveryResult,
    OutboundMessage,
    channel_class,
    load_channel_class,
)
from followup.channels.base import clamp_delay
from followup.config import Phase, Policy
from followup.config.context import AppContext
from followup.config.loader import assignee_name
from followup.config.messages import HolderFacts, template_context
from followup.config.schema import OneOffTouch
from followup.db.addresses import address_of
from followup.db.models import ACTIVE_STATUSES, ChannelOptOut, DeliveryAttempt, Flag, OfferHolder, Touch
from followup.delivery.links import LinkSigner
from followup.durations import Interval, shift_moment
from followup.engagement.buttons import RSVP_BUTTON_KINDS, answer_buttons, rsvp_buttons
from followup.labels import MANUAL_WHAT, STATUS_LABELS, short_date
from followup.pool.rules import block_reason
from followup.rendering.templates import MessageTemplates, TemplateProblem
from followup.tasks.sheet import task_of
from followup.tasks.store import due_date
from followup.vocab import POOL_CADENCE

log = logging.getLogger(__name__)

FINAL_STATUSES = ("sent", "failed", "cancelled", "reminded", "done", "in_doubt")
# a DeliveryAttempt's outcome; ``in_doubt``: the provider may have accepted it (no reply, worker lost)
OUTCOMES = ("sent", "transient", "permanent", "suppressed", "in_doubt")


class OutcomeKind(StrEnum):
    """What became of one delivery: the kinds a run summary counts."""

    SENT = "sent"
    REMINDED = "reminded"
    TRANSIENT = "transient"
    PERMANENT = "permanent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    DEFERRED = "deferred"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    IN_DOUBT = "in_doubt"


Kind = OutcomeKind


class Outcome(str):
    """One delivery's outcome: ``kind`` and ``reason``. It is also the words, ``"kind: reason"`` (or just
    ``"sent"``), so logs, task results and summaries read as before; code looks at ``kind``."""

    kind: OutcomeKind
    reason: str

    def __new__(cls, kind: OutcomeKind, reason: str = "") -> Outcome:
        self = super().__new__(cls, f"{kind.value}: {reason}" if reason else kind.value)
        self.kind, self.reason = kind, reason
        return self


def kind_of(outcome: str) -> str:
    """The kind of an :class:`Outcome` (or of outcome words, as older task results carry)."""
    return outcome.kind.value if isinstance(outcome, Outcome) else outcome.split(":")[0]


# The reminder's memo when the policy gives no ``why`` (seeds/000: 鉄則1, 手書きのメッセージ).
DEFAULT_WHY = {
    "phone": "内定直後は他社の内定も出そろい、辞退が最も起きやすい時期です。直接の電話で「あなたが必要だ」と"
    "伝えることが、入社の決め手になります。",
    "letter": "デジタルの連絡が当たり前の今だからこそ、手書きのひと言は心に残ります。",
    "meeting": "顔を合わせて話すことで、メールでは聞けない不安や迷いを聞き取れます。",
}


# --- channels -------------------------------------------------------------------------------------------


def outbox_directory(context: AppContext) -> Path:
    """``channels.outbox_dir``; a path under ``var/`` follows FOLLOWUP_VAR_DIR."""
    configured = Path(context.policy.channels.outbox_dir)
    if configured.is_absolute():
        return configured
    if configured.parts and configured.parts[0] == "var":
        return Path(context.settings.var_dir).joinpath(*configured.parts[1:])
    return configured


def build_channels(context: AppContext, env: Mapping[str, str] | None = None) -> dict[str, Channel]:
    """The real provider for each channel whose endpoint/credentials are set in the environment, else the
    outbox, so the embedded default delivers to files and never needs a network."""
    env = dict(os.environ if env is None else env)
    env["FOLLOWUP_SMTP_DATA_TIMEOUT"] = str(context.settings.smtp_data_timeout)
    channels_policy = context.policy.channels
    outbox = outbox_directory(context)
    outbox_class: Any = load_channel_class("outbox")
    out: dict[str, Channel] = {}
    for name in MESSAGE_CHANNELS:
        section = channels_policy.section(name)
        out[name] = channel_class(name).from_policy(section, env) or outbox_class(outbox, name, section)
    return out


# --- template context -----------------------------------------------------------------------------------


def find_phase(policy: Policy, cadence: str, phase: str) -> Phase | None:
    found = policy.cadences.get(cadence)
    if found is None:
        return None
    return next((p for p in found.phases if p.name == phase), None)


def holder_facts(holder: OfferHolder) -> HolderFacts:
    return HolderFacts(
        external_id=holder.external_id,
        name=holder.name,
        track=holder.track,
        offer_date=holder.offer_date,
        start_date=holder.start_date,
        email=holder.email,
        department=holder.department,
        mentor_email=holder.mentor_email,
        line_user_id=holder.line_user_id,
        slack_user_id=holder.slack_user_id,
    )


def message_context(
    holder: OfferHolder,
    touch: Touch,
    policy: Policy,
    signer: LinkSigner,
    sent_at: datetime | None = None,
    *,
    opt_out_link: bool = True,
) -> dict[str, Any]:
    """The template context of the rendering contract, for one touch on ``touch.channel``.

    Dates in the message (``days_until_start``) are those of ``sent_at``, the moment it really goes out
    (a touch planned for May and sent in December says December's count), else of the due time.
    ``opt_out_link=False`` (essential notices, personal letters) leaves the opt-out link out."""
    org = policy.organization
    phase = find_phase(policy, touch.cadence, touch.phase)
    send_day = (sent_at or touch.due_at).astimezone(org.tz).date()
    event = policy.events.get(touch.event) if touch.event else None
    task_name = task_of(touch.key) if touch.phase == "task" else None
    task = policy.tasks.get(task_name or "")
    pool = None
    if touch.cadence == POOL_CADENCE:
        settings = policy.pool
        pool = {
            "page_url": signer.pool_url(holder.id),
            "career_url": signer.go_url(holder.id, "career") if settings.career_support_url else None,
            "career_label": settings.career_support_label,
            "openings_url": signer.go_url(holder.id, "openings") if settings.openings_url else None,
            "consented": holder.consent_date is not None,
        }
    return template_context(
        policy,
        holder_facts(holder),
        template=touch.template,
        send_day=send_day,
        phase_name=touch.phase,
        phase_label=(phase.label if phase else "") or touch.phase,
        event_name=touch.event,
        survey_url=signer.survey_url(touch.id) if touch.kind == "survey" else None,
        unsubscribe_url=signer.opt_out_url(holder.id, touch.channel) if opt_out_link else None,
        rsvp_url=(
            signer.rsvp_url(holder.id, touch.event or "")
            if event is not None and event.rsvp and touch.phase == "event"
            else None
        ),
        task_name=task_name,
        task_due=due_date(task, holder, BusinessCalendar.from_policy(policy)) if task is not None else None,
        pool=pool,
    )


# --- retry policy ---------------------------------------------------------------------------------------


def backoff_delay(attempts: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Seconds until the next try: exponential in ``attempts`` (1, 2, …), full-ish jitter, never sooner
    than the provider's ``Retry-After``."""
    exponential = min(cap, base * (2 ** max(0, attempts - 1)))
    delay = exponential * (0.5 + random.random() / 2)  # jitter, not cryptography
    retry_after = clamp_delay(retry_after)  # Retry-After: 1e15 must not overflow a datetime
    if retry_after is not None:
        delay = max(delay, retry_after)
    return float(delay)


def cap_frees_at(
    sent_times: list[datetime], max_touches: int, window: Interval, now: datetime
) -> datetime | None:
    """When the rolling window holds fewer than ``max_touches`` again; None if it already does."""
    start = shift_moment(now, window, -1)
    inside = sorted(t for t in sent_times if t > start)
    if len(inside) < max_touches:
        return None
    oldest_to_leave = inside[len(inside) - max_touches]
    return max(now, shift_moment(oldest_to_leave, window) + timedelta(seconds=1))


# --- claiming -------------------------------------------------------------------------------------------


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


def claim(session: Session, touch_id: int, now: datetime, token: str) -> bool:
    """planned → sending, only if still planned and due. True when this caller owns the touch now."""
    result = session.execute(
        update(Touch)
        .where(Touch.id == touch_id, Touch.status == "planned", Touch.due_at <= now)
        .values(status="sending", claimed_at=now, claimed_by=token)
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


CLAIM_BATCH = 10  # touches claimed and prepared in one transaction by the embedded delivery loop


def claim_batch(session: Session, touch_ids: list[int], now: datetime, token: str) -> list[int]:
    """planned → sending for those of ``touch_ids`` still planned and due, in one statement. Rows another
    dispatcher holds locked are skipped (PostgreSQL ``FOR UPDATE SKIP LOCKED``), not waited for; the
    conditional UPDATE alone decides on SQLite (one writer at a time). Returns the ids this caller owns."""
    if not touch_ids:
        return []
    due = (Touch.id.in_(touch_ids), Touch.status == "planned", Touch.due_at <= now)
    # a CTE, locked and evaluated once: as ``id IN (subquery)`` PostgreSQL may re-run the locking
    # subquery for every planned row (0.3 s a batch at 1,000 planned touches before ANALYZE)
    lockable = (
        select(Touch.id.label("lockable_id")).where(*due).with_for_update(skip_locked=True).cte("lockable")
    )
    rows = session.execute(
        update(Touch)
        .where(Touch.id == lockable.c.lockable_id)  # locked above (one statement on SQLite): still due
        .values(status="sending", claimed_at=now, claimed_by=token)
        .returning(Touch.id)
        .execution_options(synchronize_session=False)
    )
    claimed = set(rows.scalars())
    return [touch_id for touch_id in touch_ids if touch_id in claimed]


def recover_stale_claims(session: Session, now: datetime, timeout: float) -> int:
    """Put touches stuck in ``sending`` for longer than ``timeout`` seconds back to ``planned``.

    A worker killed between claim and result leaves its touch in ``sending``; without this it would never be
    sent. Such a touch carries ``send_started_at`` (written before the provider was called), so it is
    recovered **in doubt**: an ``in_doubt`` attempt is recorded and the next delivery does not resend
    blindly — Slack looks for the touch key in its DM's message metadata first, email resends at most once
    with the same Message-ID (and counts it), LINE's retry key makes LINE refuse a repeat, the outbox
    overwrites its one file. A claim timeout well above the slowest send (default 300 s) keeps a
    slow-but-alive worker from being overtaken.
    """
    stale = session.execute(
        select(Touch.id, Touch.channel, Touch.claimed_by, Touch.send_started_at).where(
            Touch.status == "sending", Touch.claimed_at < now - timedelta(seconds=timeout)
        )
    ).all()
    count = 0
    for row in stale:
        in_doubt = row.send_started_at is not None
        error = "claim expired: worker lost" + (" after the send started (in doubt)" if in_doubt else "")
        result = session.execute(
            update(Touch)
            .where(Touch.id == row.id, Touch.status == "sending", Touch.claimed_by == row.claimed_by)
            .values(status="planned", claimed_at=None, claimed_by=None, last_error=error)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            continue
        count += 1
        if in_doubt:
            session.add(
                DeliveryAttempt(
                    touch_id=row.id,
                    channel=row.channel,
                    started_at=row.send_started_at,
                    finished_at=now,
                    outcome="in_doubt",
                    error=error,
                    worker=(row.claimed_by or "")[:200],
                )
            )
    if count:
        log.warning("recovered %d touch(es) whose worker was lost after claiming", count)
    return count


# --- delivering -----------------------------------------------------------------------------------------


class ChannelGates:
    """Per-channel back-off, in this process: after a provider says "slow down" (429, Retry-After), the
    channel's touches wait without calling it until the delay is over; then one probe goes out. Each
    further consecutive push-back waits longer (``base`` doubling, up to ``cap``), never shorter than the
    provider's hint (clamped to a day)."""

    def __init__(self, base: float, cap: float) -> None:
        self.base, self.cap = base, cap
        self._until: dict[str, datetime] = {}
        self._streak: Counter[str] = Counter()
        self._lock = threading.Lock()

    def waiting(self, channel: str, now: datetime) -> float | None:
        """Seconds the channel must still wait at ``now``, or None: go (this send may be the probe)."""
        with self._lock:
            until = self._until.get(channel)
            left = (until - now).total_seconds() if until is not None else 0.0
            return left if left > 0 else None

    def push_back(self, channel: str, retry_after: float, now: datetime) -> None:
        with self._lock:
            self._streak[channel] += 1
            streak = self._streak[channel]
            exponential = min(self.cap, self.base * 2 ** (streak - 2)) if streak > 1 else 0.0
            wait = max(clamp_delay(retry_after) or 0.0, exponential)
            self._until[channel] = now + timedelta(seconds=wait)

    def clear(self, channel: str) -> None:
        with self._lock:
            self._streak.pop(channel, None)
            self._until.pop(channel, None)


@dataclass
class _Prepared:
    """What to send, decided inside a short transaction and sent outside it."""

    channel: str
    message: OutboundMessage
    final_status: str  # "sent", or "reminded" for a manual touch's reminder
    in_doubt: bool = False  # an earlier send may have been accepted: look for it, or resend knowingly
    # batched: "send started" (and the counted in-doubt resend) is committed just before this one's send
    start_pending: bool = False
    counts_resend: bool = False


@dataclass
class _BatchFacts:
    """What every touch of a batch would otherwise query on its own: its holder's opt-outs and the
    holder's sends inside the over-contact window (touch id, when), the batch's own prepared ones included."""

    opt_outs: dict[int, set[str]] = field(default_factory=dict)
    sent: dict[int, list[tuple[int, datetime]]] = field(default_factory=dict)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class Deliverer:
    """Per-process delivery state: the policy's channels, templates and link signer, built once."""

    context: AppContext
    channels: dict[str, Channel] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.channels:
            self.channels = build_channels(self.context)
        policy = self.context.policy
        self.templates = MessageTemplates(self.context.templates_root, locale=policy.organization.locale)
        self.signer = LinkSigner.from_settings(self.context.settings)
        self.calendar = BusinessCalendar.from_policy(policy)
        self.gates = ChannelGates(self.context.settings.retry_base, self.context.settings.retry_cap)
        self._batch_local = threading.local()  # per thread: a worker's other threads deliver one by one

    @property
    def _batch(self) -> _BatchFacts | None:
        """While this thread prepares a batch: its holders' facts, loaded once for the batch."""
        facts: _BatchFacts | None = getattr(self._batch_local, "facts", None)
        return facts

    @_batch.setter
    def _batch(self, facts: _BatchFacts | None) -> None:
        self._batch_local.facts = facts

    # the whole job ---------------------------------------------------------------------------------------

    def deliver(self, touch_id: int, *, now: datetime, worker: str = "") -> Outcome:
        worker = worker or default_worker_name()
        token = f"{worker}#{uuid.uuid4().hex[:8]}"
        try:
            # claim and prepare in one transaction: committed together before anything is sent
            with self.context.session() as session:
                if not claim(session, touch_id, now, token):
                    return Outcome(Kind.SKIPPED, "already claimed/sent")
                prepared = self._prepare(session, touch_id, now, token, worker)
        except Exception as exc:
            # A bug or a bad row while preparing (the claim was rolled back with it): move the touch's due
            # time forward, so one bad row cannot make every dispatch crash on it again at once.
            self._postpone(touch_id, now, worker, f"{type(exc).__name__}: {exc}")
            raise
        if isinstance(prepared, Outcome):
            return prepared
        return self._send(touch_id, prepared, now=now, token=token, worker=worker)

    def deliver_batch(
        self,
        touch_ids: list[int],
        *,
        now: datetime,
        worker: str = "",
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Outcome] | None:
        """Claim and prepare a small batch in one transaction, then send each on the channel's reused
        session; "send started" and the result of each are one statement each (``1/len(batch)`` claims).

        Exactly once as in :meth:`deliver`: each touch's "send started" is committed right before its own
        send (one statement), and its result right after. A crash mid-batch leaves only the touch in
        flight in doubt; the batch's others are still plainly claimed, and the stale-claim recovery
        plans them again as never sent. A provider push-back or SIGTERM mid-batch puts the rest back to
        ``planned`` unsent. Returns None when preparing failed (a bad row): the claims were rolled back
        and the caller delivers these touches one by one, which postpones the bad one."""
        worker = worker or default_worker_name()
        token = f"{worker}#{uuid.uuid4().hex[:8]}"
        try:
            with self.context.session() as session:
                claimed = claim_batch(session, touch_ids, now, token)
                loaded = list(  # into the session: _prepare's get() and .holder need no further query
                    session.scalars(
                        select(Touch).where(Touch.id.in_(claimed)).options(joinedload(Touch.holder))
                    )
                )
                self._batch = self._batch_facts(session, loaded, now)
                prepared = [(i, self._prepare(session, i, now, token, worker)) for i in claimed]
                del loaded
        except OperationalError:
            raise  # the database is away: the caller stops the pass
        except Exception as exc:
            log.debug("batch preparation failed, delivering one by one: %s", FailureTally.kind(exc))
            return None
        finally:
            self._batch = None
        outcomes = [Outcome(Kind.SKIPPED, "already claimed/sent")] * (len(touch_ids) - len(claimed))
        for touch_id, item in prepared:
            if isinstance(item, Outcome):
                outcomes.append(item)
                continue
            waiting = self.gates.waiting(item.channel, now)
            if waiting is not None:  # an earlier send of this batch was told "slow down"
                until = now + timedelta(seconds=waiting)
                outcomes.append(self._release(touch_id, item, token, until, f"{item.channel} backing off"))
            elif should_stop is not None and should_stop():
                outcomes.append(self._release(touch_id, item, token, None, "stopping"))
            elif item.start_pending and not self._mark_started(touch_id, item, now, token):
                outcomes.append(Outcome(Kind.SKIPPED, "no longer owned"))
            else:
                outcomes.append(self._send(touch_id, item, now=now, token=token, worker=worker))
        return outcomes

    def _batch_facts(self, session: Session, touches: list[Touch], now: datetime) -> _BatchFacts:
        """The batch's holders' opt-outs and recent sends, in two queries instead of two per touch."""
        holder_ids = sorted({t.holder_id for t in touches})
        facts = _BatchFacts()
        if not holder_ids:
            return facts
        for holder_id, channel in session.execute(
            select(ChannelOptOut.holder_id, ChannelOptOut.channel).where(
                ChannelOptOut.holder_id.in_(holder_ids)
            )
        ):
            facts.opt_outs.setdefault(holder_id, set()).add(channel)
        rule = self.context.policy.rules.over_contacted
        if rule.enforce:
            when = func.coalesce(Touch.sent_at, Touch.due_at)
            rows = session.execute(
                select(Touch.holder_id, Touch.id, when).where(
                    Touch.holder_id.in_(holder_ids),
                    Touch.status.in_(("sent", "done")),
                    when > shift_moment(now, rule.window, -1),
                )
            )
            for holder_id, touch_id, at in rows:
                facts.sent.setdefault(holder_id, []).append((touch_id, at))
        return facts

    def _release(
        self, touch_id: int, prepared: _Prepared, token: str, until: datetime | None, why: str
    ) -> Outcome:
        """A claimed and prepared touch that is not sent after all (its "send started" was never marked):
        back to ``planned``."""
        with self.context.session() as session:
            touch = session.get(Touch, touch_id, with_for_update=True)
            if touch is None or touch.status != "sending" or touch.claimed_by != token:
                return Outcome(Kind.SKIPPED, "no longer owned")
            touch.status, touch.claimed_at, touch.claimed_by = "planned", None, None
            if until is not None:
                touch.due_at = until
        return Outcome(Kind.DEFERRED, why)

    def _mark_started(self, touch_id: int, prepared: _Prepared, now: datetime, token: str) -> bool:
        """Commit "send started" (and a counted in-doubt resend) right before this touch's send, so a crash
        from here on is known to be in doubt. One statement (autocommitted on PostgreSQL). False: the
        touch is no longer ours, do not send."""
        from followup.db.session import get_engine  # already loaded by the session that claimed the touch

        statement = (
            update(Touch)
            .where(Touch.id == touch_id, Touch.status == "sending", Touch.claimed_by == token)
            .values(
                send_started_at=now,
                in_doubt_resends=Touch.in_doubt_resends + (1 if prepared.counts_resend else 0),
            )
            .returning(Touch.id)
        )
        engine = get_engine(self.context.db_url)
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                return connection.execute(statement).first() is not None
        with engine.begin() as connection:
            return connection.execute(statement).first() is not None

    # steps -----------------------------------------------------------------------------------------------

    def _prepare(
        self, session: Session, touch_id: int, now: datetime, token: str, worker: str
    ) -> _Prepared | Outcome:
        touch = session.get(Touch, touch_id, options=[joinedload(Touch.holder)])  # one query, not two
        if touch is None:
            return Outcome(Kind.SKIPPED, "touch deleted")
        holder = touch.holder
        if touch.cadence == POOL_CADENCE:
            # the talent pool: consent and membership are checked again now (they may have changed)
            status = "erased" if holder.erased_at is not None else holder.status
            again = select(OfferHolder.id).where(OfferHolder.reapplied_from_id == holder.id).limit(1)
            if session.scalar(again) is not None:
                status = "reapplied"  # applied again under a new external id: an applicant, not pool
            blocked = block_reason(self.context.policy.pool, status, holder.consent_date, touch.phase)
            if blocked is not None:
                touch.status, touch.cancel_reason = "cancelled", blocked
                touch.claimed_by = None
                return Outcome(Kind.CANCELLED, blocked)
        elif holder.status not in ACTIVE_STATUSES or holder.erased_at is not None:
            reason = "holder erased" if holder.erased_at is not None else f"holder {holder.status}"
            touch.status, touch.cancel_reason = "cancelled", reason
            touch.claimed_by = None
            return Outcome(Kind.CANCELLED, reason)
        allowed = self.calendar.next_allowed(now, holder.timezone)
        if allowed != now:
            # due long ago (an import's catch-up, an outage): still never at night, a weekend or a holiday
            touch.status, touch.due_at = "planned", allowed
            touch.held_at = now  # delivery's time now: the planner must not move or cancel it
            touch.claimed_at, touch.claimed_by = None, None
            return Outcome(Kind.DEFERRED, "outside the send window")
        if touch.kind == "manual":
            return self._start(session, touch, self._reminder(session, touch, holder), now, worker)
        if touch.kind == "escalation":
            escalation = self._escalation(session, touch, holder)
            if isinstance(escalation, Outcome):
                return escalation
            return self._start(session, touch, escalation, now, worker)

        try:
            meta = self.templates.meta(touch.template or "")
        except TemplateProblem as exc:
            return self._template_failed(session, touch, now, worker, exc)
        # an essential notice (入社手続き) is not follow-up: a follow-up opt-out does not stop it
        channel = self._reachable_channel(session, touch, holder, ignore_opt_outs=meta.essential)
        if channel is None:
            error = "unreachable: every channel of the phase is opted out or has no address"
            self._record(session, touch, "permanent", now, now, worker, error=error)
            touch.status, touch.last_error = "failed", error
            return Outcome(Kind.FAILED, "unreachable")
        if channel != touch.channel:
            touch.note = ((touch.note or "") + f" [fallback {touch.channel}→{channel}]").strip()
            touch.channel = channel
        waiting = self.gates.waiting(channel, now)
        if waiting is not None:
            # the provider said "slow down": one probe went out, the rest wait without calling it
            touch.status, touch.due_at = "planned", now + timedelta(seconds=waiting)
            touch.claimed_at, touch.claimed_by = None, None
            return Outcome(Kind.DEFERRED, f"{channel} backing off")

        rule = self.context.policy.rules.over_contacted
        if rule.enforce:
            frees_at = self._over_cap(session, touch, now, rule.max_touches, rule.window)
            if frees_at is not None:
                # later, when the window has room again, and still inside the send window of a business day
                frees_at = self.calendar.next_allowed(frees_at, holder.timezone)
                error = (
                    f"over_contacted: {rule.max_touches} touches within {rule.window}; "
                    f"moved to {frees_at.isoformat()}"
                )
                self._record(session, touch, "suppressed", now, now, worker, error=error)
                touch.status, touch.due_at = "planned", frees_at
                touch.suppressed_count += 1
                touch.claimed_at, touch.claimed_by = None, None
                return Outcome(Kind.SUPPRESSED, "over_contacted")

        policy = self.context.policy
        context = message_context(
            holder, touch, policy, self.signer, sent_at=now, opt_out_link=meta.carries_opt_out
        )
        try:
            if not touch.template:
                raise TemplateProblem(Path(touch.key), None, "touch has no template")
            if meta.needs_content and context["content"] is None:
                month = touch.due_at.astimezone(policy.organization.tz).strftime("%Y-%m")
                raise TemplateProblem(
                    self.context.config_file,
                    None,
                    f"{touch.template} needs this month's content: add an entry with month: {month} "
                    f"under content: {touch.template}: (nothing is sent without it)",
                )
            rendered = self.templates.render(touch.template, context)
            text = rendered.text_for(channel_class(channel))  # chat channels: the short form
        except TemplateProblem as exc:
            return self._template_failed(session, touch, now, worker, exc)
        parts = rendered.parts.get(channel)
        survey = self.context.policy.surveys.get(touch.survey_form or "")
        if touch.kind == "survey" and survey is not None:
            buttons = answer_buttons(survey, self.signer.survey_token(touch.id), context["survey_url"])
            parts = channel_class(channel).add_answer_buttons(parts, buttons)
        elif context["rsvp_url"] and touch.key.rsplit(":", 1)[-1] in RSVP_BUTTON_KINDS:
            token = self.signer.rsvp_token(holder.id, touch.event or "")
            parts = channel_class(channel).add_answer_buttons(parts, rsvp_buttons(token, context["rsvp_url"]))
        message = OutboundMessage(
            idempotency_key=touch.key,
            channel=channel,
            recipient=address_of(holder, channel) or "",
            subject=rendered.subject,
            text=text,
            html=rendered.html,
            parts=parts,
            unsubscribe_url=context["unsubscribe_url"],
        )
        return self._start(session, touch, _Prepared(channel, message, "sent"), now, worker)

    def _start(
        self, session: Session, touch: Touch, prepared: _Prepared, now: datetime, worker: str
    ) -> _Prepared | Outcome:
        """Mark "send started" in the claim's transaction (so a crash from here on is known to be in
        doubt), deciding first what an earlier in-doubt send allows."""
        in_doubt = touch.send_started_at is not None
        channel = self.channels[prepared.channel]
        limit = channel.in_doubt_resends
        if in_doubt and limit is not None:
            if touch.in_doubt_resends >= limit:
                error = (
                    f"in doubt: the provider may have accepted it; already resent {touch.in_doubt_resends}"
                    " time(s) in doubt, not again (check with the provider)"
                )
                self._record(session, touch, "in_doubt", now, now, worker, error=error)
                touch.status, touch.last_error = "in_doubt", error
                touch.claimed_at, touch.claimed_by = None, None
                return Outcome(Kind.IN_DOUBT, "not resent")
            if self._batch is None:
                touch.in_doubt_resends += 1  # committed before the resend: at most ``limit``, even if killed
            else:
                prepared.counts_resend = True
        if self._batch is None:
            touch.send_started_at = now
        else:
            # In a batch, the mark waits for this touch's own turn (``_mark_started``): marked now, a
            # crash before its turn would leave it in doubt (and spend its one resend) though never sent.
            prepared.start_pending = True
        prepared.in_doubt = in_doubt
        if self._batch is not None and prepared.final_status == "sent":
            # a later touch of the same holder in this batch must see this one in its rolling window
            self._batch.sent.setdefault(touch.holder_id, []).append((touch.id, now))
        return prepared

    def _template_failed(
        self, session: Session, touch: Touch, now: datetime, worker: str, exc: TemplateProblem
    ) -> Outcome:
        error = f"template: {exc}"
        self._record(session, touch, "permanent", now, now, worker, error=error)
        touch.status, touch.last_error = "failed", error
        touch.attempts += 1
        return Outcome(Kind.FAILED, "template")

    def _reminder(self, session: Session, touch: Touch, holder: OfferHolder) -> _Prepared:
        """A manual touch (a call, a letter) is due: remind the person assigned, by email, by name, with
        the holder's phone number, a memo on why it matters now and a signed 「実施済みにする」 link."""
        policy = self.context.policy
        org = policy.organization
        one_off = _one_off_of(policy, touch)
        assignee = touch.assignee or org.hr_email
        name = assignee_name(policy, assignee, one_off.assignee_name if one_off else "")
        what = MANUAL_WHAT.get(touch.channel, "ご連絡")
        tz = org.tz
        today = touch.due_at.astimezone(tz).date()
        flags = list(
            session.scalars(
                select(Flag.reason).where(Flag.holder_id == holder.id, Flag.resolved_at.is_(None))
            )
        )
        status = STATUS_LABELS.get(holder.status, holder.status)
        why = (one_off.why if one_off else "") or DEFAULT_WHY.get(touch.channel, "")
        addressee = name if name.endswith(("社長", "様", "さん")) else f"{name} 様" if name else "ご担当者様"
        lines = [
            addressee,
            "",
            f"お疲れさまです。{org.hr_name or org.name}です。",
            f"本日は、内定者の{holder.name}さんへの{what}をお願いする日です。",
            "",
            "■ お願いしたいこと",
            touch.note or f"{holder.name}さんへの{what}",
        ]
        if touch.channel in ("phone", "meeting"):
            lines += ["", "■ 連絡先"]
            if holder.phone:
                lines.append(f"{holder.name}さん:{holder.phone}")
            else:
                contact = f"({org.hr_phone})" if org.hr_phone else ""
                lines.append(f"電話番号は未登録です。人事部{contact}までお知らせください。")
        lines += ["", "■ なぜ今なのか"]
        if why:
            lines.append(why)
        lines.append(
            f"内定日:{short_date(holder.offer_date)}({(today - holder.offer_date).days}日前)/ "
            f"入社予定日:{short_date(holder.start_date)} / 現在:{status}"
        )
        lines += [f"・{reason}" for reason in flags]
        lines += [
            "",
            f"{what}が済みましたら、次のリンクから「実施済みにする」を押してください(ひと言メモも残せます)。",
            self.signer.manual_url(touch.id),
            "",
            "よろしくお願いいたします。",
            "",
            f"{org.name} {org.hr_name}".strip(),
        ]
        subject = f"【内定者フォロー】本日、{holder.name}さんへの{what}のお願い"
        message = OutboundMessage(
            idempotency_key=f"{touch.key}:reminder",
            channel="email",
            recipient=assignee,
            subject=subject,
            text="\n".join(lines) + "\n",
        )
        return _Prepared("email", message, "reminded")

    def _escalation(self, session: Session, touch: Touch, holder: OfferHolder) -> _Prepared | Outcome:
        """A reminded manual touch is still not logged after ``manual_overdue.after``: ask the assignee
        once more, by name, with the holder, the phone number, the memo and the same 実施済み link. If it
        was logged meanwhile, the escalation is cancelled instead (nobody is chased for a done call)."""
        original_id = int(touch.key.rsplit(":", 1)[-1])
        original = session.get(Touch, original_id)
        if original is None or original.status != "reminded":
            reason = "実施済みのため再依頼は不要" if original is not None else "元の依頼が削除されたため中止"
            touch.status, touch.cancel_reason = "cancelled", reason
            touch.claimed_at, touch.claimed_by = None, None
            return Outcome(Kind.CANCELLED, reason)
        policy = self.context.policy
        org = policy.organization
        one_off = _one_off_of(policy, original)
        assignee = original.assignee or org.hr_email
        name = assignee_name(policy, assignee, one_off.assignee_name if one_off else "")
        what = MANUAL_WHAT.get(original.channel, "ご連絡")
        asked = short_date(original.sent_at.astimezone(org.tz)) if original.sent_at else "先日"
        hr_contact = f"({org.hr_phone})" if org.hr_phone else ""
        addressee = name if name.endswith(("社長", "様", "さん")) else f"{name} 様" if name else "ご担当者様"
        lines = [
            addressee,
            "",
            f"お疲れさまです。{org.hr_name or org.name}です。",
            f"{asked}にお願いした、内定者の{holder.name}さんへの{what}について、",
            "まだ実施済みの記録がありません。お忙しいところ恐縮ですが、ご対応をお願いいたします。",
            "",
            "■ お願いしたいこと",
            original.note or f"{holder.name}さんへの{what}",
        ]
        lines += self._contact_lines(original, holder, org.hr_phone)
        lines += [
            "",
            f"{what}が済みましたら(すでにお済みの場合も)、次のリンクから「実施済みにする」を押してください。",
            self.signer.manual_url(original.id),
            "",
            f"ご都合がつかない場合は、人事部{hr_contact}までお知らせください。代わりの者がご連絡します。",
            "",
            "よろしくお願いいたします。",
            "",
            f"{org.name} {org.hr_name}".strip(),
        ]
        message = OutboundMessage(
            idempotency_key=touch.key,
            channel="email",
            recipient=assignee,
            subject=f"【内定者フォロー】再度のお願い:{holder.name}さんへの{what}",
            text="\n".join(lines) + "\n",
        )
        return _Prepared("email", message, "reminded")

    @staticmethod
    def _contact_lines(touch: Touch, holder: OfferHolder, hr_phone: str | None) -> list[str]:
        """The holder's phone number for a call or a meeting, or where to ask for it."""
        if touch.channel not in ("phone", "meeting"):
            return []
        if holder.phone:
            return ["", "■ 連絡先", f"{holder.name}さん:{holder.phone}"]
        contact = f"({hr_phone})" if hr_phone else ""
        return ["", "■ 連絡先", f"電話番号は未登録です。人事部{contact}までお知らせください。"]

    def _reachable_channel(
        self, session: Session, touch: Touch, holder: OfferHolder, *, ignore_opt_outs: bool = False
    ) -> str | None:
        """The planned channel, or the next in the phase's preference order, that has an address and is
        not opted out (an opt-out may arrive after planning; essential notices ignore opt-outs)."""
        opted_out: set[str] = set()
        if not ignore_opt_outs and self._batch is not None:
            opted_out = self._batch.opt_outs.get(holder.id, set())
        elif not ignore_opt_outs:
            opted_out = set(
                session.scalars(select(ChannelOptOut.channel).where(ChannelOptOut.holder_id == holder.id))
            )
        phase = find_phase(self.context.policy, touch.cadence, touch.phase)
        preference = list(phase.channels) if phase else list(MESSAGE_CHANNELS)
        if touch.cadence == POOL_CADENCE:
            preference = list(self.context.policy.pool.channels)
        order = [touch.channel] + [c for c in preference if c != touch.channel]
        for channel in order:
            if channel in MESSAGE_CHANNELS and channel not in opted_out and address_of(holder, channel):
                return channel
        return None

    def _over_cap(
        self, session: Session, touch: Touch, now: datetime, max_touches: int, window: Interval
    ) -> datetime | None:
        start = shift_moment(now, window, -1)
        if self._batch is not None:  # loaded with the batch (the same query, for all its holders)
            sent = self._batch.sent.get(touch.holder_id, [])
            times = [at for touch_id, at in sent if touch_id != touch.id and _aware(at) > start]
        else:
            when = func.coalesce(Touch.sent_at, Touch.due_at)
            times = list(
                session.scalars(
                    select(when).where(
                        Touch.holder_id == touch.holder_id,
                        Touch.id != touch.id,
                        Touch.status.in_(("sent", "done")),
                        when > start,
                    )
                )
            )
        aware = [t if t.tzinfo else t.replace(tzinfo=UTC) for t in times]
        return cap_frees_at(aware, max_touches, window, now)

    def _send(self, touch_id: int, prepared: _Prepared, *, now: datetime, token: str, worker: str) -> Outcome:
        channel = self.channels[prepared.channel]
        started = time.monotonic()
        result: DeliveryResult | None = None
        error: DeliveryError | None = None
        try:
            if prepared.in_doubt:  # look before resending (Slack: the touch key in message metadata)
                result = channel.find_sent(prepared.message)
            if result is None:
                result = channel.send(prepared.message)
        except DeliveryError as exc:
            error = exc
        except Exception as exc:  # a channel bug must not leave the touch claimed forever
            log.exception("channel %s raised unexpectedly", prepared.channel)
            error = DeliveryError(f"{type(exc).__name__}: {exc}", permanent=False, in_doubt=True)
        if error is not None and error.retry_after is not None:
            self.gates.push_back(prepared.channel, error.retry_after, now)
        elif result is not None:
            self.gates.clear(prepared.channel)
        finished = now + timedelta(seconds=time.monotonic() - started)
        # The message may be out already: recording it must survive a database blip (a failover), or the
        # stale-claim recovery would send it again. Retry for up to half the claim timeout, then say so.
        deadline = time.monotonic() + self.context.settings.claim_timeout / 2
        pause = 0.2
        while True:
            try:
                if result is not None and self._record_sent(
                    touch_id, prepared, result, now, finished, token, worker
                ):
                    return Outcome(Kind(prepared.final_status))
                with self.context.session() as session:
                    touch = session.get(Touch, touch_id, with_for_update=True)
                    if touch is None:
                        return Outcome(Kind.SKIPPED, "touch deleted")
                    return self._apply(session, touch, prepared, result, error, now, finished, token, worker)
            except OperationalError:
                if time.monotonic() + pause > deadline:
                    log.error(
                        "could not record the result of touch %s (provider id %s): it may be sent again",
                        touch_id,
                        result.provider_id if result else "-",
                    )
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 5.0)

    def _record_sent(
        self,
        touch_id: int,
        prepared: _Prepared,
        result: DeliveryResult,
        now: datetime,
        finished: datetime,
        token: str,
        worker: str,
    ) -> bool:
        """The usual result — sent, and the touch still ours — written as :meth:`_apply` would, in fewer
        round trips: on PostgreSQL one autocommitted statement (the UPDATE and the attempt's INSERT in
        one CTE, atomic), elsewhere an UPDATE … RETURNING and the INSERT in one transaction. False when
        the touch is no longer ours (nothing written): the caller records it the general way."""
        note = result.detail if result.detail.startswith("found") else None
        owned = (
            update(Touch)
            .where(Touch.id == touch_id, Touch.status == "sending", Touch.claimed_by == token)
            .values(
                status=prepared.final_status,
                sent_at=finished,
                provider_id=result.provider_id[:300],
                last_error=None,
                send_started_at=None,
                attempts=Touch.attempts + 1,
            )
            .returning(Touch.id, Touch.channel)
        )
        columns = DeliveryAttempt.__table__.c
        attempt = {
            "started_at": literal(now, columns.started_at.type),
            "finished_at": literal(finished, columns.finished_at.type),
            "outcome": literal("sent", columns.outcome.type),
            "error": literal(note, columns.error.type),
            "provider_id": literal(result.provider_id[:300], columns.provider_id.type),
            "worker": literal(worker[:200], columns.worker.type),
        }
        from followup.db.session import get_engine  # already loaded by the session that claimed the touch

        engine = get_engine(self.context.db_url)
        if engine.dialect.name == "postgresql":
            done = owned.cte("done")
            statement = (
                insert(DeliveryAttempt)
                .from_select(
                    ["touch_id", "channel", *attempt], select(done.c.id, done.c.channel, *attempt.values())
                )
                .returning(DeliveryAttempt.id)  # psycopg's rowcount for INSERT … SELECT FROM a CTE is -1
            )
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                return connection.execute(statement).first() is not None
        with engine.begin() as connection:
            row = connection.execute(owned).first()
            if row is None:
                return False
            connection.execute(
                insert(DeliveryAttempt).values(touch_id=row.id, channel=row.channel, **attempt)
            )
        return True

    def _apply(
        self,
        session: Session,
        touch: Touch,
        prepared: _Prepared,
        result: DeliveryResult | None,
        error: DeliveryError | None,
        now: datetime,
        finished: datetime,
        token: str,
        worker: str,
    ) -> Outcome:
        owned = touch.status == "sending" and touch.claimed_by == token
        if result is not None:
            note = result.detail if result.detail.startswith("found") else None
            self._record(
                session, touch, "sent", now, finished, worker, provider_id=result.provider_id, error=note
            )
            if touch.status not in FINAL_STATUSES or owned:
                touch.status, touch.sent_at = prepared.final_status, finished
                touch.provider_id, touch.last_error = result.provider_id[:300], None
                touch.send_started_at = None
                touch.attempts += 1
            return Outcome(Kind(prepared.final_status))
        assert error is not None
        outcome = Kind.PERMANENT if error.permanent else Kind.TRANSIENT
        recorded = Kind.IN_DOUBT if error.in_doubt and not error.permanent else outcome
        self._record(session, touch, recorded, now, finished, worker, error=str(error))
        if not owned:  # recovered and re-claimed by someone else meanwhile: theirs to finish
            return Outcome(outcome, "no longer owned")
        touch.attempts += 1
        touch.last_error = str(error)
        if not error.in_doubt and not prepared.in_doubt:
            touch.send_started_at = None  # refused for sure, and no earlier send in doubt
        settings = self.context.settings
        if not error.permanent and touch.attempts >= settings.max_attempts and touch.send_started_at:
            touch.status, touch.claimed_at, touch.claimed_by = "in_doubt", None, None
            return Outcome(Kind.IN_DOUBT, f"gave up after {touch.attempts} attempts")
        if error.permanent or touch.attempts >= settings.max_attempts:
            touch.status = "failed"
            why = "permanent" if error.permanent else f"gave up after {touch.attempts} attempts"
            return Outcome(Kind.FAILED, why)
        delay = backoff_delay(touch.attempts, settings.retry_base, settings.retry_cap, error.retry_after)
        # a retry is a send like any other: never at night, on a weekend or a holiday
        retry_at = self.calendar.next_allowed(now + timedelta(seconds=delay), touch.holder.timezone)
        touch.status, touch.due_at = "planned", retry_at
        touch.claimed_at, touch.claimed_by = None, None
        return Outcome(Kind.TRANSIENT, "in doubt, retry planned" if error.in_doubt else "retry planned")

    def _postpone(self, touch_id: int, now: datetime, worker: str, error: str) -> None:
        try:
            with self.context.session() as session:
                touch = session.get(Touch, touch_id, with_for_update=True)
                if touch is not None and touch.status == "planned":
                    self._record(session, touch, "transient", now, now, worker, error=error)
                    settings = self.context.settings
                    touch.attempts += 1
                    touch.last_error = error
                    if touch.attempts >= settings.max_attempts:
                        touch.status = "failed"
                    else:
                        delay = backoff_delay(touch.attempts, settings.retry_base, settings.retry_cap)
                        touch.due_at = self.calendar.next_allowed(
                            now + timedelta(seconds=delay), touch.holder.timezone
                        )
        except Exception as exc:  # the database itself is down: the touch stays planned for the next dispatch
            log.warning("could not postpone touch %s: %s", touch_id, FailureTally.kind(exc))

    @staticmethod
    def _record(
        session: Session,
        touch: Touch,
        outcome: str,
        started: datetime,
        finished: datetime,
        worker: str,
        *,
        error: str | None = None,
        provider_id: str | None = None,
    ) -> None:
        session.add(
            DeliveryAttempt(
                touch_id=touch.id,
                channel=touch.channel,
                started_at=started,
                finished_at=finished,
                outcome=outcome,
                error=error,
                provider_id=provider_id[:300] if provider_id else None,
                worker=worker[:200],
            )
        )


def _one_off_of(policy: Policy, touch: Touch) -> OneOffTouch | None:
    """The policy's one-off entry a manual touch was planned from (its ``why`` and ``assignee_name``)."""
    phase = find_phase(policy, touch.cadence, touch.phase)
    if phase is None:
        return None
    named = [o for o in phase.one_off if f":once:{o.name}" in touch.key]
    matches = [o for o in phase.one_off if o.kind == "manual" and (o.channel or "phone") == touch.channel]
    found = named or matches
    return found[0] if found else None


_deliverers: dict[int, tuple[AppContext, Deliverer]] = {}
_deliverers_lock = threading.Lock()


def deliverer_for(context: AppContext) -> Deliverer:
    """One Deliverer per AppContext (channels keep their clients, templates their cache)."""
    with _deliverers_lock:
        entry = _deliverers.get(id(context))
        if entry is None or entry[0] is not context:
            entry = (context, Deliverer(context))
            _deliverers[id(context)] = entry
        return entry[1]


def deliver_touch(context: AppContext, touch_id: int, *, now: datetime, worker: str = "") -> Outcome:
    """Claim, check, render, send and record one touch. Returns an :class:`Outcome`: its ``kind`` (an
    :class:`OutcomeKind`) and reason; it reads as words, ``sent`` or ``failed: unreachable``."""
    return deliverer_for(context).deliver(touch_id, now=now, worker=worker)


# --- dispatching ----------------------------------------------------------------------------------------


@dataclass
class DispatchSummary:
    recovered: int = 0
    dispatched: int = 0  # delivered in-process, or enqueued for workers
    enqueued: bool = False
    outcomes: Counter[str] = field(default_factory=Counter)  # Outcome → count

    def count(self, prefix: str) -> int:
        return sum(n for outcome, n in self.outcomes.items() if kind_of(outcome) == prefix)


def due_touch_ids(session: Session, now: datetime, limit: int) -> list[int]:
    rows = session.scalars(
        select(Touch.id)
        .where(Touch.status == "planned", Touch.due_at <= now)
        .order_by(Touch.due_at, Touch.id)
        .limit(limit)
    )
    return list(rows)


class EnqueueMemo:
    """Touches this dispatcher enqueued recently, so a loop does not publish the same id every tick.

    An id is published again once ``ttl`` seconds (the claim timeout) pass without a claim: the message
    was lost (Redis restarted without persistence, a killed worker held it reserved) and the database,
    not the broker, says the touch is still due.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._at: dict[int, float] = {}

    def fresh(self, ids: list[int]) -> list[int]:
        clock = time.monotonic()
        self._at = {i: t for i, t in self._at.items() if clock - t < self.ttl}
        return [i for i in ids if i not in self._at]

    def mark(self, ids: list[int]) -> None:
        clock = time.monotonic()
        self._at.update(dict.fromkeys(ids, clock))


Publish = Callable[[str, list[int]], int]
"""Hands touch ids to the workers: ``publish(broker_url, ids) -> how many were published``.

The worker side provides it (``workers.celery_app.publish_deliveries``), so the domain never imports
the workers: it rings the doorbell by task name through whatever callable it is given.
"""


class FailureTally:
    """Failures counted by kind (exception type and first line) and logged once per kind with a count,
    so an outage prints a few lines, not one traceback per touch and pass. The first failure of a kind
    keeps its traceback at DEBUG."""

    def __init__(self, logger: logging.Logger) -> None:
        self.log = logger
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, str] = {}

    @staticmethod
    def kind(exc: BaseException) -> str:
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        return f"{type(exc).__name__}: {first}" if first else type(exc).__name__

    def add(self, exc: BaseException, touch_id: int | None = None) -> str:
        kind = self.kind(exc)
        if kind not in self.counts:
            self.log.debug("first %s (touch %s)", kind, touch_id, exc_info=exc)
            self.examples[kind] = f"touch {touch_id}" if touch_id is not None else ""
        self.counts[kind] += 1
        return kind

    def flush(self) -> None:
        for kind, n in self.counts.items():
            example = f" (first: {self.examples[kind]})" if self.examples.get(kind) else ""
            self.log.error("%d× %s%s", n, kind, example)
        self.counts.clear()
        self.examples.clear()


def run_due(
    context: AppContext,
    now: datetime,
    limit: int = 1000,
    memo: EnqueueMemo | None = None,
    publish: Publish | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> DispatchSummary:
    """Recover lost claims, then deliver (embedded) or publish (broker) every touch that is due; invite
    newly accepted holders to their track's cohort channel (``cohorts:``, Slack) on the way."""
    summary = DispatchSummary()
    if context.policy.cohorts:
        from followup.delivery.cohort import invite_cohorts

        try:
            invite_cohorts(context, now, deliverer_for(context).channels.get("slack"))
        except Exception as exc:  # the cohort channel must never hold up the messages
            log.warning("cohort invitations skipped this pass: %s", FailureTally.kind(exc))
    with context.session() as session:
        summary.recovered = recover_stale_claims(session, now, context.settings.claim_timeout)
        ids = due_touch_ids(session, now, limit)
    # committed and closed: a worker that picks an id up sees the same rows we saw
    if context.settings.broker_url:
        if publish is None:
            raise RuntimeError("FOLLOWUP_BROKER_URL is set but no publish callable was given")
        summary.enqueued = True
        if memo is not None:
            ids = memo.fresh(ids)
        if ids:
            summary.dispatched = publish(context.settings.broker_url, ids)
            if memo is not None:
                memo.mark(ids)
        return summary
    failures = FailureTally(log)
    deliverer = deliverer_for(context)
    try:
        for start in range(0, len(ids), CLAIM_BATCH):
            if should_stop is not None and should_stop():
                break  # SIGTERM: the touch in hand is finished, the rest stay planned for the next run
            chunk = ids[start : start + CLAIM_BATCH]
            try:
                batch = deliverer.deliver_batch(chunk, now=now, should_stop=should_stop)
            except OperationalError as exc:  # the database is away: the rest would fail too
                failures.add(exc)
                summary.outcomes[Outcome(Kind.FAILED, "database unavailable")] += 1
                break
            if batch is not None:
                summary.outcomes.update(batch)
                summary.dispatched += len(batch)
            elif not _one_by_one(context, chunk, now, summary, failures, should_stop):
                break
    finally:
        failures.flush()
        for channel in deliverer_for(context).channels.values():
            channel.close()  # the batch's SMTP session
    return summary


def _one_by_one(
    context: AppContext,
    touch_ids: list[int],
    now: datetime,
    summary: DispatchSummary,
    failures: FailureTally,
    should_stop: Callable[[], bool] | None,
) -> bool:
    """Deliver touches one at a time (a batch whose preparation failed). False: stop the pass."""
    for touch_id in touch_ids:
        if should_stop is not None and should_stop():
            return False
        try:
            outcome = deliver_touch(context, touch_id, now=now)
        except OperationalError as exc:  # the database is away: the rest of the batch would fail too
            failures.add(exc)
            summary.outcomes[Outcome(Kind.FAILED, "database unavailable")] += 1
            return False
        except Exception as exc:  # one bad row (already postponed) must not stop the batch
            failures.add(exc, touch_id)
            outcome = Outcome(Kind.FAILED, "unexpected error")
        summary.outcomes[outcome] += 1
        summary.dispatched += 1
    return True


def dispatch_due(
    context: AppContext,
    now: datetime,
    limit: int = 1000,
    memo: EnqueueMemo | None = None,
    publish: Publish | None = None,
) -> int:
    """How many due touches were delivered in-process or handed to the workers."""
    return run_due(context, now, limit, memo, publish).dispatched


def outcome_counts(outcomes: Mapping[str, int]) -> dict[str, int]:
    """sent / failed / suppressed / other totals from outcome strings, for summaries."""
    keys = (
        "sent",
        "reminded",
        "transient",
        "failed",
        "suppressed",
        "deferred",
        "skipped",
        "cancelled",
        "in_doubt",
    )
    totals = dict.fromkeys(keys, 0)
    for outcome, n in outcomes.items():
        key = kind_of(outcome)
        totals[key] = totals.get(key, 0) + n
    return totals
