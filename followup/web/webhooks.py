"""Inbound signals from the channels: button answers, replies, follows and unfollows.

One route, ``POST /webhooks/<channel>``, for every registered channel with an inbound part. The channel
owns its provider's format: ``verify`` checks the signature against the raw body before anything is
parsed (a missing, wrong or stale signature gets 401 and changes nothing), ``parse`` maps the body to
normalized :class:`~followup.channels.base.InboundEvent` objects; this module only records them.
Providers redeliver, so each event is stored with a ``dedupe_key`` (Slack ``event_id``, LINE
``webhookEventId``) and counts once; an event without one is keyed by a hash of the signed body (and
its place in it), so a replay of the same signed body is recognised too.

Untrusted bytes are bounded before anything else: the body is streamed with a cap
(:data:`MAX_BODY_BYTES`, 1 MiB; Slack and LINE send a few KiB), and a larger ``Content-Length`` or
stream gets 413 without being read. A correctly signed body that cannot be parsed or holds values of the
wrong shape gets 400 and one log line, never a 500 with a traceback.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from followup.channels import CHANNELS, InboundEvent, channel_class
from followup.channels.base import resolve_env
from followup.db.addresses import address_of, holder_with_address
from followup.db.models import ChannelOptOut, EngagementEvent, OfferHolder, Touch
from followup.delivery.links import LinkExpired, LinkInvalid
from followup.engagement.buttons import decode_answer, decode_rsvp
from followup.engagement.surveys import record_response
from followup.events.store import RsvpError
from followup.web.events import answer_rsvp
from followup.web.optout import alert_hr_if_unreachable
from followup.web.state import WebState, state_of
from followup.web.surveys import resolve_survey_link

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks", tags=["webhooks"])
UNAUTHORIZED = {"detail": "invalid or missing signature"}
MAX_BODY_BYTES = 1024 * 1024  # the largest webhook body read; the reverse proxy should cap it too
# what a malformed (but signed) body can raise while being parsed or mapped: a 400, not a 500
MALFORMED = (ValueError, TypeError, AttributeError, KeyError, RecursionError, OverflowError, IndexError)
_MAX_AT = 4102444800.0  # 2100-01-01: a provider timestamp past this (or negative) is not one


class BodyTooLarge(Exception):
    pass


async def read_capped(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    """The request body, read in chunks and abandoned as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def body_dedupe_key(channel: str, body: bytes, index: int) -> str:
    """The dedupe key of an event the provider sent without an id: the signed body's hash and position."""
    return f"{channel}:body:{hashlib.sha256(body).hexdigest()[:40]}:{index}"


def checked(event: InboundEvent, channel: str, body: bytes, index: int) -> InboundEvent:
    """``event`` with every field of the shape the recorder expects (else ``ValueError``: a 400), and a
    dedupe key from the signed body when the provider gave none."""
    if event.address is not None and not isinstance(event.address, str):
        raise ValueError("address is not a string")
    if not isinstance(event.text, str) or not isinstance(event.data, str):
        raise ValueError("text or data is not a string")
    if event.at is not None:
        at = float(event.at)
        if not 0 <= at <= _MAX_AT:  # also false for NaN
            raise ValueError("timestamp out of range")
    json.dumps(event.payload)  # stored as JSON: refuse what cannot be (or is nested without end)
    if event.dedupe_key is None and event.kind != "other":
        event = replace(event, dedupe_key=body_dedupe_key(channel, body, index))
    return event


def _holder_by(session: Session, channel: str, user_id: str | None) -> OfferHolder | None:
    if not user_id:
        return None
    return session.scalars(select(OfferHolder).where(holder_with_address(channel, user_id))).first()


def _latest_touch_id(session: Session, holder_id: int, channel: str, before: datetime) -> int | None:
    """The touch a reply most likely answers: the newest one sent to the holder on that channel."""
    return session.scalars(
        select(Touch.id)
        .where(
            Touch.holder_id == holder_id,
            Touch.channel == channel,
            Touch.status == "sent",
            Touch.sent_at <= before,
        )
        .order_by(Touch.sent_at.desc())
    ).first()


def _seen(session: Session, dedupe_key: str | None) -> bool:
    if dedupe_key is None:
        return False
    found = session.scalars(
        select(EngagementEvent.id).where(EngagementEvent.dedupe_key == dedupe_key)
    ).first()
    return found is not None


