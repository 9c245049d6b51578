"""The plain records a season is made of, as the database edge loads them (or a test writes them).

Nothing here reads a clock or a database: a :class:`Season` is the input of every figure, the backtest
and the cost, so each can be computed on a hand-written season in a test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from followup.flags.rules import PulseResponse, TouchRecord


@dataclass(frozen=True, slots=True)
class HolderRecord:
    """One offer holder as the season ended (or as far as it is recorded)."""

    holder_id: int
    external_id: str
    status: str  # offered | accepted | joined | declined | withdrawn | rejected
    offer_date: date
    start_date: date
    track: str = "new_grad"
    department: str | None = None
    accepted_date: date | None = None
    decline_reason: str | None = None
    declined_at: datetime | None = None  # when the status changed to declined (lifecycle history)
    left_date: date | None = None  # 退職日 after joining
    contacts: tuple[str, ...] = ("email",)  # message channels with an address (email, slack, line)
    followed: bool = True  # False: never in follow-up (imported as joined or declined, never active)


@dataclass(frozen=True, slots=True)
class SurveySent:
    """A survey that reached the holder, and whether (and how) it was answered."""

    holder_id: int
    sent_at: datetime
    answered: bool = False
    score: float | None = None


@dataclass(frozen=True, slots=True)
class OptOut:
    at: datetime
    channel: str


@dataclass(frozen=True)
class Season:
    """Everything recorded about a season: holders and, per holder id, their history sorted by time.

    ``touches`` holds every delivered or undelivered touch (the rules' :class:`TouchRecord`, manual
    touches included); ``event_touches`` counts delivered touches per configured event (for the cost);
    ``recorded_until`` is the last moment the record covers (the backtest stops there)."""

    holders: tuple[HolderRecord, ...]
    recorded_until: datetime
    touches: dict[int, tuple[TouchRecord, ...]] = field(default_factory=dict)
    responses: dict[int, tuple[PulseResponse, ...]] = field(default_factory=dict)
    engagement: dict[int, tuple[datetime, ...]] = field(default_factory=dict)
    opt_outs: dict[int, tuple[OptOut, ...]] = field(default_factory=dict)
    surveys: tuple[SurveySent, ...] = ()
    events_upcoming: tuple[str, ...] = ()  # configured events not yet held when the record ends

    def only(self, holder_ids: set[int]) -> Season:
        """The same season restricted to some holders (a season year, an experiment arm)."""

        def keep(table: dict[int, tuple[object, ...]]) -> dict[int, tuple[object, ...]]:
            return {k: v for k, v in table.items() if k in holder_ids}

        return Season(
            holders=tuple(h for h in self.holders if h.holder_id in holder_ids),
            recorded_until=self.recorded_until,
            touches=keep(self.touches),  # type: ignore[arg-type]
            responses=keep(self.responses),  # type: ignore[arg-type]
            engagement=keep(self.engagement),  # type: ignore[arg-type]
            opt_outs=keep(self.opt_outs),  # type: ignore[arg-type]
            surveys=tuple(s for s in self.surveys if s.holder_id in holder_ids),
            events_upcoming=self.events_upcoming,
        )


def fiscal_year(day: date) -> int:
    """The Japanese fiscal year (April–March) a day falls in: 2027-04-01 → 2027, 2027-03-31 → 2026."""
    return day.year if day.month >= 4 else day.year - 1


def season_of(holder: HolderRecord) -> int:
    """A holder's season: the fiscal year of the start date (2027年度入社 for a start on 2027-04-01)."""
    return fiscal_year(holder.start_date)
