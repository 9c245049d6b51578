"""Channel registry: names map to dotted paths so a channel's dependencies load only when it is used.

Everything that needs "the channels" loops over :data:`CHANNELS` (through :func:`channel_names` or
:data:`MESSAGE_CHANNELS`, a live view); :func:`channel_class` imports one channel module on first use.
Adding a channel is one module and one line here (see CONTRIBUTING.md, "How to add a channel").
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from typing import cast, overload

from followup.channels.base import (
    Channel,
    DeliveryError,
    DeliveryResult,
    Inbound,
    InboundEvent,
    OutboundMessage,
)

# name -> "module.Class"; the order is the default preference order and the order lists are shown in
CHANNELS: dict[str, str] = {
    "email": "followup.channels.email.EmailChannel",
    "slack": "followup.channels.slack.SlackChannel",
    "line": "followup.channels.line.LineChannel",
}
OUTBOX = "followup.channels.outbox.OutboxChannel"  # the stand-in for any channel without credentials

_loaded: dict[str, type[Channel]] = {}


def _import(dotted: str) -> type[Channel]:
    module_name, _, class_name = dotted.rpartition(".")
    return cast("type[Channel]", getattr(importlib.import_module(module_name), class_name))


def channel_names() -> tuple[str, ...]:
    return tuple(CHANNELS)


def channel_class(name: str) -> type[Channel]:
    """Import the class registered under ``name``; unknown names raise KeyError naming the known ones."""
    try:
        dotted = CHANNELS[name]
    except KeyError:
        raise KeyError(f"unknown channel {name!r}; known: {', '.join(CHANNELS)}") from None
    cached = _loaded.get(dotted)
    if cached is None:
        cached = _loaded[dotted] = _import(dotted)
    return cached


def channel_classes() -> list[type[Channel]]:
    return [channel_class(name) for name in CHANNELS]


def load_channel_class(name: str) -> type[Channel]:
    """:func:`channel_class`, and ``"outbox"`` for the outbox class."""
    return _import(OUTBOX) if name == "outbox" else channel_class(name)


class _ChannelNames(Sequence[str]):
    """The registered channel names, read live (a channel registered later is included)."""

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return tuple(CHANNELS)[index]

    def __len__(self) -> int:
        return len(CHANNELS)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(CHANNELS))

    def __contains__(self, name: object) -> bool:
        return name in CHANNELS

    def __repr__(self) -> str:
        return repr(tuple(CHANNELS))


MESSAGE_CHANNELS: Sequence[str] = _ChannelNames()

__all__ = [
    "CHANNELS",
    "MESSAGE_CHANNELS",
    "Channel",
    "DeliveryError",
    "DeliveryResult",
    "Inbound",
    "InboundEvent",
    "OutboundMessage",
    "channel_class",
    "channel_classes",
    "channel_names",
    "load_channel_class",
]
