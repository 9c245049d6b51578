"""SlackChannel against the Slack Web API stand-in on 127.0.0.1, through the real slack-sdk WebClient."""

from __future__ import annotations

from pathlib import Path

import pytest

from followup.channels.base import DeliveryError, OutboundMessage
from followup.channels.slack import SlackChannel, build_payload
from tests.standins import control, free_port, read_jsonl, spawn
from tests.standins.fixtures import slack_api_fixture  # noqa: F401
from tests.standins.slack_api import DEFAULT_TOKEN, SlackApi

BLOCKS = [{"type": "section", "text": {"type": "mrkdwn", "text": "*内定おめでとうございます*"}}]


def make_message(**overrides: object) -> OutboundMessage:
    fields: dict[str, object] = {
        "idempotency_key": "H-002:new_grad:before_start:1",
        "channel": "slack",
        "recipient": "U0HANAKO",
        "subject": "入社前のご案内",
        "text": "花子さん、入社まであと8週間です。",
        "parts": BLOCKS,
    }
    fields.update(overrides)
    return OutboundMessage(**fields)  # type: ignore[arg-type]


def channel_for(api: SlackApi, token: str = DEFAULT_TOKEN) -> SlackChannel:
    return SlackChannel(token, base_url=api.api_url)


def test_it_posts_a_direct_message_with_text_and_blocks(slack_api: SlackApi) -> None:
    result = channel_for(slack_api).send(make_message())

    assert slack_api.count_for("U0HANAKO") == 1
    posted = slack_api.records[0]
    assert posted["channel"] == "DU0HANAKO"
    assert posted["text"] == "花子さん、入社まであと8週間です。"
    assert posted["blocks"] == BLOCKS
    assert result.provider_id == f"DU0HANAKO:{posted['ts']}"


def test_it_accepts_a_base_url_without_a_trailing_slash(slack_api: SlackApi) -> None:
    SlackChannel(DEFAULT_TOKEN, base_url=slack_api.api_url.rstrip("/")).send(make_message())

    assert slack_api.count_for("U0HANAKO") == 1


def test_it_turns_a_429_into_a_transient_error_with_retry_after(slack_api: SlackApi) -> None:
    slack_api.rate_limit(1, retry_after=1)

    with pytest.raises(DeliveryError) as caught:
        channel_for(slack_api).send(make_message())

    assert caught.value.permanent is False
    assert caught.value.retry_after == 1
    assert slack_api.requests == 1  # the client did not retry behind our back
    assert slack_api.count_for("U0HANAKO") == 0


def test_it_delivers_once_when_retried_after_a_429(slack_api: SlackApi) -> None:
    channel = channel_for(slack_api)
    slack_api.rate_limit(1)
    with pytest.raises(DeliveryError):
        channel.send(make_message())

    channel.send(make_message())

    assert slack_api.count_for("U0HANAKO") == 1


def test_it_treats_an_unknown_user_as_permanent(slack_api: SlackApi) -> None:
    slack_api.known_users = {"U0HANAKO"}

    with pytest.raises(DeliveryError) as caught:
        channel_for(slack_api).send(make_message(recipient="U0NOBODY"))

    assert caught.value.permanent is True
    assert "user_not_found" in str(caught.value)


def test_it_treats_a_wrong_token_as_permanent(slack_api: SlackApi) -> None:
    with pytest.raises(DeliveryError) as caught:
        channel_for(slack_api, token="xoxb-wrong").send(make_message())

    assert caught.value.permanent is True
    assert "invalid_auth" in str(caught.value)


def test_it_treats_a_server_error_as_transient(slack_api: SlackApi) -> None:
    slack_api.fail_next(1, status=503)

    with pytest.raises(DeliveryError) as caught:
        channel_for(slack_api).send(make_message())

    assert caught.value.permanent is False


def test_it_treats_an_unreachable_api_as_transient() -> None:
    channel = SlackChannel(DEFAULT_TOKEN, base_url=f"http://127.0.0.1:{free_port()}/api/")

    with pytest.raises(DeliveryError) as caught:
        channel.send(make_message())

    assert caught.value.permanent is False


def test_it_builds_a_payload_without_blocks_when_there_are_none() -> None:
    payload = build_payload(make_message(parts=None))
    assert "blocks" not in payload
    assert payload["text"] == "花子さん、入社まであと8週間です。"
    assert payload["metadata"]["event_type"] == "followup_touch"  # the touch key, for in-doubt lookups


def test_it_keeps_the_payload_within_slack_limits() -> None:
    many_blocks = [{"type": "divider"}] * (SlackChannel.max_blocks + 5)
    long_text = "あ" * (SlackChannel.max_text_length + 10)

    payload = build_payload(make_message(text=long_text, parts=many_blocks))

    assert len(payload["blocks"]) == SlackChannel.max_blocks
    assert len(payload["text"]) == SlackChannel.max_text_length


def test_it_works_with_the_stand_in_running_as_a_separate_process(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "slack.jsonl"
    process = spawn("slack_api", port, log)
    try:
        base_url = f"http://127.0.0.1:{port}"
        control(base_url, "rate_limit", n=1, retry_after=1)
        channel = SlackChannel(DEFAULT_TOKEN, base_url=f"{base_url}/api/")
        with pytest.raises(DeliveryError) as caught:
            channel.send(make_message())
        assert caught.value.retry_after == 1

        channel.send(make_message())

        assert control(base_url, "state")["counts"] == {"U0HANAKO": 1}
        assert [record["recipient"] for record in read_jsonl(log)] == ["U0HANAKO"]
    finally:
        process.terminate()
        process.wait(5)
