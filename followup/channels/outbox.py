"""The embedded default: write what would have been sent to a folder instead of a provider.

One file per touch, named from the idempotency key, written atomically: a retried or repeated send of
the same touch replaces its file, so the outbox shows each touch exactly once.
"""

from __future__ import annotations

import hashlib
import json
import re
from email import policy
from email.utils import formatdate
from pathlib import Path
from typing import Any

from followup.channels import line, slack
from followup.channels.base import DeliveryError, DeliveryResult, OutboundMessage
from followup.channels.email import build_email
from followup.files import write_private

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def outbox_file_name(idempotency_key: str, extension: str) -> str:
    """A readable, filesystem-safe name; the hash keeps keys that sanitise alike apart."""
    readable = _UNSAFE.sub("_", idempotency_key).strip("._")[:80] or "touch"
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:12]
    return f"{readable}-{digest}.{extension}"


def _atomic_write(path: Path, data: bytes) -> None:
    write_private(path, data)  # 0600 in a 0700 folder: the outbox holds names and addresses


class OutboxChannel:
    """Stands in for ``channel_name``: ``.eml`` for email, the would-be request body as JSON for chat."""

    def __init__(
        self,
        directory: Path,
        channel_name: str,
        sender: str = "followup@localhost",
        sender_name: str = "",
    ) -> None:
        if channel_name not in ("email", "slack", "line"):
            raise ValueError(f"outbox cannot stand in for channel {channel_name!r}")
        self.directory = Path(directory)
        self.name = channel_name
        self.sender = sender
        self.sender_name = sender_name

    def send(self, message: OutboundMessage) -> DeliveryResult:
        try:
            if self.name == "email":
                file_name, data = self._email(message)
            else:
                file_name, data = self._chat(message)
        except (ValueError, TypeError) as exc:
            raise DeliveryError(f"cannot build {self.name} message: {exc}", permanent=True) from exc
        try:
            _atomic_write(self.directory / file_name, data)
        except OSError as exc:
            raise DeliveryError(f"outbox write failed: {exc}", permanent=False) from exc
        return DeliveryResult(provider_id=file_name, detail=str(self.directory / file_name))

    def _email(self, message: OutboundMessage) -> tuple[str, bytes]:
        msg = build_email(message, self.sender, self.sender_name)
        msg["Date"] = formatdate(localtime=True)
        return outbox_file_name(message.idempotency_key, "eml"), msg.as_bytes(policy=policy.SMTP)

    def _chat(self, message: OutboundMessage) -> tuple[str, bytes]:
        payload: dict[str, Any]
        if self.name == "slack":
            payload = {"channel": message.recipient, **slack.build_payload(message)}
        else:
            payload = line.build_payload(message)
        record = {
            "channel": self.name,
            "idempotency_key": message.idempotency_key,
            "recipient": message.recipient,
            "subject": message.subject,
            "payload": payload,
        }
        text = json.dumps(record, ensure_ascii=False, indent=2) + "\n"
        return outbox_file_name(message.idempotency_key, "json"), text.encode("utf-8")
