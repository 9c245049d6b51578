"""Inbound signals from Slack and LINE: button answers, replies, follows and unfollows.

Every request is verified against the raw body before anything is parsed; a missing, wrong or stale
signature gets 401 and changes nothing. Providers redeliver, so each event is stored with a
``dedupe_key`` (Slack ``event_id``, LINE ``webhookEventId``) and counts once.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from followup.config import resolve_env
from followup.db.models import ChannelOptOut, EngagementEvent, OfferHolder, Touch
from followup.delivery.links import LinkExpired, LinkInvalid
from followup.engagement.buttons import ACTION_PREFIX, decode_answer
from followup.engagement.surveys import record_response
from followup.web.signatures import verify_line, verify_slack
from followup.web.state import WebState, state_of
from followup.web.surveys import resolve_survey_link

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks", tags=["webhooks"])
UNAUTHORIZED = {"detail": "invalid or missing signature"}


def _holder_by(session: Session, channel: str, user_id: str | None) -> OfferHolder | None:
    if not user_id:
        return None
    column = OfferHolder.slack_user_id if channel == "slack" else OfferHolder.line_user_id
    return session.scalars(select(OfferHolder).where(column == user_id)).first()


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
                expected = (
                    holder.slack_user_id
                    if (holder and channel == "slack")
                    else (holder.line_user_id if holder else None)
                )
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


# --- Slack -----------------------------------------------------------------------------------------------


def _slack_interactive(state: WebState, payload: dict[str, Any]) -> list[str]:
    if payload.get("type") != "block_actions":
        return []
    user_id = (payload.get("user") or {}).get("id")
    trigger = payload.get("trigger_id") or payload.get("container", {}).get("message_ts") or ""
    outcomes = []
    for action in payload.get("actions") or []:
        action_id = str(action.get("action_id", ""))
        if not action_id.startswith(ACTION_PREFIX + ":"):
            continue
        at = state.clock()
        dedupe = f"slack:action:{trigger}:{action_id}" if trigger else None
        outcomes.append(chat_answer(state, "slack", user_id, str(action.get("value", "")), at, dedupe))
    return outcomes


def _slack_event(state: WebState, envelope: dict[str, Any]) -> str:
    event = envelope.get("event") or {}
    if event.get("type") != "message" or event.get("subtype") or event.get("bot_id"):
        return "ignored"
    event_id = envelope.get("event_id")
    with state.session() as session:
        holder = _holder_by(session, "slack", event.get("user"))
        if holder is None:
            return "unknown_user"
        ts = event.get("ts")
        try:
            at = datetime.fromtimestamp(float(ts), UTC) if ts else state.clock()
        except ValueError:
            at = state.clock()
        added = _add_event(
            session,
            holder=holder,
            kind="reply",
            channel="slack",
            at=at,
            payload={"text": str(event.get("text", ""))[:4000], "ts": ts, "channel": event.get("channel")},
            dedupe_key=f"slack:{event_id}" if event_id else None,
        )
    return "recorded" if added else "duplicate"


@router.post("/slack", summary="Slack Events API and interactivity (signed, v0 scheme)")
async def slack_webhook(request: Request) -> Response:
    state = state_of(request)
    body = await request.body()
    secret = resolve_env(state.context.policy.channels.slack.signing_secret)
    if not verify_slack(
        secret,
        request.headers.get("X-Slack-Request-Timestamp"),
        request.headers.get("X-Slack-Signature"),
        body,
        now=state.clock().timestamp(),
    ):
        log.warning("slack webhook refused: bad or stale signature")
        return JSONResponse(UNAUTHORIZED, status_code=401)

    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("application/x-www-form-urlencoded"):
            fields = parse_qs(body.decode("utf-8"))
            payload = json.loads(fields.get("payload", ["{}"])[0])
            outcomes = await run_in_threadpool(_slack_interactive, state, payload)
            return JSONResponse({"ok": True, "outcomes": outcomes})
        envelope = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return JSONResponse({"detail": "malformed body"}, status_code=400)
    if not isinstance(envelope, dict):
        return JSONResponse({"detail": "malformed body"}, status_code=400)
    if envelope.get("type") == "url_verification":
        return JSONResponse({"challenge": envelope.get("challenge", "")})
    if envelope.get("type") == "event_callback":
        try:
            outcome = await run_in_threadpool(_slack_event, state, envelope)
        except IntegrityError:
            outcome = "duplicate"  # a concurrent redelivery stored it first
        return JSONResponse({"ok": True, "outcome": outcome})
    return JSONResponse({"ok": True, "outcome": "ignored"})


# --- LINE ------------------------------------------------------------------------------------------------


def _line_event(state: WebState, event: dict[str, Any]) -> str:
    kind = event.get("type")
    user_id = (event.get("source") or {}).get("userId")
    event_id = event.get("webhookEventId")
    dedupe = f"line:{event_id}" if event_id else None
    stamp = event.get("timestamp")
    at = datetime.fromtimestamp(stamp / 1000, UTC) if isinstance(stamp, int | float) else state.clock()

    if kind == "postback":
        data = str((event.get("postback") or {}).get("data", ""))
        return chat_answer(state, "line", user_id, data, at, dedupe)

    with state.session() as session:
        holder = _holder_by(session, "line", user_id)
        if kind == "message":
            if holder is None:
                return "unknown_user"
            message = event.get("message") or {}
            text = message.get("text") if message.get("type") == "text" else f"[{message.get('type')}]"
            added = _add_event(
                session,
                holder=holder,
                kind="reply",
                channel="line",
                at=at,
                payload={"text": str(text)[:5000], "message_id": message.get("id")},
                dedupe_key=dedupe,
            )
        elif kind in ("follow", "unfollow"):
            # An unknown user is kept too (holder_id empty): HR can match the LINE id to a holder later.
            added = _add_event(
                session,
                holder=holder,
                kind=kind,
                channel="line",
                at=at,
                payload={"userId": user_id},
                dedupe_key=dedupe,
            )
            if added and holder is not None:
                _follow_state(session, holder, kind, at)
        else:
            return "ignored"
    return "recorded" if added else "duplicate"


def _follow_state(session: Session, holder: OfferHolder, kind: str, at: datetime) -> None:
    """Blocking the account makes LINE unreachable: an opt-out the planner honours; following again lifts it.

    Only the opt-out LINE caused is lifted; one the holder asked for on the web stays.
    """
    existing = session.scalars(
        select(ChannelOptOut).where(ChannelOptOut.holder_id == holder.id, ChannelOptOut.channel == "line")
    ).first()
    if kind == "unfollow" and existing is None:
        session.add(ChannelOptOut(holder_id=holder.id, channel="line", at=at, source="line_unfollow"))
    elif kind == "follow" and existing is not None and existing.source == "line_unfollow":
        session.execute(delete(ChannelOptOut).where(ChannelOptOut.id == existing.id))


def _line_events(state: WebState, events: list[Any]) -> list[str]:
    outcomes = []
    for event in events:
        if not isinstance(event, dict):
            continue
        try:
            outcomes.append(_line_event(state, event))
        except IntegrityError:
            outcomes.append("duplicate")
    return outcomes


@router.post("/line", summary="LINE Messaging API webhook (X-Line-Signature)")
async def line_webhook(request: Request) -> Response:
    state = state_of(request)
    body = await request.body()
    secret = resolve_env(state.context.policy.channels.line.channel_secret)
    if not verify_line(secret, request.headers.get("X-Line-Signature"), body):
        log.warning("line webhook refused: bad signature")
        return JSONResponse(UNAUTHORIZED, status_code=401)
    try:
        data = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return JSONResponse({"detail": "malformed body"}, status_code=400)
    events = data.get("events") if isinstance(data, dict) else None
    outcomes = await run_in_threadpool(_line_events, state, events if isinstance(events, list) else [])
    return JSONResponse({"ok": True, "outcomes": outcomes})
