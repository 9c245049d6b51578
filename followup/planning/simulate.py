"""Fast-forward a season: what the planner would create, day by day, with nothing sent or stored.

HR previews a cadence before switching it on. The simulation calls the real planner once per day with
an in-memory history (every touch it created counts as delivered), so what it shows is what the
scheduler would do, including holidays, catch-up and the one-touch-per-day rule.

Hook for other areas: ``observers`` are called after each simulated day with ``(now, result)``; the
result keeps each holder's touches (``result.by_holder``) so far, e.g. for "which rules would flag whom
when". Observers append what they find to ``result.notes`` (or their own structures).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from followup.calendar import BusinessCalendar
from followup.config.schema import Policy
from followup.flags.phase import holder_phase
from followup.flags.rules import HolderHistory, RuleEngine, TouchRecord
from followup.planning.planner import ExistingTouch, HolderSnapshot, plan
from followup.tasks.sheet import task_of
from followup.vocab import ACTIVE_STATUSES, WEEKDAYS

Progress = Callable[[int, int], None]  # (days done, days in total)


@dataclass(frozen=True, slots=True)
class SimulatedTouch:
    external_id: str
    holder_id: int
    cadence: str
    phase: str
    seq: int
    kind: str
    channel: str
    template: str | None
    survey_form: str | None
    due_at: datetime
    reason: str
    status: str = "planned"
    event: str | None = None
    task: str | None = None  # the task (提出物) a reminder is for

    def record(self) -> dict[str, Any]:
        """The SPEC touch record (simulate ``--json``, ``holders show``)."""
        return {
            "external_id": self.external_id,
            "cadence": self.cadence,
            "phase": self.phase,
            "kind": self.kind,
            "channel": self.channel,
            "template": self.template,
            "event": self.event,
            "due_at": self.due_at.isoformat(),
            "status": self.status,
        }


@dataclass
class SimulationResult:
    start: date
    end: date
    holders: list[HolderSnapshot]
    by_holder: dict[int, list[SimulatedTouch]] = field(default_factory=lambda: defaultdict(list))
    skipped: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    notes: list[dict[str, Any]] = field(default_factory=list)  # filled by observers (e.g. flags)

    @property
    def touches(self) -> list[SimulatedTouch]:
        return sorted(
            (t for ts in self.by_holder.values() for t in ts), key=lambda t: (t.due_at, t.external_id)
        )

    def records(self) -> list[dict[str, Any]]:
        return [t.record() for t in self.touches]

    def per_phase(self) -> dict[str, Counter[str]]:
        """external_id → phase → touches (manual touches counted under ``manual``)."""
        table: dict[str, Counter[str]] = {}
        for holder in self.holders:
            counts: Counter[str] = Counter()
            for touch in self.by_holder.get(holder.id, []):
                counts["manual" if touch.kind == "manual" else touch.phase] += 1
            table[holder.external_id] = counts
        return table

    def per_month(self) -> dict[str, Counter[str]]:
        """YYYY-MM → kind and channel counts (and ``total``)."""
        table: dict[str, Counter[str]] = defaultdict(Counter)
        for touch in self.touches:
            month = table[touch.due_at.strftime("%Y-%m")]
            month[touch.kind] += 1
            month[touch.channel] += 1
            month["total"] += 1
        return dict(sorted(table.items()))

    def per_day(self) -> Counter[date]:
        """Local send day → touches, for the calendar view."""
        return Counter(t.due_at.date() for t in self.touches)


def simulate_season(
    holders: Sequence[HolderSnapshot],
    policy: Policy,
    start: date,
    end: date,
    progress: Progress | None = None,
    *,
    calendar: BusinessCalendar | None = None,
    observers: Iterable[Callable[[datetime, SimulationResult], None]] = (),
) -> SimulationResult:
    """Run the planner once per day from ``start`` to ``end`` (inclusive); touches due in that span."""
    if end < start:
        raise ValueError("the simulation ends before it starts")
    calendar = calendar or BusinessCalendar.from_policy(policy)
    tz = policy.organization.tz
    result = SimulationResult(start=start, end=end, holders=list(holders))
    by_id = {h.id: h for h in holders}
    history: dict[int, list[ExistingTouch]] = defaultdict(list)
    first = datetime.combine(start, time(0, 0), tzinfo=tz)
    stop = datetime.combine(end + timedelta(days=1), time(0, 0), tzinfo=tz)
    observers = list(observers)
    total = (end - start).days + 1
    next_id = 1
    for offset in range(total):
        now = datetime.combine(start + timedelta(days=offset), time(0, 0), tzinfo=tz)
        planned = plan(result.holders, policy, history, now, calendar)
        for touch in planned.create:
            # remembered even when outside the span, so the next day does not plan it again
            history[touch.holder_id].append(
                ExistingTouch(
                    next_id, touch.key, touch.holder_id, touch.phase, touch.seq, touch.kind, touch.channel,
                    touch.due_at, "sent",
                )
            )  # fmt: skip
            next_id += 1
            if not first <= touch.due_at < stop:
                continue
            result.by_holder[touch.holder_id].append(
                SimulatedTouch(
                    external_id=by_id[touch.holder_id].external_id,
                    holder_id=touch.holder_id,
                    cadence=touch.cadence,
                    phase=touch.phase,
                    seq=touch.seq,
                    kind=touch.kind,
                    channel=touch.channel,
                    template=touch.template,
                    survey_form=touch.survey_form,
                    due_at=touch.due_at,
                    reason=touch.reason,
                    event=touch.event,
                    task=task_of(touch.key) if touch.phase == "task" else None,
                )
            )
        for holder_id, reason in planned.skipped:
            result.skipped[holder_id].add(reason)
        for observer in observers:
            observer(now, result)
        if progress is not None:
            progress(offset + 1, total)
    return result


CADENCE_RULES = frozenset({"neglected", "over_contacted", "unreachable"})


class FlagTimeline:
    """Observer: which flags the cadence itself would raise, and when (evaluated at each weekly report).

    The simulation knows only what the planner would send, not how holders react, so only the rules
    that judge the cadence are evaluated: ``neglected`` (a gap too long for the phase), ``over_contacted``
    and ``unreachable``. A flag is noted once, when it first fires, with the report time as ``since``.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.engine = RuleEngine(policy)
        weekly = policy.report.weekly
        self.weekday = WEEKDAYS.index(weekly.day)
        self.report_time = weekly.time
        self.seen: set[tuple[int, str]] = set()

    def __call__(self, now: datetime, result: SimulationResult) -> None:
        if now.weekday() != self.weekday:
            return
        moment = datetime.combine(now.date(), self.report_time, tzinfo=now.tzinfo)
        for holder in result.holders:
            if holder.status not in ACTIVE_STATUSES:
                continue
            cadence, phase = holder_phase(
                self.policy,
                track=holder.track,
                department=holder.department,
                offer_date=holder.offer_date,
                accepted_date=holder.accepted_date,
                start_date=holder.start_date,
                today=moment.date(),
            )
            history = HolderHistory(
                holder_id=holder.id,
                external_id=holder.external_id,
                name="",
                status=holder.status,
                offer_date=holder.offer_date,
                start_date=holder.start_date,
                cadence=cadence,
                phase=phase,
                reachable_channels=tuple(sorted(holder.reachable)),
                delivered=tuple(
                    TouchRecord(t.due_at, t.channel, t.kind)
                    for t in result.by_holder.get(holder.id, [])
                    if t.due_at <= moment
                ),
            )
            for flag in self.engine.evaluate(history, moment):
                key = (holder.id, flag.rule)
                if flag.rule in CADENCE_RULES and key not in self.seen:
                    self.seen.add(key)
                    result.notes.append({**flag.record(), "since": moment.isoformat()})
