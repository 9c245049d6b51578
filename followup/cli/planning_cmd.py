"""Commands of this area are being built; see the issue tracker."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    del app
