"""``followup web``: serve the survey pages, webhooks, dashboard and JSON API with uvicorn."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from followup.config.context import AppContext


console = Console(stderr=True)


def web(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Interface to listen on (0.0.0.0 inside a container).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
) -> None:
    """Run the web app: survey and opt-out pages, Slack/LINE webhooks, the HR dashboard (/dashboard)."""
    import uvicorn

    from followup.web import create_app

    context: AppContext = ctx.obj
    context.policy  # noqa: B018 - load and validate the policy now: a bad file exits 2 before serving
    if not context.settings.dashboard_token:
        console.print("[yellow]FOLLOWUP_DASHBOARD_TOKEN is not set: /dashboard and /api are disabled.[/]")
    from followup.ops.logs import configure_logging

    configure_logging(json_lines=context.settings.log_json)
    # log_config=None: uvicorn's access log goes through our handler, which masks tokens and addresses.
    # proxy_headers=False: forwarded headers are believed only from FOLLOWUP_TRUSTED_PROXIES (the app's
    # TrustedProxyHeaders), not from whoever connects from 127.0.0.1.
    uvicorn.run(
        create_app(context), host=host, port=port, proxy_headers=False, log_level="info", log_config=None
    )


def register(app: typer.Typer) -> None:
    app.command("web")(web)
