"""The HR workspace pages: the holders list (filters, search, counts, paging) and the home page.

Routes only; the queries are ``followup.web.listing`` and ``followup.web.home``, the sign-in is
``followup.web.dashboard``. Every page is bounded: a page of the list, the top rows of each section.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from followup.labels import RSVP_LABELS, short_date
from followup.web.dashboard import (
    _labels,
    _login_redirect,
    _page_of,
    _page_with_session,
    authenticate,
    holder_query,
)
from followup.web.home import Home, this_week
from followup.web.listing import PAGE_SIZE, RSVP_FILTERS, SORTS, distinct_values
from followup.web.state import WebState, page, state_of

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)

SORT_LABELS = {
    "risk": "リスクの高い順",
    "name": "氏名順",
    "start_date": "入社予定日順",
    "external_id": "ID順",
}


def _menus(state: WebState, mentor_scope: str | None) -> dict[str, Any]:
    with state.session() as session:
        values = distinct_values(session, mentor_scope)
    mentors = state.context.policy.mentors
    return {
        "departments": values["department"],
        "mentors": [
            (email, mentors[email].name if email in mentors else email) for email in values["mentor"]
        ],
        "events": [(name, event.title) for name, event in state.context.policy.events.items()],
    }


def _home(state: WebState, mentor_scope: str | None) -> Home:
    with state.session() as session:
        return this_week(session, state.context.policy, state.clock(), mentor_scope)


@router.get("/dashboard")
async def home(request: Request) -> Response:
    """今週やること: open flags, overdue human touches, pending RSVPs, holders no channel reaches."""
    login = _login_redirect(request)
    if login is not None:
        return login
    renewed = authenticate(request)
    state = state_of(request)
    data = await run_in_threadpool(_home, state, None)
    today = short_date(state.clock().astimezone(state.context.policy.organization.tz))
    mentor_names = {email: m.name for email, m in state.context.policy.mentors.items()}
    context = {"home": data, "today": today, "mentor": None, "mentor_names": mentor_names, **_labels(state)}
    return _page_with_session(request, page(request, "home.html", context), renewed)


@router.get("/dashboard/holders")
async def holders_list(request: Request, cursor: str | None = None) -> Response:
    """内定者一覧: riskiest first, filtered, searched and paged on the server."""
    login = _login_redirect(request)
    if login is not None:
        return login
    renewed = authenticate(request)
    state = state_of(request)
    query = holder_query(request)
    result = await run_in_threadpool(_page_of, state, query, PAGE_SIZE, (cursor or "")[:512] or None, True)
    menus = await run_in_threadpool(_menus, state, None)
    params = query.params()
    next_url = None
    if result.next_cursor:
        next_url = "/dashboard/holders?" + urlencode({**params, "cursor": result.next_cursor})
    context = {
        "rows": result.rows,
        "total": result.total,
        "counts": result.counts,
        "q": query,
        "first_url": "/dashboard/holders" + ("?" + urlencode(params) if params else ""),
        "next_url": next_url,
        "paged": cursor is not None,
        "sorts": [(s, SORT_LABELS[s]) for s in SORTS],
        "rsvp_filters": [(r, RSVP_LABELS.get(r, "未回答")) for r in RSVP_FILTERS],
        **menus,
        **_labels(state),
    }
    return _page_with_session(request, page(request, "holders.html", context), renewed)
