"""LineChannel against the LINE Messaging API stand-in on 127.0.0.1, through the real httpx client."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from followup.channels.base import DeliveryError, OutboundMessage
from followup.channels.line import LineChannel, build_payload, retry_key_for
from tests.standins import control, free_port, read_jsonl, spawn
from tests.standins.fixtures import line_api_fixture  # noqa: F401
from tests.standins.line_api import DEFAULT_TOKEN, LineApi

USER = "U4af4980629a1b2c3d4e5f6a7b8c9d0e1"


def make_message(**overrides: object) -> OutboundMessage:
    fields: dict[str, object] = {
        "idempotency_key": "H-003:mid_career:monthly:2",
        "channel": "line",
        "recipient": USER,
        "subject": "近況のご確認",
        "text": "こんにちは。入社準備で気になることはありませんか？",
    }
    fields.update(overrides)
    return OutboundMessage(**fields)  # type: ignore[arg-type]


def channel_for(api: LineApi, token: str = DEFAULT_TOKEN) -> LineChannel:
    return LineChannel(token, base_url=api.base_url)


def test_it_pushes_the_text_to_the_user(line_api: LineApi) -> None:
    result = channel_for(line_api).send(make_message())

    assert line_api.count_for(USER) == 1
    pushed = line_api.records[0]
    assert pushed["messages"] == [
        {"type": "text", "text": "こんにちは。入社準備で気になることはありませんか？"}
    ]
    assert pushed["retry_key"] == retry_key_for("H-003:mid_career:monthly:2")
    assert result.provider_id


def test_it_sends_prepared_line_messages_as_they_are(line_api: LineApi) -> None:
    sticker = {"type": "sticker", "packageId": "446", "stickerId": "1988"}

    channel_for(line_api).send(make_message(parts=[{"type": "text", "text": "よろしく"}, sticker]))

    assert line_api.records[0]["messages"] == [{"type": "text", "text": "よろしく"}, sticker]


def test_it_uses_the_same_uuid_retry_key_for_every_attempt_of_a_touch() -> None:
    key = retry_key_for("H-003:mid_career:monthly:2")

    assert key == retry_key_for("H-003:mid_career:monthly:2")
    assert key != retry_key_for("H-003:mid_career:monthly:3")
    assert uuid.UUID(key).version == 5


def test_it_records_exactly_one_message_when_a_500_is_retried_with_the_same_key(line_api: LineApi) -> None:
    channel = channel_for(line_api)
    line_api.fail_next(1, status=500)

    with pytest.raises(DeliveryError) as caught:
        channel.send(make_message())
    assert caught.value.permanent is False

    channel.send(make_message())
    assert line_api.count_for(USER) == 1


def test_it_counts_an_already_accepted_retry_key_as_success(line_api: LineApi) -> None:
    channel = channel_for(line_api)
    first = channel.send(make_message())

    again = channel.send(make_message())  # e.g. the first response was lost and the worker retried

    assert line_api.count_for(USER) == 1
    assert again.provider_id == first.provider_id == line_api.records[0]["request_id"]
    assert "already accepted" in again.detail


def test_it_treats_an_invalid_user_id_as_permanent(line_api: LineApi) -> None:
    with pytest.raises(DeliveryError) as caught:
        channel_for(line_api).send(make_message(recipient="not-a-line-user"))

    assert caught.value.permanent is True
    assert "400" in str(caught.value)


def test_it_treats_a_wrong_token_as_permanent(line_api: LineApi) -> None:
    with pytest.raises(DeliveryError) as caught:
        channel_for(line_api, token="wrong").send(make_message())

    assert caught.value.permanent is True


def test_it_treats_a_429_as_transient(line_api: LineApi) -> None:
    line_api.fail_next(1, status=429)

    with pytest.raises(DeliveryError) as caught:
        channel_for(line_api).send(make_message())

    assert caught.value.permanent is False
    assert line_api.count_for(USER) == 0


def test_it_treats_an_unreachable_api_as_transient() -> None:
    channel = LineChannel(DEFAULT_TOKEN, base_url=f"http://127.0.0.1:{free_port()}")

    with pytest.raises(DeliveryError) as caught:
        channel.send(make_message())

    assert caught.value.permanent is False


def test_it_splits_long_text_into_messages_within_lines_limits(line_api: LineApi) -> None:
    text = "\n".join(["内定者フォローのご案内です。"] * 800)  # ~12,000 characters

    channel_for(line_api).send(make_message(text=text))

    messages = line_api.records[0]["messages"]
    assert len(messages) == 3
    assert all(len(m["text"]) <= LineChannel.max_text_length for m in messages)
    assert "".join(m["text"] for m in messages) == text


def test_it_cuts_what_does_not_fit_into_five_messages() -> None:
    text = "あ" * (LineChannel.max_text_length * 7)

    messages = build_payload(make_message(text=text))["messages"]

    assert len(messages) == LineChannel.max_messages_per_push
    assert all(len(m["text"]) <= LineChannel.max_text_length for m in messages)
    assert messages[-1]["text"].endswith("…")


def test_it_caps_prepared_messages_at_five_and_truncates_long_text() -> None:
    prepared = [{"type": "text", "text": "い" * 6000}] * 7

    messages = build_payload(make_message(parts=prepared))["messages"]

    assert len(messages) == 5
    assert all(len(m["text"]) == LineChannel.max_text_length for m in messages)


def test_it_works_with_the_stand_in_running_as_a_separate_process(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "line.jsonl"
    process = spawn("line_api", port, log)
    try:
        base_url = f"http://127.0.0.1:{port}"
        control(base_url, "fail", n=1)
        channel = LineChannel(DEFAULT_TOKEN, base_url=base_url)
        with pytest.raises(DeliveryError):
            channel.send(make_message())

        channel.send(make_message())
        channel.send(make_message())

        assert control(base_url, "state")["counts"] == {USER: 1}
        assert [record["recipient"] for record in read_jsonl(log)] == [USER]
    finally:
        process.terminate()
        process.wait(5)
