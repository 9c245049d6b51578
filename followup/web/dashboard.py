"""The HR dashboard and the JSON API, behind ``FOLLOWUP_DASHBOARD_TOKEN``.

Accepted proofs: ``Authorization: Bearer TOKEN``; HTTP basic with any user name and the token as the
password; or a session cookie set by opening any dashboard URL once with ``?token=TOKEN`` (the redirect
that sets it drops the token from the address bar). The session expires when idle and is re-signed on
use (``followup.web.auth``); ``/dashboard/sign-out`` ends it. Wrong tokens are limited per client (429).
With no token configured the dashboard is refused (503): personal data is never served openly.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from followup.db.models import OfferHolder
from followup.delivery.timeline_labels import timeline_labels
from followup.events.roster import ENCODINGS, table, to_csv
from followup.events.store import audience_ids, roster
from followup.holders.timeline import holder_summaries, holder_timeline
from followup.labels import (
    CHANNEL_LABELS,
    KIND_LABELS,
    RULE_LABELS,
    SEVERITY_LABELS,
    STATUS_LABELS,
    TIMELINE_LABELS,
    TOUCH_STATUS_LABELS,
    TRACK_LABELS,
    short_date,
    short_datetime,
)
from followup.web.auth import COOKIE, SESSION_IDLE, DashboardAuth
from followup.web.state import WebState, page, state_of

router = APIRouter()


def _auth(request: Request) -> DashboardAuth:
    auth: DashboardAuth = request.app.state.dashboard_auth
    return auth


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _presented_token(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials:
        return credentials.strip()
    if scheme.lower() == "basic" and credentials:
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return ""  # a malformed attempt counts as a wrong one
        return decoded.partition(":")[2]
    return None


def _matches(presented: str, expected: str) -> bool:
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def _expected_token(request: Request) -> str:
    expected = state_of(request).context.settings.dashboard_token
    if not expected:
        raise HTTPException(503, "dashboard disabled: set FOLLOWUP_DASHBOARD_TOKEN")
    return expected


def _check_limit(request: Request) -> None:
    wait = _auth(request).limiter.retry_after(_client(request))
    if wait is not None:
        raise HTTPException(
            429, "too many wrong sign-in attempts; try again later", headers={"Retry-After": str(wait)}
        )


def _refuse(request: Request, *, wrong_guess: bool) -> HTTPException:
    if wrong_guess:
        _auth(request).limiter.fail(_client(request))
    return HTTPException(
        401, "authentication required", headers={"WWW-Authenticate": 'Basic realm="followup"'}
    )


def _set_session_cookie(request: Request, response: Response, value: str) -> None:
    response.set_cookie(
        COOKIE,
        value,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",  # the scheme as a trusted proxy reports it
        max_age=SESSION_IDLE,
        path="/",
    )


def authenticate(request: Request) -> str | None:
    """Passes for HR (returning a renewed session cookie to set, or None), else raises 401/429/503."""
    expected = _expected_token(request)
    _check_limit(request)
    presented = _presented_token(request)
    if presented is not None:
        if _matches(presented, expected):
            return None
        raise _refuse(request, wrong_guess=True)
    cookie = request.cookies.get(COOKIE)
    if cookie:
        checked = _auth(request).sessions.check(cookie, expected)
        if checked is not None:
            return checked[1]
    raise _refuse(request, wrong_guess=False)


def require_hr(request: Request, response: Response) -> None:
    """A FastAPI dependency for the API routes: passes for HR, raises 401, 429 or 503 otherwise."""
    renewed = authenticate(request)
    if renewed is not None:
        _set_session_cookie(request, response, renewed)


def _login_redirect(request: Request) -> Response | None:
    """``?token=`` login: a valid token sets a session cookie and redirects to the page without it."""
    token = request.query_params.get("token")
    if token is None:
        return None
    expected = _expected_token(request)
    _check_limit(request)
    if not _matches(token, expected):
        raise _refuse(request, wrong_guess=True)
    remaining = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
    target = request.url.path + ("?" + urlencode(remaining) if remaining else "")
    response = RedirectResponse(target, status_code=303)
    _set_session_cookie(request, response, _auth(request).sessions.issue(expected))
    return response


def _page_with_session(request: Request, response: Response, renewed: str | None) -> Response:
    if renewed is not None:
        _set_session_cookie(request, response, renewed)
    return response


def sparkline(scores: list[float], width: int = 96, height: int = 24) -> str:
    """SVG polyline points for pulse scores on the 1–5 axis (higher is drawn higher)."""
    if not scores:
        return ""
    if len(scores) == 1:
        scores = [scores[0], scores[0]]
    step = width / (len(scores) - 1)
    points = []
    for i, score in enumerate(scores):
        y = height - (min(max(score, 1.0), 5.0) - 1.0) / 4.0 * (height - 4) - 2
        points.append(f"{i * step:.1f},{y:.1f}")
    return " ".join(points)


def _phase_labels(state: WebState) -> dict[str, str]:
    labels: dict[str, str] = {}
    for cadence in state.context.policy.cadences.values():
        for phase in cadence.phases:
            labels.setdefault(phase.name, phase.label or phase.name)
    return labels


def _short_date(value: Any, state_tz: Any = None) -> str:
    """``11/25(水)`` for a date or an ISO date/datetime string; ``11/25(水) 10:00`` with a time."""
    if not value:
        return "—"
    text = str(value)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if len(text) <= 10:
        return short_date(moment.date())
    if moment.tzinfo is not None and state_tz is not None:
        moment = moment.astimezone(state_tz)
    return short_datetime(moment)


def _summaries(state: WebState) -> list[dict[str, Any]]:
    with state.session() as session:
        return holder_summaries(session, state.clock())


def _timeline(state: WebState, external_id: str, labelled: bool = False) -> dict[str, Any] | None:
    """The holder's timeline; ``labelled`` adds the words a person reads (the page, not the API)."""
    with state.session() as session:
        holder = session.scalars(select(OfferHolder).where(OfferHolder.external_id == external_id)).first()
        if holder is None:
            return None
        record = holder_timeline(session, holder, state.context.policy)
        if labelled:
            timeline_labels(state.context, holder, record)
        return record


