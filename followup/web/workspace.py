"""The HR workspace pages: home (今週やること), the holders list, one holder's page and its actions.

Routes only; the queries are ``followup.web.listing`` and ``followup.web.home``, the writes
``followup.holders.actions`` / ``importer`` / ``events.store``, the sign-in ``followup.web.dashboard``.

- Every page is bounded: a page of the list, the top rows of each home section.
- Every action is a POST form carrying the session's CSRF token (403 without it), answered with a
  303 redirect back to the holder page (PRG: a reload does not repeat it), and leaves an audit entry.
- A mentor (signed in by their mailed link) sees only holders whose ``mentor_email`` is theirs —
  anyone else's page is 404, as if it did not exist — and may only log a touch.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from followup.db.models import Flag, OfferHolder
from followup.delivery.links import secret_key
from followup.delivery.timeline_labels import timeline_labels
from followup.events.store import record_attendance
from followup.holders.actions import FLAG_ACTIONS, MANUAL_CHANNELS, NOTE_LIMIT, act_on_flag, log_touch, pause
from followup.holders.importer import TRANSITIONS, change_start_date, change_status
from followup.holders.timeline import holder_timeline
from followup.labels import ATTENDANCE_LABELS, FLAG_ACTION_LABELS, RSVP_LABELS, TASK_STATUS_LABELS, short_date
from followup.ops.audit import audit
from followup.tasks.store import set_status
from followup.web.auth import COOKIE, MENTOR_COOKIE, Viewer, csrf_ok, csrf_token
from followup.web.dashboard import (
    _labels,
    _login_redirect,
    _page_of,
    _set_session_cookie,
    holder_query,
    respond,
    viewer_of,
)
from followup.web.home import Home, this_week
from followup.web.listing import PAGE_SIZE, RSVP_FILTERS, SORTS, distinct_values
from followup.web.state import WebState, forbidden, page, read_link, state_of

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)

SORT_LABELS = {
    "risk": "リスクの高い順",
    "name": "氏名順",
    "start_date": "入社予定日順",
    "external_id": "ID順",
}
DONE_MESSAGES = {
    "touch": "接点を記録しました。",
    "flag": "フラグの対応を記録しました。",
    "status": "ステータスを変更しました。次回の計画で今後の連絡予定に反映されます。",
    "start_date": "入社予定日を変更しました。次回の計画で今後の連絡予定が移動します。",
    "attendance": "出欠を記録しました。",
    "pause": "自動連絡の一時停止を更新しました。",
    "task": "提出物の状況を記録しました。未提出でなくなった提出物のリマインドは次回の計画で止まります。",
}
ERROR_MESSAGES = {
    "input": "入力内容を確認してください。",
    "status": "このステータスには変更できません。",
    "start_date": "入社予定日は内定日より後の日付にしてください。",
}


def _known_mentor(state: WebState, email: str) -> bool:
    """Listed under ``mentors:``, or the mentor_email of some holder (an executive HR invited)."""
    with state.session() as session:
        known = email in state.context.policy.mentors or (
            session.scalar(select(OfferHolder.id).where(OfferHolder.mentor_email == email).limit(1))
            is not None
        )
        if known:
            audit(session, "mentor_sign_in", now=state.clock(), actor=f"web:mentor:{email}")
        return known


@router.get("/m/{token}")
async def mentor_sign_in(request: Request, token: str) -> Response:
    """A mentor's mailed sign-in link: sets their session cookie and opens their 今週やること.

    GET sets only a session (nothing is recorded about any holder), so a mail scanner that follows the
    link learns nothing and changes nothing; the link itself expires after two weeks."""
    state = state_of(request)
    email = read_link(request, state.signer.read_mentor_token, token)
    if isinstance(email, Response):
        return email
    if not await run_in_threadpool(_known_mentor, state, email):
        return forbidden(request)
    mentors = request.app.state.dashboard_auth.mentors
    response = RedirectResponse("/dashboard", status_code=303)
    _set_session_cookie(request, response, mentors.issue(email), MENTOR_COOKIE)
    response.delete_cookie(COOKIE, path="/")  # one identity per browser: the mentor's
    return response


def _csrf(state: WebState, viewer: Viewer) -> str | None:
    return csrf_token(secret_key(state.context.settings), viewer.session_id) if viewer.session_id else None


def _common(state: WebState, viewer: Viewer) -> dict[str, Any]:
    mentor = state.context.policy.mentors.get(viewer.email or "") if viewer.scope else None
    return {
        "viewer": viewer,
        "csrf": _csrf(state, viewer),
        "mentor": (mentor.name if mentor else viewer.email) if viewer.scope else None,
        "mentor_names": {email: m.name for email, m in state.context.policy.mentors.items()},
        **_labels(state),
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
    viewer = viewer_of(request)
    state = state_of(request)
    data = await run_in_threadpool(_home, state, viewer.scope)
    today = short_date(state.clock().astimezone(state.context.policy.organization.tz))
    tasks = [(name, task.title) for name, task in state.context.policy.tasks.items()]
    context = {"home": data, "today": today, "tasks": tasks, **_common(state, viewer)}
    return respond(request, page(request, "home.html", context))


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


@router.get("/dashboard/holders")
async def holders_list(request: Request, cursor: str | None = None) -> Response:
    """内定者一覧: riskiest first, filtered, searched and paged on the server."""
    login = _login_redirect(request)
    if login is not None:
        return login
    viewer = viewer_of(request)
    state = state_of(request)
    query = holder_query(request, viewer.scope)
    result = await run_in_threadpool(_page_of, state, query, PAGE_SIZE, (cursor or "")[:512] or None, True)
    menus = await run_in_threadpool(_menus, state, viewer.scope)
    params = query.params()
    next_url = None
    if result.next_cursor:
        next_url = "/dashboard/holders?" + urlencode({**params, "cursor": result.next_cursor})
    context = {
        "rows": result.rows,
        "total": result.total,
        "counts": result.counts,
        "count_of": lambda facet, key: result.counts[facet].get(key, 0) if facet in result.counts else None,
        "q": query,
        "first_url": "/dashboard/holders" + ("?" + urlencode(params) if params else ""),
        "next_url": next_url,
        "paged": cursor is not None,
        "sorts": [(s, SORT_LABELS[s]) for s in SORTS],
        "rsvp_filters": [(r, RSVP_LABELS.get(r, "未回答")) for r in RSVP_FILTERS],
        **menus,
        **_common(state, viewer),
    }
    return respond(request, page(request, "holders.html", context))


def _holder(session: Any, external_id: str, viewer: Viewer) -> OfferHolder | None:
    """The holder, if this viewer may see them (a mentor: only their own)."""
    query = select(OfferHolder).where(OfferHolder.external_id == external_id, OfferHolder.erased_at.is_(None))
    if viewer.scope is not None:
        query = query.where(OfferHolder.mentor_email == viewer.scope)
    holder: OfferHolder | None = session.scalars(query).first()
    return holder


def _holder_page(state: WebState, external_id: str, viewer: Viewer) -> dict[str, Any] | None:
    with state.session() as session:
        holder = _holder(session, external_id, viewer)
        if holder is None:
            return None
        record = holder_timeline(session, holder, state.context.policy)
        timeline_labels(state.context, holder, record)
        status = holder.status
    events = state.context.policy.events
    return {
        "t": record,
        "transitions": sorted(TRANSITIONS.get(status, ())),
        "manual_channels": MANUAL_CHANNELS,
        "flag_actions": FLAG_ACTIONS,
        "flag_action_labels": FLAG_ACTION_LABELS,
        "attendance_labels": {k: v for k, v in ATTENDANCE_LABELS.items() if k},
        "events": [(name, event.title) for name, event in events.items()],
        "task_status_labels": TASK_STATUS_LABELS,
    }


@router.get("/dashboard/holders/{external_id}")
async def holder_page(request: Request, external_id: str) -> Response:
    """One holder's story (the timeline) and what can be done about it (the action forms)."""
    login = _login_redirect(request)
    if login is not None:
        return login
    viewer = viewer_of(request)
    state = state_of(request)
    data = await run_in_threadpool(_holder_page, state, external_id, viewer)
    if data is None:
        return respond(request, page(request, "not_found.html", status=404))
    done = DONE_MESSAGES.get(request.query_params.get("done", ""))
    error = ERROR_MESSAGES.get(request.query_params.get("error", ""))
    context = {**data, "done": done, "error": error, **_common(state, viewer)}
    return respond(request, page(request, "holder.html", context))


