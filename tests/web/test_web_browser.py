"""In a real headless Chromium on a phone-sized screen: open the survey link of a delivered email,
answer, see the thank-you page; the answer is stored and the holder's pulse changes; HR then reads
the holder's timeline on the dashboard. Screenshots go to test-artifacts/web/."""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy as email_policy
from pathlib import Path
from typing import Any

import pytest

from followup.db.models import Touch
from followup.db.session import dispose_engines
from followup.delivery.deliver import deliver_touch
from followup.engagement.surveys import record_response
from followup.web import create_app
from tests.services import free_port
from tests.web_fixtures import DASHBOARD_TOKEN, REPO, ServerThread, WebEnv, make_web_context

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "test-artifacts" / "web"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NOW = datetime(2026, 6, 22, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo, a Monday: inside the send window


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[WebEnv, ServerThread]]:
    for name in ("SMTP_URL", "SLACK_BOT_TOKEN", "LINE_CHANNEL_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    port = free_port()
    context = make_web_context(tmp_path, base_url=f"http://127.0.0.1:{port}")
    server = ServerThread(create_app(context), port)
    server.start()
    from followup.delivery.links import LinkSigner

    env = WebEnv(context, LinkSigner.from_settings(context.settings), None, tmp_path)  # type: ignore[arg-type]
    try:
        yield env, server
    finally:
        server.stop()
        dispose_engines()


@pytest.fixture
def phone(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context(
            viewport={"width": 390, "height": 844},
            device_scale_factor=2,
            is_mobile=True,
            has_touch=True,
            locale="ja-JP",
            timezone_id="Asia/Tokyo",
        )
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


def _survey_link_from_outbox(env: WebEnv, touch_id: int) -> str:
    """Deliver the survey touch through the embedded outbox and read the link a holder would tap."""
    assert deliver_touch(env.context, touch_id, now=NOW) == "sent"
    [eml] = list((env.tmp_path / "var" / "outbox").glob("*.eml"))
    message = email.message_from_bytes(eml.read_bytes(), policy=email_policy.default)
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    match = re.search(r"http://127\.0\.0\.1:\d+/s/[A-Za-z0-9._-]+", body.get_content())
    assert match, "no survey link in the delivered email"
    return match.group(0)


def _pulse_scores(env: WebEnv) -> list[float | None]:
    return [r.score for r in sorted(env.responses(), key=lambda r: r.submitted_at)]


def test_a_holder_answers_on_a_phone_and_hr_sees_it_on_the_timeline(
    served: tuple[WebEnv, ServerThread], phone: Any
) -> None:
    env, server = served
    holder_id = env.holder()
    # an earlier pulse answered well (score 4.67)
    earlier = env.survey_touch(holder_id, seq=3)
    with env.context.session() as session:
        touch = session.get(Touch, earlier)
        survey = env.context.policy.surveys["pulse"]
        record_response(
            session,
            touch,
            survey,
            {"motivation": 5, "anxiety": 2, "understanding": 5},
            datetime(2026, 6, 22, 3, 0, tzinfo=UTC),
        )
    assert _pulse_scores(env) == [4.67]

    # this month's survey touch goes out by email (outbox) and the holder taps its link
    current = env.survey_touch(holder_id, seq=6, status="planned")
    link = _survey_link_from_outbox(env, current)

    page = phone
    page.goto(link)
    assert page.locator("h1").inner_text() == "内定者パルスサーベイ(約1分)"
    page.screenshot(path=str(ARTIFACTS / "01-survey-form.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "the form must not scroll sideways on a phone"
    situation = page.locator("#q-situation").inner_text()
    assert "任意" in situation and "必須" not in situation  # 就職活動の状況: optional, and why it is asked
    assert "ご相談に乗ったりするため" in situation
    form_text = page.locator("form").inner_text()
    assert "内定や入社後の評価に影響することはありません" in form_text and "選考や評価" not in form_text

    page.locator("label:has(input[name=motivation][value='2'])").tap()
    page.locator("label:has(input[name=anxiety][value='4'])").tap()
    page.locator("label:has(input[name=understanding][value='3'])").tap()
    page.get_by_label("他社も検討している").check()
    page.locator("textarea[name=comment]").fill("配属先について詳しく知りたいです。")
    page.screenshot(path=str(ARTIFACTS / "02-survey-answered.png"), full_page=True)
    page.get_by_role("button", name="回答を送信する").tap()

    page.wait_for_url(re.compile(r"/thanks$"))
    assert "ご回答ありがとうございました" in page.locator("h1").inner_text()
    assert "saiyo@example.co.jp" in page.locator("main").inner_text()  # whom to ask
    page.screenshot(path=str(ARTIFACTS / "03-thank-you.png"), full_page=True)

    # the answer is in the database and the holder's pulse dropped
    current_response = next(r for r in env.responses() if r.touch_id == current)
    assert current_response.answers["comment"] == "配属先について詳しく知りたいです。"
    assert current_response.declining is True
    assert _pulse_scores(env) == [4.67, 2.33]

    # reopening the link shows the answers to edit, and records nothing by itself
    page.goto(link)
    assert page.locator("input[name=motivation][value='2']").is_checked()
    assert len(env.responses()) == 2

    # HR logs in with the token once and opens the holder's timeline
    page.goto(f"{server.url}/dashboard/holders?token={DASHBOARD_TOKEN}")
    assert "token=" not in page.url
    row = page.locator("tr[data-external-id='NG2027-0001']")
    assert "4.67 → 2.33" in row.inner_text()
    assert "新卒" in row.inner_text() and "new_grad" not in row.inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # the table scrolls, the page not
    page.screenshot(path=str(ARTIFACTS / "04-dashboard.png"), full_page=True)
    row.get_by_role("link", name="山田 花子").tap()
    page.wait_for_url(re.compile(r"/dashboard/holders/NG2027-0001$"))
    timeline = page.locator("#timeline").inner_text()
    assert "回答" in timeline and "連絡" in timeline
    assert "アンケートへのご協力のお願い" in timeline  # the subject, not the template id
    assert "pulse_survey" not in timeline and "(sent)" not in timeline and "送信済み" in timeline
    assert re.search(r"\d{1,2}/\d{1,2}\([月火水木金土日]\) \d{2}:\d{2}", timeline)
    assert "内定日: 6/1(月)" in page.locator("main").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.locator("#pulse-scores").inner_text() == "4.67 → 2.33"
    assert "配属先について詳しく知りたいです。" in page.content()
    page.screenshot(path=str(ARTIFACTS / "05-holder-timeline.png"), full_page=True)


def test_expired_and_forged_links_look_right_on_a_phone(
    served: tuple[WebEnv, ServerThread], phone: Any
) -> None:
    import time_machine

    env, server = served
    touch_id = env.survey_touch(env.holder())
    with time_machine.travel(datetime.now(UTC).timestamp() - 15 * 86400):
        old = env.signer.survey_url(touch_id)
    response = phone.goto(old)
    assert response.status == 410
    assert "有効期限が切れています" in phone.locator("h1").inner_text()
    expired_text = phone.locator("main").inner_text()
    assert "ご連絡いただいたメッセージへの返信" not in expired_text
    assert "お送りしたご案内" in expired_text and "saiyo@example.co.jp" in expired_text
    phone.screenshot(path=str(ARTIFACTS / "06-expired.png"), full_page=True)
    response = phone.goto(f"{server.url}/s/forged.token.here")
    assert response.status == 403
    assert "saiyo@example.co.jp" in phone.locator("main").inner_text()
    phone.screenshot(path=str(ARTIFACTS / "07-forbidden.png"), full_page=True)
    response = phone.goto(env.signer.opt_out_url(1, "line"))
    assert response.status == 200
    confirm_text = phone.locator("main").inner_text()
    assert "入社手続きに必要なご連絡" in confirm_text and "停止後もお送りします" in confirm_text
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=str(ARTIFACTS / "08-opt-out-confirm.png"), full_page=True)
    with phone.expect_navigation():
        phone.get_by_role("button").tap()
    assert "LINEでのフォローのご案内を停止しました" in phone.locator("h1").inner_text()
    done_text = phone.locator("main").inner_text()
    assert "ご不便をおかけしました" not in done_text and "入社手続きに必要なご連絡" in done_text
    phone.screenshot(path=str(ARTIFACTS / "09-opt-out-done.png"), full_page=True)


def test_the_president_records_his_call_from_the_reminder_link_on_a_phone(
    served: tuple[WebEnv, ServerThread], phone: Any
) -> None:
    env, _server = served
    holder_id = env.holder(phone="090-1234-5678")
    with env.context.session() as session:
        touch = Touch(
            key="NG2027-0001:new_grad:initial:once:president_call",
            holder_id=holder_id,
            cadence="new_grad",
            phase="initial",
            seq=0,
            kind="manual",
            channel="phone",
            assignee="president@example.co.jp",
            note="社長から内定のお祝いの電話をする",
            due_at=NOW,
            status="reminded",
        )
        session.add(touch)
        session.flush()
        touch_id = touch.id
    phone.goto(env.signer.manual_url(touch_id))
    assert "山田 花子さんへのお電話" in phone.locator("h1").inner_text()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.locator("textarea[name=note]").fill("入社を楽しみにしているとのこと")
    phone.screenshot(path=str(ARTIFACTS / "10-manual-done-form.png"), full_page=True)
    with phone.expect_navigation():
        phone.get_by_role("button", name="実施済みにする").tap()
    assert phone.locator("h1").inner_text() == "記録しました"
    phone.screenshot(path=str(ARTIFACTS / "11-manual-done.png"), full_page=True)
    with env.context.session() as session:
        done = session.get(Touch, touch_id)
        assert done is not None and done.status == "done" and "入社を楽しみに" in (done.note or "")
