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
import secrets
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from followup.db.models import OfferHolder
from followup.delivery.links import secret_key
from followup.delivery.timeline_labels import timeline_labels
from followup.events.roster import ENCODINGS, table, to_csv
from followup.events.store import audience_ids, roster
from followup.holders.timeline import holder_timeline
from followup.labels import (
    CHANNEL_LABELS,
    KIND_LABELS,
    RULE_LABELS,
    SEVERITY_LABELS,
    STATUS_LABELS,
    TASK_STATUS_LABELS,
    TIMELINE_LABELS,
    TOUCH_STATUS_LABELS,
    TRACK_LABELS,
    short_date,
    short_datetime,
)
from followup.tasks.sheet import table as task_table
from followup.tasks.store import status_rows
from followup.web.auth import COOKIE, MENTOR_COOKIE, SESSION_IDLE, DashboardAuth, Viewer, csrf_token
from followup.web.listing import MAX_LIMIT, PAGE_SIZE, HolderPage, HolderQuery, list_holders
from followup.web.state import WebState, forbidden, page, state_of

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
    if _browser_without_credentials(request):  # HR opening a bookmark: the sign-in page, not a dialog
        target = urlencode({"next": request.url.path})
        return HTTPException(303, "sign in first", headers={"Location": f"/dashboard/sign-in?{target}"})
    return HTTPException(
        401, "authentication required", headers={"WWW-Authenticate": 'Basic realm="followup"'}
    )


def _browser_without_credentials(request: Request) -> bool:
    """A browser navigating to a workspace page with no token and no session cookie at all (a forged or
    expired cookie, a wrong token and every API or script caller still get a plain 401)."""
    return (
        request.method == "GET"
        and request.url.path.startswith("/dashboard")
        and "text/html" in request.headers.get("accept", "")
        and "Authorization" not in request.headers
        and not request.cookies.get(COOKIE)
        and not request.cookies.get(MENTOR_COOKIE)
    )


def _set_session_cookie(request: Request, response: Response, value: str, name: str = COOKIE) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",  # the scheme as a trusted proxy reports it
        max_age=SESSION_IDLE,
        path="/",
    )


def _hr_session(request: Request) -> tuple[str | None, str | None]:
    """(session id or None for a bearer/basic caller, renewed cookie or None) for HR; else 401/429/503."""
    expected = _expected_token(request)
    _check_limit(request)
    presented = _presented_token(request)
    if presented is not None:
        if _matches(presented, expected):
            return None, None
        raise _refuse(request, wrong_guess=True)
    cookie = request.cookies.get(COOKIE)
    if cookie:
        checked = _auth(request).sessions.check(cookie, expected)
        if checked is not None:
            return checked
    raise _refuse(request, wrong_guess=False)


def authenticate(request: Request) -> str | None:
    """Passes for HR (returning a renewed session cookie to set, or None), else raises 401/429/503."""
    return _hr_session(request)[1]


def viewer_of(request: Request) -> Viewer:
    """Who asks: HR (token or HR session), else a mentor with a session from their sign-in link.

    Raises 401 (429/503 as for HR) for anyone else. A renewed cookie is kept on ``request.state`` for
    :func:`respond` to set."""
    hr_cookie = request.cookies.get(COOKIE)
    mentor_cookie = request.cookies.get(MENTOR_COOKIE)
    mentors = _auth(request).mentors
    if mentor_cookie and mentors is not None and not hr_cookie and "Authorization" not in request.headers:
        found = mentors.mentor_of(mentor_cookie)
        if found is None:
            raise _refuse(request, wrong_guess=False)
        email, mentor_sid, mentor_renewed = found
        request.state.renew = (MENTOR_COOKIE, mentor_renewed)
        return Viewer("mentor", email, mentor_sid)
    sid, renewed = _hr_session(request)
    request.state.renew = (COOKIE, renewed)
    return Viewer("hr", None, sid)


def respond(request: Request, response: Response) -> Response:
    """The response, with the viewer's renewed session cookie when it was re-signed."""
    name, value = getattr(request.state, "renew", (COOKIE, None))
    if value is not None:
        _set_session_cookie(request, response, value, name)
    return response


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
    return _csv_download(request, lines, encoding, f"{name}-roster.csv", renewed)


