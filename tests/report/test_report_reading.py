"""The weekly report as HR reads it: the ISO week it names, on a phone, 新卒/中途, Japanese charts."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import matplotlib
import pytest
from matplotlib import font_manager, ft2font

from followup.config.context import AppContext
from followup.db.models import ChannelOptOut, OfferHolder
from followup.flags.store import evaluate_and_persist
from followup.report import build_report, charts, render_html, render_text
from followup.report.render import week_range
from tests.conftest import make_context
from tests.rules_fixtures import NOW, seed_cohort

JST = timezone(timedelta(hours=9))
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture
def context(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppContext:
    monkeypatch.delenv("SMTP_URL", raising=False)
    ctx = make_context(sqlite_url, tmp_path)
    with ctx.session() as session:
        seed_cohort(session)
        session.add(
            OfferHolder(
                external_id="MC-001",
                name="中途 太郎",
                email="mc@example.jp",
                track="mid_career",
                offer_date=NOW.date() - timedelta(days=20),
                start_date=NOW.date() + timedelta(days=60),
                status="offered",
            )
        )
    return ctx


def test_the_week_range_is_the_iso_week_the_report_names() -> None:
    assert week_range("2026-W49") == "11/30(月)〜12/6(日)"
    assert week_range("2026-W53") == "12/28(月)〜1/3(日)"


def test_the_report_header_names_the_week_and_its_own_range(context: AppContext) -> None:
    now = datetime(2026, 11, 30, 8, 30, tzinfo=JST)  # Monday of 2026-W49
    evaluate_and_persist(context, now)
    with context.session() as session:
        report = build_report(session, context.policy, now)
    text = render_text(report)
    assert report.week == "2026-W49"
    assert "2026-W49(11/30(月)〜12/6(日))" in text
    assert "11/23〜11/30" not in text and "2026/11/23〜2026/11/30" not in text
    assert "集計期間: 11/23(月) 8:30〜11/30(月) 8:30" in text


def test_the_status_table_is_split_into_new_grad_and_mid_career(context: AppContext) -> None:
    evaluate_and_persist(context, NOW)
    with context.session() as session:
        report = build_report(session, context.policy, NOW)
    html = render_html(report, images="data")
    text = render_text(report)
    assert "新卒" in html and "中途" in html and "mid_career" not in html and "new_grad" not in html
    assert "中途: 内定(承諾前) 1名" in text


def test_no_one_who_opted_out_is_told_to_register_again(context: AppContext) -> None:
    with context.session() as session:
        holder = session.query(OfferHolder).filter_by(external_id="MC-001").one()
        session.add(
            ChannelOptOut(holder_id=holder.id, channel="email", at=NOW - timedelta(days=1), source="web")
        )
    evaluate_and_persist(context, NOW)
    with context.session() as session:
        report = build_report(session, context.policy, NOW)
    assert any(f.rule == "unreachable" for h in report.at_risk for f in h.flags)
    assert "登録し直してください" not in render_text(report) + render_html(report, images="data")


def test_the_report_fits_a_390px_phone_without_horizontal_scroll(
    context: AppContext, chromium_path: str
) -> None:
    from playwright.sync_api import sync_playwright

    evaluate_and_persist(context, NOW)
    with context.session() as session:
        report = build_report(session, context.policy, NOW)
    html = render_html(report, images="data")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844}, device_scale_factor=2)
            page.set_content(html, wait_until="load")
            width = page.evaluate("document.documentElement.scrollWidth")
            page.screenshot(path=str(ARTIFACTS / "weekly-report-390.png"), full_page=True)
        finally:
            browser.close()
    assert width <= 390


def _cjk(path: str) -> bool:
    font = ft2font.FT2Font(path)
    return all(font.get_char_index(ord(ch)) for ch in "内定承諾率週")


def test_the_font_chosen_for_a_japanese_label_is_a_cjk_font() -> None:
    charts.japanese_font.cache_clear()
    family = charts.japanese_font()
    assert family is not None
    with matplotlib.rc_context(charts._style()):
        chosen = font_manager.findfont(font_manager.FontProperties(family=matplotlib.rcParams["font.family"]))
    assert _cjk(chosen), chosen


def test_a_font_cache_that_predates_the_font_is_refreshed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """What scripts/test does: fonts-noto-cjk installed after matplotlib built its cache."""
    manager = font_manager.fontManager
    stale = [e for e in manager.ttflist if not ("CJK" in e.fname or "JP" in e.name)]
    monkeypatch.setattr(manager, "ttflist", stale)
    monkeypatch.setattr(matplotlib, "get_cachedir", lambda: str(tmp_path))
    charts.japanese_font.cache_clear()
    try:
        family = charts.japanese_font()
        assert family is not None and "CJK" in family
        assert any("CJK" in e.fname for e in manager.ttflist)  # added to the manager
        assert list(tmp_path.glob("fontlist-*.json"))  # and the cache on disk rewritten
    finally:
        charts.japanese_font.cache_clear()
