"""一斉配信 from the workspace: HR picks a message and who gets it, sees the preview (how many on which
channel, when, who cannot be reached), then confirms. The same pure selection and the same keys as
``followup announce`` (``announce:<name>:<external_id>``), so a second confirmation plans nothing new
and delivery treats each touch like any other (calendar, caps, opt-outs, exactly once)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from followup.calendar import BusinessCalendar
from followup.delivery.samples import SampleTouch, check_announcement
from followup.ops.audit import audit
from followup.planning.announce import NAME, FilterError, Preview, parse_filters, preview
from followup.planning.announce_store import load_candidates, plan_announcement, planned_keys
from followup.rendering.templates import MessageTemplates, TemplateProblem
from followup.web.dashboard import _login_redirect, respond, viewer_of
from followup.web.listing import distinct_values
from followup.web.state import WebState, forbidden, page, state_of
from followup.web.workspace import _common, _form

router = APIRouter(include_in_schema=False)
SHOWN = 50  # recipients listed in the preview (the counts cover everyone)


def _templates(state: WebState) -> list[tuple[str, str]]:
    """(name, description) of every message template HR could announce."""
    context = state.context
    templates = MessageTemplates(context.templates_root, locale=context.policy.organization.locale)
    return sorted(templates.titles().items())


def _inputs(values: dict[str, str], state: WebState) -> tuple[str, str, list[str], datetime]:
    """(announcement name, template, --to filters, moment) from the form; ValueError when unusable."""
    template = values.get("template", "")
    name = values.get("name") or template
    if not NAME.match(name):
        raise ValueError("配信名は英数字と _ . - で入力してください(64文字まで)。")
    filters = [f"{key}={values[key]}" for key in ("track", "department") if values.get(key)]
    if not filters:
        raise ValueError("区分か部署で、送る相手を選んでください。")
    now = state.clock().astimezone(state.context.policy.organization.tz)
    at = now
    if values.get("at"):
        chosen = datetime.fromisoformat(values["at"])
        at = max(chosen if chosen.tzinfo else chosen.replace(tzinfo=now.tzinfo), now)
    return name, template, filters, at


def _preview(state: WebState, values: dict[str, str]) -> Preview:
    """The preview the CLI would print; raises ValueError (bad input) or TemplateProblem."""
    name, template, to, at = _inputs(values, state)
    try:
        filters = parse_filters(to)
    except FilterError as exc:
        raise ValueError(str(exc)) from None
    context = state.context
    calendar = BusinessCalendar.from_policy(context.policy)
    with state.session() as session:
        candidates = load_candidates(session, context.policy, state.clock())
        already = planned_keys(session, name)
    result = preview(name, template, candidates, filters, at, calendar, already)
    first = next(iter(result.to_plan), None)
    sample = (
        SampleTouch(
            first.candidate.id,
            first.key,
            first.candidate.cadence,
            first.candidate.phase,
            first.channel,
            first.due_at,
        )
        if first is not None
        else None
    )
    if check_announcement(context, template, sample, at):  # an essential notice: opt-outs of follow-up aside
        result = preview(name, template, candidates, filters, at, calendar, already, essential=True)
    return result


def _form_context(state: WebState, values: dict[str, str]) -> dict[str, Any]:
    with state.session() as session:
        departments = distinct_values(session, None)["department"]
    return {"templates": _templates(state), "departments": departments, "values": values}


@router.get("/dashboard/announce")
async def announce_form(request: Request) -> Response:
    """The form: which message, to whom, when."""
    login = _login_redirect(request)
    if login is not None:
        return login
    viewer = viewer_of(request)
    if viewer.scope is not None:
        return respond(request, forbidden(request))
    state = state_of(request)
    form = await run_in_threadpool(_form_context, state, {})
    done = request.query_params.get("done")
    context = {**form, "done": done, **_common(state, viewer)}
    return respond(request, page(request, "announce.html", context))


@router.post("/dashboard/announce/{step}")
async def announce_step(request: Request, step: str) -> Response:
    """``preview``: who would get it (nothing written); ``send``: plan it, audited, then back to the form."""
    checked = await _form(request)
    if isinstance(checked, Response):
        return checked
    viewer, values = checked
    if viewer.scope is not None or step not in ("preview", "send"):
        return respond(request, forbidden(request))
    state = state_of(request)
    try:
        result = await run_in_threadpool(_preview, state, values)
    except (ValueError, TemplateProblem) as exc:
        form = await run_in_threadpool(_form_context, state, values)
        message = exc.message if isinstance(exc, TemplateProblem) else str(exc)
        context = {**form, "error": message, **_common(state, viewer)}
        return respond(request, page(request, "announce.html", context, status=400))
    if step == "preview":
        form = await run_in_threadpool(_form_context, state, values)
        context = {
            **form,
            "result": result,
            "shown": list(result.recipients)[:SHOWN],
            **_common(state, viewer),
        }
        return respond(request, page(request, "announce.html", context))
    planned = await run_in_threadpool(_plan, state, result, viewer.actor)
    query = urlencode({"done": str(planned)})
    return respond(request, RedirectResponse(f"/dashboard/announce?{query}", status_code=303))


def _plan(state: WebState, result: Preview, actor: str) -> int:
    with state.session() as session:
        planned = plan_announcement(session, result)
        audit(
            session,
            "announce",
            now=state.clock(),
            actor=actor,
            announcement=result.name,
            template=result.template,
            planned=planned,
        )
    return planned
