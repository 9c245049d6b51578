"""The talent pool's figures for the season report, from plain per-person records (pure).

Counted per person, not per message, so the figures can be checked by hand: how many are in the pool,
how many consented (and how: import or the web page), how many each channel reached, how many opened
each link, opted out, applied again, and were hired after applying again.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PoolPerson:
    """One person who is or was in the pool (a re-applicant is counted where they came from)."""

    status: str
    in_pool: bool  # rejected/declined now (not re-applied and offered, not erased)
    consent_source: str | None  # import | web | None
    reached: frozenset[str] = frozenset()  # channels a pool mail was sent on
    steps: frozenset[str] = frozenset()  # pool steps sent (rejection, follow_up, news)
    opened: frozenset[str] = frozenset()  # pool links opened (career, openings)
    opted_out: bool = False
    reapplied: bool = False
    hired: bool = False  # re-applied and then accepted an offer or joined


@dataclass(frozen=True)
class PoolFigures:
    size: int
    by_status: dict[str, int]
    consented: int
    consent_by_source: dict[str, int]
    reached: dict[str, int]  # channel → people
    sent_by_step: dict[str, int]  # step → people who got it
    opened: dict[str, int]  # link → people who opened it
    opted_out: int
    reapplied: int
    hired: int
    notes: tuple[str, ...] = field(default=())

    @property
    def consent_rate(self) -> float | None:
        return self.consented / self.size if self.size else None

    def to_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "by_status": self.by_status,
            "consented": self.consented,
            "consent_rate": self.consent_rate,
            "consent_by_source": self.consent_by_source,
            "reached": self.reached,
            "sent_by_step": self.sent_by_step,
            "opened_links": self.opened,
            "opted_out": self.opted_out,
            "reapplied": self.reapplied,
            "hired_from_pool": self.hired,
        }


def compute_pool_figures(people: list[PoolPerson]) -> PoolFigures:
    members = [p for p in people if p.in_pool]
    reached: Counter[str] = Counter()
    steps: Counter[str] = Counter()
    opened: Counter[str] = Counter()
    for person in people:
        reached.update(person.reached)
        steps.update(person.steps)
        opened.update(person.opened)
    return PoolFigures(
        size=len(members),
        by_status=dict(sorted(Counter(p.status for p in members).items())),
        consented=sum(1 for p in members if p.consent_source is not None),
        consent_by_source=dict(
            sorted(Counter(p.consent_source for p in members if p.consent_source).items())
        ),
        reached=dict(sorted(reached.items())),
        sent_by_step=dict(sorted(steps.items())),
        opened=dict(sorted(opened.items())),
        opted_out=sum(1 for p in people if p.opted_out),
        reapplied=sum(1 for p in people if p.reapplied),
        hired=sum(1 for p in people if p.hired),
    )


__all__ = ["PoolFigures", "PoolPerson", "compute_pool_figures"]