def _add_event(
    session: Session,
    *,
    holder: OfferHolder | None,
    kind: str,
    channel: str,
    at: datetime,
    payload: dict[str, Any],
    dedupe_key: str | None,
) -> bool:
    if _seen(session, dedupe_key):
        return False
    touch_id = _latest_touch_id(session, holder.id, channel, at) if holder and kind == "reply" else None
    session.add(
        EngagementEvent(
            holder_id=holder.id if holder else None,
            touch_id=touch_id,
            at=at,
            kind=kind,
            channel=channel,
            payload=payload,
            dedupe_key=dedupe_key,
        )
    )
    return True


def chat_answer(
    state: WebState, channel: str, user_id: str | None, data: str, at: datetime, dedupe_key: str | None
) -> str:
    """Record one button answer (``s=TOKEN&q=ID&v=N``) as a partial response; returns what happened.

    The token must be valid and unexpired, the question a scale question of that survey, and the
    presser the holder the touch was sent to (a forwarded message does not answer for someone else).
    """
    decoded = decode_answer(data)
    if decoded is None:
        return "ignored"
    token, question_id, value = decoded
    try:
        link = resolve_survey_link(state, token)
    except LinkInvalid:
        return "forged"
    except LinkExpired:
        return "expired"
    question = next((q for q in link.survey.questions if q.id == question_id), None)
    if question is None or question.type != "scale" or not 1 <= value <= 5:
        return "ignored"
    for attempt in range(2):  # two first presses at once: the loser of the insert race merges instead
        try:
            with state.session() as session:
                holder = session.get(OfferHolder, link.holder_id)
                expected = address_of(holder, channel) if holder else None
                if not user_id or expected != user_id:
                    return "not_the_holder"
                touch = session.get(Touch, link.touch_id)
                if touch is None:
                    return "expired"
                if _seen(session, dedupe_key):
                    return "duplicate"
                record_response(
                    session,
                    touch,
                    link.survey,
                    {question_id: value},
                    at,
                    merge=True,
                    channel=channel,
                    dedupe_key=dedupe_key,
                )
            break
        except IntegrityError:
            if attempt:
                raise
    return "recorded"


def chat_rsvp(
    state: WebState, channel: str, user_id: str | None, data: str, at: datetime, dedupe_key: str | None
) -> str:
    """Record an RSVP button (``r=TOKEN&a=ANSWER``): the token names holder and event, the presser must be
    that holder on this channel, and a redelivered press (same dedupe key) lands once."""
    decoded = decode_rsvp(data)
    if decoded is None:
        return "ignored"
    token, answer = decoded
    try:
        holder_id, name = state.signer.read_rsvp_token(token)
    except LinkInvalid:
        return "forged"
    except LinkExpired:
        return "expired"
    with state.session() as session:
        holder = session.get(OfferHolder, holder_id)
        expected = address_of(holder, channel) if holder else None
        if not user_id or expected != user_id:
            return "not_the_holder"
        if _seen(session, dedupe_key):
            return "duplicate"
    try:
        result = answer_rsvp(state, holder_id, name, answer, at=at, source=channel, dedupe_key=dedupe_key)
    except RsvpError:
        return "refused"
    return "recorded" if result.changed else "duplicate"


# --- events --------------------------------------------------------------------------------------------


def _at(state: WebState, event: InboundEvent) -> datetime:
    return datetime.fromtimestamp(event.at, UTC) if event.at is not None else state.clock()


