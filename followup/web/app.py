"""The FastAPI application: ``create_app(context)`` wires the pages, webhooks, dashboard and API.

Offer holders reach it through signed links only (``/s/TOKEN``, ``/opt-out/TOKEN``); nothing is
keyed by a guessable id. GET never changes anything (mail scanners follow links); answers and
opt-outs are POSTs. HR reaches ``/dashboard`` and ``/api`` with ``FOLLOWUP_DASHBOARD_TOKEN``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import FileSystemLoader, select_autoescape
from jinja2.sandbox import ImmutableSandboxedEnvironment
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from followup.config.context import AppContext
from followup.config.schema import MESSAGE_CHANNELS, Survey
from followup.db.models import ChannelOptOut, EngagementEvent, OfferHolder, SurveyResponse, Touch
from followup.db.session import get_engine
from followup.delivery.links import LinkExpired, LinkInvalid, LinkSigner
from followup.engagement.surveys import record_response, validate_answers, validity_seconds
from followup.errors import ConfigError
from followup.labels import CHANNEL_LABELS

REPO_PAGES = Path(__file__).resolve().parents[2] / "templates" / "pages"
TOKEN_MAX_AGE = 400 * 24 * 3600  # the outer bound; each survey's own valid_for is checked after


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class WebState:
    """What every route needs, built once per app."""

    context: AppContext
    signer: LinkSigner
    templates: Jinja2Templates
    clock: Callable[[], datetime]

    def session(self) -> Any:
        return self.context.session()


def state_of(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


def pages_dir(context: AppContext) -> Path:
    """``templates/pages`` beside the policy's templates; the repository's copy when HR has none."""
    try:
        candidate = context.templates_root / "pages"
    except ConfigError:  # an invalid policy surfaces on the first request that needs it
        candidate = REPO_PAGES
    return candidate if candidate.is_dir() else REPO_PAGES


def _templates(directory: Path) -> Jinja2Templates:
    env = ImmutableSandboxedEnvironment(  # HR may edit these templates too
        loader=FileSystemLoader(str(directory)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return Jinja2Templates(env=env)


class SecurityHeaders(BaseHTTPMiddleware):
    """Tokens travel in URLs: never leak them in a Referer, never cache personal pages, never frame them."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if not request.url.path.startswith(("/openapi", "/docs", "/healthz", "/readyz", "/metrics")):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def page(
    request: Request, name: str, context: dict[str, Any] | None = None, status: int = 200
) -> HTMLResponse:
    response: HTMLResponse = state_of(request).templates.TemplateResponse(
        request, name, context or {}, status_code=status
    )
    return response


def forbidden(request: Request) -> HTMLResponse:
    """Forged or tampered link: the same bare page whatever was wrong, so nothing is learned from it."""
    return page(request, "forbidden.html", status=403)


def expired(request: Request) -> HTMLResponse:
    return page(request, "expired.html", status=410)


# --- surveys ---------------------------------------------------------------------------------------------


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


async def survey_form(request: Request, token: str) -> Response:
    """Show the form, prefilled with the earlier answers. Records nothing (mail scanners open links)."""
    state = state_of(request)
    link = await _link_or_refusal(request, token)
    if isinstance(link, Response):
        return link
    previous = await run_in_threadpool(_previous_answers, state, link.touch_id)
    return _survey_page(request, link, token, previous, {}, bool(previous))


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


async def survey_thanks(request: Request, token: str) -> Response:
    state = state_of(request)
    try:
        link = await run_in_threadpool(resolve_survey_link, state, token)
    except LinkInvalid:
        return forbidden(request)
    except LinkExpired:
        return page(request, "thanks.html", {"can_edit": False})
    return page(request, "thanks.html", {"can_edit": True, "token": token, "survey": link.survey})


# --- opt-out ---------------------------------------------------------------------------------------------


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


def _read_opt_out(state: WebState, token: str) -> tuple[int, str]:
    holder_id, channel = state.signer.read_opt_out_token(token)
    if channel not in MESSAGE_CHANNELS:
        raise LinkInvalid()
    return holder_id, channel


