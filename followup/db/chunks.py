"""Long id lists in bounded pieces: one IN list per piece keeps every statement under the backends'
bind-parameter limits (PostgreSQL 65,535 a statement, older SQLite builds 32,766)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

ID_CHUNK = 30_000

Item = TypeVar("Item")


def in_chunks(items: Sequence[Item], size: int | None = None) -> Iterator[Sequence[Item]]:
    """``items`` in consecutive slices of at most ``size`` (default :data:`ID_CHUNK`)."""
    size = size or ID_CHUNK
    for start in range(0, len(items), size):
        yield items[start : start + size]
