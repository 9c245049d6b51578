"""Survey pages: ``/s/TOKEN`` shows the form (records nothing on GET), POST records the answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from followup.config.schema import Survey
from followup.db.models import OfferHolder, SurveyResponse, Touch
from followup.delivery.links import LinkExpired, LinkInvalid
from followup.engagement.surveys import record_response, validate_answers, validity_seconds
from followup.web.state import WebState, expired, forbidden, page, state_of

TOKEN_MAX_AGE = 400 * 24 * 3600  # the outer bound; each survey's own valid_for is checked after

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)


@dataclass(frozen=True)
class SurveyLink:
    touch_id: int
    holder_id: int
    form: str
    survey: Survey


def resolve_survey_link(state: WebState, token: str) -> SurveyLink:
    """The touch a survey token points to. Raises LinkInvalid (403) or LinkExpired (kind page).

    The signature is checked first (over the longest possible age), then the survey's own
    ``valid_for``; a link to a touch that no longer exists, or a holder whose data was erased, reads
    as expired.
    """
    touch_id = state.signer.read_survey_token(token, TOKEN_MAX_AGE)
    with state.session() as session:
        touch = session.get(Touch, touch_id)
        if touch is None or touch.kind != "survey" or not touch.survey_form:
            raise LinkExpired()
        holder = session.get(OfferHolder, touch.holder_id)
        if holder is None or holder.erased_at is not None:
            raise LinkExpired()
        form, holder_id = touch.survey_form, touch.holder_id
    survey = state.context.policy.surveys.get(form)
    if survey is None:
        raise LinkExpired()
    state.signer.read_survey_token(token, validity_seconds(survey.valid_for))
    return SurveyLink(touch_id, holder_id, form, survey)


def _previous_answers(state: WebState, touch_id: int) -> dict[str, Any]:
    with state.session() as session:
        response = session.scalars(select(SurveyResponse).where(SurveyResponse.touch_id == touch_id)).first()
        return dict(response.answers) if response else {}


def _save_answers(state: WebState, link: SurveyLink, answers: dict[str, Any], channel: str = "web") -> None:
    """Record; a concurrent first submission of the same touch loses the insert race and updates instead."""
    for attempt in range(2):
        try:
            with state.session() as session:
                touch = session.get(Touch, link.touch_id)
                if touch is None:  # deleted (holder erased) since the link was checked: nothing to keep
                    return
                record_response(session, touch, link.survey, answers, state.clock(), channel=channel)
            return
        except IntegrityError:
            if attempt:
                raise


def _survey_page(
    request: Request,
    link: SurveyLink,
    token: str,
    values: dict[str, Any],
    errors: dict[str, str],
    answered_before: bool,
    status: int = 200,
) -> HTMLResponse:
    company = state_of(request).context.policy.organization.name
    return page(
        request,
        "survey.html",
        {
            "survey": link.survey,
            "token": token,
            "values": values,
            "errors": errors,
            "answered_before": answered_before,
            "company": company,
        },
        status,
    )


async def _link_or_refusal(request: Request, token: str) -> SurveyLink | Response:
    """The survey behind ``token``, or the page that refuses it (403 forged, 410 expired)."""
    try:
        return await run_in_threadpool(resolve_survey_link, state_of(request), token)
    except LinkInvalid:
        return forbidden(request)
    except LinkExpired:
        return expired(request)


@router.get("/s/{token}")
async def survey_form(request: Request, token: str) -> Response:
    """Show the form, prefilled with the earlier answers. Records nothing (mail scanners open links)."""
    state = state_of(request)
    link = await _link_or_refusal(request, token)
    if isinstance(link, Response):
        return link
    previous = await run_in_threadpool(_previous_answers, state, link.touch_id)
    return _survey_page(request, link, token, previous, {}, bool(previous))


@router.post("/s/{token}")
async def survey_submit(request: Request, token: str) -> Response:
    state = state_of(request)
    link = await _link_or_refusal(request, token)
    if isinstance(link, Response):
        return link
    form = await request.form()
    data = {key: form.get(key) for key in form}
    answers, errors = validate_answers(link.survey, data)
    if errors:
        return _survey_page(request, link, token, data, errors, False, status=422)
    await run_in_threadpool(_save_answers, state, link, answers)
    return RedirectResponse(f"/s/{token}/thanks", status_code=303)


@router.get("/s/{token}/thanks")
async def survey_thanks(request: Request, token: str) -> Response:
    state = state_of(request)
    try:
        link = await run_in_threadpool(resolve_survey_link, state, token)
    except LinkInvalid:
        return forbidden(request)
    except LinkExpired:
        return page(request, "thanks.html", {"can_edit": False})
    return page(request, "thanks.html", {"can_edit": True, "token": token, "survey": link.survey})
