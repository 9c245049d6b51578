"""Slack direct messages through the real Web API client, and Slack's inbound webhooks.

slack-sdk's own retry handlers are switched off: a silent retry inside the client could post twice after
a lost response, and would hide 429s from the one shared retry policy (``followup.delivery.deliver``).
slack-sdk is imported when a SlackChannel is built, so listing the channels stays cheap.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs

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
    chunks,
    resolve_env,
    truncate,
)

if TYPE_CHECKING:
    from slack_sdk.errors import SlackApiError

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
        hint = _retry_after(dict(exc.response.headers))
        wait = 30.0 if hint is None else hint  # Slack always sends Retry-After; be careful if not
        return DeliveryError("slack: rate limited", permanent=False, retry_after=wait)
    if status >= 500:
        return DeliveryError(f"slack: HTTP {status} {error}".rstrip(), permanent=False)
    # Unknown errors stay transient: the shared retry policy caps attempts, so none of them loses a touch.
    return DeliveryError(f"slack: {error or f'HTTP {status}'}", permanent=error in PERMANENT_ERRORS)


class SlackPolicy(ChannelPolicy):
    """``channels.slack``: the bot token and API URL (unset token: the outbox), the signing secret."""

    token: EnvRef | None = None
    api_url: EnvRef | None = None
    signing_secret: EnvRef | None = None


HEADER_LIMIT = 150
SECTION_LIMIT = 3000
BUTTON_TEXT_LIMIT = 75
REPLAY_WINDOW = 300  # seconds: an older or newer signed request is refused (no replays)
ACTION_PREFIX = "survey_answer"
METADATA_EVENT = "followup_touch"  # chat.postMessage metadata event_type; event_payload {"touch_key": …}
HISTORY_LOOKBACK = 200  # messages of the DM searched for an in-doubt touch's key


OPT_OUT_NOTE = (
    "今後のフォローのご案内の配信停止は<{url}|こちら>(入社手続きに必要なご連絡は、停止後もお送りします)"
)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackChannel(Channel):
    """DMs one Slack user per touch: conversations.open, then chat.postMessage into that DM."""

    name = "slack"
    label = "Slack"
    address_field = "slack_user_id"
    address_aliases = ("slackユーザーid", "slack id", "slackid")
    policy_model: ClassVar[type[ChannelPolicy]] = SlackPolicy
    template_key = "blocks"
    max_text_length = 40_000  # Slack truncates longer text
    max_parts = max_blocks = 50  # chat.postMessage rejects more
    inbound = True
    # The short form: one DM read in the sidebar preview and on a phone, then one button.
    short_form = True
    short_max_length = 400
    short_max_lines = 6
    link_label_limit = BUTTON_TEXT_LIMIT

    def __init__(self, token: str, base_url: str | None = None, timeout: int = 10) -> None:
        from slack_sdk import WebClient

        url = base_url or SLACK_API_URL
        if not url.endswith("/"):
            url += "/"
        self.client = WebClient(token=token, base_url=url, timeout=timeout, retry_handlers=[])
        self._dm_channels: dict[str, str] = {}  # user id -> DM channel id; stable, so cache per process

    @classmethod
    def from_policy(cls, policy: SlackPolicy, env: Mapping[str, str]) -> SlackChannel | None:
        token = resolve_env(policy.token, env)
        return cls(token, resolve_env(policy.api_url, env)) if token else None

    # payload -----------------------------------------------------------------------------------------

    @classmethod
    def build_payload(cls, message: OutboundMessage) -> dict[str, Any]:
        """The chat.postMessage body, minus the channel (known only after conversations.open). The touch
        key rides along as message metadata, so an in-doubt send can be found again (:meth:`find_sent`)."""
        fitted = cls.fit(message)
        payload: dict[str, Any] = {"text": fitted.text}
        if fitted.parts:
            payload["blocks"] = list(fitted.parts)
        payload["metadata"] = {
            "event_type": METADATA_EVENT,
            "event_payload": {"touch_key": message.idempotency_key},
        }
        return payload

    @classmethod
    def preview(cls, message: OutboundMessage, policy: Any | None) -> tuple[str, bytes]:
        record = {
            "channel": cls.name,
            "idempotency_key": message.idempotency_key,
            "recipient": message.recipient,
            "subject": message.subject,
            "payload": {"channel": message.recipient, **cls.build_payload(message)},
        }
        return "json", (json.dumps(record, ensure_ascii=False, indent=2) + "\n").encode("utf-8")

    @classmethod
    def default_parts(
        cls, subject: str, text: str, survey_url: str | None, labels: Mapping[str, str]
    ) -> list[Part] | None:
        return default_slack_blocks(
            subject, text, survey_url, labels.get("survey_button", "アンケートに回答する")
        )

    @classmethod
    def short_parts(
        cls,
        subject: str,
        text: str,
        link: Link | None,
        labels: Mapping[str, str],
        opt_out_url: str | None = None,
    ) -> list[Part] | None:
        """The short form, and under it a small grey line with the opt-out link: in Slack there is no
        other way to stop follow-up messages (LINE has blocking)."""
        blocks = short_slack_blocks(text, link)
        if opt_out_url:
            note = labels.get("chat_opt_out", OPT_OUT_NOTE)
            blocks.append(
                {"type": "context", "elements": [{"type": "mrkdwn", "text": note.format(url=opt_out_url)}]}
            )
        return blocks

    @classmethod
    def check_parts(cls, parts: Sequence[Part]) -> str | None:
        if len(parts) > cls.max_blocks:
            return f"Slack allows at most {cls.max_blocks} blocks, got {len(parts)}"
        return None

    @classmethod
    def add_answer_buttons(cls, parts: list[Part] | None, buttons: AnswerButtons) -> list[Part] | None:
        """The answer blocks after the message (the opt-out line stays last); a link button to the same
        page as the answer blocks' own form button is dropped (one button per page). The answer blocks
        are never cut."""
        kept = [p for p in parts or [] if not _only_links_to(p, buttons.form_url)]
        footer = [p for p in kept if p.get("type") == "context"]  # the opt-out line stays last
        body = [p for p in kept if p.get("type") != "context"]
        answers = answer_blocks(buttons)
        return [*body[: cls.max_blocks - len(answers) - len(footer)], *answers, *footer]

    # inbound -----------------------------------------------------------------------------------------

    @classmethod
    def verify(
        cls, policy: SlackPolicy, headers: Mapping[str, str], body: bytes, now: float, env: Mapping[str, str]
    ) -> bool:
        return verify_signature(
            resolve_env(policy.signing_secret, env),
            headers.get("x-slack-request-timestamp"),
            headers.get("x-slack-signature"),
            body,
            now,
        )

    @classmethod
    def parse(cls, headers: Mapping[str, str], body: bytes) -> Inbound:
        """Interactivity (form-encoded ``payload``: button presses) or the Events API (JSON: DMs)."""
        if headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            fields = parse_qs(body.decode("utf-8"))
            return Inbound(_button_events(json.loads(fields.get("payload", ["{}"])[0])), batch=True)
        envelope = json.loads(body or b"{}")
        if not isinstance(envelope, dict):
            raise ValueError("not an object")
        if envelope.get("type") == "url_verification":
            return Inbound(reply={"challenge": envelope.get("challenge", "")})
        if envelope.get("type") == "event_callback":
            return Inbound(_message_events(envelope) + _join_events(envelope), batch=False)
        return Inbound(batch=False)

    def send(self, message: OutboundMessage) -> DeliveryResult:
        from slack_sdk.errors import SlackApiError, SlackClientError

        payload = self.build_payload(message)
        posting = False
        try:
            channel = self._open_dm(message.recipient)
            posting = True
            response = self.client.chat_postMessage(channel=channel, **payload)
        except SlackApiError as exc:
            self._dm_channels.pop(message.recipient, None)  # never let a stale DM id outlive an error
            raise _classify(exc) from exc
        except (SlackClientError, OSError) as exc:  # connection refused, timeout, reset
            # a post whose answer never came may have been posted: in doubt (looked for before a resend)
            raise DeliveryError(
                f"slack unreachable: {type(exc).__name__}: {exc}", permanent=False, in_doubt=posting
            ) from exc
        ts = str(response.get("ts", ""))
        return DeliveryResult(provider_id=f"{response.get('channel', channel)}:{ts}")

    def find_sent(self, message: OutboundMessage) -> DeliveryResult | None:
        """The DM message carrying this touch's key in its metadata (an earlier, in-doubt send), if any.

        Slack has no idempotency key for chat.postMessage; metadata is the mark we can look for
        (``conversations.history`` with ``include_all_metadata``) before any resend.
        """
        from slack_sdk.errors import SlackApiError, SlackClientError

        try:
            channel = self._open_dm(message.recipient)
            seen, cursor = 0, None
            while seen < HISTORY_LOOKBACK:
                response = self.client.conversations_history(
                    channel=channel, include_all_metadata=True, limit=100, cursor=cursor
                )
                messages = response.get("messages") or []
                for item in messages:
                    metadata = item.get("metadata") if isinstance(item, dict) else None
                    payload = metadata.get("event_payload") if isinstance(metadata, dict) else None
                    if (
                        isinstance(payload, dict)
                        and metadata.get("event_type") == METADATA_EVENT  # type: ignore[union-attr]
                        and payload.get("touch_key") == message.idempotency_key
                    ):
                        return DeliveryResult(
                            provider_id=f"{channel}:{item.get('ts', '')}",
                            detail="found by metadata (earlier in-doubt send)",
                        )
                seen += len(messages)
                cursor = (response.get("response_metadata") or {}).get("next_cursor")
                if not messages or not cursor:
                    return None
        except SlackApiError as exc:
            self._dm_channels.pop(message.recipient, None)
            raise _classify(exc) from exc
        except (SlackClientError, OSError) as exc:
            raise DeliveryError(f"slack unreachable: {type(exc).__name__}: {exc}", permanent=False) from exc
        return None

    # a cohort channel (内定者同士の交流): invite holders, then introduce them --------------------------

    def invite(self, channel_id: str, user_ids: Sequence[str]) -> None:
        """``conversations.invite`` (Slack adds them at once). Someone already there is not an error."""
        from slack_sdk.errors import SlackApiError, SlackClientError

        try:
            self.client.conversations_invite(channel=channel_id, users=",".join(user_ids))
        except SlackApiError as exc:
            data = exc.response.data
            if isinstance(data, dict) and data.get("error") == "already_in_channel":
                return
            raise _classify(exc) from exc
        except (SlackClientError, OSError) as exc:
            raise DeliveryError(f"slack unreachable: {type(exc).__name__}: {exc}", permanent=False) from exc

    def post_to_channel(self, channel_id: str, text: str) -> str:
        """A plain ``chat.postMessage`` into a channel (the peer introduction); returns its ts."""
        from slack_sdk.errors import SlackApiError, SlackClientError

        try:
            response = self.client.chat_postMessage(
                channel=channel_id, text=truncate(text, self.max_text_length)
            )
        except SlackApiError as exc:
            raise _classify(exc) from exc
        except (SlackClientError, OSError) as exc:
            raise DeliveryError(f"slack unreachable: {type(exc).__name__}: {exc}", permanent=False) from exc
        return str(response.get("ts", ""))

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


build_payload = SlackChannel.build_payload


def default_slack_blocks(
    subject: str, text: str, survey_url: str | None, button_label: str = "アンケートに回答する"
) -> list[dict[str, Any]]:
    """Header + mrkdwn sections (Slack caps a section at 3000 chars) + a survey button when there is one."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": truncate(subject, HEADER_LIMIT), "emoji": True},
        }
    ]
    room = SlackChannel.max_blocks - len(blocks) - (1 if survey_url else 0)
    sections = chunks(_slack_escape(text), SECTION_LIMIT)[:room]
    blocks.extend({"type": "section", "text": {"type": "mrkdwn", "text": s}} for s in sections)
    if survey_url:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "open_survey",
                        "style": "primary",
                        "text": {"type": "plain_text", "text": button_label, "emoji": True},
                        "url": survey_url,
                    }
                ],
            }
        )
    return blocks