def handle_event(state: WebState, event: InboundEvent) -> str:
    """Record one normalized event; returns what happened (``recorded``, ``duplicate``, ``unknown_user``…)."""
    at = _at(state, event)
    if event.kind == "answer":
        return chat_answer(state, event.channel, event.address, event.data, at, event.dedupe_key)
    if event.kind == "rsvp":
        return chat_rsvp(state, event.channel, event.address, event.data, at, event.dedupe_key)
    if event.kind == "joined":
        return cohort_joined(state, event, at)
    if event.kind not in ("reply", "follow", "unfollow"):
        return "ignored"
    opted_out: int | None = None  # the holder whose block just became an opt-out
    with state.session() as session:
        holder = _holder_by(session, event.channel, event.address)
        if event.kind == "reply" and holder is None:
            return "unknown_user"
        # An unknown follower is kept too (holder_id empty): HR can match the address to a holder later.
        added = _add_event(
            session,
            holder=holder,
            kind=event.kind,
            channel=event.channel,
            at=at,
            payload=event.payload,
            dedupe_key=event.dedupe_key,
        )
        if (
            added
            and holder is not None
            and event.kind != "reply"
            and _follow_state(session, holder, event.channel, event.kind, at)
        ):
            opted_out = holder.id
    if opted_out is not None:  # blocking the last channel is an opt-out of everything: HR hears at once
        alert_hr_if_unreachable(state, opted_out)
    return "recorded" if added else "duplicate"


def cohort_joined(state: WebState, event: InboundEvent, at: datetime) -> str:
    """A holder joined a track's cohort channel (内定者同士の交流): recorded once, for cohort_not_joined.
    Joins of other channels the bot happens to be in are not ours to record."""
    cohorts = {resolve_env(c.slack_channel) for c in state.context.policy.cohorts.values()} - {None}
    if event.data not in cohorts:
        return "ignored"
    with state.session() as session:
        holder = _holder_by(session, event.channel, event.address)
        if holder is None:
            return "unknown_user"
        added = _add_event(
            session,
            holder=holder,
            kind="cohort_join",
            channel=event.channel,
            at=at,
            payload=event.payload,
            dedupe_key=event.dedupe_key,
        )
    return "recorded" if added else "duplicate"


def _follow_state(session: Session, holder: OfferHolder, channel: str, kind: str, at: datetime) -> bool:
    """Blocking the account makes the channel unreachable: an opt-out the planner honours; following again
    lifts it. Only the opt-out the provider caused is lifted; one the holder asked for on the web stays.
    True when this call recorded a new opt-out.
    """
    source = f"{channel}_unfollow"
    existing = session.scalars(
        select(ChannelOptOut).where(ChannelOptOut.holder_id == holder.id, ChannelOptOut.channel == channel)
    ).first()
    if kind == "unfollow" and existing is None:
        session.add(ChannelOptOut(holder_id=holder.id, channel=channel, at=at, source=source))
        return True
    if kind == "follow" and existing is not None and existing.source == source:
        session.execute(delete(ChannelOptOut).where(ChannelOptOut.id == existing.id))
    return False


def _handle_events(state: WebState, events: tuple[InboundEvent, ...]) -> list[str]:
    outcomes = []
    for event in events:
        try:
            outcomes.append(handle_event(state, event))
        except IntegrityError:
            outcomes.append("duplicate")  # a concurrent redelivery stored it first
    return outcomes


@router.post("/{channel}", summary="A channel's webhook (Slack Events API and interactivity, LINE, …)")
async def channel_webhook(request: Request, channel: str) -> Response:
    state = state_of(request)
    if channel not in CHANNELS or not channel_class(channel).inbound:
        return JSONResponse({"detail": "not found"}, status_code=404)
    spec = channel_class(channel)
    try:
        body = await read_capped(request)
    except BodyTooLarge:
        log.warning("%s webhook refused: body over %d bytes", channel, MAX_BODY_BYTES)
        return JSONResponse({"detail": "body too large"}, status_code=413)
    section = state.context.policy.channels.section(channel)
    if not spec.verify(section, request.headers, body, state.clock().timestamp(), os.environ):
        log.warning("%s webhook refused: bad or stale signature", channel)
        return JSONResponse(UNAUTHORIZED, status_code=401)
    try:
        inbound = spec.parse(request.headers, body)
        if inbound.reply is not None:
            json.dumps(inbound.reply)
            return JSONResponse(inbound.reply)
        events = tuple(checked(e, channel, body, i) for i, e in enumerate(inbound.events))
    except MALFORMED as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        log.warning("%s webhook refused: malformed signed body (%s)", channel, type(exc).__name__)
        return JSONResponse({"detail": "malformed body"}, status_code=400)
    outcomes = await run_in_threadpool(_handle_events, state, events)
    if inbound.batch:
        return JSONResponse({"ok": True, "outcomes": outcomes})
    return JSONResponse({"ok": True, "outcome": outcomes[0] if outcomes else "ignored"})