def _csv_download(
    request: Request, lines: list[list[str]] | None, encoding: str, filename: str, renewed: str | None
) -> Response:
    """A sheet as a CSV Excel in Japan opens: CP932, or UTF-8 with BOM when asked for or when a name
    CP932 cannot spell is in it (the BOM file still opens in Excel); unknown sheet or encoding: 404."""
    if lines is None or encoding not in ENCODINGS:
        return _page_with_session(request, page(request, "not_found.html", status=404), renewed)
    try:
        data = to_csv(lines, encoding)
    except ValueError:
        data = to_csv(lines, "utf-8-sig")
        encoding = "utf-8-sig"
    charset = "shift_jis" if encoding == "cp932" else "utf-8"
    response = Response(
        data,
        media_type=f"text/csv; charset={charset}",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
    return _page_with_session(request, response, renewed)


def _task_lines(state: WebState, name: str) -> list[list[str]] | None:
    if name not in state.context.policy.tasks:
        return None
    with state.session() as session:
        rows = status_rows(session, state.context.policy, name)
    return task_table(rows, state.context.policy.organization.tz)


@router.get("/dashboard/tasks/{name}", include_in_schema=False, response_class=HTMLResponse)
async def dashboard_task(request: Request, name: str) -> Response:
    """提出状況: every holder of the task's audience with the due date, 未提出・提出済・確認済・対象外."""
    login = _login_redirect(request)
    if login is not None:
        return login
    renewed = authenticate(request)
    state = state_of(request)
    lines = await run_in_threadpool(_task_lines, state, name)
    if lines is None:
        return _page_with_session(request, page(request, "not_found.html", status=404), renewed)
    task = state.context.policy.tasks[name]
    pending = sum(1 for line in lines[1:] if line[4] == TASK_STATUS_LABELS["pending"])
    context = {
        "task": task,
        "name": name,
        "header": lines[0],
        "lines": lines[1:],
        "pending": pending,
        **_labels(state),
    }
    return _page_with_session(request, page(request, "task_sheet.html", context), renewed)


@router.get("/dashboard/tasks/{name}/sheet.csv", include_in_schema=False)
async def dashboard_task_csv(request: Request, name: str, encoding: str = "cp932") -> Response:
    """The 提出状況 as a CSV Excel in Japan opens (CP932, or ``?encoding=utf-8-sig``); edited, it goes
    back in with ``followup tasks import``."""
    login = _login_redirect(request)
    if login is not None:
        return login
    renewed = authenticate(request)
    state = state_of(request)
    lines = await run_in_threadpool(_task_lines, state, name)
    return _csv_download(request, lines, encoding, f"{name}-tasks.csv", renewed)


SIGN_IN_COOKIE = "followup_sign_in"


def _sign_in_csrf(request: Request, nonce: str) -> str:
    return csrf_token(secret_key(state_of(request).context.settings), "sign-in:" + nonce)


def _safe_next(target: str) -> str:
    """Only a path of this workspace (never another site: ``//evil``, ``/\\evil``)."""
    if target.startswith("/dashboard") and not target.startswith(("//", "/\\")) and "\\" not in target:
        return target
    return "/dashboard"


def _sign_in_page(request: Request, error: str | None = None, status: int = 200) -> Response:
    """The form with a fresh pre-session CSRF token (double submit: a cookie nonce and its HMAC)."""
    nonce = secrets.token_urlsafe(16)
    context = {
        "csrf": _sign_in_csrf(request, nonce),
        "next": _safe_next(request.query_params.get("next", "/dashboard")),
        "error": error,
    }
    response = page(request, "sign_in.html", context, status=status)
    response.set_cookie(
        SIGN_IN_COOKIE,
        nonce,
        httponly=True,
        samesite="strict",
        max_age=900,
        path="/dashboard/sign-in",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/dashboard/sign-in", include_in_schema=False, response_class=HTMLResponse)
async def sign_in_form(request: Request) -> Response:
    """HR's sign-in page: the dashboard token in a form (not in the address bar or the history)."""
    _expected_token(request)
    return _sign_in_page(request)


@router.post("/dashboard/sign-in", include_in_schema=False, response_class=HTMLResponse)
async def sign_in(request: Request) -> Response:
    """The token becomes a session cookie; a wrong one counts towards the guess limit (429)."""
    expected = _expected_token(request)
    form = await request.form()
    nonce = request.cookies.get(SIGN_IN_COOKIE, "")
    presented_csrf = str(form.get("csrf") or "")
    if not nonce or not hmac.compare_digest(_sign_in_csrf(request, nonce), presented_csrf):
        return forbidden(request)
    _check_limit(request)
    token = str(form.get("token") or "")
    if not _matches(token, expected):
        _auth(request).limiter.fail(_client(request))
        return _sign_in_page(request, "トークンが正しくありません。", status=401)
    response = RedirectResponse(_safe_next(str(form.get("next") or "/dashboard")), status_code=303)
    _set_session_cookie(request, response, _auth(request).sessions.issue(expected))
    response.delete_cookie(SIGN_IN_COOKIE, path="/dashboard/sign-in")
    return response


@router.api_route("/dashboard/sign-out", methods=["GET", "POST"], include_in_schema=False)
async def sign_out(request: Request) -> Response:
    """Ends this browser's session: the cookie is revoked here and deleted in the browser."""
    cookie = request.cookies.get(COOKIE)
    if cookie:
        _auth(request).sessions.revoke(cookie)
    mentor_cookie = request.cookies.get(MENTOR_COOKIE)
    mentors = _auth(request).mentors
    if mentor_cookie and mentors is not None:
        mentors.revoke(mentor_cookie)
    response = HTMLResponse(
        "<!doctype html><html lang=ja><meta charset=utf-8><title>サインアウト</title>"
        "<p>サインアウトしました (signed out).</p>"
        "<p><a href=/dashboard/sign-in>もう一度サインインする</a></p></html>"
    )
    for name in (COOKIE, MENTOR_COOKIE):
        response.delete_cookie(
            name, path="/", httponly=True, samesite="lax", secure=request.url.scheme == "https"
        )
    return response


def holder_query(request: Request, mentor_scope: str | None = None) -> HolderQuery:
    """The list's filters from the query string (unknown names ignored, values capped at 200 chars)."""
    params = request.query_params
    values: dict[str, Any] = {}
    for name in HolderQuery.__dataclass_fields__:
        if name == "mentor_scope":
            continue
        value = (params.get(name) or "").strip()[:200]
        if value:
            values[name] = value
    return HolderQuery(**values, mentor_scope=mentor_scope)


def _page_of(
    state: WebState, query: HolderQuery, limit: int, cursor: str | None, with_counts: bool
) -> HolderPage:
    with state.session() as session:
        return list_holders(
            session, query, state.clock(), limit=limit, cursor=cursor, with_counts=with_counts
        )


@router.get("/api/holders", tags=["holders"], dependencies=[Depends(require_hr)])
async def api_holders(
    request: Request,
    limit: int = Query(PAGE_SIZE, ge=1, le=MAX_LIMIT, description=f"items per page (at most {MAX_LIMIT})"),
    cursor: str | None = Query(None, max_length=512, description="``next_cursor`` of the previous page"),
) -> dict[str, Any]:
    """Holders, riskiest first, one page at a time: status, phase, last and next touch, pulse scores
    (oldest first), open flags, risk. At most ``limit`` items (maximum 500); pass ``next_cursor`` back
    as ``cursor`` for the next page (null: the last page). The list page's filters apply too
    (``status``, ``track``, ``department``, ``phase``, ``flag``, ``severity``, ``mentor``,
    ``event`` + ``rsvp``, ``q``, ``sort``)."""
    query = holder_query(request)
    result = await run_in_threadpool(_page_of, state_of(request), query, limit, cursor, False)
    return {"holders": result.rows, "next_cursor": result.next_cursor, "total": result.total}


@router.get("/api/holders/{external_id}", tags=["holders"], dependencies=[Depends(require_hr)])
async def api_holder(request: Request, external_id: str) -> dict[str, Any]:
    """One holder's timeline: touches, survey responses, engagement events, status changes, flags."""
    timeline = await run_in_threadpool(_timeline, state_of(request), external_id)
    if timeline is None:
        raise HTTPException(404, "no such holder")
    return timeline
