"""``followup backtest`` (the rules replayed over a recorded season) and the season report behind
``followup report --season``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from followup.cli.timeparse import parse_now
from followup.config.context import AppContext

if TYPE_CHECKING:
    from followup.config.schema import Policy
    from followup.outcomes.backtest import BacktestResult

out = Console(soft_wrap=True)

PolicyOption = Annotated[
    list[Path] | None,
    typer.Option("--policy", help="A policy YAML to compare (repeat for side by side; default: --config)."),
]
SeasonOption = Annotated[
    int | None, typer.Option("--season", help="Only holders starting in this fiscal year (入社年度), e.g. 2027.")
]


def load_policies(context: AppContext, paths: list[Path] | None) -> list[tuple[str, Policy]]:
    """(label, policy) per ``--policy``; the configured policy alone when none is given."""
    from followup.config import load_policy

    if not paths:
        return [(context.config_file.stem, context.policy)]
    return [(path.stem, load_policy(path).policy) for path in paths]


def backtest_table(results: list[BacktestResult]) -> Table:
    from followup.labels import RULE_LABELS

    first = results[0]
    table = Table(title=f"フラグのバックテスト {first.start} → {first.end} (rules replayed day by day)")
    table.add_column("指標 (metric)")
    for result in results:
        table.add_column(result.label, justify="right")

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value * 100:.1f}%"

    def num(value: float | None) -> str:
        return "—" if value is None else f"{value:.1f}"

    def row(label: str, values: list[str]) -> None:
        table.add_row(label, *values)

    row("辞退者 (declined)", [str(r.decliners) for r in results])
    horizon = first.horizon_days
    row(
        f"検知 (flagged within {horizon}d before)" if horizon else "検知 (flagged before)",
        [f"{r.decliners_flagged} ({pct(r.recall)})" for r in results],
    )
    for label, index in (("リードタイム中央値 (median lead, days)", 1), ("第1四分位 (Q1)", 0), ("第3四分位 (Q3)", 2)):
        row(label, [num(q[index]) if (q := r.lead_quartiles()) else "—" for r in results])
    row("入社者 (joined)", [str(r.joined) for r in results])
    row("うちフラグあり (joined, flagged)", [str(r.joined_flagged) for r in results])
    row("誤警報/100人・月 (false alarms)", [num(r.false_alarms_per_100_per_month) for r in results])
    row(
        "最初のルール (first rule)",
        [", ".join(f"{RULE_LABELS.get(k, k)} {n}" for k, n in r.first_rules().most_common(3)) or "—" for r in results],
    )
    return table


def backtest(
    ctx: typer.Context,
    policy: PolicyOption = None,
    season: SeasonOption = None,
    now: Annotated[str | None, typer.Option("--now", help="The record ends here (ISO 8601; default now).")] = None,
    horizon: Annotated[
        int, typer.Option("--horizon", min=1, help="Days before a decline in which a flag counts as its warning.")
    ] = 90,
    as_json: Annotated[bool, typer.Option("--json", help="The results as JSON on stdout.")] = False,
) -> None:
    """Replay a recorded season day by day through the rules: how many decliners were flagged, how many
    days before the decline, and how many false alarms among those who joined.
    過去のシーズンでルールを検証します(検知率・リードタイム・誤警報)。"""
    from followup.outcomes.backtest import run_backtest
    from followup.outcomes.store import load_season

    context: AppContext = ctx.obj
    moment = parse_now(now, context)
    policies = load_policies(context, policy)
    with context.session() as session:
        recorded = load_season(session, context.policy, moment, year=season)
    results = [run_backtest(recorded, p, label=label, horizon_days=horizon) for label, p in policies]
    if as_json:
        typer.echo(json.dumps([r.to_json() for r in results], ensure_ascii=False, indent=2))
        return
    out.print(backtest_table(results))
    out.print(
        f"内定者 {len(recorded.holders)}名、評価 {sum(r.evaluations for r in results)}回。"
        "検知率 = 辞退前にフラグが立った辞退者の割合、誤警報 = 入社者にフラグが立った回数(100人・1か月あたり)。",
        markup=False,
        highlight=False,
    )


def season_report(
    context: AppContext,
    *,
    now: str | None,
    out_file: Path | None,
    as_json: bool,
    year: int | None,
    policies: list[Path] | None,
) -> None:
    """``followup report --season``: write the season report as HTML (and print it as JSON)."""
    from followup.outcomes.store import load_season
    from followup.report.season import build_season_report, render_season_html

    moment = parse_now(now, context)
    policy = context.policy
    with context.session() as session:
        recorded = load_season(session, policy, moment, year=year)
    compared = load_policies(context, policies) if policies else []
    report = build_season_report(recorded, policy, now=moment, year=year, policies=compared)
    target = out_file or Path(context.settings.var_dir) / "reports" / f"season-{year or 'all'}.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_season_html(report, templates_root=context.templates_root), encoding="utf-8")
    if as_json:
        typer.echo(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
        return
    o = report.outcomes
    out.print(
        f"シーズンレポートを書き出しました: {target}(内定 {o.total.offers}名、"
        f"承諾率 {_pct(o.total.acceptance_rate)}、辞退率 {_pct(o.total.decline_rate)})",
        markup=False,
        highlight=False,
    )
    if report.backtests:
        out.print(backtest_table(report.backtests))


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def register(app: typer.Typer) -> None:
    app.command("backtest")(backtest)
