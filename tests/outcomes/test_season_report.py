"""The season report end to end: a recorded season in the database, ``followup report --season
--json``, ``followup backtest --json`` with two policies, the HTML opened in a real Chromium on a
phone-sized screen (screenshot in test-artifacts/season/), and its figures equal to the JSON."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from playwright.sync_api import sync_playwright
from sqlalchemy import select

from followup.db.models import SurveyResponse, Touch
from followup.holders.importer import change_status, find_holder, import_holders, read_holders_csv
from followup.planning.store import plan_tick
from tests.cli import REPO, run_followup
from tests.conftest import make_context

JST = ZoneInfo("Asia/Tokyo")
ARTIFACTS = REPO / "test-artifacts" / "season"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
NOW = "2026-12-01T09:00+09:00"


def record_season(db_url: str, var_dir: Path) -> None:
    context = make_context(db_url, var_dir)
    rows, _ = read_holders_csv(REPO / "config" / "holders.sample.csv")
    with context.session() as session:
        import_holders(session, rows, now=datetime(2026, 4, 1, 9, tzinfo=JST))
    day = date(2026, 4, 13)
    while day <= date(2026, 11, 30):
        moment = datetime(day.year, day.month, day.day, 7, tzinfo=JST)
        plan_tick(context, moment)
        with context.session() as session:
            for touch in session.scalars(
                select(Touch).where(Touch.status.in_(("planned", "reminded")), Touch.due_at <= moment)
            ):
                touch.status = "done" if touch.kind == "manual" else "sent"
                touch.sent_at = touch.due_at
                if touch.kind == "survey" and touch.id % 3:
                    score = 2.0 if touch.holder.external_id == "NG-2027-012" else 4.0
                    session.add(
                        SurveyResponse(
                            touch_id=touch.id,
                            holder_id=touch.holder_id,
                            form=touch.survey_form or "pulse",
                            answers={},
                            score=score,
                            submitted_at=touch.due_at + timedelta(hours=6),
                        )
                    )
        day += timedelta(days=7)
    with context.session() as session:
        for external_id, when, reason in (
            ("NG-2027-012", datetime(2026, 10, 20, 15, tzinfo=JST), "勤務地・条件面の不一致"),
            ("NG-2027-021", datetime(2026, 9, 1, 15, tzinfo=JST), "他社への入社を決めたため"),
        ):
            holder = find_holder(session, external_id)
            assert holder is not None
            change_status(session, holder, "declined", at=when, reason=reason)


def test_the_season_report_renders_on_a_phone_and_matches_its_json(
    tmp_path: Path, sqlite_url: str, chromium_path: str
) -> None:
    record_season(sqlite_url, tmp_path)
    env = {"FOLLOWUP_DATABASE_URL": sqlite_url, "FOLLOWUP_VAR_DIR": str(tmp_path)}
    html_file = tmp_path / "season.html"
    result = run_followup("report", "--season", "--now", NOW, "--out", str(html_file), "--json", env=env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    outcomes, backtest, cost = data["outcomes"], data["backtest"][0], data["cost"]
    assert outcomes["total"]["offers"] == 30
    assert outcomes["total"]["declined"] == 3  # NG-2027-010 (imported) and the two above
    assert {r["reason"] for r in outcomes["decline_reasons"]} >= {
        "勤務地・条件面の不一致",
        "他社への入社を決めたため",
    }
    assert outcomes["surveys"]["sent"] > outcomes["surveys"]["answered"] > 0
    assert backtest["declined"] == 2 and backtest["unobserved"] >= 1
    assert cost["follow_up_total"] > 0 and cost["roi_percent"] is not None

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2, locale="ja-JP")
        page.goto(html_file.as_uri())
        page.screenshot(path=str(ARTIFACTS / "season-report-top.png"))
        page.screenshot(path=str(ARTIFACTS / "season-report-full.png"), full_page=True)

        def figure(name: str) -> str:
            return page.locator(f'[data-figure="{name}"] .value').inner_text().strip()

        def pct(rate: float | None) -> str:
            return "—" if rate is None else f"{rate * 100:.1f}%"

        assert figure("acceptance_rate") == pct(outcomes["total"]["acceptance_rate"])
        assert figure("decline_rate") == pct(outcomes["total"]["decline_rate"])
        assert figure("response_rate") == pct(outcomes["surveys"]["response_rate"])
        assert figure("recall") == pct(backtest["recall"])
        assert figure("follow_up_total") == f"{cost['follow_up_total']:,.0f}円"
        assert figure("per_holder") == f"{cost['per_holder']:,.0f}円"
        assert figure("roi") == f"{cost['roi_percent']:.1f}%"
        # every chart decoded, nothing wider than the phone
        images = page.locator("img.chart")
        assert images.count() == 5
        assert all(page.evaluate("i => i.naturalWidth", img) > 0 for img in images.element_handles())
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        browser.close()

    strict = tmp_path / "strict.yaml"
    text = (REPO / "config" / "followup.yaml").read_text(encoding="utf-8")
    strict.write_text(
        text.replace("templates_dir: ../templates", f"templates_dir: {REPO / 'templates'}").replace(
            "unresponsive: {severity: medium, consecutive: 3}",
            "unresponsive: {severity: medium, consecutive: 2}",
        ),
        encoding="utf-8",
    )
    both = run_followup(
        "backtest", "--now", NOW, "--policy", str(REPO / "config" / "followup.yaml"), "--policy", str(strict),
        "--json", env=env,
    )  # fmt: skip
    assert both.returncode == 0, both.stderr
    results = json.loads(both.stdout)
    assert [r["policy"] for r in results] == ["followup", "strict"]
    assert results[0]["recall"] == backtest["recall"]
    assert results[1]["false_alarms"] >= results[0]["false_alarms"]
    table = run_followup("backtest", "--now", NOW, env=env)
    assert table.returncode == 0, table.stderr
    assert "フラグのバックテスト" in table.stdout and "誤警報" in table.stdout
