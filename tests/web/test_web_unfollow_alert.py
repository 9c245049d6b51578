"""Blocking the LINE account is an opt-out: when it was the holder's last channel, HR hears at once, as
after the web opt-out (issue 13); while another channel remains, HR is not disturbed."""

from __future__ import annotations

from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage

import pytest

from tests import web_fixtures
from tests.web.test_web_webhooks import line_event, line_post
from tests.web_fixtures import WebEnv

web = web_fixtures.web  # the fixture, used by name


@pytest.fixture(autouse=True)
def _embedded_channels(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SMTP_URL", "SLACK_BOT_TOKEN", "LINE_CHANNEL_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def _alerts(env: WebEnv) -> list[EmailMessage]:
    outbox = env.tmp_path / "var" / "outbox"
    files = sorted(outbox.glob("*.eml")) if outbox.is_dir() else []
    return [message_from_bytes(p.read_bytes(), policy=email_policy.default) for p in files]


def test_blocking_line_when_it_is_the_only_channel_alerts_hr_once(web: WebEnv) -> None:
    web.holder(email=None, line_user_id="U4af4980629")

    assert line_post(web, [line_event("unfollow", "01UF1")]).json()["outcomes"] == ["recorded"]
    assert line_post(web, [line_event("unfollow", "01UF1")]).json()["outcomes"] == ["duplicate"]

    mails = _alerts(web)
    assert sorted(str(m["To"]) for m in mails) == sorted(web.context.policy.report.weekly.to)
    assert all("すべての連絡手段で配信停止" in str(m["Subject"]) for m in mails)
    assert all("LINE" in m.get_content() for m in mails)


def test_blocking_line_while_email_remains_alerts_no_one(web: WebEnv) -> None:
    web.holder(line_user_id="U4af4980629")  # also has an email address

    assert line_post(web, [line_event("unfollow", "01UF2")]).json()["outcomes"] == ["recorded"]

    assert _alerts(web) == []
