"""``followup backtest`` (the rules replayed over a recorded season) and the season report behind
``followup report --season``."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from followup.config.context import AppContext
    from followup.config.schema import Policy
    from followup.outcomes.backtest import BacktestResult


out = Console(soft_wrap=True)

PolicyOption = Annotated[
    list[Path] | None,
    typer.Option("--policy", help="A policy YAML to compare (repeat for side by side; default: --config)."),
]
SeasonOption = Annotated[
    int | None,
    typer.Option("--season", help="Only holders starting in this fiscal year (入社年度), e.g. 2027."),
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
    for label, index in (
        ("リードタイム中央値 (median lead, days)", 1),
        ("第1四分位 (Q1)", 0),
        ("第3四分位 (Q3)", 2),
    ):
        row(label, [num(q[index]) if (q := r.lead_quartiles()) else "—" for r in results])
    row("入社者 (joined)", [str(r.joined) for r in results])
    row("うちフラグあり (joined, flagged)", [str(r.joined_flagged) for r in results])
    row("誤警報/100人・月 (false alarms)", [num(r.false_alarms_per_100_per_month) for r in results])
    row(
        "最初のルール (first rule)",
        [
            ", ".join(f"{RULE_LABELS.get(k, k)} {n}" for k, n in r.first_rules().most_common(3)) or "—"
            for r in results
        ],
    )
    return table


def backtest(
    ctx: typer.Context,
    policy: PolicyOption = None,
    season: SeasonOption = None,
    now: Annotated[
        str | None, typer.Option("--now", help="The record ends here (ISO 8601; default now).")
    ] = None,
    horizon: Annotated[
        int,
        typer.Option("--horizon", min=1, help="Days before a decline in which a flag counts as its warning."),
    ] = 90,
    as_json: Annotated[bool, typer.Option("--json", help="The results as JSON on stdout.")] = False,
) -> None:
    """Replay a recorded season day by day through the rules: how many decliners were flagged, how many
    days before the decline, and how many false alarms among those who joined.
    過去のシーズンでルールを検証します(検知率・リードタイム・誤警報)。"""
    from followup.cli.timeparse import parse_now
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
        "検知率 = 辞退前にフラグが立った辞退者の割合、"
        "誤警報 = 入社者にフラグが立った回数(100人・1か月あたり)。",
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
    from followup.cli.timeparse import parse_now
    from followup.outcomes.store import load_season
    from followup.report.season import build_season_report, render_season_html

    moment = parse_now(now, context)
    policy = context.policy
    pool = None
    with context.session() as session:
        recorded = load_season(session, policy, moment, year=year)
        if policy.pool.enabled:
            from followup.pool.figures import compute_pool_figures
            from followup.pool.store import pool_people

            pool = compute_pool_figures(pool_people(session, policy, moment))
    compared = load_policies(context, policies) if policies else []
    report = build_season_report(recorded, policy, now=moment, year=year, policies=compared, pool=pool)
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
    if pool is not None:
        out.print(
            f"人材プール: {pool.size}名(同意 {pool.consented}名、配信停止 {pool.opted_out}名、"
            f"再応募 {pool.reapplied}名、うち採用 {pool.hired}名)",
            markup=False,
            highlight=False,
        )
    if report.backtests:
        out.print(backtest_table(report.backtests))


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def register(app: typer.Typer) -> None:
    app.command("backtest")(backtest)


def compare_cadences(
    context: AppContext,
    snapshots: list[Any],
    paths: list[Path],
    first: date,
    last: date,
    *,
    arms: bool,
    json_out: Path | None,
) -> None:
    """``simulate --policy A.yaml --policy B.yaml``: the cadences side by side (nothing is sent)."""
    from followup.labels import CHANNEL_LABELS, RULE_LABELS
    from followup.outcomes.compare import compare_arms, summarize_cadence

    policies = load_policies(context, paths)
    summaries = [summarize_cadence(label, snapshots, p, first, last) for label, p in policies]
    table = Table(title=f"ケイデンスの比較 {first} → {last} (cadences side by side; nothing is sent)")
    table.add_column("指標 (metric)")
    for s in summaries:
        table.add_column(s.label, justify="right")
    rows: list[tuple[str, list[str]]] = [
        ("内定者 (holders followed)", [str(s.holders) for s in summaries]),
        ("接点 (touches)", [str(s.touches) for s in summaries]),
        (
            "1人1か月あたり (per holder per month)",
            [f"{s.per_holder_month:.2f}" if s.per_holder_month is not None else "—" for s in summaries],
        ),
    ]
    for rule in ("over_contacted", "neglected", "unreachable"):
        rows.append(
            (f"{RULE_LABELS[rule]}の予測 (holders, {rule})", [str(s.flagged[rule]) for s in summaries])
        )
    channels = sorted({c for s in summaries for c in s.by_channel})
    for channel in channels:
        rows.append(
            (
                f"{CHANNEL_LABELS.get(channel, channel)} (load)",
                [str(s.by_channel.get(channel, 0)) for s in summaries],
            )
        )
    rows.append(("送信日の平均件数 (per busy day)", [f"{s.mean_per_busy_day:.1f}" for s in summaries]))
    rows.append(("最多の日 (peak day)", [f"{s.peak_day} ({s.peak_count})" for s in summaries]))
    for label, values in rows:
        table.add_row(label, *values)
    out.print(table)
    document: dict[str, Any] = {"cadences": [s.to_json() for s in summaries]}
    if arms:
        names = [label for label, _ in policies]
        comparison = compare_arms([(h.external_id, h.status) for h in snapshots], names)
        arm_table = Table(title="実験群の結果 (experiment arms by hash of external_id, Wilson 95% CI)")
        for column in ("群 (arm)", "内定者", "承諾・入社", "辞退", "内定承諾率", "95%区間"):
            arm_table.add_column(column, justify="right")
        for a in comparison.arms:
            ci = a.interval
            arm_table.add_row(
                a.arm,
                str(a.holders),
                str(a.accepted),
                str(a.declined),
                _pct(a.rate),
                f"{ci[0] * 100:.1f}–{ci[1] * 100:.1f}%" if ci else "—",
            )
        out.print(arm_table)
        if comparison.interval is not None and comparison.difference is not None:
            low, high = comparison.interval
            out.print(
                f"差 {names[0]} − {names[1]}: {comparison.difference * 100:+.1f}ポイント "
                f"(95%区間 {low * 100:+.1f}〜{high * 100:+.1f})。{comparison.verdict()}",
                markup=False,
                highlight=False,
            )
        else:
            out.print(comparison.verdict(), markup=False, highlight=False)
        document["arms"] = comparison.to_json()
    if json_out is not None:
        json_out.write_text(json.dumps(document, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        out.print(f"比較結果を {json_out} に書き出しました", markup=False, highlight=False)
