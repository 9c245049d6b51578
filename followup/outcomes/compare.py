"""Two cadences side by side before switching (``simulate --policy A.yaml --policy B.yaml``), and
experiment arms assigned by a hash of the external id, with honest confidence intervals.

Per policy, over the same holders and days: touches per holder per month of follow-up, the holders
the cadence itself would flag as over-contacted or neglected (the simulation's flag observer), and the
load per channel and per business day. Experiment arms: each holder's arm is fixed by SHA-256 of
``salt:external_id`` (stable across runs and machines, balanced in expectation, unrelated to who the
holder is); the recorded outcome per arm (内定承諾率) gets a Wilson 95 % interval and the difference a
Newcombe interval — when that interval contains zero, the difference is not distinguishable from chance.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from followup.config.schema import Policy
from followup.planning.planner import HolderSnapshot
from followup.planning.simulate import FlagTimeline, simulate_season

Z95 = 1.959963984540054
DAYS_PER_MONTH = 365.25 / 12


@dataclass(frozen=True)
class CadenceSummary:
    label: str
    holders: int
    holder_months: float
    touches: int
    by_kind: dict[str, int]
    by_channel: dict[str, int]
    busy_days: int  # days with at least one touch
    mean_per_busy_day: float
    peak_day: str | None
    peak_count: int
    flagged: dict[str, int]  # rule → holders the cadence itself would flag (neglected, over_contacted, ...)

    @property
    def per_holder_month(self) -> float | None:
        return self.touches / self.holder_months if self.holder_months else None

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.label,
            "holders": self.holders,
            "holder_months": round(self.holder_months, 2),
            "touches": self.touches,
            "touches_per_holder_month": self.per_holder_month,
            "by_kind": self.by_kind,
            "by_channel": self.by_channel,
            "busy_days": self.busy_days,
            "mean_per_busy_day": self.mean_per_busy_day,
            "peak_day": self.peak_day,
            "peak_count": self.peak_count,
            "flagged_holders": self.flagged,
        }


def followed_months(holders: Sequence[HolderSnapshot], start: date, end: date) -> float:
    """Months of follow-up within [start, end]: from the offer to the day before the start date."""
    days = 0
    for h in holders:
        if h.status not in ("offered", "accepted"):
            continue
        first, last = max(start, h.offer_date), min(end, h.start_date - timedelta(days=1))
        days += max(0, (last - first).days + 1)
    return days / DAYS_PER_MONTH


def summarize_cadence(
    label: str,
    holders: Sequence[HolderSnapshot],
    policy: Policy,
    start: date,
    end: date,
    progress: Callable[[int, int], None] | None = None,
) -> CadenceSummary:
    """Simulate ``policy`` over ``holders`` (nothing is sent) and sum up its load and flags."""
    observer = FlagTimeline(policy)
    result = simulate_season(holders, policy, start, end, progress, observers=[observer])
    touches = result.touches
    per_day = Counter(t.due_at.astimezone(policy.organization.tz).date() for t in touches)
    peak = max(per_day.items(), key=lambda item: (item[1], -item[0].toordinal()), default=None)
    flagged: Counter[str] = Counter()
    for note in result.notes:
        flagged[str(note["rule"])] += 1
    return CadenceSummary(
        label=label,
        holders=sum(1 for h in holders if h.status in ("offered", "accepted")),
        holder_months=followed_months(holders, start, end),
        touches=len(touches),
        by_kind=dict(sorted(Counter(t.kind for t in touches).items())),
        by_channel=dict(sorted(Counter(t.channel for t in touches).items())),
        busy_days=len(per_day),
        mean_per_busy_day=round(len(touches) / len(per_day), 2) if per_day else 0.0,
        peak_day=peak[0].isoformat() if peak else None,
        peak_count=peak[1] if peak else 0,
        flagged={rule: flagged[rule] for rule in ("neglected", "over_contacted", "unreachable")},
    )


# --- experiment arms


def assign_arm(external_id: str, arms: Sequence[str], salt: str = "followup") -> str:
    """The arm of one holder: SHA-256 of ``salt:external_id`` modulo the number of arms."""
    digest = hashlib.sha256(f"{salt}:{external_id}".encode()).digest()
    return arms[int.from_bytes(digest[:8], "big") % len(arms)]


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval for a proportion (good for small n and rates near 0 or 1)."""
    if n == 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(s1: int, n1: int, s2: int, n2: int, z: float = Z95) -> tuple[float, float] | None:
    """Newcombe's hybrid score interval for p1 − p2, from the two Wilson intervals."""
    a, b = wilson(s1, n1, z), wilson(s2, n2, z)
    if a is None or b is None:
        return None
    p1, p2 = s1 / n1, s2 / n2
    low = p1 - p2 - math.sqrt((p1 - a[0]) ** 2 + (b[1] - p2) ** 2)
    high = p1 - p2 + math.sqrt((a[1] - p1) ** 2 + (p2 - b[0]) ** 2)
    return low, high


@dataclass(frozen=True)
class ArmOutcome:
    arm: str
    holders: int
    accepted: int  # accepted or joined
    declined: int

    @property
    def rate(self) -> float | None:
        return self.accepted / self.holders if self.holders else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson(self.accepted, self.holders)


@dataclass(frozen=True)
class ArmComparison:
    arms: list[ArmOutcome]
    difference: float | None  # rate of the first arm − rate of the second
    interval: tuple[float, float] | None

    @property
    def distinguishable(self) -> bool:
        return self.interval is not None and (self.interval[0] > 0 or self.interval[1] < 0)

    def verdict(self) -> str:
        if self.interval is None:
            return "比較できません(片方の群に内定者がいません)"
        if self.distinguishable:
            return "差は偶然とは言いにくい水準です(95%区間が0を含みません)"
        return "差は偶然の範囲内です(95%区間が0を含むため、どちらが良いとは言えません)"

    def to_json(self) -> dict[str, Any]:
        return {
            "arms": [
                {
                    "arm": a.arm,
                    "holders": a.holders,
                    "accepted": a.accepted,
                    "declined": a.declined,
                    "acceptance_rate": a.rate,
                    "ci95": list(a.interval) if a.interval else None,
                }
                for a in self.arms
            ],
            "difference": self.difference,
            "difference_ci95": list(self.interval) if self.interval else None,
            "distinguishable": self.distinguishable,
            "verdict": self.verdict(),
        }


def compare_arms(
    holders: Sequence[tuple[str, str]], arms: Sequence[str], salt: str = "followup"
) -> ArmComparison:
    """``holders``: (external_id, status). 内定承諾率 per arm (accepted + joined over everyone assigned),
    with Wilson intervals, and the first two arms' difference with a Newcombe interval."""
    counts: dict[str, Counter[str]] = {arm: Counter() for arm in arms}
    for external_id, status in holders:
        c = counts[assign_arm(external_id, arms, salt)]
        c["holders"] += 1
        c["accepted"] += status in ("accepted", "joined")
        c["declined"] += status == "declined"
    outcomes = [ArmOutcome(arm, c["holders"], c["accepted"], c["declined"]) for arm, c in counts.items()]
    first, second = outcomes[0], outcomes[1]
    interval = newcombe(first.accepted, first.holders, second.accepted, second.holders)
    difference = first.rate - second.rate if first.rate is not None and second.rate is not None else None
    return ArmComparison(outcomes, difference, interval)