# --- actions (POST, CSRF, PRG, audit) -----------------------------------------------------------------


async def _form(request: Request) -> tuple[Viewer, dict[str, str]] | Response:
    """The viewer and the form, or the 403 page when the CSRF token is missing or wrong."""
    viewer = viewer_of(request)
    form = await request.form()
    values = {k: str(v).strip()[:NOTE_LIMIT] for k, v in form.items() if isinstance(v, str)}
    state = state_of(request)
    if not csrf_ok(secret_key(state.context.settings), viewer.session_id, values.get("csrf")):
        return forbidden(request)
    return viewer, values


def _back(request: Request, external_id: str, done: str | None = None, error: str | None = None) -> Response:
    query = urlencode({"done": done} if done else {"error": error or "input"})
    target = f"/dashboard/holders/{quote(external_id, safe='')}?{query}#timeline"
    return respond(request, RedirectResponse(target, status_code=303))


def _local_now(state: WebState) -> datetime:
    return state.clock().astimezone(state.context.policy.organization.tz)


def _run_action(state: WebState, external_id: str, viewer: Viewer, what: str, values: dict[str, str]) -> str:
    """Apply one action in one transaction; returns "" when done, else an error code (nothing written)."""
    now = state.clock()
    tz = state.context.policy.organization.tz
    with state.session() as session:
        holder = _holder(session, external_id, viewer)
        if holder is None:
            return "missing"
        if what == "touch":
            channel = values.get("channel", "")
            if channel not in MANUAL_CHANNELS:
                return "input"
            assignee = viewer.email if viewer.scope else None
            log_touch(
                session,
                holder,
                channel,
                at=now,
                tz=tz,
                note=values.get("note") or None,
                actor=viewer.actor,
                assignee=assignee,
                now=now,
            )
            return ""
        if viewer.scope is not None:
            return "forbidden"  # a mentor logs touches; the rest is HR's
        if what == "flag":
            flag_id = values.get("flag_id", "")
            flag = session.get(Flag, int(flag_id)) if flag_id.isdigit() else None
            action = values.get("action", "")
            if flag is None or flag.holder_id != holder.id or action not in FLAG_ACTIONS:
                return "input"
            if action == "assign" and not values.get("assignee"):
                return "input"
            act_on_flag(
                session,
                flag,
                action,
                at=now,
                actor=viewer.actor,
                note=values.get("note"),
                assignee=values.get("assignee"),
            )
            return ""
        if what == "status":
            try:
                change_status(
                    session,
                    holder,
                    values.get("status", ""),
                    at=_local_now(state),
                    reason=values.get("reason") or None,
                    source="web",
                )
            except ValueError:
                session.rollback()
                return "status"
            audit(
                session,
                "holder_status",
                now=now,
                actor=viewer.actor,
                holder_id=holder.id,
                status=holder.status,
            )
            return ""
        if what == "start_date":
            try:
                change_start_date(
                    session,
                    holder,
                    date.fromisoformat(values.get("start_date", "")),
                    at=now,
                    source="web",
                    note=values.get("note") or None,
                )
            except ValueError:
                session.rollback()
                return "start_date"
            audit(session, "holder_start_date", now=now, actor=viewer.actor, holder_id=holder.id)
            return ""
        if what == "attendance":
            event, attendance = values.get("event", ""), values.get("attendance") or None
            if event not in state.context.policy.events:
                return "input"
            try:
                changed = record_attendance(session, holder.id, event, attendance, at=now)
            except ValueError:
                return "input"
            if changed:
                audit(session, "attendance", now=now, actor=viewer.actor, holder_id=holder.id, event=event)
            return ""
        if what == "task":
            name, status = values.get("task", ""), values.get("status", "")
            if name not in state.context.policy.tasks or status not in TASK_STATUS_LABELS:
                return "input"
            changed = set_status(
                session,
                holder.id,
                name,
                status,
                at=now,
                actor=viewer.actor,
                source="web",
                note=values.get("note") or None,
            )
            if changed:
                audit(
                    session,
                    "task_status",
                    now=now,
                    actor=viewer.actor,
                    holder_id=holder.id,
                    task=name,
                    status=status,
                )
            return ""
        if what == "pause":
            text = values.get("until", "")
            try:
                until = date.fromisoformat(text) if text else None
            except ValueError:
                return "input"
            pause(session, holder, until, at=now, actor=viewer.actor)
            return ""
    return "input"


@router.post("/dashboard/holders/{external_id}/{what}")
async def holder_action(request: Request, external_id: str, what: str) -> Response:
    """One action on one holder: touch, flag, status, start_date, attendance or pause."""
    checked = await _form(request)
    if isinstance(checked, Response):
        return checked
    viewer, values = checked
    state = state_of(request)
    if what not in DONE_MESSAGES:
        return respond(request, page(request, "not_found.html", status=404))
    error = await run_in_threadpool(_run_action, state, external_id, viewer, what, values)
    if error == "missing":
        return respond(request, page(request, "not_found.html", status=404))
    if error == "forbidden":
        return respond(request, forbidden(request))
    return _back(request, external_id, done=what if not error else None, error=error or None)
