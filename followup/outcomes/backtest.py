"""The rules replayed over a recorded season, day by day (pure): would the flags have warned in time?

For every day of the season the pure rule engine (:mod:`followup.flags.rules`) is asked, at the time
the weekly report is made, which flags each holder then in follow-up raises, knowing only what had
happened up to that moment. From that:

* **recall**: the share of the holders who declined that were flagged at least once in the 90 days
  (``horizon_days``) before the decline;
* **lead time**: days from the first flag in that horizon to the decline (median and quartiles; a flag
  already standing when the horizon opens counts from its first day, so the lead time is capped);
* **false alarms**: among the holders who joined, flag onsets (a holder going from no flag to a flag,
  which is when HR is warned) per 100 holders per month of follow-up.

Withdrawn and rejected holders are not counted (the company ended it), nor holders still in follow-up
at the end of the record, nor declines whose date the history does not know (``undated``), nor
holders never in follow-up (imported as joined or declined) or declined before the first replayed day
(``unobserved``).

Fast, exactly: the rules answer every "how many / since when" with a binary search over the sorted
history, so a history holding the whole season evaluated at ``now`` equals the history truncated at
``now`` — except for what changes with time (the phase, the reachable channels), which is fixed per
segment between phase boundaries and opt-outs. And a holder's flags are piecewise constant between
events (a touch, an answer, a reply, a neglect deadline, a touch leaving the over-contact window, a
segment start), so a holder is evaluated only on the days after such an event and carries its flags
forward otherwise. ``strategy="naive"`` rebuilds each holder's truncated history every day and
evaluates every day: the baseline (benchmarks/backtest.py) and the check that both agree.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from statistics import median, quantiles
from typing import Any, Literal

from followup.config.schema import Policy
from followup.durations import shift_moment
from followup.flags.rules import HolderHistory, PulseResponse, RuleEngine, TouchRecord, current_phase
from followup.outcomes.records import HolderRecord, OptOut, Season

Strategy = Literal["incremental", "naive"]
MESSAGE_CHANNELS = ("email", "slack", "line")
DAYS_PER_MONTH = 365.25 / 12
_DST_SLACK = 3600.0
DEFAULT_HORIZON_DAYS = 90  # a flag raised earlier than this before a decline is not its warning


@dataclass(frozen=True, slots=True)
class HolderReplay:
    external_id: str
    outcome: str  # declined | joined | open | undated | unobserved (never followed, or declined before)
    first_flag: date | None
    first_rules: tuple[str, ...]  # the rules that fired on the first flagged day
    lead_days: int | None  # declined: days from the first flag to the decline
    onsets: int  # times the holder went from no flag to a flag
    observed_days: int  # days in follow-up that were replayed
    flagged_days: int


@dataclass
class BacktestResult:
    label: str
    start: date
    end: date
    replays: list[HolderReplay] = field(default_factory=list)
    evaluations: int = 0
    horizon_days: int | None = None

    def _of(self, outcome: str) -> list[HolderReplay]:
        return [r for r in self.replays if r.outcome == outcome]

    @property
    def decliners(self) -> int:
        return len(self._of("declined"))

    @property
    def decliners_flagged(self) -> int:
        return sum(1 for r in self._of("declined") if r.first_flag is not None)

    @property
    def recall(self) -> float | None:
        return self.decliners_flagged / self.decliners if self.decliners else None

    @property
    def lead_days(self) -> list[int]:
        return sorted(r.lead_days for r in self._of("declined") if r.lead_days is not None)

    def lead_quartiles(self) -> tuple[float, float, float] | None:
        """(first quartile, median, third quartile) of the lead time in days (inclusive method)."""
        leads = self.lead_days
        if not leads:
            return None
        if len(leads) == 1:
            return (float(leads[0]),) * 3
        q1, _, q3 = quantiles(leads, n=4, method="inclusive")
        return q1, float(median(leads)), q3

    @property
    def joined(self) -> int:
        return len(self._of("joined"))

    @property
    def joined_flagged(self) -> int:
        return sum(1 for r in self._of("joined") if r.first_flag is not None)

    @property
    def false_alarms(self) -> int:
        return sum(r.onsets for r in self._of("joined"))

    @property
    def joined_months(self) -> float:
        return sum(r.observed_days for r in self._of("joined")) / DAYS_PER_MONTH

    @property
    def false_alarms_per_100_per_month(self) -> float | None:
        months = self.joined_months
        return self.false_alarms / months * 100 if months else None

    def first_rules(self) -> Counter[str]:
        """Which rules gave the first warning for the decliners that were flagged."""
        counts: Counter[str] = Counter()
        for r in self._of("declined"):
            counts.update(r.first_rules)
        return counts

    def to_json(self) -> dict[str, Any]:
        quart = self.lead_quartiles()
        return {
            "policy": self.label,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "horizon_days": self.horizon_days,
            "holders": len(self.replays),
            "declined": self.decliners,
            "declined_flagged": self.decliners_flagged,
            "recall": self.recall,
            "lead_days": {
                "q1": quart[0] if quart else None,
                "median": quart[1] if quart else None,
                "q3": quart[2] if quart else None,
            },
            "first_rules": dict(self.first_rules().most_common()),
            "joined": self.joined,
            "joined_flagged": self.joined_flagged,
            "false_alarms": self.false_alarms,
            "joined_months": round(self.joined_months, 2),
            "false_alarms_per_100_per_month": self.false_alarms_per_100_per_month,
            "open": len(self._of("open")),
            "undated_declines": len(self._of("undated")),
            "unobserved": len(self._of("unobserved")),
            "evaluations": self.evaluations,
            "decliners": [
                {
                    "external_id": r.external_id,
                    "first_flag": r.first_flag.isoformat() if r.first_flag else None,
                    "rules": list(r.first_rules),
                    "lead_days": r.lead_days,
                }
                for r in self._of("declined")
            ],
        }


class _Replayer:
    """One policy, one season: the per-day moments and the engine, shared by every holder."""

    def __init__(self, policy: Policy, season: Season, start: date, end: date, horizon: int | None) -> None:
        self.policy = policy
        self.horizon = horizon
        self.season = season
        self.engine = RuleEngine(policy)
        self.tz = policy.organization.tz
        self.at: time = policy.report.weekly.time
        self.start, self.end = start, end
        count = (end - start).days + 1
        self.days = [start + timedelta(days=i) for i in range(max(0, count))]
        self.moments = [datetime.combine(d, self.at, self.tz) for d in self.days]
        self.stamps = [m.timestamp() for m in self.moments]
        self.evaluations = 0
        self.usable: dict[tuple[str | None, str | None], frozenset[str]] = {}

    # --- per holder
    def window(self, holder: HolderRecord) -> tuple[str, int, int]:
        """(outcome, first day index, last day index inclusive); last < first: nothing to replay."""
        first = max(0, (holder.offer_date - self.start).days)
        start_limit = (holder.start_date - self.start).days - 1  # the rules stop on the first working day
        if holder.status == "declined":
            if holder.declined_at is None:
                return "undated", 0, -1
            last = bisect_left(self.stamps, holder.declined_at.timestamp()) - 1  # moments before it
            return "declined", first, min(last, start_limit, len(self.days) - 1)
        last = min(start_limit, len(self.days) - 1)
        return ("joined" if holder.status == "joined" else "open"), first, last

    def _channels(self, cadence: str | None, phase: str | None) -> frozenset[str]:
        key = (cadence, phase)
        found = self.usable.get(key)
        if found is None:  # as flags.store does: the current phase's channels, else any phase's
            if cadence is None:
                found = frozenset(MESSAGE_CHANNELS)
            else:
                phases = self.policy.cadences[cadence].phases
                chosen = [p for p in phases if p.name == phase] or list(phases)
                found = frozenset(c for p in chosen for c in p.channels)
            self.usable[key] = found
        return found

    def _state_at(
        self,
        holder: HolderRecord,
        cadence: str | None,
        day: date,
        moment: datetime,
        opt_outs: Sequence[OptOut],
    ) -> tuple[str, str | None, tuple[str, ...]]:
        accepted = holder.accepted_date if holder.accepted_date and holder.accepted_date <= day else None
        dates = {"offer": holder.offer_date, "accepted": accepted, "start": holder.start_date}
        phase = current_phase(self.policy, cadence, dates, day)
        opted = {o.channel for o in opt_outs if o.at <= moment}
        usable = self._channels(cadence, phase)
        reachable = tuple(
            c for c in MESSAGE_CHANNELS if c in usable and c in holder.contacts and c not in opted
        )
        return ("accepted" if accepted else "offered"), phase, reachable

    def _history(
        self,
        holder: HolderRecord,
        cadence: str | None,
        state: tuple[str, str | None, tuple[str, ...]],
        touches: Sequence[TouchRecord],
        responses: Sequence[PulseResponse],
        engagement: Sequence[datetime],
        opt_outs: Sequence[OptOut],
    ) -> HolderHistory:
        status, phase, reachable = state
        return HolderHistory(
            holder_id=holder.holder_id,
            external_id=holder.external_id,
            name="",
            status=status,
            offer_date=holder.offer_date,
            start_date=holder.start_date,
            cadence=cadence,
            phase=phase,
            reachable_channels=reachable,
            delivered=tuple(t for t in touches if t.outcome == "delivered"),
            undelivered=tuple(t for t in touches if t.outcome != "delivered"),
            responses=tuple(responses),
            engagement=tuple(engagement),
            opt_outs=tuple(o.at for o in opt_outs),
        )

    def replay(self, holder: HolderRecord, strategy: Strategy) -> HolderReplay:
        outcome, first, last = self.window(holder)
        if not holder.followed:
            return HolderReplay(holder.external_id, "unobserved", None, (), None, 0, 0, 0)
        match = self.policy.cadence_for(holder.track, holder.department)
        cadence = match[0] if match else None
        season = self.season
        touches = season.touches.get(holder.holder_id, ())
        responses = season.responses.get(holder.holder_id, ())
        engagement = season.engagement.get(holder.holder_id, ())
        opt_outs = season.opt_outs.get(holder.holder_id, ())
        if last < first:  # e.g. declined before follow-up began: nothing the rules could have seen
            outcome = "unobserved" if outcome == "declined" else outcome
            return HolderReplay(holder.external_id, outcome, None, (), None, 0, 0, 0)
        states = (
            self._naive(holder, cadence, first, last, touches, responses, engagement, opt_outs)
            if strategy == "naive"
            else self._incremental(holder, cadence, first, last, touches, responses, engagement, opt_outs)
        )
        # states: (day index, rules) at each index where the flags may have changed, first index included
        # declined: only flags raised within the horizon before the decline count as its warning
        # (one standing since earlier counts from the horizon's start, so the lead time is capped)
        warn_from = first
        if outcome == "declined" and self.horizon is not None:
            warn_from = max(first, last + 1 - self.horizon)
        first_flag: int | None = None
        first_rules: tuple[str, ...] = ()
        onsets = flagged_days = 0
        previous: frozenset[str] = frozenset()
        bounds = [index for index, _ in states[1:]] + [last + 1]
        for (index, rules), until in zip(states, bounds, strict=True):
            if rules:
                flagged_days += until - index
                if not previous:
                    onsets += 1
                if first_flag is None and until > warn_from:
                    first_flag, first_rules = max(index, warn_from), tuple(sorted(rules))
            previous = rules
        lead = None
        if outcome == "declined" and first_flag is not None and holder.declined_at is not None:
            lead = (holder.declined_at.astimezone(self.tz).date() - self.days[first_flag]).days
        return HolderReplay(
            holder.external_id,
            outcome,
            self.days[first_flag] if first_flag is not None else None,
            first_rules,
            lead,
            onsets,
            last - first + 1,
            flagged_days,
        )

    def _rules(self, history: HolderHistory, moment: datetime) -> frozenset[str]:
        self.evaluations += 1
        return frozenset(f.rule for f in self.engine.evaluate(history, moment))

    def _naive(
        self,
        holder: HolderRecord,
        cadence: str | None,
        first: int,
        last: int,
        touches: Sequence[TouchRecord],
        responses: Sequence[PulseResponse],
        engagement: Sequence[datetime],
        opt_outs: Sequence[OptOut],
    ) -> list[tuple[int, frozenset[str]]]:
        """Every day: the history truncated at that moment, rebuilt from scratch, then evaluated."""
        out: list[tuple[int, frozenset[str]]] = []
        for index in range(first, last + 1):
            moment = self.moments[index]
            state = self._state_at(holder, cadence, self.days[index], moment, opt_outs)
            history = self._history(
                holder,
                cadence,
                state,
                [t for t in touches if t.at <= moment],
                [r for r in responses if r.submitted_at <= moment],
                [e for e in engagement if e <= moment],
                [o for o in opt_outs if o.at <= moment],
            )
            rules = self._rules(history, moment)
            if not out or out[-1][1] != rules:
                out.append((index, rules))
        return out

    def _incremental(
        self,
        holder: HolderRecord,
        cadence: str | None,
        first: int,
        last: int,
        touches: Sequence[TouchRecord],
        responses: Sequence[PulseResponse],
        engagement: Sequence[datetime],
        opt_outs: Sequence[OptOut],
    ) -> list[tuple[int, frozenset[str]]]:
        """Only on the days after an event; one full-season history per segment of constant state."""
        stamps = self.stamps
        engine = self.engine

        def day_of(moment: datetime) -> int:  # the first evaluation at or after the moment
            return bisect_left(stamps, moment.timestamp())

        # segment starts: phase boundaries (with and without the acceptance anchor), acceptance, opt-outs
        starts = {first}
        if cadence is not None:
            for accepted in {None, holder.accepted_date}:
                dates = {"offer": holder.offer_date, "accepted": accepted, "start": holder.start_date}
                for phase in self.policy.cadences[cadence].phases:
                    for anchor in (phase.start, phase.end):
                        day = anchor.resolve(dates)
                        if day is not None:
                            starts.add((day - self.start).days)
        if holder.accepted_date is not None:
            starts.add((holder.accepted_date - self.start).days)
        starts.update(day_of(o.at) for o in opt_outs)
        segment_starts = sorted(s for s in starts if first <= s <= last)

        # event moments as POSIX seconds: one timestamp per record, deadlines by adding seconds
        delivered = [t.at.timestamp() for t in touches if t.outcome == "delivered"]
        events = {bisect_left(stamps, ts) for ts in delivered}
        events.update(day_of(t.at) for t in touches if t.outcome != "delivered")
        events.update(day_of(r.submitted_at) for r in responses)
        events.update(day_of(e) for e in engagement)
        gaps = {engine.params.default_gap.interval: engine.params.default_gap}
        if cadence is not None:
            gaps.update((g.interval, g) for (c, _), g in engine.params.gaps.items() if c == cadence)
        offer_at = datetime.combine(holder.offer_date, time(0, 0), engine.tz)
        fixed_spans: list[float] = []
        for gap in gaps.values():
            events.add(day_of(gap.after(offer_at)))
            if gap.fixed is not None:
                fixed_spans.append(gap.fixed.total_seconds())
            else:  # calendar months: the deadline as the rules compute it
                events.update(day_of(gap.after(t.at)) for t in touches if t.outcome == "delivered")
        window, fixed = engine.params.window, engine.params.window_fixed
        if fixed is not None:
            fixed_spans.append(fixed.total_seconds())
        else:
            for t in touches:
                if t.outcome == "delivered":
                    exit_at = shift_moment(t.at, window)
                    events.update((day_of(exit_at), day_of(exit_at) + 1))
        count = len(stamps)
        for span in fixed_spans:
            for ts in delivered:
                deadline = ts + span
                index = bisect_left(stamps, deadline)
                events.add(index)
                # fixed spans are added on the local wall clock: across a DST change the moment
                # moves by up to an hour, so a neighbouring evaluation that close is checked too
                if index < count and stamps[index] - deadline < _DST_SLACK:
                    events.add(index + 1)
                if index > 0 and deadline - stamps[index - 1] < _DST_SLACK:
                    events.add(index - 1)
        candidates = sorted({e for e in events if first <= e <= last}.union(segment_starts))

        out: list[tuple[int, frozenset[str]]] = []
        histories: dict[tuple[str, str | None, tuple[str, ...]], HolderHistory] = {}
        segment = -1
        history: HolderHistory | None = None
        for index in candidates:
            while segment + 1 < len(segment_starts) and segment_starts[segment + 1] <= index:
                segment += 1
                begin = segment_starts[segment]
                state = self._state_at(holder, cadence, self.days[begin], self.moments[begin], opt_outs)
                history = histories.get(state)
                if history is None:
                    history = histories[state] = self._history(
                        holder, cadence, state, touches, responses, engagement, opt_outs
                    )
            assert history is not None
            rules = self._rules(history, self.moments[index])
            if not out or out[-1][1] != rules:
                out.append((index, rules))
        return out


def season_span(season: Season, policy: Policy) -> tuple[date, date]:
    """From the first offer to the last day the record covers (or the last start date, if earlier)."""
    tz = policy.organization.tz
    if not season.holders:
        day = season.recorded_until.astimezone(tz).date()
        return day, day
    first = min(h.offer_date for h in season.holders)
    recorded = season.recorded_until.astimezone(tz)
    last_day = (
        recorded.date()
        if recorded.time() >= policy.report.weekly.time
        else recorded.date() - timedelta(days=1)
    )
    return first, min(last_day, max(h.start_date for h in season.holders))


def run_backtest(
    season: Season,
    policy: Policy,
    *,
    label: str = "policy",
    start: date | None = None,
    end: date | None = None,
    strategy: Strategy = "incremental",
    horizon_days: int | None = DEFAULT_HORIZON_DAYS,
) -> BacktestResult:
    """Replay ``season`` through the rules of ``policy`` from ``start`` to ``end`` (default: the
    season's span), one evaluation per day at the weekly report's time of day. A decliner counts as
    warned when flagged within ``horizon_days`` before the decline (None: any time before it)."""
    span_start, span_end = season_span(season, policy)
    start, end = start or span_start, end or span_end
    replayer = _Replayer(policy, season, start, end, horizon_days)
    result = BacktestResult(label, start, end, horizon_days=horizon_days)
    for holder in season.holders:
        if holder.status in ("withdrawn", "rejected"):
            continue
        result.replays.append(replayer.replay(holder, strategy))
    result.evaluations = replayer.evaluations
    return result
