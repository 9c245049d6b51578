"""The one interface every channel implements, and the one place that applies a channel's limits.

A channel is one module (registered by dotted path in :data:`followup.channels.CHANNELS`) whose class
declares everything about itself, so the rest of the product loops over the registry instead of naming
channels:

* ``name`` and ``label`` (the Japanese word HR sees: メール, Slack, LINE);
* ``address_field``: where a holder's address for this channel lives. When ``OfferHolder`` has a column
  of that name (``email``, ``line_user_id``, ``slack_user_id``) the column is used; any other name is a
  key of the holder's JSON ``addresses`` column (migration 0003), so a new channel needs no migration.
  The same name is the CSV column (plus ``address_aliases``) and the key in ``holders --json``;
* ``policy_model``: its section under ``channels:`` in the YAML (``channels.<name>``), a strict pydantic
  model whose secrets and endpoints are ``${ENV}`` references;
* ``from_policy(policy, env)``: the one constructor everything uses; it returns None when the
  environment does not configure the channel, and the outbox stands in;
* ``build_payload(message) -> dict``: the provider request body, pure (no network, no clock);
  ``default_parts``/``check_parts`` for its rich parts (``<name>.json.j2`` templates) and
  ``add_answer_buttons`` for survey answers inside the message;
* its limits as class attributes (``max_text_length``, ``max_parts``), applied by :meth:`Channel.fit`;
* ``short_form``: a chat channel (LINE, Slack) sends the template's short form (``short.j2``: a few
  lines and one button) instead of the email text, within its declared ``short_max_length``,
  ``short_max_lines`` and ``link_label_limit`` (checked where it is rendered, never cut), laid out by
  ``short_parts``;
* optionally an inbound part: ``verify(policy, headers, body, now, env)`` and ``parse(headers, body)``
  into normalized :class:`InboundEvent` objects (``POST /webhooks/<name>``).

``send(message)`` makes one provider call and returns a :class:`DeliveryResult` or raises
:class:`DeliveryError`, saying whether a retry could help. Retries, claiming and recording live in one
shared place (``followup.delivery.deliver``), never in a channel. This module imports nothing heavy:
provider SDKs are imported by the channel modules, and those only when a channel is used.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict

ENV_REF = re.compile(r"^\$\{([A-Z_][A-Z0-9_]*)\}$")
Part = dict[str, Any]


def _to_env_ref(value: Any) -> str:
    text = str(value)
    if not ENV_REF.match(text):
        raise ValueError(
            "secrets and endpoints come from the environment: write ${ENV_NAME} here, not the value itself"
        )
    return text


EnvRef = Annotated[str, BeforeValidator(_to_env_ref)]


def resolve_env(ref: str | None, env: Mapping[str, str] | None = None) -> str | None:
    """``${SMTP_URL}`` → the environment's value, or None when unset or empty."""
    if ref is None:
        return None
    match = ENV_REF.match(ref)
    if not match:
        return ref
    return (os.environ if env is None else env).get(match.group(1)) or None


class ChannelPolicy(BaseModel):
    """A channel's section of the YAML: unknown keys are errors, values immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


@dataclass(frozen=True)
class OutboundMessage:
    """Everything a channel needs to send one touch; built purely from the rendered template."""

    idempotency_key: str  # the touch key: stable across retries (Message-ID, X-Line-Retry-Key)
    channel: str  # a registered channel name
    recipient: str  # the holder's address on that channel
    subject: str
    text: str
    html: str | None = None
    parts: list[Part] | None = None  # the channel's rich parts: Slack blocks, LINE messages, …
    unsubscribe_url: str | None = None  # one-click opt-out target (RFC 8058 for email)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DeliveryResult:
    provider_id: str  # Message-ID, Slack ts, LINE sent-message id or outbox file name
    detail: str = ""


MAX_PROVIDER_DELAY = 86_400.0  # seconds: a provider's Retry-After is believed up to one day, no longer


def clamp_delay(seconds: float | None) -> float | None:
    """A provider's delay hint made safe to add to a datetime: finite, 0 to one day; None if unusable.

    ``Retry-After: 1e15`` once raised OverflowError inside the retry bookkeeping and left a touch claimed.
    """
    if seconds is None:
        return None
    try:
        value = float(seconds)
    except (TypeError, ValueError, OverflowError):
        return None
    if value != value:  # NaN
        return None
    return min(max(value, 0.0), MAX_PROVIDER_DELAY)


class DeliveryError(Exception):
    """A failed send. ``permanent`` errors are not retried; ``retry_after`` (seconds) is a hint, clamped
    to :data:`MAX_PROVIDER_DELAY`. ``in_doubt``: the provider may have accepted the message anyway (the
    line dropped after the request was complete, or the reply never came), so a blind resend could
    duplicate it."""

    def __init__(
        self, message: str, *, permanent: bool, retry_after: float | None = None, in_doubt: bool = False
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = clamp_delay(retry_after)
        self.in_doubt = in_doubt


@dataclass(frozen=True)
class Link:
    """The one button of a chat message: the short form's ``[label](url)`` line."""

    label: str
    url: str


