"""Chromium at 390×844: a holder answers the 懇親会 RSVP from the link in a delivered invitation email;
HR opens the 出欠一覧 on the dashboard and downloads the CSV (CP932, Japanese headers)."""

from __future__ import annotations

import csv
import email
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy as email_policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from followup.db.models import EventRsvp, Touch
from followup.db.session import dispose_engines
from followup.delivery.deliver import deliver_touch
from followup.delivery.links import LinkSigner
from followup.web import create_app
from tests.services import free_port
from tests.web.test_web_browser import ARTIFACTS, phone
from tests.web_fixtures import DASHBOARD_TOKEN, ServerThread, WebEnv, make_web_context

pytestmark = pytest.mark.browser
phone = phone  # the fixture, used by name
NOW = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)  # 11/2 (月) 12:00 JST: before the deadline, in the send window


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[WebEnv, ServerThread]]:
    for name in ("SMTP_URL", "SLACK_BOT_TOKEN", "LINE_CHANNEL_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    port = free_port()
    context = make_web_context(tmp_path, base_url=f"http://127.0.0.1:{port}")
    server = ServerThread(create_app(context, clock=lambda: NOW), port)
    server.start()
    env = WebEnv(context, LinkSigner.from_settings(context.settings), None, tmp_path)  # type: ignore[arg-type]
    try:
        yield env, server
    finally:
        server.stop()
        dispose_engines()


def _invitation(env: WebEnv, holder_id: int) -> int:
    with env.context.session() as session:
        touch = Touch(
            key="NG2027-0001:new_grad:event:konshinkai:invitation",
            holder_id=holder_id,
            cadence="new_grad",
            phase="event",
            seq=-120,
            kind="message",
            channel="email",
            template="konshinkai_invite",
            event="konshinkai",
            due_at=NOW,
            status="planned",
        )
        session.add(touch)
        session.flush()
        return touch.id


def _rsvp_link_from_outbox(env: WebEnv, touch_id: int) -> str:
    assert deliver_touch(env.context, touch_id, now=NOW) == "sent"
    [eml] = list((env.tmp_path / "var" / "outbox").glob("*.eml"))
    message = email.message_from_bytes(eml.read_bytes(), policy=email_policy.default)
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert "【ご出欠のご回答】" in text
    match = re.search(r"http://127\.0\.0\.1:\d+/e/[A-Za-z0-9._-]+", text)
    assert match, "no RSVP link in the delivered email"
    return match.group(0)


def test_a_holder_answers_the_rsvp_on_a_phone_and_hr_downloads_the_roster(
    served: tuple[WebEnv, ServerThread], phone: Any
) -> None:
    env, server = served
    holder_id = env.holder(status="accepted")
    link = _rsvp_link_from_outbox(env, _invitation(env, holder_id))

    page = phone
    page.goto(link)
    assert page.locator("h1").inner_text() == "内定者懇親会"
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "no sideways scrolling on a phone"
    page.screenshot(path=str(ARTIFACTS / "events-01-rsvp-form.png"), full_page=True)
    page.locator("label:has(input[name=answer][value=attending])").tap()
    page.locator("#q_allergies").fill("えび")
    page.get_by_role("button", name="回答を送信する").tap()
    page.locator("#rsvp-done").wait_for()
    assert "「出席」で承りました" in page.locator("#rsvp-done").inner_text()
    page.screenshot(path=str(ARTIFACTS / "events-02-rsvp-done.png"), full_page=True)

    with env.context.session() as session:
        [row] = session.scalars(select(EventRsvp)).all()
        assert (row.status, row.seat, row.answers) == ("attending", 1, {"allergies": "えび"})

    # reopening shows the answer, and records nothing by itself
    page.goto(link)
    assert page.locator("input[name=answer][value=attending]").is_checked()

    # HR opens the 出欠一覧 and downloads the CSV
    page.goto(f"{server.url}/dashboard?token={DASHBOARD_TOKEN}")
    page.goto(f"{server.url}/dashboard/events/konshinkai")
    roster = page.locator("#roster tr[data-external-id='NG2027-0001']").inner_text()
    assert "出席" in roster and "えび" in roster
    page.screenshot(path=str(ARTIFACTS / "events-03-roster.png"), full_page=True)
    with page.expect_download() as info:
        page.locator("#roster-csv").click()
    raw = Path(info.value.path()).read_bytes()
    rows = list(csv.reader(io.StringIO(raw.decode("cp932"))))
    assert rows[0][:4] == ["内定者ID", "氏名", "部署", "回答"]
    assert rows[1][:4] == ["NG2027-0001", "山田 花子", "営業部", "出席"]
    bom = page.request.get(f"{server.url}/dashboard/events/konshinkai/roster.csv?encoding=utf-8-sig").body()
    assert next(csv.reader(io.StringIO(bom.decode("utf-8-sig")))) == rows[0]
