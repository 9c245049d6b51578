"""Where a holder's address on each registered channel lives, read and written in one place.

A channel names its ``address_field``. When ``OfferHolder`` has a column of that name (``email``,
``line_user_id``, ``slack_user_id``) that column holds it; otherwise it is a key of the holder's JSON
``addresses`` column, so a new channel needs neither a model change nor a migration.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, and_, true

from followup.channels import channel_class, channel_names
from followup.db.models import OfferHolder

_COLUMNS = frozenset(c.name for c in OfferHolder.__table__.columns) - {"addresses"}


def address_field(channel: str) -> str:
    return channel_class(channel).address_field


def has_column(field: str) -> bool:
    return field in _COLUMNS


def address_fields() -> dict[str, str]:
    """channel name → address field, in registry order."""
    return {name: address_field(name) for name in channel_names()}


def address_of(holder: Any, channel: str) -> str | None:
    """``holder``'s address on ``channel`` (an OfferHolder, or any row with the same attribute names)."""
    field = address_field(channel)
    if has_column(field):
        value = getattr(holder, field, None)
    else:
        value = (getattr(holder, "addresses", None) or {}).get(field)
    return str(value) if value else None


def addresses_of(holder: Any) -> dict[str, str | None]:
    """channel name → address (None when there is none), for every registered channel."""
    return {name: address_of(holder, name) for name in channel_names()}


def set_address(holder: OfferHolder, field: str, value: str | None) -> None:
    if has_column(field):
        setattr(holder, field, value)
        return
    extra = dict(holder.addresses or {})
    if value is None:
        extra.pop(field, None)
    else:
        extra[field] = value
    holder.addresses = extra or None


def get_field(holder: OfferHolder, field: str) -> Any:
    return getattr(holder, field) if has_column(field) else (holder.addresses or {}).get(field)


def address_columns() -> list[Any]:
    """The columns to select so :func:`addresses_of` works on the rows (``addresses`` included)."""
    fields = dict.fromkeys(f for f in address_fields().values() if has_column(f))
    return [*(getattr(OfferHolder, f) for f in fields), OfferHolder.addresses]


def clear_addresses(holder: OfferHolder) -> None:
    """Every channel address removed (erasure)."""
    for field in address_fields().values():
        if has_column(field):
            setattr(holder, field, None)
    holder.addresses = None


def holder_with_address(channel: str, address: str) -> ColumnElement[bool]:
    """A WHERE clause: the holder whose address on ``channel`` is ``address``."""
    field = address_field(channel)
    if has_column(field):
        column: Any = getattr(OfferHolder, field)
        return and_(true(), column == address)
    return and_(OfferHolder.addresses.is_not(None), OfferHolder.addresses[field].as_string() == address)


def address_record(holder: Mapping[str, Any] | Any) -> dict[str, str | None]:
    """address field → value, for JSON records (``holders --json``)."""
    return {address_field(name): address_of(holder, name) for name in channel_names()}
