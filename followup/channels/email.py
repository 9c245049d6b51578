"""Email over SMTP: a pure message builder and a sender that classifies every SMTP failure.

Japanese mail clients show UTF-8 headers correctly only when they are RFC 2047 encoded. ``build_email``
(previews, and any unusual message) leaves that to the email package; ``email_bytes`` writes the channel's
one usual shape directly, because the package's folding was 40 % of a delivery's time.
``List-Unsubscribe`` / ``List-Unsubscribe-Post`` (RFC 2369, RFC 8058 one-click) are the exception: they go
out verbatim on one line, never folded or encoded, or the mailbox provider cannot read the URL.
The Message-ID is derived from the touch's idempotency key, so a retried send is recognisable downstream.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import smtplib
import ssl
import threading
import uuid
from collections.abc import Mapping
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import EmailPolicy as _StdlibEmailPolicy
from email.utils import formatdate
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import Field

from followup.channels.base import (
    Channel,
    ChannelPolicy,
    DeliveryError,
    DeliveryResult,
    EnvRef,
    OutboundMessage,
    resolve_env,
)

_TRUE = {"1", "true", "yes", "on"}
# Headers whose value is a list of <URI>s (RFC 2369) or a fixed token (RFC 8058): they must reach the mail
# client verbatim. The default policy folds any header longer than 78 characters and, when a single token
# (a long https URL) cannot be folded, RFC 2047-encodes it — and then no client can read the URL.
_VERBATIM_HEADERS = frozenset({"list-unsubscribe", "list-unsubscribe-post"})
_MAX_HEADER_LINE = 998  # RFC 5322 2.1.1: the hard limit of a line, CRLF excluded


class _MailPolicy(_StdlibEmailPolicy):
    """policy.SMTP, except that the List-Unsubscribe headers are written as they are, on one line."""

    def _verbatim(self, name: str, value: str) -> str | None:
        if name.lower() not in _VERBATIM_HEADERS:
            return None
        text = str(value)
        line = f"{name}: {text}"
        if not text.isascii() or "\r" in text or "\n" in text or len(line) > _MAX_HEADER_LINE:
            raise ValueError(f"{name} must be one line of ASCII up to {_MAX_HEADER_LINE} characters")
        return line + self.linesep

    def fold(self, name: str, value: str) -> str:
        return self._verbatim(name, value) or super().fold(name, value)

    def fold_binary(self, name: str, value: str) -> bytes:
        verbatim = self._verbatim(name, value)
        return verbatim.encode("ascii") if verbatim else super().fold_binary(name, value)


MAIL_POLICY = _MailPolicy(linesep="\r\n")  # the settings of policy.SMTP


def message_id_for(idempotency_key: str, sender: str) -> str:
    """A Message-ID that is the same for every attempt of one touch, under the sender's domain."""
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]
    domain = sender.rpartition("@")[2] or "followup"
    return f"<{digest}@{domain}>"


def build_email(message: OutboundMessage, sender: str, sender_name: str = "") -> EmailMessage:
    """Build the MIME message for one touch without touching the network or the clock.

    Text only when there is no HTML; otherwise multipart/alternative with text first, HTML last (the part
    clients prefer). ``Date`` is left to the sender so this stays a pure function of its inputs.
    """
    msg = EmailMessage(policy=MAIL_POLICY)
    msg["From"] = Address(display_name=sender_name, addr_spec=sender)
    msg["To"] = message.recipient
    msg["Subject"] = message.subject
    msg["Message-ID"] = message_id_for(message.idempotency_key, sender)
    msg["MIME-Version"] = "1.0"
    if message.unsubscribe_url:
        msg["List-Unsubscribe"] = f"<{message.unsubscribe_url}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for name, value in message.headers.items():
        del msg[name]
        msg[name] = value
    msg.set_content(message.text, charset="utf-8")
    if message.html is not None:
        msg.add_alternative(message.html, subtype="html", charset="utf-8")
    return msg


