"""EmailChannel against a real aiosmtpd sink on 127.0.0.1, through the real smtplib client."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from followup.channels.base import DeliveryError, OutboundMessage
from followup.channels.email import EmailChannel, build_email, message_id_for
from tests.standins import free_port, spawn
from tests.standins.fixtures import smtp_sink_fixture  # noqa: F401
from tests.standins.smtp_sink import SmtpSink, read_log

SENDER = "hr@example.co.jp"
SENDER_NAME = "株式会社サンプル 人事部"
SUBJECT = "【内定者フォロー】入社までのご案内"
TEXT = "山田 太郎 様\n\n内定おめでとうございます。\n入社まで、月に一度ご連絡いたします。\n"
HTML = "<p>山田 太郎 様</p><p>内定おめでとうございます。</p>"


def make_message(**overrides: object) -> OutboundMessage:
    fields: dict[str, object] = {
        "idempotency_key": "H-001:new_grad:after_offer:3",
        "channel": "email",
        "recipient": "taro@example.com",
        "subject": SUBJECT,
        "text": TEXT,
        "html": HTML,
        "unsubscribe_url": "https://followup.example.com/u/abc?c=email",
    }
    fields.update(overrides)
    return OutboundMessage(**fields)  # type: ignore[arg-type]


def part_text(message: EmailMessage, subtype: str) -> str:
    part = message.get_body((subtype,))
    assert part is not None, f"no text/{subtype} part"
    return str(part.get_content())


def as_lf(text: str) -> str:
    return text.replace("\r\n", "\n")


def channel_for(sink: SmtpSink) -> EmailChannel:
    return EmailChannel(sink.url, SENDER, SENDER_NAME, timeout=5)


def test_it_delivers_a_japanese_message_that_decodes_to_the_original(smtp_sink: SmtpSink) -> None:
    result = channel_for(smtp_sink).send(make_message())

    assert smtp_sink.count_for("taro@example.com") == 1
    received = smtp_sink.messages[0].message()
    assert received["Subject"] == SUBJECT
    assert received["From"].addresses[0].display_name == SENDER_NAME
    assert received["From"].addresses[0].addr_spec == SENDER
    assert as_lf(part_text(received, "plain")) == TEXT  # MIME text travels with CRLF line ends
    assert as_lf(part_text(received, "html")).rstrip("\n") == HTML
    assert result.provider_id == received["Message-ID"]


def test_it_encodes_japanese_headers_for_mail_clients(smtp_sink: SmtpSink) -> None:
    channel_for(smtp_sink).send(make_message())

    raw_headers = smtp_sink.messages[0].data.split(b"\r\n\r\n", 1)[0]
    assert raw_headers.isascii()
    assert b"=?utf-8?" in raw_headers.lower()


def test_it_sends_text_and_html_as_alternatives(smtp_sink: SmtpSink) -> None:
    channel_for(smtp_sink).send(make_message())

    received = smtp_sink.messages[0].message()
    assert received.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in received.iter_parts()] == ["text/plain", "text/html"]


def test_it_sends_plain_text_alone_when_there_is_no_html() -> None:
    email = build_email(make_message(html=None), SENDER, SENDER_NAME)

    assert email.get_content_type() == "text/plain"


def test_it_adds_one_click_unsubscribe_headers(smtp_sink: SmtpSink) -> None:
    channel_for(smtp_sink).send(make_message())

    received = smtp_sink.messages[0].message()
    assert received["List-Unsubscribe"] == "<https://followup.example.com/u/abc?c=email>"
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_it_leaves_out_unsubscribe_headers_without_a_url() -> None:
    email = build_email(make_message(unsubscribe_url=None), SENDER)

    assert "List-Unsubscribe" not in email
    assert "List-Unsubscribe-Post" not in email


def test_it_adds_extra_headers_from_the_message() -> None:
    email = build_email(make_message(headers={"X-Followup-Touch": "T-42"}), SENDER)

    assert email["X-Followup-Touch"] == "T-42"


def test_it_derives_a_stable_message_id_from_the_idempotency_key() -> None:
    first = build_email(make_message(), SENDER, SENDER_NAME)
    again = build_email(make_message(), SENDER, SENDER_NAME)
    other = build_email(make_message(idempotency_key="H-001:new_grad:after_offer:4"), SENDER)

    assert (
        first["Message-ID"] == again["Message-ID"] == message_id_for("H-001:new_grad:after_offer:3", SENDER)
    )
    assert first["Message-ID"] != other["Message-ID"]
    assert first["Message-ID"].endswith("@example.co.jp>")


def test_it_logs_in_when_the_url_has_credentials() -> None:
    with SmtpSink(credentials=("relay", "s3cret")) as sink:
        channel_for(sink).send(make_message())

        assert sink.count_for("taro@example.com") == 1


def test_it_treats_rejected_credentials_as_permanent() -> None:
    with SmtpSink(credentials=("relay", "s3cret")) as sink:
        channel = EmailChannel(f"smtp://relay:wrong@127.0.0.1:{sink.port}", SENDER, timeout=5)

        with pytest.raises(DeliveryError) as caught:
            channel.send(make_message())

        assert caught.value.permanent is True
        assert sink.count_for("taro@example.com") == 0


def test_it_reports_a_refused_connection_as_transient() -> None:
    channel = EmailChannel(f"smtp://127.0.0.1:{free_port()}", SENDER, timeout=5)

    with pytest.raises(DeliveryError) as caught:
        channel.send(make_message())

    assert caught.value.permanent is False


def test_it_delivers_again_after_the_relay_comes_back(smtp_sink: SmtpSink) -> None:
    channel = channel_for(smtp_sink)
    smtp_sink.stop()

    with pytest.raises(DeliveryError) as caught:
        channel.send(make_message())
    assert caught.value.permanent is False

    smtp_sink.start()
    channel.send(make_message())
    assert smtp_sink.count_for("taro@example.com") == 1


def test_it_treats_a_550_recipient_as_permanent(smtp_sink: SmtpSink) -> None:
    with pytest.raises(DeliveryError) as caught:
        channel_for(smtp_sink).send(make_message(recipient="nobody@example.com"))

    assert caught.value.permanent is True
    assert "550" in str(caught.value)
    assert smtp_sink.messages == []


def test_it_refuses_a_header_with_a_line_break_as_permanent(smtp_sink: SmtpSink) -> None:
    with pytest.raises(DeliveryError) as caught:
        channel_for(smtp_sink).send(make_message(subject="件名\r\nBcc: victim@example.com"))

    assert caught.value.permanent is True
    assert smtp_sink.messages == []


@pytest.mark.parametrize(
    ("url", "host", "port", "implicit_tls", "starttls", "username", "password"),
    [
        ("smtp://mail.local:2525", "mail.local", 2525, False, False, None, None),
        ("smtp://u%40x:p%3Aw@relay:587?starttls=1", "relay", 587, False, True, "u@x", "p:w"),
        ("smtps://relay", "relay", 465, True, False, None, None),
        ("smtp://relay", "relay", 25, False, False, None, None),
    ],
)
def test_it_reads_every_smtp_url_form(
    url: str,
    host: str,
    port: int,
    implicit_tls: bool,
    starttls: bool,
    username: str | None,
    password: str | None,
) -> None:
    settings = EmailChannel(url, SENDER).settings

    assert (settings.host, settings.port, settings.implicit_tls, settings.starttls) == (
        host,
        port,
        implicit_tls,
        starttls,
    )
    assert (settings.username, settings.password) == (username, password)


def test_it_rejects_a_url_that_is_not_smtp() -> None:
    with pytest.raises(ValueError):
        EmailChannel("http://relay:25", SENDER)


def test_it_works_with_the_sink_running_as_a_separate_process(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "smtp.jsonl"
    process = spawn("smtp_sink", port, log, "--reject", "nobody@example.com")
    try:
        channel = EmailChannel(f"smtp://127.0.0.1:{port}", SENDER, SENDER_NAME, timeout=5)
        channel.send(make_message())
        with pytest.raises(DeliveryError) as caught:
            channel.send(make_message(recipient="nobody@example.com"))
        assert caught.value.permanent is True
    finally:
        process.terminate()
        process.wait(5)

    received = read_log(log)
    assert [mail.rcpt_tos for mail in received] == [["taro@example.com"]]
    assert received[0].message()["Subject"] == SUBJECT


PRODUCTION_OPT_OUT_URL = (
    "https://followup.recruit.sample-holdings.co.jp/opt-out/"
    "eyJoIjo0MjQyLCJjIjoiZW1haWwifQ.aQz7Ug.Xb3kLq9vR2mN8pT4wY6sJ1hF5dC0gA7eK3iU9oZ2yWl"
)


def test_list_unsubscribe_reaches_the_sink_verbatim_on_one_line(smtp_sink: SmtpSink) -> None:
    """RFC 8058 one-click: the raw header bytes on the wire carry the URL as-is, never RFC 2047-encoded
    or folded, however long the production URL is."""
    assert len(f"List-Unsubscribe: <{PRODUCTION_OPT_OUT_URL}>") > 78  # long enough to have been folded
    channel_for(smtp_sink).send(make_message(unsubscribe_url=PRODUCTION_OPT_OUT_URL))

    raw_headers = smtp_sink.messages[0].data.split(b"\r\n\r\n", 1)[0]
    lines = raw_headers.split(b"\r\n")
    assert f"List-Unsubscribe: <{PRODUCTION_OPT_OUT_URL}>".encode() in lines
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in lines
    assert b"=?utf-8?q?=3Chttp" not in raw_headers.lower()
    # the subject is still encoded for Japanese mail clients
    assert b"subject: =?utf-8?" in raw_headers.lower()
    received = smtp_sink.messages[0].message()
    assert received["List-Unsubscribe"] == f"<{PRODUCTION_OPT_OUT_URL}>"


def test_a_list_unsubscribe_url_that_cannot_be_one_line_is_refused() -> None:
    with pytest.raises(ValueError):
        build_email(make_message(unsubscribe_url="https://x.example/" + "a" * 1000), SENDER).as_bytes()
