"""The talent pool's pages: ``/r/TOKEN`` (the rejection mail's page, consent by checkbox) and ``/go/TOKEN``.

Consent is recorded only by the form's POST with the box ticked, never on GET (mail scanners open links).
``/go/TOKEN`` counts one opening per person and link and redirects to the configured URL as it is: no
name, id or token goes to the third party (no query added, ``Referrer-Policy: no-referrer``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from followup.db.models import OfferHolder
from followup.pool.store import record_click, record_consent
from followup.web.state import WebState, expired, page, read_link, state_of

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)


def _page_state(state: WebState, holder_id: int) -> dict[str, Any] | None:
    """What the page shows: the person's family name, consent so far, their email opt-out link."""
    with state.session() as session:
        holder = session.get(OfferHolder, holder_id)
        if holder is None or holder.erased_at is not None:
            return None
        return {
            "name": holder.name,
            "consent_date": (
                f"{holder.consent_date.year}年{holder.consent_date.month}月{holder.consent_date.day}日"
                if holder.consent_date
                else None
            ),
            "opt_out_url": state.signer.opt_out_url(holder.id, "email"),
        }


def _consent(state: WebState, holder_id: int) -> bool:
    now = state.clock().astimezone(state.context.policy.organization.tz)
    with state.session() as session:
        holder = session.get(OfferHolder, holder_id)
        if holder is None or holder.erased_at is not None:
            return False
        return record_consent(session, holder, at=now, source="web", actor="web")


def _read(state: WebState, token: str) -> int:
    return state.signer.read_pool_token(token)


def _company(state: WebState) -> str:
    return state.context.policy.organization.name


@router.get("/r/{token}")
async def pool_page(request: Request, token: str) -> Response:
    state = state_of(request)
    holder_id = read_link(request, lambda t: _read(state, t), token)
    if isinstance(holder_id, Response):
        return holder_id
    found = await run_in_threadpool(_page_state, state, holder_id)
    if found is None:
        return expired(request)
    return page(request, "pool.html", {**found, "token": token, "company": _company(state)})


@router.post("/r/{token}")
async def pool_consent(request: Request, token: str) -> Response:
    state = state_of(request)
    holder_id = read_link(request, lambda t: _read(state, t), token)
    if isinstance(holder_id, Response):
        return holder_id
    form = await request.form()
    found = await run_in_threadpool(_page_state, state, holder_id)
    if found is None:
        return expired(request)
    values = {**found, "token": token, "company": _company(state)}
    if form.get("consent") != "yes":
        values["error"] = "ご同意いただける場合は、チェックを入れてから送信してください。"
        return page(request, "pool.html", values, status=422)
    created = await run_in_threadpool(_consent, state, holder_id)
    found = await run_in_threadpool(_page_state, state, holder_id) or found
    return page(request, "pool_done.html", {**values, **found, "already": not created})


def _click(state: WebState, holder_id: int, link: str) -> bool:
    with state.session() as session:
        if session.get(OfferHolder, holder_id) is None:
            return False
        record_click(session, holder_id, link, at=state.clock())
        return True


@router.get("/go/{token}")
async def go(request: Request, token: str) -> Response:
    state = state_of(request)
    carried = read_link(request, state.signer.read_go_token, token)
    if isinstance(carried, Response):
        return carried
    holder_id, link = carried
    pool = state.context.policy.pool
    target = {"career": pool.career_support_url, "openings": pool.openings_url}.get(link)
    if target is None:
        return expired(request)
    await run_in_threadpool(_click, state, holder_id, link)
    response = RedirectResponse(target, status_code=303)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
