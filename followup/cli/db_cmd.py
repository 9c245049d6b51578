"""``followup db upgrade``: migrate the database explicitly (production)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console

if TYPE_CHECKING:
    from followup.config.context import AppContext


db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
out = Console()


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or migrate the database at FOLLOWUP_DATABASE_URL to the newest schema."""
    from followup.db.session import upgrade

    context: AppContext = ctx.obj
    upgrade(context.db_url)
    out.print("database is up to date")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
