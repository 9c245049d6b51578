"""What follow-up costs and returns (pure), as seeds 003/004 count it.

* External costs: ``budget.channels`` × delivered touches on each channel, ``budget.events`` for the
  events held by the end of the record (one still to come is not spent yet), ``budget.tools`` as
  given (the season's fees).
* Internal costs: for each logged (done) manual touch, ``budget.internal.hours[channel]`` hours ×
  ``budget.internal.hourly_rate`` (the seeds' warning: internal costs are the ones left out).
* フォロー費用 = external + internal; per holder (every holder followed in the season) and per hire
  (holders who joined).
* 採用単価 = (``hiring_cost`` + フォロー費用) ÷ hires, when ``hiring_cost`` is given.
* ROI = (利益 − コスト) ÷ コスト × 100 with 利益 = ``value_per_hire`` × hires and コスト = フォロー費用
  (+ ``hiring_cost`` when given), when ``value_per_hire`` is given (seed 003's formula).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from followup.config.schema import Budget
from followup.outcomes.records import Season

MANUAL = ("phone", "letter", "meeting", "other")


@dataclass(frozen=True)
class CostLine:
    item: str  # a channel, event or tool name
    kind: str  # channel | event | tool | internal
    count: float  # touches (or hours for internal), 1 for events and tools
    amount: float  # yen


@dataclass(frozen=True)
class CostReport:
    lines: list[CostLine]
    holders: int
    hires: int
    hiring_cost: float | None
    value_per_hire: float | None
    internal_hours: float
    manual_touches: dict[str, int] = field(default_factory=dict)

    @property
    def external(self) -> float:
        return sum(line.amount for line in self.lines if line.kind != "internal")

    @property
    def internal(self) -> float:
        return sum(line.amount for line in self.lines if line.kind == "internal")

    @property
    def follow_up_total(self) -> float:
        return self.external + self.internal

    @property
    def per_holder(self) -> float | None:
        return self.follow_up_total / self.holders if self.holders else None

    @property
    def per_hire(self) -> float | None:
        return self.follow_up_total / self.hires if self.hires else None

    @property
    def total_cost(self) -> float:
        return self.follow_up_total + (self.hiring_cost or 0.0)

    @property
    def cost_per_hire(self) -> float | None:
        """採用単価 (needs ``hiring_cost``)."""
        if self.hiring_cost is None or not self.hires:
            return None
        return self.total_cost / self.hires

    @property
    def profit(self) -> float | None:
        return None if self.value_per_hire is None else self.value_per_hire * self.hires

    @property
    def roi(self) -> float | None:
        """(利益 − コスト) ÷ コスト × 100, in percent."""
        if self.profit is None or not self.total_cost:
            return None
        return (self.profit - self.total_cost) / self.total_cost * 100

    def to_json(self) -> dict[str, Any]:
        return {
            "lines": [asdict(line) for line in self.lines],
            "external": self.external,
            "internal": self.internal,
            "internal_hours": self.internal_hours,
            "manual_touches": self.manual_touches,
            "follow_up_total": self.follow_up_total,
            "holders": self.holders,
            "hires": self.hires,
            "per_holder": self.per_holder,
            "per_hire": self.per_hire,
            "hiring_cost": self.hiring_cost,
            "cost_per_hire": self.cost_per_hire,
            "value_per_hire": self.value_per_hire,
            "profit": self.profit,
            "roi_percent": self.roi,
        }


def compute_cost(season: Season, budget: Budget) -> CostReport:
    delivered: Counter[str] = Counter()
    for records in season.touches.values():
        for touch in records:
            if touch.outcome == "delivered":
                delivered[touch.channel] += 1
    lines = [
        CostLine(channel, "channel", delivered[channel], delivered[channel] * unit)
        for channel, unit in budget.channels.items()
    ]
    upcoming = set(season.events_upcoming)  # not held yet: not spent yet
    lines.extend(
        CostLine(name, "event", 1, amount) for name, amount in budget.events.items() if name not in upcoming
    )
    lines.extend(CostLine(name, "tool", 1, amount) for name, amount in budget.tools.items())
    internal = budget.internal
    hours_total = 0.0
    manual = {channel: delivered[channel] for channel in MANUAL if delivered[channel]}
    for channel, count in manual.items():
        hours = count * internal.hours.get(channel, 0.0)
        hours_total += hours
        lines.append(CostLine(channel, "internal", hours, hours * internal.hourly_rate))
    return CostReport(
        lines=lines,
        holders=len(season.holders),
        hires=sum(1 for h in season.holders if h.status == "joined"),
        hiring_cost=budget.hiring_cost,
        value_per_hire=budget.value_per_hire,
        internal_hours=hours_total,
        manual_touches=manual,
    )
