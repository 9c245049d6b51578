"""The embedded default: write what would have been sent to a folder instead of a provider.

One file per touch, named from the idempotency key, written atomically: a retried or repeated send of
the same touch replaces its file, so the outbox shows each touch exactly once. What the file holds is
the channel's own :meth:`~followup.channels.base.Channel.preview` (``.eml`` for email, the would-be
request body as JSON for the others), so the outbox stands in for any registered channel.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from followup.channels import CHANNELS, channel_class
from followup.channels.base import Channel, DeliveryError, DeliveryResult, OutboundMessage
from followup.files import write_private

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def outbox_file_name(idempotency_key: str, extension: str) -> str:
    """A readable, filesystem-safe name; the hash keeps keys that sanitise alike apart."""
    readable = _UNSAFE.sub("_", idempotency_key).strip("._")[:80] or "touch"
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:12]
    return f"{readable}-{digest}.{extension}"


def _atomic_write(path: Path, data: bytes) -> None:
    write_private(path, data)  # 0600 in a 0700 folder: the outbox holds names and addresses


class OutboxChannel(Channel):
    """Stands in for ``channel_name``; ``policy`` is that channel's YAML section (email: the From)."""

    def __init__(self, directory: Path, channel_name: str, policy: Any | None = None) -> None:
        if channel_name not in CHANNELS:
            raise ValueError(f"outbox cannot stand in for channel {channel_name!r}")
        self.directory = Path(directory)
        self.name = channel_name
        self.channel = channel_class(channel_name)
        self.policy = policy

    def send(self, message: OutboundMessage) -> DeliveryResult:
        try:
            extension, data = self.channel.preview(message, self.policy)
        except (ValueError, TypeError) as exc:
            raise DeliveryError(f"cannot build {self.name} message: {exc}", permanent=True) from exc
        file_name = outbox_file_name(message.idempotency_key, extension)
        try:
            _atomic_write(self.directory / file_name, data)
        except OSError as exc:
            raise DeliveryError(f"outbox write failed: {exc}", permanent=False) from exc
        return DeliveryResult(provider_id=file_name, detail=str(self.directory / file_name))
