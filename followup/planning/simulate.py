"""Fast-forward a season: what the planner would create, day by day, with nothing sent or stored.

HR previews a cadence before switching it on. The simulation calls the real planner once per day with
an in-memory history (every touch it created counts as delivered), so what it shows is what the
scheduler would do, including holidays, catch-up and the one-touch-per-day rule.

Hook for other areas: ``observers`` are called after each simulated day with ``(now, result)``; the
result keeps each holder's touches (``result.by_holder``) so far, e.g. for "which rules would flag whom
when". Observers append what they find to ``result.notes`` (or their own structures).
"""

from __future__ import annotations

import gc
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from followup.calendar import BusinessCalendar
from followup.config.schema import Policy
from followup.flags.phase import holder_phase
from followup.flags.rules import (
    RULES,
    FlagDecision,
    HolderHistory,
    RuleEngine,
    TouchRecord,
    contact_window_start,
)
from followup.planning.planner import ExistingTouch, HolderSnapshot, SeasonCache, plan
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
    cache_seasons: bool = True,
) -> SimulationResult:
    """Run the planner once per day from ``start`` to ``end`` (inclusive); touches due in that span.

    A holder's season depends only on its dates and the policy, so each distinct season is computed
    once per run (``SeasonCache``). Each day the planner then sees only the holders that day's window
    can give a touch (a season slot between the catch-up floor and the horizon; holders without a
    cadence, for the skip reason) and only the history from the floor on: every simulated touch is
    "sent", so older ones can neither be planned again nor moved. ``cache_seasons=False`` is the
    straightforward path (every holder, whole history, seasons recomputed daily) that the equivalence
    test and ``benchmarks/simulate_season.py`` compare against: the same records either way."""
    if end < start:
        raise ValueError("the simulation ends before it starts")
    with _fewer_collections():
        return _simulate(holders, policy, start, end, progress, calendar, list(observers), cache_seasons)


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """A season builds hundreds of thousands of small long-lived records (few cycles): with the
    default thresholds the cyclic collector rescans them over and over (about a third of the CPU time
    at 10,000 holders). Collect far less often for the run, then restore the thresholds."""
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], 100_000), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def _simulate(
    holders: Sequence[HolderSnapshot],
    policy: Policy,
    start: date,
    end: date,
    progress: Progress | None,
    calendar: BusinessCalendar | None,
    observers: list[Callable[[datetime, SimulationResult], None]],
    cache_seasons: bool,
) -> SimulationResult:
    calendar = calendar or BusinessCalendar.from_policy(policy)
    tz = policy.organization.tz
    result = SimulationResult(start=start, end=end, holders=list(holders))
    by_id = {h.id: h for h in holders}
    history: dict[int, list[ExistingTouch]] = defaultdict(list)
    first = datetime.combine(start, time(0, 0), tzinfo=tz)
    stop = datetime.combine(end + timedelta(days=1), time(0, 0), tzinfo=tz)
    total = (end - start).days + 1
    seasons = SeasonCache(policy, calendar) if cache_seasons else None
    due = _DueIndex(result.holders, seasons) if seasons is not None else None
    next_id = 1
    for offset in range(total):
        now = datetime.combine(start + timedelta(days=offset), time(0, 0), tzinfo=tz)
        if seasons is not None and due is not None:
            planned = plan(due.holders_at(now, history), policy, history, now, calendar, seasons=seasons)
        else:
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


class _DueIndex:
    """Every season slot of every holder by due time, to find the holders a day can give a touch.

    In a simulation nothing changes a holder's dates, channels or answers, and every touch counts as
    sent, so a slot is decided (created, or skipped for a closed gate or no channel) on the day it
    first enters the window, and later days give the same answer. So each day the planner sees only the
    holders with a slot entering the window (between the previous day's horizon and today's; the
    whole window on the first day), and holders it cannot plan for (no cadence: the skip reason; not
    active) on the first day only. A created touch is due at its slot or later (a quiet period only
    postpones), so history before the day's catch-up floor can never match a slot in the window again
    and is dropped as the days pass.
    """

    def __init__(self, holders: Sequence[HolderSnapshot], seasons: SeasonCache) -> None:
        self.seasons = seasons
        self.holders = holders
        self.first_day: list[int] = []  # no cadence or not active: the planner's answer never changes
        pairs: list[tuple[float, int]] = []
        for index, holder in enumerate(holders):
            stamps = seasons.due_stamps(holder) if holder.status in ACTIVE_STATUSES else None
            if stamps is None:
                self.first_day.append(index)
            else:
                pairs.extend((stamp, index) for stamp in stamps)
        pairs.sort()
        self.stamps = [p[0] for p in pairs]
        self.owners = [p[1] for p in pairs]
        self.reached: float | None = None  # the previous day's horizon

    def holders_at(self, now: datetime, history: dict[int, list[ExistingTouch]]) -> list[HolderSnapshot]:
        """The holders (in input order) with a slot entering the window at ``now``; prunes their history."""
        low, high = self.seasons.window(now)
        if self.reached is None:
            chosen = {
                *self.first_day,
                *self.owners[bisect_left(self.stamps, low) : bisect_right(self.stamps, high)],
            }
        else:
            chosen = set(
                self.owners[bisect_right(self.stamps, self.reached) : bisect_right(self.stamps, high)]
            )
        self.reached = high
        floor = datetime.fromtimestamp(low, now.tzinfo)
        today = [self.holders[i] for i in sorted(chosen)]
        for holder in today:
            past = history.get(holder.id)
            if past and past[0].due_at < floor:
                history[holder.id] = [t for t in past if t.due_at >= floor]
        return today


