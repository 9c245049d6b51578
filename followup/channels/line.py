"""LINE push messages over httpx.

httpx rather than line-bot-sdk: it is already a dependency, and the parts that matter here, the status
code and the ``x-line-accepted-request-id`` header of a 409, are plain to read without unwrapping SDK
exceptions. Every push carries ``X-Line-Retry-Key`` (a UUID derived from the touch key), so LINE itself
refuses a second execution of the same touch with 409, which we count as success.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from followup.channels.base import DeliveryError, DeliveryResult, OutboundMessage

LINE_API_URL = "https://api.line.me"
RETRY_KEY_NAMESPACE = uuid.UUID("6f1d3b0e-6c3a-5b7e-9f55-4c1e2a7d9b10")  # fixed forever: keys must not change


def retry_key_for(idempotency_key: str) -> str:
    """The X-Line-Retry-Key of a touch: identical on every attempt, different for every touch."""
    return str(uuid.uuid5(RETRY_KEY_NAMESPACE, idempotency_key))


def _split_text(text: str, limit: int) -> list[str]:
    """Cut text into pieces of at most ``limit`` characters, preferring line breaks as cut points."""
    pieces: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", limit // 2, limit)
        cut = cut + 1 if cut != -1 else limit
        pieces.append(text[:cut])
        text = text[cut:]
    if text or not pieces:
        pieces.append(text)
    return pieces


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def build_payload(message: OutboundMessage) -> dict[str, Any]:
    """The push body, kept inside LINE's limits: long text is split, anything past the cap is cut."""
    max_len, max_count = LineChannel.max_text_length, LineChannel.max_messages_per_push
    messages: list[dict[str, Any]]
    if message.line_messages:
        messages = []
        for item in message.line_messages[:max_count]:
            if item.get("type") == "text" and isinstance(item.get("text"), str):
                item = {**item, "text": _truncate(item["text"], max_len)}
            messages.append(item)
    else:
        pieces = _split_text(message.text, max_len)
        if len(pieces) > max_count:
            pieces = [*pieces[: max_count - 1], _truncate("".join(pieces[max_count - 1 :]), max_len)]
        messages = [{"type": "text", "text": piece} for piece in pieces]
    return {"to": message.recipient, "messages": messages}


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None


class LineChannel:
    """Pushes one touch to one LINE user id."""

    name = "line"
    max_text_length = 5000  # per text message
    max_messages_per_push = 5

    def __init__(self, access_token: str, base_url: str | None = None, timeout: float = 10) -> None:
        self.base_url = (base_url or LINE_API_URL).rstrip("/")
        self.access_token = access_token
        self.timeout = timeout

    def send(self, message: OutboundMessage) -> DeliveryResult:
        headers = {
            "Authorization": f"Bearer {self.access_token}",
            "X-Line-Retry-Key": retry_key_for(message.idempotency_key),
        }
        try:
            response = httpx.post(
                f"{self.base_url}/v2/bot/message/push",
                json=build_payload(message),
                headers=headers,
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:  # connect refused, timeouts, broken responses
            raise DeliveryError(f"line unreachable: {type(exc).__name__}: {exc}", permanent=False) from exc
        return self._result(response)

    def _result(self, response: httpx.Response) -> DeliveryResult:
        status = response.status_code
        request_id = response.headers.get("x-line-request-id", "")
        # provider_id is the request id that executed the push, so a first send and a 409 on a retry
        # of the same touch record the same id; the sent-message ids go into detail.
        if status == 200:
            sent = _sent_message_ids(response)
            return DeliveryResult(provider_id=request_id or sent, detail=f"sent messages: {sent}")
        if status == 409 and "x-line-accepted-request-id" in response.headers:
            # An earlier attempt of this touch was accepted; LINE refused to send it twice.
            accepted = response.headers["x-line-accepted-request-id"]
            return DeliveryResult(provider_id=accepted, detail="already accepted (retry key)")
        reason = f"line: HTTP {status} {_error_message(response)}".rstrip()
        if status == 429:
            raise DeliveryError(reason, permanent=False, retry_after=_retry_after(response))
        if status >= 500 or status == 408:
            raise DeliveryError(reason, permanent=False)
        raise DeliveryError(reason, permanent=True)  # 400 bad user id or body, 401/403 token, 409 other


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _sent_message_ids(response: httpx.Response) -> str:
    sent = _json(response).get("sentMessages")
    if isinstance(sent, list) and sent and isinstance(sent[0], dict):
        return ",".join(str(item.get("id", "")) for item in sent if isinstance(item, dict))
    return ""


def _error_message(response: httpx.Response) -> str:
    return str(_json(response).get("message", ""))[:200]
