"""Slack direct messages through the real Web API client.

slack-sdk's own retry handlers are switched off: a silent retry inside the client could post twice after
a lost response, and would hide 429s from the one shared retry policy (``followup.delivery.deliver``).
"""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from followup.channels.base import DeliveryError, DeliveryResult, OutboundMessage

SLACK_API_URL = "https://slack.com/api/"

# Errors that another attempt cannot fix: the person, the DM or our credentials are the problem.
PERMANENT_ERRORS = frozenset(
    {
        "user_not_found",
        "users_not_found",
        "channel_not_found",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "user_disabled",
        "cannot_dm_bot",
        "missing_scope",
        "not_allowed_token_type",
        "is_archived",
        "not_in_channel",
        "restricted_action",
        "msg_too_long",
        "no_text",
        "invalid_blocks",
        "invalid_blocks_format",
        "too_many_attachments",
        "invalid_arguments",
    }
)


def build_payload(message: OutboundMessage) -> dict[str, Any]:
    """The chat.postMessage body, minus the channel (known only after conversations.open)."""
    text = message.text
    if len(text) > SlackChannel.max_text_length:
        text = text[: SlackChannel.max_text_length - 1] + "…"
    payload: dict[str, Any] = {"text": text}
    if message.slack_blocks:
        payload["blocks"] = list(message.slack_blocks[: SlackChannel.max_blocks])
    return payload


def _retry_after(headers: dict[str, Any]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) else value
            try:
                return float(raw)
            except (TypeError, ValueError):
                return None
    return None


def _classify(exc: SlackApiError) -> DeliveryError:
    status = exc.response.status_code
    data = exc.response.data
    error = str(data.get("error", "")) if isinstance(data, dict) else ""
    if status == 429 or error == "ratelimited":
        return DeliveryError(
            "slack: rate limited", permanent=False, retry_after=_retry_after(dict(exc.response.headers))
        )
    if status >= 500:
        return DeliveryError(f"slack: HTTP {status} {error}".rstrip(), permanent=False)
    # Unknown errors stay transient: the shared retry policy caps attempts, so none of them loses a touch.
    return DeliveryError(f"slack: {error or f'HTTP {status}'}", permanent=error in PERMANENT_ERRORS)


class SlackChannel:
    """DMs one Slack user per touch: conversations.open, then chat.postMessage into that DM."""

    name = "slack"
    max_text_length = 40_000  # Slack truncates longer text
    max_blocks = 50  # chat.postMessage rejects more

    def __init__(self, token: str, base_url: str | None = None, timeout: int = 10) -> None:
        url = base_url or SLACK_API_URL
        if not url.endswith("/"):
            url += "/"
        self.client = WebClient(token=token, base_url=url, timeout=timeout, retry_handlers=[])
        self._dm_channels: dict[str, str] = {}  # user id -> DM channel id; stable, so cache per process

    def send(self, message: OutboundMessage) -> DeliveryResult:
        payload = build_payload(message)
        try:
            channel = self._open_dm(message.recipient)
            response = self.client.chat_postMessage(channel=channel, **payload)
        except SlackApiError as exc:
            self._dm_channels.pop(message.recipient, None)  # never let a stale DM id outlive an error
            raise _classify(exc) from exc
        except (SlackClientError, OSError) as exc:  # connection refused, timeout, reset
            raise DeliveryError(f"slack unreachable: {type(exc).__name__}: {exc}", permanent=False) from exc
        ts = str(response.get("ts", ""))
        return DeliveryResult(provider_id=f"{response.get('channel', channel)}:{ts}")

    def _open_dm(self, user_id: str) -> str:
        cached = self._dm_channels.get(user_id)
        if cached is not None:
            return cached
        response = self.client.conversations_open(users=user_id)
        channel = response.get("channel") or {}
        channel_id = str(channel.get("id", "")) if isinstance(channel, dict) else ""
        if not channel_id:
            raise DeliveryError("slack: conversations.open returned no channel id", permanent=False)
        self._dm_channels[user_id] = channel_id
        return channel_id
