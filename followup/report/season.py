"""The season report (``followup report --season``): outcomes, the backtest of the rules and the cost
of follow-up as one JSON document and one HTML page with charts (readable on a phone).

The HTML is rendered from the same :class:`SeasonReport` the ``--json`` output serialises, so the two
always show the same figures.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from followup.config.schema import Policy
from followup.labels import CHANNEL_LABELS, RULE_LABELS
from followup.outcomes.backtest import BacktestResult, run_backtest
from followup.outcomes.cost import CostReport, compute_cost
from followup.outcomes.figures import Outcomes, compute_outcomes
from followup.outcomes.records import Season
from followup.pool.figures import PoolFigures
from followup.report import charts
from followup.report.data import Chart
from followup.report.render import _environment


@dataclass
class SeasonReport:
    organization: str
    generated_at: datetime
    year: int | None
    outcomes: Outcomes
    backtests: list[BacktestResult]
    cost: CostReport | None
    charts: list[Chart] = field(default_factory=list)
    pool: PoolFigures | None = None  # the talent pool (人材プール), when it is enabled

    @property
    def title(self) -> str:
        return f"{self.year}年度入社 シーズンレポート" if self.year else "シーズンレポート"

    def to_json(self) -> dict[str, Any]:
        return {
            "organization": self.organization,
            "generated_at": self.generated_at.isoformat(),
            "season": self.year,
            "outcomes": self.outcomes.to_json(),
            "backtest": [b.to_json() for b in self.backtests],
            "cost": self.cost.to_json() if self.cost else None,
            "pool": self.pool.to_json() if self.pool else None,
        }


def build_season_report(
    season: Season,
    policy: Policy,
    *,
    now: datetime,
    year: int | None = None,
    policies: Sequence[tuple[str, Policy]] = (),
    with_charts: bool = True,
    pool: PoolFigures | None = None,
) -> SeasonReport:
    """Outcomes, a backtest per policy (the current one when none is given) and the cost."""
    tz = policy.organization.tz
    outcomes = compute_outcomes(season, tz)
    backtests = [run_backtest(season, p, label=label) for label, p in (policies or [("現在の設定", policy)])]
    cost = compute_cost(season, policy.budget) if policy.budget is not None else None
    report = SeasonReport(policy.organization.name, now, year, outcomes, backtests, cost, pool=pool)
    if with_charts:
        report.charts = season_charts(report)
    return report


def season_charts(report: SeasonReport) -> list[Chart]:
    o = report.outcomes
    months = o.declines_by_months_since_offer
    out = [
        Chart(
            "acceptance",
            "内定承諾率・辞退率(内定月別)",
            charts.rate_chart(
                [g.key[2:] for g in o.by_offer_month],
                [g.acceptance_rate for g in o.by_offer_month],
                [g.decline_rate for g in o.by_offer_month],
                "内定承諾率・辞退率(内定月別)",
            ),
        ),
        Chart(
            "decline_timing",
            "辞退の時期(内定からの月数)",
            charts.bar_chart(
                [f"{m}か月" for m, _ in months],
                [n for _, n in months],
                "辞退の時期(内定から何か月目か)",
                "辞退数",
                color=charts.COLORS["failed"],
            ),
        ),
        Chart(
            "decline_month",
            "辞退の時期(月別)",
            charts.bar_chart(
                [m[2:] for m, _ in o.declines_by_calendar_month],
                [n for _, n in o.declines_by_calendar_month],
                "辞退の時期(月別)",
                "辞退数",
                color=charts.COLORS["failed"],
            ),
        ),
        Chart(
            "surveys",
            "アンケート回答率と満足度の推移",
            charts.survey_chart(
                [m.month[2:] for m in o.survey_months],
                [m.response_rate for m in o.survey_months],
                [m.mean_score for m in o.survey_months],
            ),
        ),
    ]
    if report.backtests:
        out.append(
            Chart(
                "backtest",
                "フラグの検証(バックテスト)",
                charts.backtest_chart(
                    [b.label for b in report.backtests],
                    [b.recall for b in report.backtests],
                    [b.false_alarms_per_100_per_month for b in report.backtests],
                    [b.lead_days for b in report.backtests],
                ),
            )
        )
    return out


def _yen(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}円"


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def render_season_html(report: SeasonReport, *, templates_root: Path | None = None) -> str:
    """A standalone HTML page (charts as data: URIs), readable at 390 px."""
    env = _environment(templates_root)
    env.filters.update(yen=_yen, num=_num)
    images = {
        c.name: "data:image/png;base64," + base64.b64encode(c.png).decode("ascii") for c in report.charts
    }
    return env.get_template("season.html.j2").render(
        report=report, images=images, rule_labels=RULE_LABELS, channel_labels=CHANNEL_LABELS
    )
