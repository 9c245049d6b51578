"""OutboxChannel: the embedded default writes each touch to exactly one file."""

from __future__ import annotations

import json
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from followup.channels.base import OutboundMessage
from followup.channels.email import EmailPolicy
from followup.channels.outbox import OutboxChannel

SUBJECT = "【内定者フォロー】懇親会のお知らせ"


def make_message(
    channel: str = "email", recipient: str = "taro@example.com", **overrides: object
) -> OutboundMessage:
    fields: dict[str, object] = {
        "idempotency_key": "H-001:new_grad:after_offer:1",
        "channel": channel,
        "recipient": recipient,
        "subject": SUBJECT,
        "text": "懇親会を開催します。",
        "html": "<p>懇親会を開催します。</p>",
        "unsubscribe_url": "https://followup.example.com/u/abc",
    }
    fields.update(overrides)
    return OutboundMessage(**fields)  # type: ignore[arg-type]


def test_it_writes_an_email_as_an_eml_file_mail_clients_can_open(tmp_path: Path) -> None:
    outbox = OutboxChannel(tmp_path, "email", EmailPolicy(sender="hr@example.co.jp", sender_name="人事部"))

    result = outbox.send(make_message())

    path = tmp_path / result.provider_id
    assert path.suffix == ".eml"
    parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert parsed["Subject"] == SUBJECT
    assert parsed["From"].addresses[0].display_name == "人事部"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    plain = parsed.get_body(("plain",))
    assert plain is not None
    assert plain.get_content().strip() == "懇親会を開催します。"


def test_it_overwrites_rather_than_duplicates_a_repeated_touch(tmp_path: Path) -> None:
    outbox = OutboxChannel(tmp_path, "email")

    first = outbox.send(make_message())
    second = outbox.send(make_message())

    assert first.provider_id == second.provider_id
    assert [p.name for p in tmp_path.iterdir()] == [first.provider_id]


def test_it_writes_one_file_per_touch(tmp_path: Path) -> None:
    outbox = OutboxChannel(tmp_path, "email")

    outbox.send(make_message())
    outbox.send(make_message(idempotency_key="H-001:new_grad:after_offer:2"))

    assert len(list(tmp_path.glob("*.eml"))) == 2


@pytest.mark.parametrize(
    ("channel", "recipient", "expected_payload_key"),
    [("slack", "U0HANAKO", "channel"), ("line", "U4af4980629a1b2c3d4e5f6a7b8c9d0e1", "to")],
)
def test_it_writes_chat_messages_as_the_json_that_would_have_been_sent(
    tmp_path: Path, channel: str, recipient: str, expected_payload_key: str
) -> None:
    outbox = OutboxChannel(tmp_path / "outbox", channel)

    result = outbox.send(make_message(channel, recipient))

    record = json.loads((tmp_path / "outbox" / result.provider_id).read_text(encoding="utf-8"))
    assert result.provider_id.endswith(".json")
    assert record["channel"] == channel
    assert record["payload"][expected_payload_key] == recipient
    assert "懇親会を開催します。" in json.dumps(record["payload"], ensure_ascii=False)


def test_it_makes_a_safe_file_name_from_any_key(tmp_path: Path) -> None:
    outbox = OutboxChannel(tmp_path, "line")

    result = outbox.send(make_message("line", "U1", idempotency_key="../../etc/passwd:内定"))

    assert "/" not in result.provider_id
    assert (tmp_path / result.provider_id).exists()


def test_it_leaves_no_temporary_files_behind(tmp_path: Path) -> None:
    OutboxChannel(tmp_path, "slack").send(make_message("slack", "U0HANAKO"))

    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp-")] == []