CADENCE_RULES = frozenset({"neglected", "over_contacted", "unreachable"})


class FlagTimeline:
    """Observer: which flags the cadence itself would raise, and when (evaluated at each weekly report).

    The simulation knows only what the planner would send, not how holders react, so only the rules
    that judge the cadence are evaluated: ``neglected`` (a gap too long for the phase), ``over_contacted``
    and ``unreachable``. A flag is noted once, when it first fires, with the report time as ``since``.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        # only the cadence rules: the others can't fire on a simulated history, and only these are noted
        self.engine = RuleEngine(policy, [rule for rule in RULES if rule.__name__ in CADENCE_RULES])
        weekly = policy.report.weekly
        self.weekday = WEEKDAYS.index(weekly.day)
        self.report_time = weekly.time
        self.seen: set[tuple[int, str]] = set()
        # per holder: the touches seen so far (by_holder only grows) as records sorted by time
        self._records: dict[int, tuple[int, list[float], list[TouchRecord]]] = {}
        self._phases: dict[tuple[datetime, tuple[object, ...]], tuple[str | None, str | None]] = {}
        self._kinds: dict[int, tuple[object, ...]] = {}
        self._histories: dict[int, tuple[tuple[object, ...], HolderHistory]] = {}

    def _delivered(
        self, holder_id: int, touches: list[SimulatedTouch], moment: float, window_start: float
    ) -> tuple[tuple[int, int, int], list[TouchRecord]]:
        """The holder's simulated touches the cadence rules read at ``moment``: those due inside the
        over-contact window ending at ``moment``, and the last one before it (the neglect gap runs from
        it), as a slice ``(touches seen, begin, end)`` of the records kept sorted across reports: a
        report costs the window, not the whole season."""
        done, stamps, records = self._records.get(holder_id, (0, [], []))
        if len(touches) > done:
            for touch in touches[done:]:
                stamp = touch.due_at.timestamp()
                index = bisect_right(stamps, stamp)
                stamps.insert(index, stamp)
                records.insert(index, TouchRecord(touch.due_at, touch.channel, touch.kind))
            self._records[holder_id] = (len(touches), stamps, records)
        end = bisect_right(stamps, moment)
        begin = max(0, bisect_right(stamps, window_start, 0, end) - 1)
        return (len(touches), begin, end), records

    def __call__(self, now: datetime, result: SimulationResult) -> None:
        if now.weekday() != self.weekday:
            return
        moment = datetime.combine(now.date(), self.report_time, tzinfo=now.tzinfo)
        # Holders alike in everything the planner reads get the same touches, so the rules decide the
        # same for them: evaluate one holder per kind, then note the flags for each holder of the kind.
        decided: dict[tuple[object, ...], list[FlagDecision]] = {}
        today = moment.date()
        window_start = contact_window_start(self.policy.rules.over_contacted.window, moment)
        bounds = (moment.timestamp(), window_start.timestamp())
        for holder in result.holders:
            if holder.status not in ACTIVE_STATUSES or today >= holder.start_date:
                continue  # the engine raises nothing for these (follow-up ends on the first day)
            kind = self._kinds.get(holder.id)
            if kind is None:
                kind = self._kinds[holder.id] = _alike(holder)
            flags = decided.get(kind)
            if flags is None:
                flags = decided[kind] = self._evaluate(holder, result, moment, bounds)
            for flag in flags:
                key = (holder.id, flag.rule)
                if key not in self.seen:
                    self.seen.add(key)
                    record = flag.record()
                    record["external_id"] = holder.external_id
                    result.notes.append({**record, "since": moment.isoformat()})

    def _evaluate(
        self,
        holder: HolderSnapshot,
        result: SimulationResult,
        moment: datetime,
        bounds: tuple[float, float],
    ) -> list[FlagDecision]:
        dates = (holder.track, holder.department, holder.offer_date, holder.accepted_date, holder.start_date)
        found = self._phases.get((moment, dates))
        if found is None:
            found = self._phases[(moment, dates)] = holder_phase(
                self.policy,
                track=holder.track,
                department=holder.department,
                offer_date=holder.offer_date,
                accepted_date=holder.accepted_date,
                start_date=holder.start_date,
                today=moment.date(),
            )
        cadence, phase = found
        window, records = self._delivered(holder.id, result.by_holder.get(holder.id, []), *bounds)
        key = (cadence, phase, window)
        kept = self._histories.get(holder.id)
        if kept is not None and kept[0] == key:
            history = kept[1]  # nothing the rules read has changed since the last report: reuse it
        else:
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
                delivered=tuple(records[window[1] : window[2]]),
            )
            self._histories[holder.id] = (key, history)
        return [f for f in self.engine.evaluate(history, moment) if f.rule in CADENCE_RULES]


def _alike(holder: HolderSnapshot) -> tuple[object, ...]:
    """Everything of a holder the planner and the cadence rules read (not its id)."""
    return (
        holder.track,
        holder.department,
        holder.status,
        holder.offer_date,
        holder.accepted_date,
        holder.start_date,
        holder.reachable,
        holder.timezone,
        tuple(sorted(holder.event_states.items())),
        holder.last_reply_at,
    )
