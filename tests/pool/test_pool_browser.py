"""The rejection mail's page in a real headless Chromium at 390×844: the rejection mail is delivered to the
outbox, its /r/ link opened, the box ticked and sent; consent is recorded once, with its source, on the
timeline and in the audit log. Screenshots go to test-artifacts/pool/."""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from email import policy as email_policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from followup.db.models import AuditEntry, HolderChange, OfferHolder, Touch
from followup.db.session import dispose_engines
from followup.delivery.deliver import deliver_touch
from followup.web import create_app
from tests.services import free_port
from tests.web_fixtures import REPO, ServerThread, make_web_context

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "test-artifacts" / "pool"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
NOW = datetime(2026, 6, 2, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo, a Tuesday


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, ServerThread]]:
    for name in ("SMTP_URL", "SLACK_BOT_TOKEN", "LINE_CHANNEL_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    port = free_port()
    context = make_web_context(tmp_path, base_url=f"http://127.0.0.1:{port}")
    server = ServerThread(create_app(context, clock=lambda: NOW), port)
    server.start()
    try:
        yield context, server
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


def test_a_rejected_candidate_consents_on_the_page_of_the_rejection_mail(
    served: tuple[Any, ServerThread], phone: Any
) -> None:
    context, _server = served
    with context.session() as session:
        holder = OfferHolder(
            external_id="R-001",
            name="佐藤 一郎",
            email="ichiro@example.jp",
            track="new_grad",
            offer_date=date(2026, 6, 1),
            start_date=date(2026, 6, 1),
            rejected_date=date(2026, 6, 1),
            status="rejected",
        )
        session.add(holder)
        session.flush()
        touch = Touch(
            key="R-001:pool:2026-06-01:rejection:0",
            holder_id=holder.id,
            cadence="pool",
            phase="rejection",
            seq=0,
            kind="message",
            channel="email",
            template="pool_rejection",
            due_at=NOW,
            status="planned",
        )
        session.add(touch)
        session.flush()
        holder_id, touch_id = holder.id, touch.id
    assert deliver_touch(context, touch_id, now=NOW) == "sent"
    (eml,) = (Path(context.settings.var_dir) / "outbox").rglob("*.eml")
    message = email.message_from_bytes(eml.read_bytes(), policy=email_policy.default)
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "お祈り" not in text and "佐藤様" in text and "キャリア相談サービス" in text
    (url,) = re.findall(r"http://127\.0\.0\.1:\d+/r/\S+", text)

    phone.goto(url)
    assert phone.locator("h1").inner_text() == "選考にご応募いただき、ありがとうございました"
    checkbox = phone.locator("input[name=consent]")
    assert checkbox.is_visible() and not checkbox.is_checked()
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing wider than the phone
    phone.screenshot(path=str(ARTIFACTS / "pool-consent.png"), full_page=True)
    with context.session() as session:
        assert session.get(OfferHolder, holder_id).consent_date is None  # opening the page records nothing

    phone.locator("button[type=submit]").click()  # not ticked: the browser itself asks for the tick
    assert phone.locator("h1").inner_text() == "選考にご応募いただき、ありがとうございました"
    checkbox.check()
    phone.locator("button[type=submit]").click()
    phone.wait_for_selector("text=ご同意ありがとうございました")
    phone.screenshot(path=str(ARTIFACTS / "pool-consent-done.png"), full_page=True)

    with context.session() as session:
        holder = session.get(OfferHolder, holder_id)
        assert (holder.consent_date, holder.consent_source) == (date(2026, 6, 2), "web")
        change = session.scalars(select(HolderChange).where(HolderChange.field == "consent_date")).one()
        assert change.source == "web" and change.new_value == "2026-06-02"
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "pool_consent")).one()
        assert audit.detail == {"external_id": "R-001", "source": "web", "date": "2026-06-02"}
    phone.goto(url)  # again: it says consent is recorded and offers the opt-out
    assert "ご同意いただいています" in phone.content()
    assert phone.locator("a[href*='/opt-out/']").count() == 1
