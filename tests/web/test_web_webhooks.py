"""Slack and LINE webhooks, signed with the providers' real algorithms (computed here independently)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

import pytest

from followup.db.models import ChannelOptOut, EngagementEvent, SurveyResponse
from followup.engagement.buttons import line_quick_reply, slack_survey_blocks
from tests import web_fixtures
from tests.web_fixtures import LINE_SECRET, SLACK_SECRET, WebEnv

# --- Slack ------------------------------------------------------------------------------------------------

web = web_fixtures.web  # the fixture, used by name


def slack_headers(body: bytes, *, secret: str = SLACK_SECRET, ts: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if ts is None else ts)
    base = f"v0:{stamp}:".encode() + body
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature}


def slack_post(env: WebEnv, payload: dict[str, Any], **kw: Any) -> Any:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **slack_headers(body, **kw)}
    return env.client.post("/webhooks/slack", content=body, headers=headers)


def slack_dm(
    event_id: str = "Ev0001", user: str = "U0HOLDER", text: str = "ありがとうございます!"
) -> dict[str, Any]:
    return {
        "type": "event_callback",
        "event_id": event_id,
        "event": {
            "type": "message",
            "channel_type": "im",
            "user": user,
            "text": text,
            "ts": "1782300000.000100",
            "channel": "D0001",
        },
    }


def slack_button(env: WebEnv, value: str, user: str = "U0HOLDER", trigger: str = "trig-1") -> Any:
    payload = {
        "type": "block_actions",
        "trigger_id": trigger,
        "user": {"id": user},
        "actions": [{"action_id": "survey_answer:motivation:2", "value": value, "type": "button"}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", **slack_headers(body)}
    return env.client.post("/webhooks/slack", content=body, headers=headers)


def test_slack_url_verification_echoes_the_challenge_when_signed(web: WebEnv) -> None:
    response = slack_post(
        web, {"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}
    )
    assert response.status_code == 200
    assert response.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}


def test_a_signed_slack_dm_from_a_holder_is_recorded_once_as_a_reply(web: WebEnv) -> None:
    holder_id = web.holder(slack_user_id="U0HOLDER")
    touch_id = web.survey_touch(holder_id, channel="slack")
    assert slack_post(web, slack_dm()).status_code == 200
    assert slack_post(web, slack_dm()).status_code == 200  # Slack retries: same event_id
    [event] = web.events("reply")
    assert (event.holder_id, event.channel, event.payload["text"]) == (
        holder_id,
        "slack",
        "ありがとうございます!",
    )
    assert event.touch_id == touch_id
    assert event.dedupe_key == "slack:Ev0001"


@pytest.mark.parametrize(
    "headers",
    [
        {},  # unsigned
        {"secret": "wrong-secret"},  # invalid
        {"ts_offset": -301},  # stale: outside the five-minute window
        {"ts_offset": +400},  # from the future
    ],
    ids=["unsigned", "wrong-secret", "stale", "future"],
)
def test_unsigned_invalid_or_stale_slack_requests_get_401_and_change_nothing(
    web: WebEnv, headers: dict[str, Any]
) -> None:
    web.holder(slack_user_id="U0HOLDER")
    body = json.dumps(slack_dm()).encode()
    if "ts_offset" in headers:  # computed now, not at collection time
        headers = {"ts": int(time.time()) + headers["ts_offset"]}
    sent = {"Content-Type": "application/json", **(slack_headers(body, **headers) if headers else {})}
    response = web.client.post("/webhooks/slack", content=body, headers=sent)
    assert response.status_code == 401
    assert web.count(EngagementEvent) == 0


def test_a_slack_body_changed_after_signing_is_refused(web: WebEnv) -> None:
    web.holder(slack_user_id="U0HOLDER")
    body = json.dumps(slack_dm()).encode()
    headers = {"Content-Type": "application/json", **slack_headers(body)}
    tampered = body.replace(b"Ev0001", b"Ev0002")
    assert web.client.post("/webhooks/slack", content=tampered, headers=headers).status_code == 401
    assert web.count(EngagementEvent) == 0


def test_without_a_signing_secret_every_slack_request_is_refused(
    web: WebEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLACK_SIGNING_SECRET")
    assert slack_post(web, {"type": "url_verification", "challenge": "x"}).status_code == 401


def test_a_slack_button_answers_one_question_of_the_survey(web: WebEnv) -> None:
    holder_id = web.holder(slack_user_id="U0HOLDER")
    touch_id = web.survey_touch(holder_id, channel="slack")
    blocks = slack_survey_blocks(web.context.policy.surveys["pulse"], web.signer.survey_token(touch_id))
    value = blocks[1]["elements"][1]["value"]  # motivation = 2
    assert slack_button(web, value).status_code == 200
    assert slack_button(web, value).status_code == 200  # a retried delivery counts once
    [row] = web.responses()
    assert row.answers == {"motivation": 2}
    assert row.score == 2.0
    assert len(web.events("answer")) == 1
    # the rest of the survey on the web form completes the same response
    form = {"motivation": "2", "anxiety": "3", "understanding": "4", "situation": "迷っている"}
    web.client.post(f"/s/{web.signer.survey_token(touch_id)}", data=form)
    [row] = web.responses()
    assert row.declining is True


def test_a_slack_button_pressed_by_someone_else_or_forged_records_nothing(web: WebEnv) -> None:
    touch_id = web.survey_touch(web.holder(slack_user_id="U0HOLDER"), channel="slack")
    blocks = slack_survey_blocks(web.context.policy.surveys["pulse"], web.signer.survey_token(touch_id))
    value = blocks[1]["elements"][4]["value"]
    assert slack_button(web, value, user="U0COLLEAGUE").json()["outcomes"] == ["not_the_holder"]
    forged = value.replace("v=5", "v=1").replace("s=", "s=x")
    assert slack_button(web, forged, trigger="t2").json()["outcomes"] == ["forged"]
    assert web.count(SurveyResponse) == 0


# --- LINE -------------------------------------------------------------------------------------------------


def line_post(
    env: WebEnv, events: list[dict[str, Any]], *, secret: str = LINE_SECRET, sign: bool = True
) -> Any:
    body = json.dumps({"destination": "Uxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "events": events}).encode()
    headers = {"Content-Type": "application/json"}
    if sign:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
        headers["X-Line-Signature"] = base64.b64encode(digest).decode()
    return env.client.post("/webhooks/line", content=body, headers=headers)


def line_event(kind: str, event_id: str, user: str = "U4af4980629", **extra: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "mode": "active",
        "timestamp": 1782000000000,
        "source": {"type": "user", "userId": user},
        "webhookEventId": event_id,
        "deliveryContext": {"isRedelivery": False},
        "replyToken": "nHuyWiB7yP5Zw52FIkcQobQuGDXCTA",
        **extra,
    }


def test_line_verify_request_with_no_events_is_accepted(web: WebEnv) -> None:
    assert line_post(web, []).status_code == 200


def test_a_signed_line_message_is_recorded_once_as_a_reply(web: WebEnv) -> None:
    holder_id = web.holder(line_user_id="U4af4980629")
    message = line_event(
        "message",
        "01FZ74A0TDDPYRVKNK77XKC3ZR",
        message={"type": "text", "id": "444573844083572737", "text": "質問があります"},
    )
    assert line_post(web, [message]).status_code == 200
    redelivered = {**message, "deliveryContext": {"isRedelivery": True}}
    assert line_post(web, [redelivered]).status_code == 200
    [event] = web.events("reply")
    assert (event.holder_id, event.channel, event.payload["text"]) == (holder_id, "line", "質問があります")


@pytest.mark.parametrize("case", ["unsigned", "wrong-secret"])
def test_unsigned_or_invalid_line_requests_get_401_and_change_nothing(web: WebEnv, case: str) -> None:
    web.holder(line_user_id="U4af4980629")
    message = line_event("message", "01A", message={"type": "text", "id": "1", "text": "x"})
    response = line_post(web, [message], sign=case != "unsigned", secret="not-the-secret")
    assert response.status_code == 401
    assert web.count(EngagementEvent) == 0


def test_a_line_postback_answers_the_first_scale_question(web: WebEnv) -> None:
    holder_id = web.holder(line_user_id="U4af4980629")
    touch_id = web.survey_touch(holder_id, channel="line")
    reply = line_quick_reply(web.context.policy.surveys["pulse"], web.signer.survey_token(touch_id))
    data = reply["items"][3]["action"]["data"]  # motivation = 4
    postback = line_event("postback", "01PB", postback={"data": data})
    assert line_post(web, [postback]).json()["outcomes"] == ["recorded"]
    assert line_post(web, [postback]).json()["outcomes"] == ["duplicate"]
    [row] = web.responses()
    assert row.answers == {"motivation": 4}


def test_unfollow_opts_out_of_line_and_following_again_lifts_it(web: WebEnv) -> None:
    holder_id = web.holder(line_user_id="U4af4980629")
    line_post(web, [line_event("unfollow", "01UF")])
    with web.context.session() as session:
        [opt_out] = session.query(ChannelOptOut).all()
        assert (opt_out.holder_id, opt_out.channel, opt_out.source) == (holder_id, "line", "line_unfollow")
    line_post(web, [line_event("follow", "01FO")])
    assert web.count(ChannelOptOut) == 0
    assert [e.kind for e in web.events()] == ["unfollow", "follow"]


def test_a_follow_from_an_unknown_line_user_is_kept_for_hr_to_match(web: WebEnv) -> None:
    line_post(web, [line_event("follow", "01NEW", user="Unew")])
    [event] = web.events("follow")
    assert event.holder_id is None and event.payload == {"userId": "Unew"}


def test_a_non_ascii_line_signature_gets_401_not_500(web: WebEnv) -> None:
    body = json.dumps({"destination": "U" + "x" * 32, "events": []}).encode()
    response = web.client.post(
        "/webhooks/line",
        content=body,
        headers={"Content-Type": "application/json", "X-Line-Signature": "é".encode()},
    )
    assert response.status_code == 401


# --- bad input: size, malformed signed bodies, replays without ids ------------------------------------------


def signed_slack(env: WebEnv, body: bytes, content_type: str = "application/json") -> Any:
    headers = {"Content-Type": content_type, **slack_headers(body)}
    return env.client.post("/webhooks/slack", content=body, headers=headers)


def signed_line(env: WebEnv, body: bytes) -> Any:
    digest = hmac.new(LINE_SECRET.encode(), body, hashlib.sha256).digest()
    headers = {"Content-Type": "application/json", "X-Line-Signature": base64.b64encode(digest).decode()}
    return env.client.post("/webhooks/line", content=body, headers=headers)


def test_a_body_over_the_cap_gets_413_before_it_is_read(web: WebEnv) -> None:
    big = b"x" * (1024 * 1024 + 1)
    response = web.client.post("/webhooks/slack", content=big, headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_a_streamed_body_without_a_length_is_cut_at_the_cap(web: WebEnv) -> None:
    sent = []

    def chunks() -> Any:
        for _ in range(64):  # 4 MiB offered in 64 KiB chunks; the route stops reading after 1 MiB
            sent.append(1)
            yield b"y" * 65536

    response = web.client.post(
        "/webhooks/line", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


DEEP = b"[" * 100_000 + b"]" * 100_000
MALFORMED_SLACK = [
    (b"[1, 2]", "application/json"),
    (b'{"type": "event_callback", "event": "x"}', "application/json"),
    (b'{"type": "event_callback", "event": {"type": "message", "user": ["U0HOLDER"]}}', "application/json"),
    (
        b'{"type": "event_callback", "event": {"type": "message", "user": "U0HOLDER", "ts": "1e400"}}',
        "application/json",
    ),
    (b'{"type": "event_callback", "event_id": "E", "event": ' + DEEP + b"}", "application/json"),
    (b"\xff\xfe\x00", "application/json"),
    (b"payload=not-json", "application/x-www-form-urlencoded"),
    (
        b"payload="
        + urlencode({"": json.dumps({"type": "block_actions", "user": "x", "actions": [1]})})[1:].encode(),
        "application/x-www-form-urlencoded",
    ),
]
MALFORMED_LINE = [
    b'{"events": [{"type": "message", "source": "x"}]}',
    b'{"events": [{"type": "postback", "timestamp": 1e400, "source": {"userId": "U1"}}]}',
    b'{"events": [{"type": "postback", "timestamp": 1' + b"0" * 400 + b', "source": {"userId": "U1"}}]}',
    b'{"events": [{"type": "message", "message": "x", "source": {"userId": "U1"}}]}',
    b'{"events": [{"type": "follow", "source": {"userId": {"a": 1}}}]}',
]


@pytest.mark.parametrize("body,content_type", MALFORMED_SLACK, ids=range(len(MALFORMED_SLACK)))
def test_a_signed_but_malformed_slack_body_gets_400_and_one_log_line(
    web: WebEnv, body: bytes, content_type: str, caplog: pytest.LogCaptureFixture
) -> None:
    response = signed_slack(web, body, content_type)
    assert response.status_code == 400
    assert web.count(EngagementEvent) == 0
    refused = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert len(refused) == 1 and refused[0].exc_info is None


@pytest.mark.parametrize("body", MALFORMED_LINE, ids=range(len(MALFORMED_LINE)))
def test_a_signed_but_malformed_line_body_gets_400_and_one_log_line(
    web: WebEnv, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    response = signed_line(web, body)
    assert response.status_code == 400
    assert web.count(EngagementEvent) == 0
    refused = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert len(refused) == 1 and refused[0].exc_info is None


def test_a_slack_event_without_an_event_id_is_recorded_once_however_often_it_is_replayed(
    web: WebEnv,
) -> None:
    web.holder(slack_user_id="U0HOLDER")
    event = slack_dm()
    del event["event_id"]
    for _ in range(3):
        assert slack_post(web, event).status_code == 200
    [recorded] = web.events("reply")
    assert (recorded.dedupe_key or "").startswith("slack:body:")


def test_a_replayed_line_event_without_a_webhook_event_id_is_recorded_once(web: WebEnv) -> None:
    web.holder(line_user_id="U4af4980629")
    event = line_event("follow", "unused")
    del event["webhookEventId"]
    body = json.dumps({"destination": "Uxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "events": [event]}).encode()
    for _ in range(3):
        assert signed_line(web, body).status_code == 200
    assert len(web.events("follow")) == 1
