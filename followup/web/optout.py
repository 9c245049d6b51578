"""Opt-out pages: ``/opt-out/TOKEN`` confirms (GET changes nothing), POST records it once.

The POST is also the RFC 8058 one-click target named in ``List-Unsubscribe-Post``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from followup.config.schema import MESSAGE_CHANNELS
from followup.db.models import ChannelOptOut, EngagementEvent, OfferHolder
from followup.delivery.links import LinkExpired, LinkInvalid
from followup.labels import CHANNEL_LABELS
from followup.web.state import WebState, expired, forbidden, page, state_of

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)


def _opt_out_state(state: WebState, holder_id: int, channel: str) -> bool | None:
    """True: already opted out; False: still subscribed; None: no such holder (or erased)."""
    with state.session() as session:
        holder = session.get(OfferHolder, holder_id)
        if holder is None or holder.erased_at is not None:
            return None
        existing = session.scalars(
            select(ChannelOptOut).where(
                ChannelOptOut.holder_id == holder_id, ChannelOptOut.channel == channel
            )
        ).first()
        return existing is not None


def record_opt_out(state: WebState, holder_id: int, channel: str, source: str) -> bool:
    """Record the opt-out once (unique per holder and channel) with its engagement event; False if already."""
    now = state.clock()
    try:
        with state.session() as session:
            exists = session.scalars(
                select(ChannelOptOut).where(
                    ChannelOptOut.holder_id == holder_id, ChannelOptOut.channel == channel
                )
            ).first()
            if exists is not None:
                return False
            session.add(ChannelOptOut(holder_id=holder_id, channel=channel, at=now, source=source))
            session.add(
                EngagementEvent(
                    holder_id=holder_id,
                    at=now,
                    kind="opt_out",
                    channel=channel,
                    payload={"source": source},
                )
            )
        return True
    except IntegrityError:
        return False  # a concurrent request recorded it first


def _read_opt_out(state: WebState, token: str) -> tuple[int, str]:
    holder_id, channel = state.signer.read_opt_out_token(token)
    if channel not in MESSAGE_CHANNELS:
        raise LinkInvalid()
    return holder_id, channel


@router.get("/opt-out/{token}")
async def opt_out_confirm(request: Request, token: str) -> Response:
    state = state_of(request)
    try:
        holder_id, channel = _read_opt_out(state, token)
    except LinkInvalid:
        return forbidden(request)
    except LinkExpired:
        return expired(request)
    status = await run_in_threadpool(_opt_out_state, state, holder_id, channel)
    if status is None:
        return expired(request)
    label = CHANNEL_LABELS[channel]
    if status:
        return page(request, "optout_done.html", {"channel_label": label, "already": True})
    return page(request, "optout_confirm.html", {"channel_label": label, "token": token})


@router.post("/opt-out/{token}")
async def opt_out_submit(request: Request, token: str) -> Response:
    """The confirm button's POST, and the RFC 8058 one-click POST (body ``List-Unsubscribe=One-Click``)."""
    state = state_of(request)
    try:
        holder_id, channel = _read_opt_out(state, token)
    except LinkInvalid:
        return forbidden(request)
    except LinkExpired:
        return expired(request)
    if await run_in_threadpool(_opt_out_state, state, holder_id, channel) is None:
        return expired(request)
    form = await request.form()
    source = "one_click" if form.get("List-Unsubscribe") == "One-Click" else "web"
    created = await run_in_threadpool(record_opt_out, state, holder_id, channel, source)
    return page(
        request, "optout_done.html", {"channel_label": CHANNEL_LABELS[channel], "already": not created}
    )
