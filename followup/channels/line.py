"""LINE push messages over httpx.

httpx rather than line-bot-sdk: it is already a dependency, and the parts that matter here, the status
code and the ``x-line-accepted-request-id`` header of a 409, are plain to read without unwrapping SDK
exceptions. Every push carries ``X-Line-Retry-Key`` (a UUID derived from the touch key), so LINE itself
refuses a second execution of the same touch with 409, which we count as success.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from followup.channels.base import (
    AnswerButtons,
    Channel,
    ChannelPolicy,
    DeliveryError,
    DeliveryResult,
    EnvRef,
    Inbound,
    InboundEvent,
    Link,
    OutboundMessage,
    Part,
    button_kind,
    resolve_env,
    truncate,
)

if TYPE_CHECKING:
    import httpx

LINE_API_URL = "https://api.line.me"
RETRY_KEY_NAMESPACE = uuid.UUID("6f1d3b0e-6c3a-5b7e-9f55-4c1e2a7d9b10")  # fixed forever: keys must not change
ALT_TEXT_LIMIT = 400
BUTTONS_TEXT_LIMIT = 160
LABEL_LIMIT = 20  # quick-reply button label
DATA_LIMIT = 300  # postback data
QUICK_REPLY_MAX = 13


def retry_key_for(idempotency_key: str) -> str:
    """The X-Line-Retry-Key of a touch: identical on every attempt, different for every touch."""
    return str(uuid.uuid5(RETRY_KEY_NAMESPACE, idempotency_key))


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None


class LinePolicy(ChannelPolicy):
    """``channels.line``: the access token and API URL (unset token: the outbox), the channel secret."""

    access_token: EnvRef | None = None
    channel_secret: EnvRef | None = None
    api_url: EnvRef | None = None


class LineChannel(Channel):
    """Pushes one touch to one LINE user id."""

    name = "line"
    label = "LINE"
    address_field = "line_user_id"
    address_aliases = ("lineユーザーid", "line id", "lineid")
    policy_model: ClassVar[type[ChannelPolicy]] = LinePolicy
    template_key = "messages"
    max_text_length = 5000  # per text message
    max_parts = max_messages_per_push = 5
    text_parts = True
    inbound = True
    # The short form: one talk bubble read on a phone (the lock screen shows its first lines), and a
    # card with the one button under it; a button label longer than LINE's 20 characters is refused.
    short_form = True
    short_max_length = 300
    short_max_lines = 6
    link_label_limit = LABEL_LIMIT

    def __init__(self, access_token: str, base_url: str | None = None, timeout: float = 10) -> None:
        self.base_url = (base_url or LINE_API_URL).rstrip("/")
        self.access_token = access_token
        self.timeout = timeout

    @classmethod
    def from_policy(cls, policy: LinePolicy, env: Mapping[str, str]) -> LineChannel | None:
        token = resolve_env(policy.access_token, env)
        return cls(token, resolve_env(policy.api_url, env)) if token else None

    # payload -----------------------------------------------------------------------------------------

    @classmethod
    def build_payload(cls, message: OutboundMessage) -> dict[str, Any]:
        """The push body, kept inside LINE's limits: long text is split, anything past the cap is cut."""
        fitted = cls.fit(message)
        return {"to": fitted.recipient, "messages": list(fitted.parts or [])}

    @classmethod
    def default_parts(
        cls, subject: str, text: str, survey_url: str | None, labels: Mapping[str, str]
    ) -> list[Part] | None:
        return default_line_messages(subject, text, survey_url, labels)

    @classmethod
    def short_parts(
        cls,
        subject: str,
        text: str,
        link: Link | None,
        labels: Mapping[str, str],
        opt_out_url: str | None = None,
    ) -> list[Part] | None:
        """No opt-out link in LINE: blocking the account is the opt-out (the unfollow webhook)."""
        return short_line_messages(subject, text, link)

    @classmethod
    def check_parts(cls, parts: Sequence[Part]) -> str | None:
        most, limit = cls.max_messages_per_push, cls.max_text_length
        if not 1 <= len(parts) <= most:
            return f"LINE sends 1 to {most} messages at once, got {len(parts)}"
        for i, message in enumerate(parts):
            if message["type"] == "text" and len(str(message.get("text", ""))) > limit:
                return f"LINE message {i + 1}: text longer than {limit} characters"
        return None

    @classmethod
    def add_answer_buttons(cls, parts: list[Part] | None, buttons: AnswerButtons) -> list[Part] | None:
        """Quick-reply buttons for the first scale question, on the last message."""
        messages = list(parts) if parts else None
        if messages:
            messages[-1] = {**messages[-1], "quickReply": quick_reply(buttons)}
        return messages

    # inbound -----------------------------------------------------------------------------------------

    @classmethod
    def verify(
        cls, policy: LinePolicy, headers: Mapping[str, str], body: bytes, now: float, env: Mapping[str, str]
    ) -> bool:
        return verify_signature(
            resolve_env(policy.channel_secret, env), headers.get("x-line-signature"), body
        )

    @classmethod
    def parse(cls, headers: Mapping[str, str], body: bytes) -> Inbound:
        data = json.loads(body or b"{}")
        events = data.get("events") if isinstance(data, dict) else None
        parsed = [_event(e) for e in (events if isinstance(events, list) else []) if isinstance(e, dict)]
        return Inbound(tuple(parsed))

    def send(self, message: OutboundMessage) -> DeliveryResult:
        import httpx

        headers = {
            "Authorization": f"Bearer {self.access_token}",
            "X-Line-Retry-Key": retry_key_for(message.idempotency_key),
        }
        try:
            response = httpx.post(
                f"{self.base_url}/v2/bot/message/push",
                json=self.build_payload(message),
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


build_payload = LineChannel.build_payload


def default_line_messages(
    subject: str, text: str, survey_url: str | None, labels: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """One text message (LINE caps it at 5000 chars) and, with a survey, a buttons template linking to it."""
    labels = labels or {
        "line_survey_text": "アンケートへのご協力をお願いいたします(所要時間:約1分)",
        "line_survey_label": "回答する",
    }
    body = truncate(f"{subject}\n\n{text}".strip(), LineChannel.max_text_length)
    messages: list[dict[str, Any]] = [{"type": "text", "text": body}]
    if survey_url:
        messages.append(
            {
                "type": "template",
                "altText": truncate(f"{labels['line_survey_text']} {survey_url}", ALT_TEXT_LIMIT),
                "template": {
                    "type": "buttons",
                    "text": truncate(labels["line_survey_text"], BUTTONS_TEXT_LIMIT),
                    "actions": [{"type": "uri", "label": labels["line_survey_label"], "uri": survey_url}],
                },
            }
        )
    return messages


def short_line_messages(subject: str, text: str, link: Link | None) -> list[dict[str, Any]]:
    """The short form as one text bubble, then (with a link) a buttons card titled by the subject whose
    one button opens the link: no raw URL in the bubble. Quick replies go on the last message."""
    messages: list[dict[str, Any]] = [{"type": "text", "text": text.strip()}]
    if link is not None:
        messages.append(
            {
                "type": "template",
                "altText": truncate(f"{link.label}: {link.url}", ALT_TEXT_LIMIT),
                "template": {
                    "type": "buttons",
                    "text": truncate(subject, BUTTONS_TEXT_LIMIT),
                    "actions": [{"type": "uri", "label": link.label, "uri": link.url}],
                },
            }
        )
    return messages


def quick_reply(buttons: AnswerButtons) -> dict[str, Any]:
    """A ``quickReply`` object: postback buttons for the first scale question (no items if none)."""
    if not buttons.questions:
        return {"items": []}
    items: list[dict[str, Any]] = []
    for choice in buttons.questions[0].choices:
        label = truncate(choice.label, LABEL_LIMIT)
        if len(choice.data) > DATA_LIMIT:
            raise ValueError(f"LINE postback data longer than {DATA_LIMIT} characters")
        items.append(
            {
                "type": "action",
                "action": {"type": "postback", "label": label, "data": choice.data, "displayText": label},
            }
        )
    return {"items": items[:QUICK_REPLY_MAX]}


# --- inbound ---------------------------------------------------------------------------------------------


def signature(secret: str, body: bytes) -> str:
    """``base64(HMAC-SHA256(channel_secret, raw body))``, as LINE sends in ``X-Line-Signature``."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_signature(secret: str | None, sig: str | None, body: bytes) -> bool:
    if not secret or not sig:
        return False
    return hmac.compare_digest(signature(secret, body).encode(), sig.encode())


def _event(event: dict[str, Any]) -> InboundEvent:
    kind = event.get("type")
    user_id = (event.get("source") or {}).get("userId")
    event_id = event.get("webhookEventId")
    dedupe = f"line:{event_id}" if event_id else None
    stamp = event.get("timestamp")
    at = stamp / 1000 if isinstance(stamp, int | float) else None
    if kind == "postback":
        data = str((event.get("postback") or {}).get("data", ""))
        return InboundEvent(button_kind(data), "line", user_id, at, data=data, dedupe_key=dedupe)
    if kind == "message":
        message = event.get("message") or {}
        text = message.get("text") if message.get("type") == "text" else f"[{message.get('type')}]"
        payload = {"text": str(text)[:5000], "message_id": message.get("id")}
        return InboundEvent(
            "reply", "line", user_id, at, text=str(text)[:5000], dedupe_key=dedupe, payload=payload
        )
    if kind in ("follow", "unfollow"):
        return InboundEvent(kind, "line", user_id, at, dedupe_key=dedupe, payload={"userId": user_id})
    return InboundEvent("other", "line", user_id, at)