def short_slack_blocks(text: str, link: Link | None) -> list[dict[str, Any]]:
    """The short form as one mrkdwn section and (with a link) one primary button: no header, no raw URL."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": truncate(_slack_escape(text.strip()), SECTION_LIMIT)},
        }
    ]
    if link is not None:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "open_link",
                        "style": "primary",
                        "text": {"type": "plain_text", "text": link.label, "emoji": True},
                        "url": link.url,
                    }
                ],
            }
        )
    return blocks


def _only_links_to(block: Part, url: str | None) -> bool:
    """An actions block whose every element is a link button to ``url``."""
    elements = block.get("elements") if block.get("type") == "actions" else None
    return bool(url and elements and all(isinstance(e, dict) and e.get("url") == url for e in elements))


def answer_blocks(buttons: AnswerButtons) -> list[dict[str, Any]]:
    """For each scale question a section and an actions block with its buttons; then a link to the form.

    ``action_id`` is ``survey_answer:<question>:<value>`` (unique within the block, as Slack requires);
    ``value`` is the answer payload.
    """
    blocks: list[dict[str, Any]] = []
    for question in buttons.questions:
        blocks.append(
            {"type": "section", "text": {"type": "plain_text", "text": question.text, "emoji": True}}
        )
        blocks.append(
            {
                "type": "actions",
                "block_id": f"{ACTION_PREFIX}:{question.id}",
                "elements": [
                    {
                        "type": "button",
                        "action_id": f"{ACTION_PREFIX}:{question.id}:{value}",
                        "text": {
                            "type": "plain_text",
                            "text": truncate(choice.label, BUTTON_TEXT_LIMIT),
                            "emoji": True,
                        },
                        "value": choice.data,
                    }
                    for value, choice in enumerate(question.choices, start=1)
                ],
            }
        )
    if buttons.form_url:
        blocks.append(
            {
                "type": "actions",
                "block_id": f"{ACTION_PREFIX}:form",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "open_survey_form",
                        "text": {"type": "plain_text", "text": buttons.form_label, "emoji": True},
                        "url": buttons.form_url,
                    }
                ],
            }
        )
    return blocks


# --- inbound ---------------------------------------------------------------------------------------------


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Slack v0: ``"v0=" + hex(HMAC-SHA256(signing_secret, "v0:{timestamp}:{raw body}"))``."""
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    return "v0=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str | None,
    timestamp: str | None,
    sig: str | None,
    body: bytes,
    now: float,
    window: int = REPLAY_WINDOW,
) -> bool:
    """True only for a correctly signed request whose timestamp is within ``window`` seconds of ``now``."""
    if not secret or not timestamp or not sig:
        return False
    if not (timestamp.isascii() and timestamp.isdigit()) or abs(now - int(timestamp)) > window:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body).encode(), sig.encode())


