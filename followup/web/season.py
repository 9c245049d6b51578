"""The season page for HR: ``/dashboard/season`` (the season report: outcomes, backtest, cost, with
charts) and ``/api/season`` (the same figures as JSON), behind the dashboard's authentication."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from followup.outcomes.store import load_season
from followup.report.season import SeasonReport, build_season_report, render_season_html
from followup.web.dashboard import _login_redirect, _page_with_session, authenticate, require_hr
from followup.web.state import WebState, state_of

router = APIRouter()


def _report(state: WebState, year: int | None, *, with_charts: bool) -> SeasonReport:
    policy = state.context.policy
    now = state.clock()
    with state.session() as session:
        season = load_season(session, policy, now, year=year)
    return build_season_report(season, policy, now=now, year=year, with_charts=with_charts)


def _html(state: WebState, year: int | None) -> str:
    report = _report(state, year, with_charts=True)
    return render_season_html(report, templates_root=state.context.templates_root)


@router.get("/dashboard/season", include_in_schema=False, response_class=HTMLResponse)
async def season_page(request: Request, year: int | None = None) -> Response:
    login = _login_redirect(request)
    if login is not None:
        return login
    renewed = authenticate(request)
    html = await run_in_threadpool(_html, state_of(request), year)
    return _page_with_session(request, HTMLResponse(html), renewed)


@router.get("/api/season", tags=["season"], dependencies=[Depends(require_hr)])
async def api_season(request: Request, year: int | None = None) -> dict[str, Any]:
    """The season's outcomes, the backtest of the rules and the cost (as ``report --season --json``)."""
    report = await run_in_threadpool(_report, state_of(request), year, with_charts=False)
    return report.to_json()
