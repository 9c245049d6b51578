"""Opt-out pages: ``/opt-out/TOKEN`` confirms (GET changes nothing), POST records it once.

The POST is also the RFC 8058 one-click target named in ``List-Unsubscribe-Post``. An opt-out stops
follow-up messages on that channel; essential 入社手続き notices (templates marked ``essential``) still
go out. When the last reachable channel is opted out, HR (the weekly report's recipients) gets an email
at once: the holder chose silence, and someone should decide how the 入社手続き will reach them.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from followup.channels import OutboundMessage
from followup.config.schema import MESSAGE_CHANNELS
from followup.db.models import AuditEntry, ChannelOptOut, EngagementEvent, OfferHolder
from followup.delivery.deliver import build_channels
from followup.delivery.links import LinkInvalid
from followup.labels import CHANNEL_LABELS, STATUS_LABELS, short_datetime
from followup.vocab import POOL_STATUSES
from followup.web.state import WebState, expired, page, read_link, state_of

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)
log = logging.getLogger(__name__)
_ADDRESS_FIELDS = {"email": "email", "slack": "slack_user_id", "line": "line_user_id"}


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


def _in_pool(state: WebState, holder_id: int) -> bool:
    """A talent-pool member (不採用・辞退): the pages speak of 当社からのご案内, not 内定者フォロー."""
    with state.session() as session:
        holder = session.get(OfferHolder, holder_id)
        return holder is not None and holder.status in POOL_STATUSES


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
            holder = session.get(OfferHolder, holder_id)
            if holder is not None and holder.status in POOL_STATUSES:
                # the talent pool: how consent ended is kept with how it was given (特定電子メール法)
                detail = {"external_id": holder.external_id, "channel": channel, "source": source}
                session.add(AuditEntry(at=now, actor="web", action="pool_opt_out", detail=detail))
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


def opted_out_of_everything(state: WebState, holder_id: int) -> list[OutboundMessage]:
    """The alert to HR (one message per report recipient) when ``holder_id`` has no channel left for
    follow-up, else nothing."""
    policy = state.context.policy
    org = policy.organization
    with state.session() as session:
        holder = session.get(OfferHolder, holder_id)
        if holder is None or holder.status in POOL_STATUSES:
            return []  # a talent-pool member who opts out is simply not written to again
        opted = {
            o.channel: o.at
            for o in session.scalars(select(ChannelOptOut).where(ChannelOptOut.holder_id == holder_id))
        }
        have = [c for c, attr in _ADDRESS_FIELDS.items() if getattr(holder, attr)]
        if not opted or any(c not in opted for c in have):
            return []
        tz = org.tz
        done = "、".join(
            f"{CHANNEL_LABELS.get(c, c)}({short_datetime(at.astimezone(tz))})"
            for c, at in sorted(opted.items())
        )
        lines = [
            "人事部 ご担当者様",
            "",
            f"内定者の{holder.name}さん({holder.external_id}/"
            f"{STATUS_LABELS.get(holder.status, holder.status)})が、",
            "登録されているすべての連絡手段で、フォローのご案内の配信停止を選びました。",
            f"停止した連絡手段: {done}",
            "",
            "ご本人の意思による停止です。自動のフォロー連絡はこれ以降お送りしません。",
            "入社手続きに必要なご連絡(提出書類・入社初日のご案内)は、引き続き届きます。",
            "辞退を考えている可能性もあります。ご本人の負担にならない形で、今後の連絡方法をご確認ください。",
            "",
            f"{org.name} 内定者フォロー",
        ]
        key = f"opt-out-all:{holder.external_id}:{max(opted.values()).isoformat()}"
        return [
            OutboundMessage(
                idempotency_key=f"{key}:{recipient}",
                channel="email",
                recipient=recipient,
                subject=f"【内定者フォロー】{holder.name}さんがすべての連絡手段で配信停止しました",
                text="\n".join(lines) + "\n",
            )
            for recipient in policy.report.weekly.to
        ]


def alert_hr_if_unreachable(state: WebState, holder_id: int) -> bool:
    """Email HR at once when the holder opted out of every channel; a failed send is logged, not raised
    (the opt-out itself is recorded, and the unreachable flag shows in the report either way)."""
    messages = opted_out_of_everything(state, holder_id)
    if not messages:
        return False
    try:
        email = build_channels(state.context)["email"]
        for message in messages:
            email.send(message)
    except Exception:  # the SMTP relay is down: the flag and the weekly report still say it
        log.exception("could not alert HR that holder %s opted out of every channel", holder_id)
        return False
    return True


def _read_opt_out(state: WebState, token: str) -> tuple[int, str]:
    holder_id, channel = state.signer.read_opt_out_token(token)
    if channel not in MESSAGE_CHANNELS:
        raise LinkInvalid()
    return holder_id, channel


@router.get("/opt-out/{token}")
async def opt_out_confirm(request: Request, token: str) -> Response:
    state = state_of(request)
    link = read_link(request, lambda t: _read_opt_out(state, t), token)
    if isinstance(link, Response):
        return link
    holder_id, channel = link
    status = await run_in_threadpool(_opt_out_state, state, holder_id, channel)
    if status is None:
        return expired(request)
    label = CHANNEL_LABELS[channel]
    pool = await run_in_threadpool(_in_pool, state, holder_id)
    if status:
        return page(request, "optout_done.html", {"channel_label": label, "already": True, "pool": pool})
    return page(request, "optout_confirm.html", {"channel_label": label, "token": token, "pool": pool})


@router.post("/opt-out/{token}")
async def opt_out_submit(request: Request, token: str) -> Response:
    """The confirm button's POST, and the RFC 8058 one-click POST (body ``List-Unsubscribe=One-Click``)."""
    state = state_of(request)
    link = read_link(request, lambda t: _read_opt_out(state, t), token)
    if isinstance(link, Response):
        return link
    holder_id, channel = link
    if await run_in_threadpool(_opt_out_state, state, holder_id, channel) is None:
        return expired(request)
    form = await request.form()
    source = "one_click" if form.get("List-Unsubscribe") == "One-Click" else "web"
    created = await run_in_threadpool(record_opt_out, state, holder_id, channel, source)
    if created:
        await run_in_threadpool(alert_hr_if_unreachable, state, holder_id)
    pool = await run_in_threadpool(_in_pool, state, holder_id)
    return page(
        request,
        "optout_done.html",
        {"channel_label": CHANNEL_LABELS[channel], "already": not created, "pool": pool},
    )