def _button_events(payload: Any) -> tuple[InboundEvent, ...]:
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return ()
    user_id = (payload.get("user") or {}).get("id")
    trigger = payload.get("trigger_id") or payload.get("container", {}).get("message_ts") or ""
    events = []
    for action in payload.get("actions") or []:
        action_id = str(action.get("action_id", ""))
        if not action_id.startswith(ACTION_PREFIX + ":"):
            continue
        value = str(action.get("value", ""))
        events.append(
            InboundEvent(
                kind=button_kind(value),
                channel="slack",
                address=user_id,
                data=value,
                dedupe_key=f"slack:action:{trigger}:{action_id}" if trigger else None,
            )
        )
    return tuple(events)


def _join_events(envelope: dict[str, Any]) -> tuple[InboundEvent, ...]:
    """``member_joined_channel``: someone joined a channel the bot is in (the cohort channel)."""
    event = envelope.get("event") or {}
    if event.get("type") != "member_joined_channel" or not event.get("channel"):
        return ()
    event_id = envelope.get("event_id")
    channel = str(event.get("channel"))
    return (
        InboundEvent(
            kind="joined",
            channel="slack",
            address=event.get("user"),
            at=float(envelope["event_time"]) if isinstance(envelope.get("event_time"), int | float) else None,
            data=channel,
            dedupe_key=f"slack:{event_id}" if event_id else f"slack:join:{channel}:{event.get('user')}",
            payload={"channel": channel},
        ),
    )


def _message_events(envelope: dict[str, Any]) -> tuple[InboundEvent, ...]:
    event = envelope.get("event") or {}
    if event.get("type") != "message" or event.get("subtype") or event.get("bot_id"):
        return ()
    event_id = envelope.get("event_id")
    ts = event.get("ts")
    try:
        at = float(ts) if ts else None
    except ValueError:
        at = None
    return (
        InboundEvent(
            kind="reply",
            channel="slack",
            address=event.get("user"),
            at=at,
            text=str(event.get("text", ""))[:4000],
            dedupe_key=f"slack:{event_id}" if event_id else None,
            payload={"text": str(event.get("text", ""))[:4000], "ts": ts, "channel": event.get("channel")},
        ),
    )