async def opt_out_confirm(request: Request, token: str) -> Response:
    state = state_of(request)
    try:
        holder_id, channel = _read_opt_out(state, token)
    except LinkInvalid:
        return forbidden(request)
    except LinkExpired:
        return expired(request)
    status = await run_in_threadpool(_opt_out_state, state, holder_id, channel)
    if status is None:
        return expired(request)
    label = CHANNEL_LABELS[channel]
    if status:
        return page(request, "optout_done.html", {"channel_label": label, "already": True})
    return page(request, "optout_confirm.html", {"channel_label": label, "token": token})


async def opt_out_submit(request: Request, token: str) -> Response:
    """The confirm button's POST, and the RFC 8058 one-click POST (body ``List-Unsubscribe=One-Click``)."""
    state = state_of(request)
    try:
        holder_id, channel = _read_opt_out(state, token)
    except LinkInvalid:
        return forbidden(request)
    except LinkExpired:
        return expired(request)
    if await run_in_threadpool(_opt_out_state, state, holder_id, channel) is None:
        return expired(request)
    form = await request.form()
    source = "one_click" if form.get("List-Unsubscribe") == "One-Click" else "web"
    created = await run_in_threadpool(record_opt_out, state, holder_id, channel, source)
    return page(
        request, "optout_done.html", {"channel_label": CHANNEL_LABELS[channel], "already": not created}
    )


# --- health ----------------------------------------------------------------------------------------------


def healthz() -> dict[str, str]:
    """The process is up (no dependencies checked)."""
    return {"status": "ok"}


def _db_ok(url: str) -> bool:
    try:
        with get_engine(url).connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except (SQLAlchemyError, OSError):
        return False


async def readyz(request: Request) -> Response:
    """The database answers; load balancers send traffic only then."""
    ok = await run_in_threadpool(_db_ok, state_of(request).context.db_url)
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "database": ok}, status_code=200 if ok else 503
    )


async def metrics(request: Request) -> Response:
    """Prometheus counts from the database (no personal data: only statuses, channels and rules)."""
    from followup.db.session import session_factory
    from followup.ops.metrics import render_metrics

    body = await run_in_threadpool(render_metrics, session_factory(state_of(request).context.db_url))
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


def _local_time_filter(context: AppContext) -> Callable[[Any], str]:
    """ISO timestamps shown in the organisation's time zone as ``2026-07-01 10:00``."""

    def local(value: Any) -> str:
        if not value:
            return "—"
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return str(value)
        if moment.tzinfo is None:
            return str(value)
        return moment.astimezone(context.policy.organization.tz).strftime("%Y-%m-%d %H:%M")

    return local


# --- factory ---------------------------------------------------------------------------------------------


def create_app(context: AppContext, *, clock: Callable[[], datetime] | None = None) -> FastAPI:
    """The whole web app for one context. ``clock`` (aware UTC) is for tests; default the real time."""
    from followup.web import dashboard, webhooks

    app = FastAPI(
        title="followup",
        summary="内定者フォロー自動化: survey pages, webhooks and the HR API",
        version="1",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.web = WebState(
        context=context,
        signer=LinkSigner.from_settings(context.settings),
        templates=_templates(pages_dir(context)),
        clock=clock or _utcnow,
    )
    app.state.web.templates.env.filters["local"] = _local_time_filter(context)
    app.add_middleware(SecurityHeaders)

    app.add_api_route("/healthz", healthz, methods=["GET"], tags=["health"])
    app.add_api_route("/readyz", readyz, methods=["GET"], tags=["health"])
    app.add_api_route("/metrics", metrics, methods=["GET"], tags=["health"])
    html: dict[str, Any] = {"include_in_schema": False, "response_class": HTMLResponse}
    app.add_api_route("/s/{token}", survey_form, methods=["GET"], **html)
    app.add_api_route("/s/{token}", survey_submit, methods=["POST"], **html)
    app.add_api_route("/s/{token}/thanks", survey_thanks, methods=["GET"], **html)
    app.add_api_route("/opt-out/{token}", opt_out_confirm, methods=["GET"], **html)
    app.add_api_route("/opt-out/{token}", opt_out_submit, methods=["POST"], **html)
    app.include_router(webhooks.router)
    app.include_router(dashboard.router)
    return app
