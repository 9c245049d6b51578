"""A channel defined only here, registered by dotted path, goes through the whole product unchanged.

The fake "webhook" channel POSTs each touch as JSON to the holder's webhook URL; a loopback HTTP server
stands in for the receiver. Plan → deliver → opt out → erase, with no product module edited: the
registry is the only place that learns about it (``monkeypatch.setitem(CHANNELS, …)``).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import select

from followup.channels import CHANNELS
from followup.channels.base import Channel, ChannelPolicy, DeliveryError, DeliveryResult, OutboundMessage
from followup.db.addresses import address_of
from followup.db.models import ChannelOptOut, OfferHolder, Touch
from followup.delivery.deliver import deliver_touch
from followup.holders.erasure import erase_holder
from followup.labels import CHANNEL_LABELS
from followup.planning.store import plan_tick
from tests.delivery_fixtures import NOW, add_holder, copy_config, make_context


class WebhookPolicy(ChannelPolicy):
    """``channels.webhook`` in the YAML; nothing to configure but a timeout."""

    timeout: float = 5.0


class WebhookChannel(Channel):
    name = "webhook"
    label = "Webhook"
    address_field = "webhook_url"  # no column of that name: kept in offer_holders.addresses
    address_max_length = 500
    policy_model: ClassVar[type[ChannelPolicy]] = WebhookPolicy
    max_text_length = 1000

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout

    @classmethod
    def from_policy(cls, policy: WebhookPolicy, env: Mapping[str, str]) -> WebhookChannel:
        return cls(policy.timeout)

    @classmethod
    def build_payload(cls, message: OutboundMessage) -> dict[str, Any]:
        fitted = cls.fit(message)
        return {"key": fitted.idempotency_key, "subject": fitted.subject, "text": fitted.text}

    def send(self, message: OutboundMessage) -> DeliveryResult:
        try:
            response = httpx.post(message.recipient, json=self.build_payload(message), timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook unreachable: {exc}", permanent=False) from exc
        if response.status_code >= 400:
            raise DeliveryError(f"webhook: HTTP {response.status_code}", permanent=response.status_code < 500)
        return DeliveryResult(provider_id=response.headers.get("x-request-id", ""))


class Receiver:
    """The loopback HTTP server the webhook channel posts to."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.send_header("x-request-id", f"req-{len(receiver.bodies)}")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(CHANNELS, "webhook", f"{__name__}.WebhookChannel")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def webhook_first_config(tmp_path: Path) -> Path:
    """The example policy with the webhook channel first in every phase and its own YAML section."""
    path = copy_config(tmp_path)
    text = path.read_text(encoding="utf-8").replace("channels: [", "channels: [webhook, ")
    text = text.replace("channels:\n", "channels:\n  webhook:\n    timeout: 3\n", 1)
    path.write_text(text, encoding="utf-8")
    return path


def test_a_channel_defined_in_a_test_is_planned_delivered_opted_out_and_erased(
    webhook_registered: None, receiver: Receiver, tmp_path: Path
) -> None:
    context = make_context(tmp_path, f"sqlite:///{tmp_path / 'f.db'}", config=webhook_first_config(tmp_path))
    assert CHANNEL_LABELS["webhook"] == "Webhook"
    with context.session() as s:
        holder = add_holder(s, "NG-WH", email="hanako@example.ac.jp")
        holder.addresses = {"webhook_url": receiver.url}
        holder_id = holder.id

    # planned: on the webhook channel, the phases' first choice
    assert plan_tick(context, NOW).created > 0
    with context.session() as s:
        touches = list(s.scalars(select(Touch).where(Touch.kind != "manual").order_by(Touch.due_at)))
        assert touches and {t.channel for t in touches} == {"webhook"}
        first_id, due = touches[0].id, max(touches[0].due_at, NOW)

    # delivered: exactly one POST at the loopback server, however often the touch is delivered
    assert deliver_touch(context, first_id, now=due) == "sent"
    assert deliver_touch(context, first_id, now=due) == "skipped: already claimed/sent"
    assert len(receiver.bodies) == 1
    assert receiver.bodies[0]["key"] == touches[0].key
    with context.session() as s:
        assert s.get(Touch, first_id).provider_id == "req-1"  # type: ignore[union-attr]

    # opted out: the next touches are planned on the next channel of the phase (email)
    with context.session() as s:
        s.add(ChannelOptOut(holder_id=holder_id, channel="webhook", at=NOW, source="web"))
    assert plan_tick(context, NOW + timedelta(days=14)).created > 0
    with context.session() as s:
        pending = list(s.scalars(select(Touch).where(Touch.status == "planned", Touch.kind != "manual")))
        assert pending and {t.channel for t in pending} == {"email"}

    # erased: the webhook address goes with the rest of the personal data
    with context.session() as s:
        holder = s.get(OfferHolder, holder_id)
        assert holder is not None and address_of(holder, "webhook") == receiver.url
        erase_holder(s, holder, context.policy, now=NOW, actor="test")
    with context.session() as s:
        holder = s.get(OfferHolder, holder_id)
        assert holder is not None
        assert address_of(holder, "webhook") is None and holder.addresses is None
    assert len(receiver.bodies) == 1


def test_an_unregistered_channel_in_the_policy_is_a_config_error(tmp_path: Path) -> None:
    from followup.config import load_policy
    from followup.errors import UserInputError

    with pytest.raises(UserInputError, match="webhook"):
        load_policy(webhook_first_config(tmp_path))
