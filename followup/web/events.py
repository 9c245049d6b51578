"""Event RSVP pages: ``/e/TOKEN`` shows 出席 / 欠席 / 未定 and the event's questions (GET changes nothing);
POST records the answer once per holder and event (answering again changes it). The same recording
serves the Slack buttons and LINE postbacks (``answer_rsvp``, called by the webhooks).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from followup.db.models import EngagementEvent, EventRsvp, OfferHolder
from followup.delivery.links import LinkInvalid
from followup.events.store import ANSWERS, RsvpError, RsvpResult, record_rsvp
from followup.labels import RSVP_LABELS
from followup.web.state import WebState, expired, page, read_link, state_of

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)
ANSWER_LIMIT = 500  # characters per free-text answer


def _current(state: WebState, holder_id: int, name: str) -> tuple[bool, str, dict[str, Any]] | None:
    """(holder exists, current status, current answers), None for an erased or unknown holder."""
    with state.session() as session:
        holder = session.get(OfferHolder, holder_id)
        if holder is None or holder.erased_at is not None:
            return None
        row = session.scalars(
            select(EventRsvp).where(EventRsvp.holder_id == holder_id, EventRsvp.event == name)
        ).first()
        return True, (row.status if row else ""), dict((row.answers if row else None) or {})


def answer_rsvp(
    state: WebState,
    holder_id: int,
    name: str,
    answer: str,
    *,
    at: datetime,
    answers: dict[str, Any] | None = None,
    source: str = "web",
    dedupe_key: str | None = None,
) -> RsvpResult:
    """Record an answer and its timeline entry (one entry per change; a redelivered press is a no-op)."""
    event = state.context.policy.events.get(name)
    if event is None:
        raise RsvpError("この行事は見つかりません")
    result = record_rsvp(state.session, holder_id, name, event, answer, at=at, answers=answers, source=source)
    if result.changed:
        with state.session() as session:
            session.add(
                EngagementEvent(
                    holder_id=holder_id,
                    at=at,
                    kind="rsvp",
                    channel=source,
                    payload={"event": name, "status": result.status, "seat": result.seat},
                    dedupe_key=dedupe_key,
                )
            )
    return result


def _read(state: WebState, token: str) -> tuple[int, str]:
    holder_id, name = state.signer.read_rsvp_token(token)
    if name not in state.context.policy.events:
        raise LinkInvalid()
    return holder_id, name


def _context(state: WebState, name: str, token: str, status: str, answers: dict[str, Any]) -> dict[str, Any]:
    event = state.context.policy.events[name]
    zone = state.context.policy.organization.tz
    return {
        "event": event,
        "starts": event.starts_at.astimezone(zone).strftime("%Y年%m月%d日 %H:%M"),
        "deadline": event.deadline.strftime("%Y年%m月%d日") if event.deadline else "",
        "token": token,
        "status": status,
        "status_label": RSVP_LABELS.get(status, status),
        "answers": answers,
        "choices": [(a, RSVP_LABELS[a]) for a in ANSWERS],
    }


@router.get("/e/{token}")
async def rsvp_page(request: Request, token: str) -> Response:
    state = state_of(request)
    link = read_link(request, lambda t: _read(state, t), token)
    if isinstance(link, Response):
        return link
    holder_id, name = link
    found = await run_in_threadpool(_current, state, holder_id, name)
    if found is None:
        return expired(request)
    _, status, answers = found
    return page(request, "rsvp.html", _context(state, name, token, status, answers))


@router.post("/e/{token}")
async def rsvp_submit(request: Request, token: str) -> Response:
    state = state_of(request)
    link = read_link(request, lambda t: _read(state, t), token)
    if isinstance(link, Response):
        return link
    holder_id, name = link
    if await run_in_threadpool(_current, state, holder_id, name) is None:
        return expired(request)
    form = await request.form()
    answer = str(form.get("answer", ""))
    event = state.context.policy.events[name]
    answers = {q.id: str(form.get(f"q_{q.id}", ""))[:ANSWER_LIMIT].strip() for q in event.questions}
    answers = {k: v for k, v in answers.items() if v}
    context = _context(state, name, token, answer, answers)
    if answer not in ANSWERS:
        return page(
            request,
            "rsvp.html",
            {**context, "status": "", "error": "出席・欠席・未定のいずれかをお選びください"},
            400,
        )
    try:
        result = await run_in_threadpool(
            lambda: answer_rsvp(state, holder_id, name, answer, at=state.clock(), answers=answers)
        )
    except RsvpError as exc:
        return page(request, "rsvp.html", {**context, "error": str(exc)}, 400)
    done = {**context, "status": result.status, "status_label": RSVP_LABELS[result.status], "done": True}
    return page(request, "rsvp.html", done)
