"""The ``followup`` command. Each area registers its commands from its own module.

The command modules are imported only when their command runs: ``followup --help`` and small commands
start at once instead of importing matplotlib, FastAPI, Celery and the ORM (benchmarks/cli_startup.py).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer import _click as click  # typer 0.29 vendors its own click
from typer.core import TyperGroup

from followup.errors import SettingsError, UserInputError

if TYPE_CHECKING:
    from followup.config.context import AppContext

# name -> (module under followup.cli, one line for --help). The module's register(app) defines it.
COMMANDS: dict[str, tuple[str, str]] = {
    "check-config": ("config_cmd", "設定とテンプレートを検証 — validate the policy YAML and every template"),
    "import-holders": ("holders_cmd", "内定者をCSVから取り込み — create/update offer holders by external_id"),
    "holders": ("holders_cmd", "内定者の一覧・詳細・状態変更・削除 — list, show, change, erase holders"),
    "plan": ("planning_cmd", "計画を1回実行 — one planning tick (idempotent)"),
    "run": ("delivery_cmd", "計画して送信 — the main job: plan and deliver what is due"),
    "simulate": ("planning_cmd", "シーズンを送信せずに試算 — preview a whole season, sending nothing"),
    "flags": ("rules_cmd", "要フォローの内定者 — offer holders at risk, riskiest first"),
    "report": ("rules_cmd", "週次リスクレポート — the weekly at-risk report (HTML e-mail)"),
    "backtest": (
        "outcomes_cmd",
        "フラグの検証 — replay a recorded season through the rules (recall, lead time)",
    ),
    "announce": (
        "announce_cmd",
        "一斉配信 — preview, then send one message to the holders a filter selects (once each)",
    ),
    "events": ("events_cmd", "行事の出欠 — RSVP counts, 出欠一覧 (CSV for Excel), answers and attendance"),
    "tasks": (
        "tasks_cmd",
        "提出物の提出状況 — 未提出・提出済・確認済・対象外, CSV for Excel, marking receipt",
    ),
    "pool": (
        "pool_cmd",
        "人材プール(不採用・辞退の方)— the talent pool: list, show one with consent and mails",
    ),
    "touch": ("planning_cmd", "個別フォローを記録 — log a phone call, letter or meeting"),
    "demo": ("demo_cmd", "サンプルでシーズンを再生 — play a season on the sample holders"),
    "worker": ("delivery_cmd", "送信ワーカー (Celery) — deliver touches from the broker"),
    "scheduler": ("planning_cmd", "スケジューラ — plan, dispatch and send the weekly report"),
    "web": ("web_cmd", "Webアプリ — survey/opt-out pages, webhooks, the HR dashboard"),
    "workspace": (
        "workspace_cmd",
        "HRワークスペース — invite mentors and executives (a sign-in link by mail)",
    ),
    "db": ("db_cmd", "データベース管理 — database maintenance (upgrade)"),
}


_REST = "followup.rest"


class DeferredContext:
    """Stands in for the AppContext while a command's ``--help`` is asked for: help needs neither the
    settings nor the policy, so their pydantic models are built only if a command really runs."""

    def __init__(self, config_path: Path | None) -> None:
        self._config_path = config_path
        self._context: AppContext | None = None

    def __getattr__(self, name: str) -> Any:
        if self._context is None:
            from followup.config.context import AppContext

            self._context = AppContext(config_path=self._config_path)
        return getattr(self._context, name)


def _asks_for_help(rest: list[str]) -> bool:
    """``--help`` among the arguments after the command (before a ``--``)."""
    for arg in rest:
        if arg == "--":
            return False
        if arg == "--help":
            return True
    return False


class LazyCommands(TyperGroup):
    """A group that imports a command's module only when that command is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(f"followup.cli.{entry[0]}")
        area = typer.Typer()
        module.register(area)
        return typer.main.get_group(area).get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        """Note what follows the command name, so the root callback can tell a ``--help`` request."""
        # typer's vendored click keeps the command name and what follows in ``_protected_args``
        ctx.meta[_REST] = [*getattr(ctx, "_protected_args", ()), *ctx.args]
        return super().invoke(ctx)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Plain help from the table above: listing the commands imports none of them."""
        self.format_usage(ctx, formatter)
        self.format_help_text(ctx, formatter)
        click.Command.format_options(self, ctx, formatter)
        with formatter.section("Commands"):
            formatter.write_dl([(name, text) for name, (_, text) in COMMANDS.items()])
        formatter.write_paragraph()
        formatter.write_text("Each command has --help, e.g. `followup simulate --help`.")


app = typer.Typer(
    name="followup",
    cls=LazyCommands,
    help="内定者フォロー自動化 — plan, send and watch follow-up touches for offer holders (内定者).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    add_completion=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            envvar="FOLLOWUP_CONFIG",
            help="Policy YAML (default config/followup.yaml); before or after the command.",
        ),
    ] = None,
) -> None:
    """Offer-holder follow-up automation for HR teams in Japan.

    Configuration: a YAML policy (--config or FOLLOWUP_CONFIG). Database: FOLLOWUP_DATABASE_URL
    (default SQLite under var/). Broker: FOLLOWUP_BROKER_URL (unset: embedded, no Redis needed).
    """
    if _asks_for_help(ctx.meta.get(_REST, [])):
        ctx.obj = DeferredContext(config)  # help only: settings and policy are read if a command runs
        return
    from followup.config.context import AppContext

    context: AppContext = AppContext(config_path=config)
    ctx.obj = context


def config_first(argv: list[str]) -> list[str]:
    """Move ``--config PATH`` / ``--config=PATH`` given after the command to the front, where the root
    option lives, so ``followup plan --config x.yaml`` works like ``followup --config x.yaml plan``."""
    args = list(argv)
    if not args or args[0] not in COMMANDS:
        return args
    moved: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg.startswith("--config="):
            moved.append(arg)
        elif arg == "--config" and i + 1 < len(args):
            moved.extend(args[i : i + 2])
            i += 1
        else:
            rest.append(arg)
        i += 1
    return moved + rest


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: user errors print ``FILE:LINE[:COL]: message`` lines and exit 2."""
    args = config_first(sys.argv[1:] if argv is None else argv)
    os.umask(0o077)  # the database, outbox, reports and key hold personal data: private to this user
    try:
        return app(args=args, prog_name="followup")
    except UserInputError as exc:
        from rich.console import Console

        err = Console(stderr=True, soft_wrap=True)
        for problem in exc.problems:
            err.print(str(problem), markup=False, highlight=False)
        sys.exit(2)
    except SettingsError as exc:
        from rich.console import Console

        err = Console(stderr=True, soft_wrap=True)
        for message in exc.messages:
            err.print(message, markup=False, highlight=False)
        sys.exit(2)