# --- the wire bytes, written directly ----------------------------------------------------------------------
# The email package's header folding (its parse tree, refolded for every header) was 40 % of a delivery's
# time. The messages the channel sends have one fixed shape, so their bytes are written here directly:
# RFC 2047 "B" encoded words for a non-ASCII subject and display name, base64 UTF-8 bodies. Anything
# outside that shape (extra headers, a non-ASCII address, a line break in a header, an unusual
# List-Unsubscribe) goes through build_email and the email package, errors included.

_WORD_BYTES = 39  # UTF-8 bytes per encoded word: 52 base64 chars, so "Subject: " + one word < 78
_PLAIN_HEADER = re.compile(r"[ -~]*")  # printable ASCII, no line breaks
_ATOM_PHRASE = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+(?: [A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+)*")
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+\-/=?^_`{|}~]+@[A-Za-z0-9.\-]+")
_MAX_LINE = 78
_NAME_BYTES = 45  # one encoded word of at most 75 characters (RFC 2047 2)


def _encoded_words(text: str) -> list[str]:
    """``text`` as RFC 2047 UTF-8 "B" encoded words, split between characters (never inside one)."""
    words: list[str] = []
    chunk = bytearray()
    for char in text:
        encoded = char.encode("utf-8")
        if len(chunk) + len(encoded) > _WORD_BYTES:
            words.append(f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?=")
            chunk = bytearray()
        chunk += encoded
    if chunk:
        words.append(f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?=")
    return words


def _unstructured(name: str, value: str) -> str:
    """One header line (folded if needed): verbatim when short printable ASCII, else encoded words."""
    if value.isascii() and _PLAIN_HEADER.fullmatch(value) and len(name) + 2 + len(value) <= _MAX_LINE:
        return f"{name}: {value}\r\n"
    return f"{name}: " + "\r\n ".join(_encoded_words(value)) + "\r\n"


def _plain_name(sender_name: str) -> bool:
    return _ATOM_PHRASE.fullmatch(sender_name) is not None and len(sender_name) <= 40


def _from_header(sender: str, sender_name: str) -> str | None:
    """The From line, or None when the display name is not one this writer handles: an ASCII name that
    needs quoting, or a name longer than one encoded word (decoders differ on the space between words
    inside a display name, so such names keep the email package's output)."""
    if not sender_name:
        return f"From: {sender}\r\n"
    if _plain_name(sender_name):
        return f"From: {sender_name} <{sender}>\r\n"
    if sender_name.isascii() or len(sender_name.encode("utf-8")) > _NAME_BYTES:
        return None
    data = base64.b64encode(sender_name.encode("utf-8")).decode("ascii")
    return f"From: =?utf-8?b?{data}?=\r\n <{sender}>\r\n"


def _body_part(text: str, subtype: str) -> str:
    """Content headers and the base64 body of one UTF-8 text part, with CRLF line ends as MIME wants."""
    lines = text.splitlines()
    data = ("\r\n".join(lines) + "\r\n").encode("utf-8")
    body = base64.encodebytes(data).decode("ascii").replace("\n", "\r\n")
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: base64\r\n\r\n' + body
    )


def _plain_or_japanese(value: str) -> bool:
    """Short printable ASCII (written as it is) or text with non-ASCII characters (encoded words).
    A long ASCII value is left to the email package, which folds it at its spaces."""
    if "\r" in value or "\n" in value:
        return False
    return not value.isascii() or (_PLAIN_HEADER.fullmatch(value) is not None and len(value) <= 60)


def _fast_shape(message: OutboundMessage, sender: str, sender_name: str) -> bool:
    """Whether ``email_bytes`` can write this message itself (else the email package does)."""
    url = message.unsubscribe_url
    return (
        not message.headers
        and _ADDRESS.fullmatch(sender) is not None
        and _ADDRESS.fullmatch(message.recipient) is not None
        and _plain_or_japanese(message.subject)
        and _from_header(sender, sender_name) is not None
        and (url is None or (_PLAIN_HEADER.fullmatch(url) is not None and len(url) < 900))
    )


def email_bytes(message: OutboundMessage, sender: str, sender_name: str, date: str) -> bytes:
    """The bytes to send for one touch, ``Date`` included: the same message as ``build_email`` builds
    (a mail client reads the same headers and parts), written without the email package's folding.

    Raises ValueError/TypeError as build_email does for what cannot be sent."""
    if not _fast_shape(message, sender, sender_name):
        msg = build_email(message, sender, sender_name)
        msg["Date"] = date
        return msg.as_bytes(policy=MAIL_POLICY)
    from_line = _from_header(sender, sender_name)
    assert from_line is not None  # _fast_shape checked it
    head = [
        from_line,
        f"To: {message.recipient}\r\n",
        _unstructured("Subject", message.subject),
        f"Message-ID: {message_id_for(message.idempotency_key, sender)}\r\n",
        "MIME-Version: 1.0\r\n",
    ]
    if message.unsubscribe_url:
        head.append(f"List-Unsubscribe: <{message.unsubscribe_url}>\r\n")
        head.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
    if message.html is None:
        content_headers, _, body = _body_part(message.text, "plain").partition("\r\n\r\n")
        return "".join([*head, content_headers, f"\r\nDate: {date}\r\n\r\n", body]).encode("ascii")
    boundary = f"==============={uuid.uuid4().int % 10**19:019d}=="  # base64 bodies cannot contain it
    return "".join(
        [
            *head,
            f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n',
            f"Date: {date}\r\n\r\n",
            f"--{boundary}\r\n",
            _body_part(message.text, "plain"),
            f"--{boundary}\r\n",
            _body_part(message.html, "html"),
            f"--{boundary}--\r\n",
        ]
    ).encode("ascii")


class SmtpSettings:
    """What an ``smtp://`` / ``smtps://`` URL says: where to connect, how to secure it, who to log in as."""

    def __init__(self, smtp_url: str) -> None:
        parts = urlsplit(smtp_url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError(f"SMTP URL must start with smtp:// or smtps://, got {parts.scheme!r}")
        if not parts.hostname:
            raise ValueError("SMTP URL has no host")
        query = parse_qs(parts.query)
        self.implicit_tls = parts.scheme == "smtps"
        self.starttls = not self.implicit_tls and query.get("starttls", ["0"])[0].lower() in _TRUE
        self.host = parts.hostname
        self.port = parts.port or (465 if self.implicit_tls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None


def _is_permanent(code: int) -> bool:
    return 500 <= code < 600


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else reply


def _classify(exc: Exception) -> DeliveryError:
    """Map an SMTP/socket failure to retry-or-not: 5xx replies are final, 4xx and network trouble are not."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        permanent = bool(codes) and all(_is_permanent(code) for code in codes)
        replies = "; ".join(f"{code} {_text(reply)}" for code, reply in exc.recipients.values())
        return DeliveryError(f"recipient refused: {replies}", permanent=permanent)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        # 535 (bad credentials) will not fix itself; 454 is the server's "try again later".
        return DeliveryError(f"SMTP authentication failed: {exc.smtp_code}", permanent=exc.smtp_code != 454)
    if isinstance(exc, (smtplib.SMTPConnectError, smtplib.SMTPHeloError)):
        # The relay, not this message, is unhappy (421 busy, 554 at greeting): another attempt may pass.
        return DeliveryError(f"SMTP relay refused the session: {exc.smtp_code}", permanent=False)
    if isinstance(exc, smtplib.SMTPResponseException):  # sender refused, DATA refused, other replies
        code = exc.smtp_code
        return DeliveryError(f"SMTP {code} {_text(exc.smtp_error)}", permanent=_is_permanent(code))
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return DeliveryError(f"SMTP server lacks a required extension: {exc}", permanent=True)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return DeliveryError(f"SMTP TLS certificate rejected: {exc}", permanent=True)
    # Connection refused, timeouts, disconnects, other TLS trouble: the relay may be back soon.
    return DeliveryError(f"SMTP unavailable: {type(exc).__name__}: {exc}", permanent=False)


class EmailPolicy(ChannelPolicy):
    """``channels.email``: the From of every message, and the relay (unset: the outbox)."""

    sender: str = Field(alias="from")
    sender_name: str = ""
    smtp_url: EnvRef | None = None


DATA_TIMEOUT = 600.0  # RFC 5321 4.5.3.2.6: wait 10 minutes for the reply to the DATA terminator


class SmtpInDoubt(Exception):
    """The whole message and its final "." went out, but no reply came (timeout, dropped line)."""


class EmailChannel(Channel):
    """Sends over one SMTP session per thread, reused for a batch and reopened after any error.

    Exactly once: everything before the final "." of DATA is safe to repeat (nothing was accepted), so a
    reused session that turns out to be dead is reopened and the message sent on the new one. Once the
    "." went out, a missing reply (``FOLLOWUP_SMTP_DATA_TIMEOUT``, RFC 5321's 10 minutes by default) or a
    dropped line leaves the message **in doubt**: the relay may have queued it. That is raised as
    ``DeliveryError(in_doubt=True)``; the shared retry policy resends an in-doubt email at most once, with
    the same Message-ID, and counts it.
    """

    name = "email"
    label = "メール"
    address_field = "email"
    address_aliases = ("メールアドレス", "メール")
    address_max_length = 320
    policy_model: ClassVar[type[ChannelPolicy]] = EmailPolicy
    in_doubt_resends: ClassVar[int | None] = 1

    @classmethod
    def from_policy(cls, policy: EmailPolicy, env: Mapping[str, str]) -> EmailChannel | None:
        smtp_url = resolve_env(policy.smtp_url, env)
        if not smtp_url:
            return None
        data_timeout = float(env.get("FOLLOWUP_SMTP_DATA_TIMEOUT") or DATA_TIMEOUT)
        return cls(smtp_url, policy.sender, policy.sender_name, data_timeout=data_timeout)

    @classmethod
    def build_payload(cls, message: OutboundMessage) -> dict[str, Any]:
        return {
            "to": message.recipient,
            "subject": message.subject,
            "text": message.text,
            "html": message.html,
        }

    @classmethod
    def preview(cls, message: OutboundMessage, policy: Any | None) -> tuple[str, bytes]:
        """The ``.eml`` a mail client can open."""
        sender = policy.sender if isinstance(policy, EmailPolicy) else "followup@localhost"
        sender_name = policy.sender_name if isinstance(policy, EmailPolicy) else ""
        msg = build_email(message, sender, sender_name)
        msg["Date"] = formatdate(localtime=True)
        return "eml", msg.as_bytes(policy=MAIL_POLICY)

    def __init__(
        self,
        smtp_url: str,
        sender: str,
        sender_name: str = "",
        timeout: float = 10,
        data_timeout: float = DATA_TIMEOUT,
    ) -> None:
        self.settings = SmtpSettings(smtp_url)
        self.sender = sender
        self.sender_name = sender_name
        self.timeout = timeout
        self.data_timeout = data_timeout
        self._local = threading.local()  # one session per thread (a worker's pool threads each have one)
        self.sessions_opened = 0

    def send(self, message: OutboundMessage) -> DeliveryResult:
        try:
            payload = email_bytes(message, self.sender, self.sender_name, formatdate(localtime=True))
        except (ValueError, TypeError) as exc:  # e.g. a header value with a line break
            raise DeliveryError(f"cannot build email: {exc}", permanent=True) from exc
        try:
            self._transmit(payload, message.recipient)
        except SmtpInDoubt as exc:
            self.close()
            raise DeliveryError(f"SMTP in doubt: {exc}", permanent=False, in_doubt=True) from exc
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise _classify(exc) from exc
        return DeliveryResult(provider_id=message_id_for(message.idempotency_key, self.sender))

    def _transmit(self, payload: bytes, recipient: str) -> None:
        smtp: smtplib.SMTP | None = getattr(self._local, "smtp", None)
        if smtp is not None:
            try:
                _send_in_session(smtp, payload, self.sender, [recipient], self.timeout, self.data_timeout)
                return
            except smtplib.SMTPServerDisconnected:
                # the kept session died while idle (the relay's own timeout, a restart): nothing of this
                # message was accepted yet, so open a new session and send it there
                self.close()
            except smtplib.SMTPException:
                raise  # a reply (4xx/5xx) about this message: classified, not resent here
            except OSError:  # reset or broken pipe before the end of DATA: the same as a dead session
                self.close()
        smtp = open_smtp(self.settings, timeout=self.timeout)
        self._local.smtp = smtp
        self.sessions_opened += 1
        _send_in_session(smtp, payload, self.sender, [recipient], self.timeout, self.data_timeout)

    def close(self) -> None:
        smtp: smtplib.SMTP | None = getattr(self._local, "smtp", None)
        self._local.smtp = None
        if smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
            with contextlib.suppress(OSError):
                smtp.close()


def open_smtp(settings: SmtpSettings, *, timeout: float) -> smtplib.SMTP:
    """A logged-in session to the relay: implicit TLS or STARTTLS and login as the URL says."""
    s = settings
    smtp: smtplib.SMTP
    if s.implicit_tls:
        smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=timeout, context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(s.host, s.port, timeout=timeout)
    try:
        smtp.ehlo_or_helo_if_needed()
        if s.starttls:
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if s.username is not None:
            smtp.login(s.username, s.password or "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def _send_in_session(
    smtp: smtplib.SMTP,
    payload: bytes,
    from_addr: str,
    to_addrs: list[str],
    timeout: float,
    data_timeout: float,
) -> None:
    """MAIL, RCPT, DATA on an open session, telling "not accepted" apart from "in doubt".

    Raises smtplib/OSError errors for anything before the final "." (safe to retry), and
    :class:`SmtpInDoubt` when the message was transmitted whole but no reply was read.
    """
    smtp.ehlo_or_helo_if_needed()
    options = ["BODY=8BITMIME"] if smtp.has_extn("8bitmime") and not payload.isascii() else []
    code, reply = smtp.mail(from_addr, options)
    if code != 250:
        smtp.rset()
        raise smtplib.SMTPSenderRefused(code, reply, from_addr)
    refused: dict[str, tuple[int, bytes]] = {}
    for address in to_addrs:
        code, reply = smtp.rcpt(address)
        if code not in (250, 251):
            refused[address] = (code, reply)
    if len(refused) == len(to_addrs):
        smtp.rset()
        raise smtplib.SMTPRecipientsRefused(refused)
    code, reply = smtp.docmd("data")
    if code != 354:
        smtp.rset()
        raise smtplib.SMTPDataError(code, reply)
    body = re.sub(rb"(?m)^\.", b"..", payload)  # dot-stuffing (RFC 5321 4.5.2), as smtplib does
    body = body if body.endswith(b"\r\n") else body + b"\r\n"
    try:
        smtp.send(body + b".\r\n")
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        # part of the message (perhaps all of it) went out: be conservative, it is in doubt
        raise SmtpInDoubt(f"line lost while sending DATA: {type(exc).__name__}: {exc}") from exc
    # from here on the relay has everything it needs to accept the message
    sock = smtp.sock
    try:
        if sock is not None:
            sock.settimeout(data_timeout)
        code, reply = smtp.getreply()
    except (smtplib.SMTPServerDisconnected, OSError) as exc:
        raise SmtpInDoubt(f"no reply to the end of DATA: {type(exc).__name__}: {exc}") from exc
    finally:
        if sock is not None and smtp.sock is not None:
            with contextlib.suppress(OSError):
                sock.settimeout(timeout)
    if code != 250:
        raise smtplib.SMTPDataError(code, reply)


def send_over_smtp(
    settings: SmtpSettings,
    msg: EmailMessage,
    *,
    timeout: float,
    from_addr: str | None = None,
    to_addrs: list[str] | None = None,
) -> None:
    """One SMTP session to the relay for one message (the weekly report): connect, send, QUIT."""
    smtp = open_smtp(settings, timeout=timeout)
    try:
        smtp.send_message(msg, from_addr=from_addr, to_addrs=to_addrs)
        # Once DATA is accepted the message is delivered: a failing QUIT must not turn into a retry.
        with contextlib.suppress(smtplib.SMTPException, OSError):
            smtp.quit()
    finally:
        smtp.close()
