"""Channel registry: names map to dotted paths so a channel's dependencies load only when it is used."""

from __future__ import annotations

import importlib
from typing import cast

from followup.channels.base import Channel, DeliveryError, DeliveryResult, OutboundMessage

CHANNEL_CLASSES: dict[str, str] = {
    "email": "followup.channels.email.EmailChannel",
    "slack": "followup.channels.slack.SlackChannel",
    "line": "followup.channels.line.LineChannel",
    "outbox": "followup.channels.outbox.OutboxChannel",
}


def load_channel_class(name: str) -> type[Channel]:
    """Import the class registered under ``name``; unknown names raise KeyError naming the known ones."""
    try:
        dotted = CHANNEL_CLASSES[name]
    except KeyError:
        raise KeyError(f"unknown channel {name!r}; known: {', '.join(sorted(CHANNEL_CLASSES))}") from None
    module_name, _, class_name = dotted.rpartition(".")
    return cast("type[Channel]", getattr(importlib.import_module(module_name), class_name))


__all__ = [
    "CHANNEL_CLASSES",
    "Channel",
    "DeliveryError",
    "DeliveryResult",
    "OutboundMessage",
    "load_channel_class",
]
