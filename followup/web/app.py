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

from followup.config.context import AppContext
from followup.delivery.links import LinkSigner
from followup.web import dashboard, health, manual, optout, surveys, webhooks
from followup.web.state import WebState, local_time_filter, pages_dir, templates_for


def _utcnow() -> datetime:
    return datetime.now(UTC)


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
    app.add_middleware(SecurityHeaders)

    for router in (health.router, surveys.router, optout.router, manual.router, webhooks.router):
        app.include_router(router)
    app.include_router(dashboard.router)
    return app
