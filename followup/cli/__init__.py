"""The ``followup`` command. Each area registers its commands from its own module."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from followup.config.context import AppContext
from followup.errors import UserInputError

app = typer.Typer(
    name="followup",
    help="内定者フォロー自動化 — plan, send and watch follow-up touches for offer holders (内定者).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
err = Console(stderr=True, soft_wrap=True)


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", envvar="FOLLOWUP_CONFIG", help="Policy YAML (default config/followup.yaml)."
        ),
    ] = None,
) -> None:
    """Offer-holder follow-up automation for HR teams in Japan.

    Configuration: a YAML policy (--config or FOLLOWUP_CONFIG). Database: FOLLOWUP_DATABASE_URL
    (default SQLite under var/). Broker: FOLLOWUP_BROKER_URL (unset: embedded, no Redis needed).
    """
    ctx.obj = AppContext(config_path=config)


def _register() -> None:
    from followup.cli import (
        config_cmd,
        db_cmd,
        delivery_cmd,
        demo_cmd,
        holders_cmd,
        planning_cmd,
        rules_cmd,
        web_cmd,
    )

    for module in (config_cmd, db_cmd, demo_cmd, holders_cmd, planning_cmd, delivery_cmd, rules_cmd, web_cmd):
        module.register(app)


_register()


def main() -> None:
    """Console entry point: user errors print ``FILE:LINE[:COL]: message`` lines and exit 2."""
    try:
        app()
    except UserInputError as exc:
        for problem in exc.problems:
            err.print(str(problem), markup=False, highlight=False)
        sys.exit(2)