@dataclass(frozen=True)
class AnswerChoice:
    label: str  # unclipped: each channel clips to its own button limit
    data: str  # ``s=TOKEN&q=QUESTION&v=VALUE`` (followup.engagement.buttons.encode_answer)


@dataclass(frozen=True)
class AnswerQuestion:
    id: str
    text: str
    choices: tuple[AnswerChoice, ...]


@dataclass(frozen=True)
class AnswerButtons:
    """A survey's scale questions as buttons, channel-neutral; ``form_url`` links the remaining questions."""

    questions: tuple[AnswerQuestion, ...]
    form_url: str | None = None
    form_label: str = ""


InboundKind = Literal["answer", "rsvp", "reply", "follow", "unfollow", "joined", "other"]

# A button payload starting with this is an event RSVP (``r=TOKEN&a=attending``), not a survey answer.
RSVP_PREFIX = "r="


def button_kind(data: str) -> InboundKind:
    """``rsvp`` for an RSVP button's payload, else ``answer`` (a survey scale button)."""
    return "rsvp" if data.startswith(RSVP_PREFIX) else "answer"


@dataclass(frozen=True)
class InboundEvent:
    """One thing a holder did on a channel, whatever the provider's payload looked like.

    ``answer``: a pressed answer button (``data`` is its payload); ``rsvp``: a pressed RSVP button
    (``data`` is ``r=TOKEN&a=ANSWER``); ``reply``: a message (``text``);
    ``follow``/``unfollow``: the holder (un)blocked the account (unfollow is an opt-out); ``joined``: the
    holder joined a group channel (``data`` is its id: the cohort channel, 内定者同士の交流); ``other``:
    nothing we act on.
    ``dedupe_key`` makes a provider's redelivery count once.
    """

    kind: InboundKind
    channel: str
    address: str | None  # the sender's address on the channel (matched to ``address_field``)
    at: float | None = None  # POSIX seconds, when the provider says; else the server's clock
    text: str = ""
    data: str = ""
    dedupe_key: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)  # what the timeline keeps


@dataclass(frozen=True)
class Inbound:
    """A parsed webhook body: its events, and the body to answer with (a URL verification challenge)."""

    events: tuple[InboundEvent, ...] = ()
    reply: dict[str, Any] | None = None  # answer exactly this (and record nothing)
    batch: bool = True  # the response lists one outcome per event (``outcomes``) or one (``outcome``)


# --- limits: the one place that applies them ---------------------------------------------------------


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def split_text(text: str, limit: int) -> list[str]:
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


def chunks(text: str, limit: int) -> list[str]:
    """Split at paragraph, then line, boundaries so no piece exceeds ``limit`` characters."""
    pieces: list[str] = []
    current = ""
    for para in text.split("\n"):
        while len(para) > limit:
            if current:
                pieces.append(current)
                current = ""
            pieces.append(para[:limit])
            para = para[limit:]
        candidate = f"{current}\n{para}" if current else para
        if len(candidate) > limit:
            pieces.append(current)
            current = para
        else:
            current = candidate
    if current.strip():
        pieces.append(current)
    return [p for p in pieces if p.strip()]


