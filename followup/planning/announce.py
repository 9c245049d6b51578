"""Announcements (一斉配信): one message to every holder a filter selects, planned as ordinary touches.

Pure: who is selected, on which channel (the phase's preference list after missing addresses and
opt-outs) and when (the calendar and the send window applied per holder) is decided from plain data,
so the preview and the touches that are planned are one computation. The database edge is
:mod:`followup.planning.announce_store`; delivery then treats each touch like any other (caps, opt-outs
at send time, the exactly-once claim). The key ``announce:<name>:<external_id>`` makes a second run of the
same announcement plan nothing new.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from followup.calendar import BusinessCalendar
from followup.vocab import ACTIVE_STATUSES

FILTER_KEYS = ("track", "department", "status", "external_id")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
ANNOUNCE_PHASE = "announce"


class FilterError(ValueError):
    """A ``--to`` value that is not ``key=value`` with a known key."""


def parse_filters(values: Sequence[str]) -> dict[str, frozenset[str]]:
    """``["track=new_grad", "department=営業", "department=開発"]`` → {track: {new_grad}, department: {…}}.

    The same key twice means either value; different keys must all match. Values may be
    comma-separated (``department=営業,開発``)."""
    found: dict[str, set[str]] = {}
    for value in values:
        key, sep, wanted = value.partition("=")
        key = key.strip()
        if not sep or key not in FILTER_KEYS or not wanted.strip():
            raise FilterError(
                f"bad --to {value!r}: expected KEY=VALUE with KEY one of {', '.join(FILTER_KEYS)} "
                "(e.g. --to track=new_grad --to department=営業)"
            )
        found.setdefault(key, set()).update(v.strip() for v in wanted.split(",") if v.strip())
    if not found:
        raise FilterError("say who receives it: at least one --to KEY=VALUE (e.g. --to track=new_grad)")
    return {key: frozenset(v) for key, v in found.items()}


def key_for(name: str, external_id: str) -> str:
    """The touch key of one recipient of announcement ``name``: the same on every run."""
    return f"announce:{name}:{external_id}"


@dataclass(frozen=True, slots=True)
class Candidate:
    """One holder as the announcement sees them (no ORM object crosses this line)."""

    id: int
    external_id: str
    name: str
    track: str
    department: str | None
    status: str
    reachable: frozenset[str]  # message channels with an address and no opt-out
    preference: tuple[str, ...]  # the channel order of the holder's current phase (else every channel)
    cadence: str | None = None
    phase: str | None = None
    timezone: str | None = None
    essential_reachable: frozenset[str] = frozenset()  # with an address, opt-outs ignored


@dataclass(frozen=True, slots=True)
class Recipient:
    """A selected holder: the channel it goes on (None: no reachable channel) and when."""

    candidate: Candidate
    key: str
    channel: str | None
    due_at: datetime
    already: bool = False  # planned by an earlier run of the same announcement

    @property
    def reason(self) -> str:
        if self.already:
            return "予約済み(同じお知らせ)"
        if self.channel is None:
            return "連絡できるチャネルなし(未登録か配信停止)"
        return ""


@dataclass(frozen=True)
class Preview:
    name: str
    template: str
    recipients: tuple[Recipient, ...]

    @property
    def to_plan(self) -> list[Recipient]:
        return [r for r in self.recipients if r.channel is not None and not r.already]

    @property
    def unreachable(self) -> list[Recipient]:
        return [r for r in self.recipients if r.channel is None and not r.already]

    @property
    def already(self) -> list[Recipient]:
        return [r for r in self.recipients if r.already]

    def per_channel(self) -> Counter[str]:
        return Counter(r.channel for r in self.to_plan if r.channel is not None)


def matches(candidate: Candidate, filters: Mapping[str, frozenset[str]]) -> bool:
    values = {
        "track": candidate.track,
        "department": candidate.department or "",
        "status": candidate.status,
        "external_id": candidate.external_id,
    }
    return all(values[key] in wanted for key, wanted in filters.items())


def choose_channel(candidate: Candidate, *, essential: bool = False) -> str | None:
    """The first channel of the holder's preference list they can be reached on (an essential notice
    ignores follow-up opt-outs, as delivery does)."""
    reachable = candidate.essential_reachable if essential else candidate.reachable
    return next((c for c in candidate.preference if c in reachable), None)


def preview(
    name: str,
    template: str,
    candidates: Iterable[Candidate],
    filters: Mapping[str, frozenset[str]],
    at: datetime,
    calendar: BusinessCalendar,
    planned_keys: frozenset[str] = frozenset(),
    *,
    essential: bool = False,
) -> Preview:
    """Who gets announcement ``name`` sent at ``at`` (moved per holder to the next allowed moment: a
    business day, inside the send window of the holder's time zone), on which channel. Only active
    holders (offered / accepted) are selected, unless the filter names a status explicitly."""
    if at.tzinfo is None:
        raise ValueError("preview() needs an aware 'at'")
    statuses = filters.get("status", frozenset(ACTIVE_STATUSES))
    recipients = []
    for candidate in sorted(candidates, key=lambda c: c.external_id):
        if candidate.status not in statuses or not matches(candidate, filters):
            continue
        key = key_for(name, candidate.external_id)
        recipients.append(
            Recipient(
                candidate,
                key,
                choose_channel(candidate, essential=essential),
                calendar.next_allowed(at, candidate.timezone),
                key in planned_keys,
            )
        )
    return Preview(name, template, tuple(recipients))
