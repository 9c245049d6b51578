"""SMTP sink on loopback (aiosmtpd), for the real smtplib client.

It can be stopped and started again on the same port to simulate a relay outage, reject chosen
recipients with 550 at RCPT, and check AUTH credentials (535 for wrong ones). For exactly-once tests it
can accept a message and then drop the line before the final reply (``drop_after_data_n``: the next n;
``drop_at``: the n-th message received), answer the end
of DATA slowly (``reply_delay``), and close a session after a number of messages (``close_sessions_after``:
a relay ending a reused connection mid-batch). It counts the SMTP sessions it saw.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.standins import HOST, add_common_args, free_port, read_jsonl, serve_until_signalled


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes  # the raw message as transmitted

    def message(self) -> EmailMessage:
        """The parsed message; with policy.default, header values come back decoded (RFC 2047)."""
        return message_from_bytes(self.data, policy=policy.default)


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address.lower() in self.sink.reject:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        sink = self.sink
        sink.accept(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content)))
        with sink.lock:
            drop = sink.drop_after_data_n > 0 or len(sink.messages) in sink.drop_at
            sink.drop_after_data_n -= 1 if sink.drop_after_data_n > 0 else 0
            sink.per_session[id(session)] += 1
            close = sink.close_sessions_after and sink.per_session[id(session)] >= sink.close_sessions_after
        if drop:  # queued, but the line drops before the 250: the client cannot know
            server.transport.abort()
            return "250 2.0.0 (never seen)"
        if sink.reply_delay:
            await asyncio.sleep(sink.reply_delay)
        if close:  # the relay ends this (reused) session right after answering: the 250 is written in
            # this step, the close runs next, before the client's next command can be read
            asyncio.get_running_loop().call_soon(server.transport.close)
        return "250 2.0.0 Message accepted for delivery"

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        with self.sink.lock:
            self.sink.sessions += 1
        return responses


class SmtpSink:
    def __init__(
        self,
        port: int | None = None,
        log_path: str | Path | None = None,
        reject: set[str] | None = None,
        credentials: tuple[str, str] | None = None,
        host: str = HOST,
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.log_path = Path(log_path) if log_path else None
        self.reject = {address.lower() for address in (reject or set())}
        self.credentials = credentials
        self.messages: list[ReceivedMail] = []
        self.counts: Counter[str] = Counter()
        self.drop_after_data_n = 0
        self.drop_at: set[int] = set()  # the n-th message received (1, 2, …): queued, then the line drops
        self.reply_delay = 0.0
        self.close_sessions_after = 0
        self.per_session: Counter[int] = Counter()
        self.sessions = 0  # EHLOs seen: one per SMTP session
        self.lock = threading.Lock()
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        """An smtp_url for EmailChannel (with the credentials, when AUTH is required)."""
        if self.credentials:
            return f"smtp://{self.credentials[0]}:{self.credentials[1]}@{self.host}:{self.port}"
        return f"smtp://{self.host}:{self.port}"

    def start(self) -> Self:
        kwargs: dict[str, Any] = {}
        if self.credentials is not None:
            # AUTH is checked when offered, not required: aiosmtpd warns on required AUTH without TLS.
            kwargs = {"authenticator": self._authenticate, "auth_require_tls": False}
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and self.credentials is not None
            and (auth_data.login.decode(), auth_data.password.decode()) == self.credentials
        )
        return AuthResult(success=ok, handled=False)

    def accept(self, mail: ReceivedMail) -> None:
        with self.lock:
            self.messages.append(mail)
            for rcpt in mail.rcpt_tos:
                self.counts[rcpt.lower()] += 1
            if self.log_path is not None:
                with self.log_path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(_log_record(mail), ensure_ascii=False) + "\n")

    def count_for(self, recipient: str) -> int:
        with self.lock:
            return self.counts[recipient.lower()]

    def count_message_id(self, message_id: str) -> int:
        with self.lock:
            return sum(1 for m in self.messages if str(m.message().get("Message-ID", "")) == message_id)

    def reset(self) -> None:
        with self.lock:
            self.messages.clear()
            self.counts.clear()
            self.drop_after_data_n = 0
            self.drop_at = set()
            self.reply_delay = 0.0
            self.close_sessions_after = 0
            self.sessions = 0


def _log_record(mail: ReceivedMail) -> dict[str, Any]:
    parsed = mail.message()
    return {
        "recipient": mail.rcpt_tos[0] if mail.rcpt_tos else "",
        "mail_from": mail.mail_from,
        "rcpt_tos": mail.rcpt_tos,
        "message_id": str(parsed.get("Message-ID", "")),
        "subject": str(parsed.get("Subject", "")),
        "received_at": time.time(),
        "raw_b64": base64.b64encode(mail.data).decode("ascii"),
    }


def read_log(path: str | Path) -> list[ReceivedMail]:
    """Messages a sink in another process wrote to its ``--log`` file."""
    return [
        ReceivedMail(r["mail_from"], r["rcpt_tos"], base64.b64decode(r["raw_b64"])) for r in read_jsonl(path)
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    parser.add_argument("--reject", action="append", default=[], help="answer RCPT for this address with 550")
    parser.add_argument("--auth", default=None, help="USER:PASSWORD accepted by AUTH")
    args = parser.parse_args(argv)
    credentials = None
    if args.auth:
        user, _, password = args.auth.partition(":")
        credentials = (user, password)
    sink = SmtpSink(args.port or None, args.log, set(args.reject), credentials, host=args.host)
    serve_until_signalled(sink.start, sink.stop, f"smtp sink listening on {sink.url}")


if __name__ == "__main__":
    main()
