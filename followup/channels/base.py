"""The one interface every channel implements.

A channel turns an already-rendered :class:`OutboundMessage` into one provider call. It returns a
:class:`DeliveryResult` or raises :class:`DeliveryError`, saying whether a retry could help. Retries,
claiming and recording live in one shared place (``followup.delivery.deliver``), never in a channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class OutboundMessage:
    """Everything a channel needs to send one touch; built purely from the rendered template."""

    idempotency_key: str  # the touch key: stable across retries (Message-ID, X-Line-Retry-Key)
    channel: str  # "email" | "slack" | "line"
    recipient: str  # email address, Slack user id or LINE user id
    subject: str
    text: str
    html: str | None = None
    slack_blocks: list[dict[str, Any]] | None = None
    line_messages: list[dict[str, Any]] | None = None
    unsubscribe_url: str | None = None  # one-click opt-out target (RFC 8058 for email)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DeliveryResult:
    provider_id: str  # Message-ID, Slack ts, LINE sent-message id or outbox file name
    detail: str = ""


class DeliveryError(Exception):
    """A failed send. ``permanent`` errors are not retried; ``retry_after`` (seconds) is a hint."""

    def __init__(self, message: str, *, permanent: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class Channel(Protocol):
    name: str

    def send(self, message: OutboundMessage) -> DeliveryResult: ...