class Channel:
    """Base of every channel class; see the module docstring for what a channel declares."""

    name: str  # (not a ClassVar: the outbox instance stands in for one channel by name)
    label: ClassVar[str]
    address_field: ClassVar[str]
    address_aliases: ClassVar[tuple[str, ...]] = ()  # CSV header aliases (lower case)
    address_max_length: ClassVar[int] = 64
    policy_model: ClassVar[type[ChannelPolicy]] = ChannelPolicy
    template_key: ClassVar[str] = "parts"  # ``<name>.json.j2`` may be ``[...]`` or ``{template_key: [...]}``

    # Limits. ``max_text_length`` caps the body (or, with ``text_parts``, each text part);
    # ``max_parts`` caps the rich parts (blocks, messages per push).
    max_text_length: ClassVar[int | None] = None
    max_parts: ClassVar[int | None] = None
    text_parts: ClassVar[bool] = False  # the body travels as text parts ({"type": "text", "text": …})

    # The short form (``short.j2``): True for a chat channel, which sends it instead of the email text.
    # Its limits are what a person reads at a glance on a phone; a short form over them is refused
    # when it is rendered (check-config, send), never cut.
    short_form: ClassVar[bool] = False
    short_max_length: ClassVar[int] = 400  # characters, the button line not counted
    short_max_lines: ClassVar[int] = 6  # non-empty lines: the addressee and up to five more
    link_label_limit: ClassVar[int] = 20  # characters on the one button

    # construction ------------------------------------------------------------------------------------

    @classmethod
    def from_policy(cls, policy: Any, env: Mapping[str, str]) -> Channel | None:
        """The channel as ``policy`` (its YAML section) and ``env`` configure it, or None: use the outbox."""
        return None

    # sending -----------------------------------------------------------------------------------------

    # In doubt: how a send that may have been accepted is made safe to repeat. ``None``: any number of
    # resends is safe (the provider or the outbox drops a repeat of the same key); a number: at most that
    # many blind resends (email: once, with the same Message-ID), then the touch stays ``in_doubt``.
    # A channel that can look for an earlier send implements :meth:`find_sent` (Slack: message metadata).
    in_doubt_resends: ClassVar[int | None] = None

    def send(self, message: OutboundMessage) -> DeliveryResult:
        raise NotImplementedError

    def find_sent(self, message: OutboundMessage) -> DeliveryResult | None:
        """The earlier send of ``message`` if the provider shows one, else None (or not supported)."""
        return None

    def close(self) -> None:
        """Give back any connection kept between sends (a batch's SMTP session)."""

    @classmethod
    def fit(cls, message: OutboundMessage) -> OutboundMessage:
        """``message`` inside this channel's limits: text cut (or split into text parts), parts capped."""
        text, parts = message.text, message.parts
        limit, most = cls.max_text_length, cls.max_parts
        if cls.text_parts and limit is not None:
            if parts:
                parts = [
                    {**p, "text": truncate(p["text"], limit)}
                    if p.get("type") == "text" and isinstance(p.get("text"), str)
                    else p
                    for p in parts
                ]
            else:
                pieces = split_text(text, limit)
                if most is not None and len(pieces) > most:
                    pieces = [*pieces[: most - 1], truncate("".join(pieces[most - 1 :]), limit)]
                parts = [{"type": "text", "text": piece} for piece in pieces]
        elif limit is not None:
            text = truncate(text, limit)
        if parts and most is not None:
            parts = list(parts[:most])
        return replace(message, text=text, parts=parts)

    @classmethod
    def build_payload(cls, message: OutboundMessage) -> dict[str, Any]:
        """The provider request body for ``message`` (already fitted or not: fitting twice is harmless)."""
        fitted = cls.fit(message)
        payload: dict[str, Any] = {"to": fitted.recipient, "subject": fitted.subject, "text": fitted.text}
        if fitted.parts:
            payload["parts"] = fitted.parts
        return payload

    @classmethod
    def preview(cls, message: OutboundMessage, policy: Any | None) -> tuple[str, bytes]:
        """What the outbox writes instead of sending: (file extension, content)."""
        record = {
            "channel": cls.name,
            "idempotency_key": message.idempotency_key,
            "recipient": message.recipient,
            "subject": message.subject,
            "payload": cls.build_payload(message),
        }
        return "json", (json.dumps(record, ensure_ascii=False, indent=2) + "\n").encode("utf-8")

    # rich parts --------------------------------------------------------------------------------------

    @classmethod
    def default_parts(
        cls, subject: str, text: str, survey_url: str | None, labels: Mapping[str, str]
    ) -> list[Part] | None:
        """The parts built from the text when the message has no ``<name>.json.j2``; None: text only.
        A ``short_form`` channel builds :meth:`short_parts` from the short form instead."""
        return None

    @classmethod
    def short_parts(
        cls,
        subject: str,
        text: str,
        link: Link | None,
        labels: Mapping[str, str],
        opt_out_url: str | None = None,
    ) -> list[Part] | None:
        """The parts of the short form (its text and its one button); None: text only. ``opt_out_url``
        is the follow-up opt-out for this channel (None for essential notices and personal letters)."""
        return None

    @classmethod
    def check_parts(cls, parts: Sequence[Part]) -> str | None:
        """What is wrong with an HR-authored ``<name>.json.j2`` output, or None."""
        if cls.max_parts is not None and len(parts) > cls.max_parts:
            return f"{cls.label} allows at most {cls.max_parts} parts, got {len(parts)}"
        return None

    @classmethod
    def add_answer_buttons(cls, parts: list[Part] | None, buttons: AnswerButtons) -> list[Part] | None:
        """A survey touch's parts with answer buttons added; channels without buttons keep the link only."""
        return parts

    # inbound (optional) ------------------------------------------------------------------------------

    inbound: ClassVar[bool] = False  # True: ``POST /webhooks/<name>`` accepts this channel's webhooks

    @classmethod
    def verify(
        cls, policy: Any, headers: Mapping[str, str], body: bytes, now: float, env: Mapping[str, str]
    ) -> bool:
        """Whether the request is signed by the provider (checked before anything is parsed)."""
        return False

    @classmethod
    def parse(cls, headers: Mapping[str, str], body: bytes) -> Inbound:
        """The request body as normalized events; ``ValueError`` for a malformed body."""
        return Inbound()
