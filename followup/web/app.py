"""The FastAPI application factory: ``create_app(context)`` wires the routers together.

Offer holders reach it through signed links only (``/s/TOKEN``, ``/opt-out/TOKEN``); nothing is
keyed by a guessable id. GET never changes anything (mail scanners follow links); answers and
opt-outs are POSTs. HR reaches ``/dashboard`` and ``/api`` with ``FOLLOWUP_DASHBOARD_TOKEN``.
Shared state lives in ``followup.web.state`` so routers never import this module.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.types import ASGIApp, Receive, Scope, Send

from followup.config.context import AppContext
from followup.delivery.links import LinkSigner, secret_key
from followup.web import (
    announce,
    dashboard,
    events,
    health,
    manual,
    optout,
    pool,
    season,
    surveys,
    webhooks,
    workspace,
)
from followup.web.auth import (
    DashboardAuth,
    GuessLimiter,
    MentorSessions,
    Network,
    Sessions,
    forwarded_client,
    parse_trusted_proxies,
)
from followup.web.state import WebState, local_time_filter, pages_dir, templates_for


def _utcnow() -> datetime:
    return datetime.now(UTC)


# The pages have no script at all and inline <style> / style="" only; forms post to this origin.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
# FastAPI's Swagger UI: its inline bootstrap script and the assets it loads from jsDelivr.
DOCS_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; "
    "connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HSTS = "max-age=31536000"


class TrustedProxyHeaders:
    """Believe ``X-Forwarded-For`` / ``X-Forwarded-Proto`` only from FOLLOWUP_TRUSTED_PROXIES (ASGI).

    The client address and scheme the rest of the app sees (rate limits, ``Secure`` cookies, HSTS) are
    the ones a trusted proxy reported, or else the peer's own. uvicorn's own proxy handling is off.
    """

    def __init__(self, app: ASGIApp, trusted: tuple[Network, ...]) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self.trusted:
            peer = scope["client"][0] if scope.get("client") else None
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            client, proto = forwarded_client(peer, headers, self.trusted)
            scope = dict(scope)
            if client and client != peer:
                scope["client"] = (client, 0)
            if proto:
                scope["scheme"] = proto if scope["type"] == "http" else {"https": "wss", "http": "ws"}[proto]
        await self.app(scope, receive, send)


class SecurityHeaders(BaseHTTPMiddleware):
    """Tokens travel in URLs: never leak them in a Referer, never cache personal pages, never frame them.
    A Content-Security-Policy on everything; HSTS when the request came over https."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        docs = request.url.path.startswith("/docs")
        response.headers.setdefault("Content-Security-Policy", DOCS_CSP if docs else CSP)
        if request.url.scheme == "https":
            response.headers.setdefault("Strict-Transport-Security", HSTS)
        if not request.url.path.startswith(("/openapi", "/docs", "/healthz", "/readyz", "/metrics")):
            response.headers.setdefault("Cache-Control", "no-store")
        return response


def create_app(context: AppContext, *, clock: Callable[[], datetime] | None = None) -> FastAPI:
    """The whole web app for one context. ``clock`` (aware UTC) is for tests; default the real time."""
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
        templates=templates_for(pages_dir(context)),
        clock=clock or _utcnow,
    )
    app.state.web.templates.env.filters["local"] = local_time_filter(context)
    web_clock = app.state.web.clock
    trusted = parse_trusted_proxies(context.settings.trusted_proxies)
    app.state.dashboard_auth = DashboardAuth(
        sessions=Sessions(secret_key(context.settings), clock=lambda: web_clock().timestamp()),
        limiter=GuessLimiter(),
        trusted=trusted,
        mentors=MentorSessions(secret_key(context.settings), clock=lambda: web_clock().timestamp()),
    )
    app.add_middleware(SecurityHeaders)
    app.add_middleware(TrustedProxyHeaders, trusted=trusted)  # outermost: runs first

    for router in (
        health.router,
        surveys.router,
        optout.router,
        manual.router,
        events.router,
        pool.router,
        webhooks.router,
    ):
        app.include_router(router)
    app.include_router(workspace.router)  # /dashboard/holders before /dashboard/holders/{id}
    app.include_router(announce.router)
    app.include_router(dashboard.router)
    app.include_router(season.router)
    return app
