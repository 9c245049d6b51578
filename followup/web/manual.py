"""The reminder's 「実施済みにする」 page: ``/done/TOKEN`` shows what is to be recorded (GET records
nothing: mail scanners follow links), POST records the manual touch once, with an optional note.

An executive gets a link in the reminder, not a CLI: the token is signed for this one touch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from followup.db.models import AuditEntry, OfferHolder, Touch
from followup.labels import MANUAL_WHAT, short_date, short_datetime
from followup.web.state import WebState, expired, page, read_link, state_of

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)
NOTE_LIMIT = 1000


@dataclass(frozen=True)
class ManualTouchView:
    holder_name: str
    what: str
    due: str
    task: str
    done_at: str | None  # already recorded: when


def _view(state: WebState, touch_id: int) -> ManualTouchView | None:
    tz = state.context.policy.organization.tz
    with state.session() as session:
        touch = session.get(Touch, touch_id)
        if touch is None or touch.kind != "manual":
            return None
        holder = session.get(OfferHolder, touch.holder_id)
        if holder is None or holder.erased_at is not None:
            return None
        done = touch.status == "done" and touch.sent_at is not None
        return ManualTouchView(
            holder_name=holder.name,
            what=MANUAL_WHAT.get(touch.channel, "ご連絡"),
            due=short_date(touch.due_at.astimezone(tz)),
            task=(touch.note or "").split("\n")[0],
            done_at=short_datetime(touch.sent_at.astimezone(tz)) if done and touch.sent_at else None,
        )


def record_manual_done(state: WebState, touch_id: int, note: str, now: datetime) -> bool:
    """planned/reminded → done, once (a second POST changes nothing). True when this call recorded it."""
    with state.session() as session:
        touch = session.get(Touch, touch_id, with_for_update=True)
        if touch is None or touch.status not in ("planned", "reminded"):
            return False
        touch.status, touch.sent_at = "done", now
        if note:
            memo = f"実施メモ: {note}"
            touch.note = f"{touch.note}\n{memo}" if touch.note else memo
        session.add(
            AuditEntry(
                at=now,
                actor="web:manual",
                action="touch_done",
                detail={"holder_id": touch.holder_id, "touch_id": touch.id, "channel": touch.channel},
            )
        )
        return True


def _touch_of(state: WebState, token: str) -> int:
    return state.signer.read_manual_token(token)


@router.get("/done/{token}")
async def manual_confirm(request: Request, token: str) -> Response:
    state = state_of(request)
    touch_id = read_link(request, lambda t: _touch_of(state, t), token)
    if isinstance(touch_id, Response):
        return touch_id
    view = await run_in_threadpool(_view, state, touch_id)
    if view is None:
        return expired(request)
    return page(request, "manual_done.html", {"v": view, "token": token, "recorded": False})


@router.post("/done/{token}")
async def manual_submit(request: Request, token: str) -> Response:
    state = state_of(request)
    touch_id = read_link(request, lambda t: _touch_of(state, t), token)
    if isinstance(touch_id, Response):
        return touch_id
    form = await request.form()
    note = str(form.get("note") or "").strip()[:NOTE_LIMIT]
    recorded = await run_in_threadpool(record_manual_done, state, touch_id, note, state.clock())
    view = await run_in_threadpool(_view, state, touch_id)
    if view is None:
        return expired(request)
    return page(request, "manual_done.html", {"v": view, "token": token, "recorded": recorded})