def _question_texts(state: WebState) -> dict[str, dict[str, str]]:
    """``{form: {question id: question text}}`` so answers read as questions, not ids."""
    surveys = state.context.policy.surveys
    return {name: {q.id: q.text for q in survey.questions} for name, survey in surveys.items()}


def _labels(state: WebState) -> dict[str, Any]:
    return {
        "question_texts": _question_texts(state),
        "status_labels": STATUS_LABELS,
        "severity_labels": SEVERITY_LABELS,
        "kind_labels": TIMELINE_LABELS,
        "phase_labels": _phase_labels(state),
        "track_labels": TRACK_LABELS,
        "survey_titles": {name: survey.title for name, survey in state.context.policy.surveys.items()},
        "rule_labels": RULE_LABELS,
        "channel_labels": CHANNEL_LABELS,
        "touch_status_labels": TOUCH_STATUS_LABELS,
        "touch_kind_labels": KIND_LABELS,
        "short_date": _short_date,
        "company": state.context.policy.organization.name,
        "sparkline": sparkline,
    }


@router.get("/dashboard", include_in_schema=False, response_class=HTMLResponse)
async def dashboard(request: Request) -> Response:
    login = _login_redirect(request)
    if login is not None:
        return login
    renewed = authenticate(request)
    state = state_of(request)
    rows = await run_in_threadpool(_summaries, state)
    return _page_with_session(
        request, page(request, "dashboard.html", {"rows": rows, **_labels(state)}), renewed
    )


