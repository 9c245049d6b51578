"""``followup demo``: see the whole product work on sample data in under a minute."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from followup.config.context import AppContext


out = Console()
DEFAULT_CONFIG = Path("config/followup.yaml")
DEFAULT_HOLDERS = Path("config/holders.sample.csv")
SEVERITY = {"high": "[red]高[/]", "medium": "[yellow]中[/]", "low": "低"}


def _example(path: Path, default: Path) -> Path:
    """``path``, or — when it is the default and this directory has none — the example beside the code,
    so ``followup demo`` works from any directory (an explicit path that does not exist stays an error)."""
    if path.exists() or path != default:
        return path
    import followup

    bundled = Path(followup.__file__).resolve().parent.parent / default
    return bundled if bundled.exists() else path


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        ctx: typer.Context,
        directory: Path = typer.Option(
            Path("var/demo"), "--dir", help="Where the demo writes (wiped first)."
        ),
        holders: Path = typer.Option(DEFAULT_HOLDERS, help="Offer holders to play with."),
        as_json: bool = typer.Option(False, "--json", help="Print the flags as JSON records."),
    ) -> None:
        """Play a follow-up season (April → November) on the sample offer holders, in fast-forward.

        Uses the embedded default (SQLite, in-process delivery to an outbox folder). Messages are
        really rendered and written, simulated offer holders answer surveys (a few drift away),
        flags are evaluated every Monday, and the weekly at-risk report is written as HTML.
        """
        from followup.cli.demo_season import SEASON_END, SEASON_START, run_demo
        from followup.flags.rules import sort_by_risk
        from followup.labels import CHANNEL_LABELS, RULE_LABELS

        context: AppContext = ctx.obj
        config = _example(context.config_file, DEFAULT_CONFIG)
        holders = _example(holders, DEFAULT_HOLDERS)
        with Progress(
            TextColumn("シーズンを早送り中 / playing the season"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("days"),
            TimeElapsedColumn(),
            console=out,
            transient=True,
            disable=as_json,
        ) as bar:
            task = bar.add_task("season", total=(SEASON_END - SEASON_START).days + 1)
            result = run_demo(
                directory,
                config,
                holders,
                progress=lambda done, _total: bar.update(task, completed=done),
            )
        if as_json:
            out.print_json(json.dumps([f.record() for f in result.flags], ensure_ascii=False, default=str))
            return
        sent = "、".join(
            f"{CHANNEL_LABELS.get(channel, channel)} {count}件"
            for channel, count in sorted(result.sent.items())
        )
        out.print(f"[bold]内定者フォロー デモ[/] {SEASON_START} → {SEASON_END}: {result.days}日間")
        out.print(
            f"送信・実施したフォロー: {sent} / アンケート回答 {result.answers}件、返信 {result.replies}件"
        )
        table = Table(title=f"要フォロー内定者 ({SEASON_END} 時点) — at-risk offer holders")
        for column in ("リスク", "氏名", "ID", "ルール", "重要度", "理由", "おすすめの対応"):
            table.add_column(column, overflow="fold")
        for risk, flags in sort_by_risk(result.flags):
            for index, flag in enumerate(flags):
                table.add_row(
                    str(risk) if index == 0 else "",
                    escape(result.names.get(flag.external_id, "")) if index == 0 else "",
                    escape(flag.external_id) if index == 0 else "",
                    escape(RULE_LABELS.get(flag.rule, flag.rule)),
                    SEVERITY.get(flag.severity, escape(flag.severity)),
                    escape(flag.reason),
                    escape(flag.action),
                )
        out.print(table)
        html = escape(str(result.report_html))
        out.print(f"週次レポート (HTML): [cyan]{html}[/]  — ブラウザで開いてください")
        out.print(f"週次レポート (メール): [cyan]{escape(str(result.report_email))}[/]")
        if result.backtest:
            from followup.cli.outcomes_cmd import backtest_table

            out.print(backtest_table(result.backtest))
        if result.season_html is not None:
            season = escape(str(result.season_html))
            out.print(f"シーズンレポート (HTML): [cyan]{season}[/] — 承諾率・辞退理由・検証・費用")
        out.print(f"送信されたメッセージ (outbox): [cyan]{escape(str(result.outbox))}[/]")
        out.print(
            f"データベース: [cyan]{escape(str(directory / 'followup.db'))}[/] — 例: "
            f"FOLLOWUP_DATABASE_URL=sqlite:///{escape(str(directory.resolve()))}/followup.db "
            "followup holders show NG-2027-005"
        )
