"""What every route shares: the per-app state, page rendering and the refusal pages.

Kept apart from the app factory so route modules import it without importing the app (no cycles).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from jinja2 import FileSystemLoader, select_autoescape
from jinja2.sandbox import ImmutableSandboxedEnvironment

from followup.config.context import AppContext
from followup.delivery.links import LinkExpired, LinkInvalid, LinkSigner
from followup.errors import ConfigError
from followup.labels import short_datetime

REPO_PAGES = Path(__file__).resolve().parents[2] / "templates" / "pages"


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


def templates_for(directory: Path) -> Jinja2Templates:
    env = ImmutableSandboxedEnvironment(  # HR may edit these templates too
        loader=FileSystemLoader(str(directory)),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return Jinja2Templates(env=env)


def hr_contact(context: AppContext) -> dict[str, str] | None:
    """Whom a holder can ask (every page shows it): the organisation's HR name, email and phone."""
    try:
        org = context.policy.organization
    except ConfigError:
        return None
    return {"name": f"{org.name} {org.hr_name}".strip(), "email": org.hr_email, "phone": org.hr_phone}


def page(
    request: Request, name: str, context: dict[str, Any] | None = None, status: int = 200
) -> HTMLResponse:
    state = state_of(request)
    values = {"contact": hr_contact(state.context), **(context or {})}
    response: HTMLResponse = state.templates.TemplateResponse(request, name, values, status_code=status)
    return response


def forbidden(request: Request) -> HTMLResponse:
    """Forged or tampered link: the same bare page whatever was wrong, so nothing is learned from it."""
    return page(request, "forbidden.html", status=403)


def expired(request: Request) -> HTMLResponse:
    return page(request, "expired.html", status=410)


Carried = TypeVar("Carried")


def read_link(request: Request, read: Callable[[str], Carried], token: str) -> Carried | HTMLResponse:
    """What a signed link carries, or the page that refuses it: 403 forged or tampered, 410 expired."""
    try:
        return read(token)
    except LinkInvalid:
        return forbidden(request)
    except LinkExpired:
        return expired(request)


def local_time_filter(context: AppContext) -> Callable[[Any], str]:
    """ISO timestamps shown in the organisation's time zone as ``7/1(水) 10:00``."""

    def local(value: Any) -> str:
        if not value:
            return "—"
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return str(value)
        if moment.tzinfo is None:
            return str(value)
        return short_datetime(moment.astimezone(context.policy.organization.tz))

    return local