@router.get("/dashboard/holders/{external_id}", include_in_schema=False, response_class=HTMLResponse)
async def dashboard_holder(request: Request, external_id: str) -> Response:
    login = _login_redirect(request)
    if login is not None:
        return login
    renewed = authenticate(request)
    state = state_of(request)
    timeline = await run_in_threadpool(_timeline, state, external_id, True)
    if timeline is None:
        return _page_with_session(request, page(request, "not_found.html", status=404), renewed)
    return _page_with_session(
        request, page(request, "holder.html", {"t": timeline, **_labels(state)}), renewed
    )


def _roster_lines(state: WebState, name: str) -> list[list[str]] | None:
    event = state.context.policy.events.get(name)
    if event is None:
        return None
    with state.session() as session:
        rows = roster(session, name, audience_ids(session, event))
    return table(rows, event.questions, state.context.policy.organization.tz)


@router.get("/dashboard/events/{name}", include_in_schema=False, response_class=HTMLResponse)
async def dashboard_event(request: Request, name: str) -> Response:
    """出欠一覧: every invited holder's answer, the event's questions and the day's attendance."""
    login = _login_redirect(request)
    if login is not None:
        return login
    renewed = authenticate(request)
    state = state_of(request)
    lines = await run_in_threadpool(_roster_lines, state, name)
    if lines is None:
        return _page_with_session(request, page(request, "not_found.html", status=404), renewed)
    event = state.context.policy.events[name]
    context = {"event": event, "name": name, "header": lines[0], "lines": lines[1:], **_labels(state)}
    return _page_with_session(request, page(request, "event_roster.html", context), renewed)


@router.get("/dashboard/events/{name}/roster.csv", include_in_schema=False)
async def dashboard_event_csv(request: Request, name: str, encoding: str = "cp932") -> Response:
    """The 出欠一覧 as a CSV Excel in Japan opens (CP932, or ``?encoding=utf-8-sig``)."""
    login = _login_redirect(request)
    if login is not None:
        return login
    renewed = authenticate(request)
    state = state_of(request)
    lines = await run_in_threadpool(_roster_lines, state, name)
    if lines is None or encoding not in ENCODINGS:
        return _page_with_session(request, page(request, "not_found.html", status=404), renewed)
    try:
        data = to_csv(lines, encoding)
    except ValueError:
        data = to_csv(lines, "utf-8-sig")  # a name CP932 cannot spell: the BOM file still opens in Excel
        encoding = "utf-8-sig"
    charset = "shift_jis" if encoding == "cp932" else "utf-8"
    response = Response(
        data,
        media_type=f"text/csv; charset={charset}",
        headers={"Content-Disposition": f'attachment; filename="{name}-roster.csv"'},
    )
    return _page_with_session(request, response, renewed)


@router.api_route("/dashboard/sign-out", methods=["GET", "POST"], include_in_schema=False)
async def sign_out(request: Request) -> Response:
    """Ends this browser's session: the cookie is revoked here and deleted in the browser."""
    cookie = request.cookies.get(COOKIE)
    if cookie:
        _auth(request).sessions.revoke(cookie)
    response = HTMLResponse(
        "<!doctype html><html lang=ja><meta charset=utf-8><title>サインアウト</title>"
        "<p>サインアウトしました (signed out).</p></html>"
    )
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="lax", secure=request.url.scheme == "https"
    )
    return response


@router.get("/api/holders", tags=["holders"], dependencies=[Depends(require_hr)])
async def api_holders(request: Request) -> dict[str, Any]:
    """All holders: status, phase, last and next touch, pulse scores (oldest first), open flags."""
    rows = await run_in_threadpool(_summaries, state_of(request))
    return {"holders": rows}


@router.get("/api/holders/{external_id}", tags=["holders"], dependencies=[Depends(require_hr)])
async def api_holder(request: Request, external_id: str) -> dict[str, Any]:
    """One holder's timeline: touches, survey responses, engagement events, status changes, flags."""
    timeline = await run_in_threadpool(_timeline, state_of(request), external_id)
    if timeline is None:
        raise HTTPException(404, "no such holder")
    return timeline
