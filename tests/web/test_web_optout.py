"""Opt-out pages: GET asks, POST (or an RFC 8058 one-click POST) records; later sends skip that channel."""

from __future__ import annotations

import email
import re
from datetime import UTC, datetime
from email import policy as email_policy
from pathlib import Path

import pytest

from followup.db.models import ChannelOptOut, Touch
from followup.delivery.deliver import deliver_touch
from tests import web_fixtures
from tests.web_fixtures import WebEnv

NOW = datetime(2026, 6, 23, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo, a Tuesday

web = web_fixtures.web  # the fixture, used by name


def _message_touch(env: WebEnv, holder_id: int, seq: int, channel: str = "email") -> int:
    with env.context.session() as session:
        touch = Touch(
            key=f"{holder_id}:new_grad:initial:{seq}",
            holder_id=holder_id,
            cadence="new_grad",
            phase="initial",
            seq=seq,
            kind="message",
            channel=channel,
            template="checkin",
            due_at=NOW,
            status="planned",
        )
        session.add(touch)
        session.flush()
        return touch.id


def _outbox(env: WebEnv) -> Path:
    return env.tmp_path / "var" / "outbox"


@pytest.fixture(autouse=True)
def _embedded_channels(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SMTP_URL", "SLACK_BOT_TOKEN", "LINE_CHANNEL_ACCESS_TOKEN"):
        monkeypatch.delenv(name, raising=False)


def test_the_opt_out_link_asks_first_and_a_get_records_nothing(web: WebEnv) -> None:
    holder_id = web.holder()
    response = web.client.get(f"/opt-out/{web.signer.opt_out_token(holder_id, 'email')}")
    assert response.status_code == 200
    assert "メールでのフォローのご案内を停止しますか" in response.text
    assert '<form method="post"' in response.text
    assert web.count(ChannelOptOut) == 0


def test_the_unsubscribe_link_of_a_delivered_email_opts_out_in_one_click_and_later_mail_is_not_sent(
    web: WebEnv,
) -> None:
    holder_id = web.holder(line_user_id="U4af4980629")
    first = _message_touch(web, holder_id, 1)
    assert deliver_touch(web.context, first, now=NOW) == "sent"
    [eml] = list(_outbox(web).glob("*.eml"))
    message = email.message_from_bytes(eml.read_bytes(), policy=email_policy.default)
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = re.fullmatch(r"<(.+)>", str(message["List-Unsubscribe"]))
    assert url is not None
    path = url.group(1).removeprefix("http://testserver")

    # the mail client's one-click POST (RFC 8058)
    response = web.client.post(
        path,
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert "メールでのフォローのご案内を停止しました" in response.text
    with web.context.session() as session:
        [opt_out] = session.query(ChannelOptOut).all()
        assert (opt_out.holder_id, opt_out.channel, opt_out.source) == (holder_id, "email", "one_click")
    assert [(e.kind, e.channel) for e in web.events()] == [("opt_out", "email")]

    # the next touch planned on email goes out on LINE instead; no second email is written
    second = _message_touch(web, holder_id, 2)
    assert deliver_touch(web.context, second, now=NOW.replace(day=30)) == "sent"
    assert len(list(_outbox(web).glob("*.eml"))) == 1
    with web.context.session() as session:
        assert session.get(Touch, second).channel == "line"  # type: ignore[union-attr]


def test_opting_out_of_the_only_channel_leaves_the_holder_unreachable(web: WebEnv) -> None:
    holder_id = web.holder()
    token = web.signer.opt_out_token(holder_id, "email")
    assert web.client.post(f"/opt-out/{token}").status_code == 200
    again = web.client.post(f"/opt-out/{token}")
    assert "すでに停止しています" in again.text
    assert web.count(ChannelOptOut) == 1
    assert len(web.events("opt_out")) == 1
    touch_id = _message_touch(web, holder_id, 1)
    assert deliver_touch(web.context, touch_id, now=NOW) == "failed: unreachable"
    # nothing reached the holder; HR (the report's recipients) were alerted at once, once each
    mails = [
        email.message_from_bytes(p.read_bytes(), policy=email_policy.default)
        for p in _outbox(web).glob("*.eml")
    ]
    assert sorted(str(m["To"]) for m in mails) == sorted(web.context.policy.report.weekly.to)
    assert all("すべての連絡手段で配信停止" in str(m["Subject"]) for m in mails)


def test_forged_opt_out_links_get_403_and_change_nothing(web: WebEnv) -> None:
    holder_id = web.holder()
    touch_id = web.survey_touch(holder_id)
    for token in (
        "abc",
        web.signer.survey_token(touch_id),
        web.signer.opt_out_token(holder_id, "email") + "x",
    ):
        assert web.client.get(f"/opt-out/{token}").status_code == 403
        assert web.client.post(f"/opt-out/{token}", data={"List-Unsubscribe": "One-Click"}).status_code == 403
    assert web.count(ChannelOptOut) == 0
