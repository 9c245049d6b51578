"""``followup flags`` (evaluate the rules, persist, list current flags) and ``followup report``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from followup.files import write_private

if TYPE_CHECKING:
    from followup.config.context import AppContext


out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

NowOption = Annotated[
    str | None, typer.Option("--now", help="Evaluate as if it were this moment (ISO 8601).")
]


def flags(
    ctx: typer.Context,
    now: NowOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Flag records as JSON on stdout.")] = False,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit", min=1, help="Table: the riskiest N holders (default report.top_n); --json: all."
        ),
    ] = None,
) -> None:
    """Evaluate the rules for every active holder, record the flags, and list them, riskiest first.
    現在のフラグ(放置・過剰連絡・パルス低下など)を一覧表示します。"""
    from sqlalchemy import select

    from followup.cli.timeparse import parse_now
    from followup.db.chunks import in_chunks
    from followup.db.models import OfferHolder
    from followup.flags.rules import sort_by_risk
    from followup.flags.store import evaluate_and_persist
    from followup.labels import RULE_LABELS, SEVERITY_LABELS, short_date

    context: AppContext = ctx.obj
    moment = parse_now(now, context)
    decisions, changes = evaluate_and_persist(context, moment)
    ranked = sort_by_risk(decisions)
    if as_json:
        records = [
            {**flag.record(), "action": flag.action, "risk": risk} for risk, group in ranked for flag in group
        ]
        typer.echo(json.dumps(records, ensure_ascii=False, indent=2))
        return
    shown = ranked[: limit or context.policy.report.top_n]
    ids = [group[0].holder_id for _, group in shown]  # the names of the shown holders only
    names: dict[str, str] = {}
    with context.session() as session:
        for chunk in in_chunks(ids):
            query = select(OfferHolder.external_id, OfferHolder.name).where(OfferHolder.id.in_(chunk))
            names.update(session.execute(query).tuples().all())
    table = Table(title=f"フラグ {len(decisions)}件(内定者 {len(ranked)}名)")
    for column in ("氏名", "ID", "フラグ", "重要度", "理由", "発生", "推奨アクション", "リスク"):
        table.add_column(column, overflow="fold")
    tz = context.policy.organization.tz
    for risk, group in shown:
        for flag in group:
            table.add_row(  # data, never Rich markup
                *(
                    escape(str(value))
                    for value in (
                        names.get(flag.external_id, ""),
                        flag.external_id,
                        RULE_LABELS.get(flag.rule, flag.rule),
                        SEVERITY_LABELS.get(flag.severity, flag.severity),
                        flag.reason,
                        short_date(flag.since.astimezone(tz)),
                        flag.action,
                        str(risk),
                    )
                )
            )
    out.print(table)
    if len(shown) < len(ranked):
        rest = sum(len(group) for _, group in ranked[len(shown) :])
        out.print(
            f"ほか {len(ranked) - len(shown)}名・{rest}件(--limit で件数を変更、--json で全件)",
            markup=False,
            highlight=False,
        )
    out.print(
        f"新規 {len(changes.new)}件 / 継続 {len(changes.continuing)}件 / 解消 {len(changes.resolved)}件",
        markup=False,
        highlight=False,
    )


def report(
    ctx: typer.Context,
    now: NowOption = None,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="HTML file to write (default var/reports/weekly-YYYY-Www.html)."),
    ] = None,
    send: Annotated[bool, typer.Option("--send", help="Also email it to report.weekly.to.")] = False,
    season: Annotated[
        bool, typer.Option("--season", help="The season report instead: outcomes, backtest, cost.")
    ] = False,
    year: Annotated[int | None, typer.Option("--year", help="--season: only this 入社年度.")] = None,
    policy_files: Annotated[
        list[Path] | None, typer.Option("--policy", help="--season: backtest these policies side by side.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="--season: the figures as JSON on stdout.")] = False,
) -> None:
    """Build the weekly at-risk report, write it as HTML, and optionally email it.
    週次リスクレポートを作成します(--send でメール送信、--season でシーズンレポート)。"""
    from sqlalchemy import select

    from followup.cli.timeparse import parse_now
    from followup.db.models import ReportRun
    from followup.flags.store import evaluate_and_persist
    from followup.report import iso_week, render_html, send_weekly_report, weekly_report

    context: AppContext = ctx.obj
    if season:
        from followup.cli.outcomes_cmd import season_report

        season_report(context, now=now, out_file=out_file, as_json=as_json, year=year, policies=policy_files)
        return
    moment = parse_now(now, context)
    policy = context.policy
    week = iso_week(moment, policy)
    evaluate_and_persist(context, moment)
    with context.session() as session:
        weekly = weekly_report(session, context, moment)
    html = render_html(weekly, images="data", templates_root=context.templates_root)
    target = out_file or Path(context.settings.var_dir) / "reports" / f"weekly-{week}.html"
    write_private(target, html)  # names and answers: 0600
    out.print(
        f"レポートを書き出しました: {target}(要フォロー {weekly.at_risk_total}名)",
        markup=False,
        highlight=False,
    )
    if not send:
        return
    with context.session() as session:
        already = session.scalar(select(ReportRun).where(ReportRun.week == week))
    if already is not None:
        err.print(
            f"{week} のレポートは送信済みです: {already.summary.get('delivered', '')}(再送しません)",
            markup=False,
            highlight=False,
        )
        return
    result = send_weekly_report(context, moment)
    out.print(f"送信しました: {result}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("flags")(flags)
    app.command("report")(report)
