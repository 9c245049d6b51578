"""The HR workspace in a real headless Chromium, at desktop size and on a 390×844 phone: HR signs in,
filters to high-risk new graduates of one department, opens a holder, logs a call, resolves a flag
with a note and sees both on the timeline; a mentor's link shows only their mentees and another
holder's page is 404; a POST without the CSRF token and a forged session are refused.
Screenshots go to test-artifacts/workspace/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from followup.db.session import dispose_engines
from followup.delivery.links import LinkSigner
from followup.web import create_app
from tests.services import free_port
from tests.web.test_web_workspace import T0, seed
from tests.web_fixtures import DASHBOARD_TOKEN, REPO, ServerThread, make_web_context

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "test-artifacts" / "workspace"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ServerThread, LinkSigner]]:
    for name in ("SMTP_URL", "SLACK_BOT_TOKEN", "LINE_CHANNEL_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    port = free_port()
    context = make_web_context(tmp_path, base_url=f"http://127.0.0.1:{port}")
    with context.session() as session:
        seed(session)
    server = ServerThread(create_app(context, clock=lambda: T0), port)
    server.start()
    try:
        yield server, LinkSigner.from_settings(context.settings)
    finally:
        server.stop()
        dispose_engines()


@pytest.fixture(params=list(VIEWPORTS))
def browser_page(request: pytest.FixtureRequest, chromium_path: str) -> Iterator[tuple[str, Any]]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = str(request.param)
    phone = name == "phone"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport=VIEWPORTS[name],
            device_scale_factor=2 if phone else 1,
            is_mobile=phone,
            has_touch=phone,
            locale="ja-JP",
            timezone_id="Asia/Tokyo",
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield name, page
        finally:
            context.close()
            browser.close()


def _no_sideways_scroll(page: Any, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "the page scrolls sideways"


def test_hr_filters_opens_a_holder_logs_a_call_and_resolves_a_flag(
    served: tuple[ServerThread, LinkSigner], browser_page: tuple[str, Any]
) -> None:
    server, _ = served
    size, page = browser_page
    width = VIEWPORTS[size]["width"]
    shot = lambda n: page.screenshot(path=str(ARTIFACTS / f"{size}-{n}.png"), full_page=True)  # noqa: E731

    page.goto(f"{server.url}/dashboard/sign-in")
    page.fill("input[name=token]", DASHBOARD_TOKEN)
    page.get_by_role("button", name="サインイン").click()
    page.wait_for_url(re.compile(r"/dashboard$"))
    assert "今週やること" in page.locator("h1").inner_text()
    assert "辞退の兆候" in page.locator("#home-flags").inner_text()
    _no_sideways_scroll(page, width)
    shot("01-home")

    page.get_by_role("link", name="内定者一覧").first.click()
    page.select_option("select[name=track]", "new_grad")
    page.select_option("select[name=department]", "営業部")
    page.select_option("select[name=severity]", "high")
    page.get_by_role("button", name="絞り込む").click()
    page.wait_for_url(re.compile(r"severity=high"))
    rows = page.locator("#holders tbody tr")
    assert [rows.nth(i).get_attribute("data-external-id") for i in range(rows.count())] == [
        "NG-001",
        "NG-003",
    ]
    assert "2名が該当" in page.locator("#count").inner_text()
    _no_sideways_scroll(page, width)
    shot("02-filtered")

    page.locator("tr[data-external-id='NG-001']").get_by_role("link", name="山田 花子").click()
    page.wait_for_url(re.compile(r"/dashboard/holders/NG-001$"))
    page.select_option("#touch-form select[name=channel]", "phone")
    page.fill("#touch-form textarea[name=note]", "配属先の不安を伺い、来月の面談を約束")
    page.locator("#touch-form").get_by_role("button", name="記録する").click()
    page.wait_for_url(re.compile(r"done=touch"))
    assert "接点を記録しました" in page.locator("#done").inner_text()

    flag = page.locator("#flags li").filter(has_text="放置")
    flag.locator("select[name=action]").select_option("resolve")
    flag.locator("input[name=note]").fill("電話で状況を確認済み")
    flag.get_by_role("button", name="記録する").click()
    page.wait_for_url(re.compile(r"done=flag"))
    timeline = page.locator("#timeline").inner_text()
    assert "電話:配属先の不安を伺い、来月の面談を約束" in timeline
    assert "放置を解決 — 電話で状況を確認済み" in timeline
    assert "放置" not in page.locator("#flags").inner_text()  # no longer open
    assert re.search(r"6/22\(月\) 10:00", timeline)
    _no_sideways_scroll(page, width)
    shot("03-holder-after-actions")

    # 提出物: HR marks the 身元保証書 received on the holder page, then opens the 提出状況
    page.locator("#more-actions summary").click()
    page.select_option("#task-form select[name=task]", "guarantee")
    page.select_option("#task-form select[name=status]", "submitted")
    page.fill("#task-form input[name=note]", "郵送で受領")
    page.locator("#task-form").get_by_role("button", name="記録する").click()
    page.wait_for_url(re.compile(r"done=task"))
    assert "提出済" in page.locator("#holder-tasks tr[data-task='guarantee']").inner_text()
    page.locator("#holder-tasks").get_by_role("link", name="身元保証書").click()
    page.wait_for_url(re.compile(r"/dashboard/tasks/guarantee$"))
    assert "提出済" in page.locator("#task-sheet tr[data-external-id='NG-001']").inner_text()
    _no_sideways_scroll(page, width)
    shot("05-task-sheet")


def test_a_mentor_sees_only_their_mentees_and_forgeries_are_refused(
    served: tuple[ServerThread, LinkSigner], browser_page: tuple[str, Any]
) -> None:
    server, signer = served
    size, page = browser_page
    width = VIEWPORTS[size]["width"]

    page.goto(f"{server.url}/m/{signer.mentor_token('tanaka.k@example.co.jp')}")
    page.wait_for_url(re.compile(r"/dashboard$"))
    assert "田中 健太 さん(メンター)" in page.locator("nav").inner_text()
    page.get_by_role("link", name="担当の内定者").click()
    rows = page.locator("#holders tbody tr")
    shown = {rows.nth(i).get_attribute("data-external-id") for i in range(rows.count())}
    assert shown == {"NG-001", "NG-003", "NG-004"}
    _no_sideways_scroll(page, width)
    page.screenshot(path=str(ARTIFACTS / f"{size}-04-mentor-list.png"), full_page=True)
    response = page.goto(f"{server.url}/dashboard/holders/NG-002")
    assert response.status == 404
    assert "佐藤" not in page.content()

    # a POST from this browser without the form's CSRF token is refused
    refused = page.request.post(
        f"{server.url}/dashboard/holders/NG-001/touch", form={"channel": "phone", "note": "x"}
    )
    assert refused.status == 403

    # a forged HR session cookie opens nothing
    page.context.clear_cookies()
    page.context.add_cookies(
        [{"name": "followup_dashboard", "value": "1700000000.abc.def.forged", "url": server.url}]
    )
    # (page.request: Chromium itself answers a 401 with Basic auth by failing the navigation)
    forged = page.request.get(f"{server.url}/dashboard/holders")
    assert forged.status == 401 and "山田" not in forged.text()
    page.context.clear_cookies()
    assert page.request.get(f"{server.url}/dashboard").status == 401
    # a browser opening a bookmark without a session lands on the sign-in page (not a Basic-auth dialog)
    page.goto(f"{server.url}/dashboard/holders")
    assert "/dashboard/sign-in" in page.url and "next=%2Fdashboard%2Fholders" in page.url
    assert page.locator("input[name=token]").count() == 1


def test_hr_sends_an_announcement_from_the_workspace_after_the_preview(
    served: tuple[ServerThread, LinkSigner], browser_page: tuple[str, Any]
) -> None:
    server, _ = served
    size, page = browser_page
    width = VIEWPORTS[size]["width"]
    page.goto(f"{server.url}/dashboard?token={DASHBOARD_TOKEN}")
    page.get_by_role("link", name="一斉配信").first.click()
    page.wait_for_url(re.compile(r"/dashboard/announce$"))
    page.select_option("#announce-form select[name=template]", "year_end_greeting")
    page.select_option("#announce-form select[name=track]", "new_grad")
    page.select_option("#announce-form select[name=department]", "営業部")
    page.get_by_role("button", name="確認する").click()
    assert "送信予定 3名" in page.locator("#preview-summary").inner_text()
    _no_sideways_scroll(page, width)
    page.screenshot(path=str(ARTIFACTS / f"{size}-06-announce-preview.png"), full_page=True)
    page.get_by_role("button", name="3名に予約する").click()
    page.wait_for_url(re.compile(r"done=3"))
    assert "3件を予約しました" in page.locator("#done").inner_text()
