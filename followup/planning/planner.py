"""The planner: holders + policy + touch history + now → touches to create, move and cancel.

A pure function (no clock, no I/O), so a tick, a test with a frozen ``now``, the season simulation and
the benchmark all run the same code. Each holder's whole season is derived from its dates alone; a tick
creates the part of it that falls between ``now - catch_up`` (nothing older: no burst after downtime)
and ``now + horizon``. Seasons are shared between holders with the same dates, which is what makes
100,000 holders cheap (most new graduates share a start date and offers cluster on a few days).

Rules, in the words of SPEC "Cadence semantics":
- phases are bounded by anchors; a phase using ``accepted`` waits for the acceptance date; nothing is
  planned before the offer date; where phases overlap the later phase wins (the earlier is truncated);
- touch k of a phase falls on ``phase start + k × every`` (months counted from the phase start each
  time, clamped to month end) while before the phase end, then moves to the next business day at the
  preferred send time, and never shares a local day with another touch of the same holder;
- the rotation advances on every touch that uses it: touch k uses the next entry in order, a survey
  touch carries the link on the rotation's entry unless ``survey.template`` names its own message (then
  the rotation waits: no entry is ever swallowed); ``once`` entries are used on the first round only;
- an event plans its own touches (invitation, reminder, day-before note, thank-you, follow-up) from its
  own dates for every holder of its audience, never later than the kind's bound (the RSVP deadline, the
  day before the event, two weeks after it) nor, after the event, before it: a holder offered after the
  nominal day gets the invitation on the offer day while the deadline has not passed;
- an event touch goes only to the holders whose RSVP/attendance state (``HolderSnapshot.event_states``,
  data like the rest) is in the kind's gate (``EVENT_TOUCH_GATES``); a planned one whose gate closed
  (the holder answered, or said 欠席) is cancelled;
- catch-up after downtime is counted in business days (a closure does not use the window up), and a
  touch that delivery held back or retried keeps the time delivery gave it;
- ``quiet_after_reply``: an automated cadence touch (message or survey, not an event touch or a manual
  one) due within the quiet period after the holder's latest reply or answer waits until the first
  business day after it, at the preferred send time (``HolderSnapshot.last_reply_at``, data);
- a pause (``HolderSnapshot.paused_until``, set by HR in the workspace): no automated touch (message
  or survey, event touches included; manual ones are people's decisions) is created for a slot due
  before that day's first send moment, and planned ones due before it are cancelled — the cadence
  resumes after the pause rather than sending the paused weeks all at once;
- a task (提出物・入社前研修) plans its reminders at offsets from the holder's due date (``remind: [-1w,
  +2bd]``): one before the due date never goes after it, one after never before the day after it nor
  on/after the first working day; a task due before the offer day is not reminded. Reminders take
  their days after every other touch (a day already used moves them, never the cadence). A reminder goes only
  while the holder's status is pending (``HolderSnapshot.task_states``, data); a planned one whose task
  was marked 提出済・確認済・対象外 is cancelled. Event and task touches do not wait for quiet_after_reply
  (they are bound to their own dates);
- dates never depend on channels: an opt-out changes a touch's channel, never its day;
- the idempotency key is ``external_id:cadence:phase:seq`` (one-offs ``…:phase:once:name``).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from followup.calendar import BusinessCalendar
from followup.config.schema import (
    EVENT_TOUCH_GATES,
    EVENT_TOUCH_LABELS,
    Cadence,
    Event,
    Phase,
    Policy,
    Task,
    TemplateRef,
)
from followup.durations import Interval, shift, shift_moment
from followup.pool.rules import is_pool_key
from followup.tasks.sheet import task_of
from followup.vocab import ACTIVE_STATUSES, TouchStatus

# not yet done; cancelled when a holder leaves
PENDING_STATUSES = frozenset({TouchStatus.PLANNED.value, TouchStatus.REMINDED.value})
MAX_TOUCHES_PER_PHASE = 2000  # a guard against a runaway interval (e.g. 1d over several years)

STATUS_REASONS = {
    "declined": "内定辞退のため中止",
    "withdrawn": "内定取り消し・辞退のため中止",
    "joined": "入社済みのため中止",
    "rejected": "不採用のため中止",
}


@dataclass(frozen=True, slots=True)
class HolderSnapshot:
    """What the planner needs to know about one holder (no ORM object crosses this line)."""

    id: int
    external_id: str
    track: str
    department: str | None
    status: str
    offer_date: date
    accepted_date: date | None
    start_date: date
    reachable: frozenset[str]  # message channels with contact data and no opt-out
    timezone: str | None = None
    # event name → the holder's state: attendance once recorded (attended/absent), else the RSVP answer
    # (attending/declined/maybe/waitlisted); an event not in the mapping has no answer yet
    event_states: Mapping[str, str] = field(default_factory=dict)
    last_reply_at: datetime | None = None  # the latest reply, answer or RSVP (for quiet_after_reply)
    paused_until: date | None = None  # HR paused automated contact: nothing automated before this day
    # task name → submitted/confirmed/exempt; a task not in the mapping is pending (its reminders go)
    task_states: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExistingTouch:
    id: int
    key: str
    holder_id: int
    phase: str
    seq: int
    kind: str
    channel: str
    due_at: datetime
    status: str
    deferred: bool = False  # delivery retried or held it back: its due time is delivery's, not ours


@dataclass(frozen=True, slots=True)
class PlannedTouch:
    key: str
    holder_id: int
    cadence: str
    phase: str
    seq: int
    kind: str  # message | survey | manual
    channel: str
    template: str | None
    event: str | None
    survey_form: str | None
    due_at: datetime
    assignee: str | None = None
    note: str | None = None
    reason: str = ""


@dataclass
class PlanResult:
    create: list[PlannedTouch] = field(default_factory=list)
    move: list[tuple[int, datetime]] = field(default_factory=list)
    cancel: list[tuple[int, str]] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    # planned touches whose channel was opted out: (touch_id, next reachable channel)
    rechannel: list[tuple[int, str]] = field(default_factory=list)
    # window slots not created for want of a channel: (holder_id, key suffix); the first one of a holder
    # is also in ``skipped``. The plan tick keeps them to name the holder later without reloading it
    unreachable: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Slot:
    """One touch of a season before a channel is chosen (channels depend on the holder, dates do not)."""

    suffix: str  # the key without the external id
    phase: str
    seq: int
    kind: str
    manual_channel: str | None  # phone/letter/... for manual touches
    channels: tuple[str, ...]  # preference list for message/survey touches
    template: str | None
    event: str | None
    survey_form: str | None
    assignee: str | None
    note: str | None
    reason: str
    due_at: datetime
    nominal: date | None = None  # the day the cadence asked for, when the calendar moved it
    why: str | None = None  # why it moved (closed day, another touch that day)

    def explain(self) -> str:
        if self.nominal is None:
            return self.reason
        day = self.due_at.date().isoformat()
        return f"{self.reason}、{self.nominal.isoformat()} は{self.why}のため {day} に移動"


@dataclass(frozen=True, slots=True)
class _Season:
    slots: tuple[_Slot, ...]  # sorted by due_at
    stamps: tuple[float, ...]  # due_at timestamps, for bisect
    by_suffix: Mapping[str, _Slot]


def _phase_bounds(
    cadence: Cadence, dates: dict[str, date | None], calendar: BusinessCalendar
) -> list[tuple[date, date] | None]:
    """[start, end) per phase after anchors, the offer-date floor and later-phase-wins truncation."""
    offer = dates["offer"]
    assert offer is not None
    bounds: list[tuple[date, date] | None] = []
    for phase in cadence.phases:
        start = phase.start.resolve(dates, calendar.is_business_day)
        end = phase.end.resolve(dates, calendar.is_business_day)
        if start is None or end is None:
            bounds.append(None)  # e.g. a phase anchored on acceptance before the holder accepted
            continue
        start = max(start, offer)
        bounds.append((start, end) if start < end else None)
    for index, bound in enumerate(bounds):
        if bound is None:
            continue
        later_starts = [b[0] for b in bounds[index + 1 :] if b is not None]
        end = min([bound[1], *later_starts])
        bounds[index] = (bound[0], end) if bound[0] < end else None
    return bounds


def _label(phase: Phase) -> str:
    return phase.label or phase.name


# (suffix, phase, seq, kind, manual_channel, channels, template, event, survey_form, assignee, note, reason)
_Fields = tuple[
    str,
    str,
    int,
    str,
    str | None,
    tuple[str, ...],
    str | None,
    str | None,
    str | None,
    str | None,
    str | None,
    str,
]
# (nominal day, order, fields, latest day allowed or None, earliest day allowed or None)
_Candidate = tuple[date, tuple[int, int, int], _Fields, date | None, date | None]
_Events = tuple[tuple[str, Event], ...]
_Tasks = tuple[tuple[str, Task], ...]
_PhaseCache = dict[tuple[str, int, date, date], list[_Candidate]]


def _rotation(phase: Phase, events: Mapping[str, Event]) -> Callable[[date], TemplateRef | None]:
    """The rotation as a cursor: each call takes the next entry for a touch on ``day``.

    First round: every entry in order; later rounds: the entries not marked ``once``. An entry naming an
    event whose deadline has passed on ``day`` is passed over (an invitation is never sent late)."""
    entries = phase.templates
    repeat = [ref for ref in entries if not ref.once] or list(entries)
    position = 0

    def take(day: date) -> TemplateRef | None:
        nonlocal position
        for _ in range(len(entries) + len(repeat)):
            if position < len(entries):
                ref = entries[position]
            else:
                ref = repeat[(position - len(entries)) % len(repeat)]
            position += 1
            event = events.get(ref.event) if ref.event is not None else None
            if event is not None and day > event.latest("invitation"):
                continue
            return ref
        return None

    return take


def _phase_candidates(
    cadence_name: str,
    p_index: int,
    phase: Phase,
    p_start: date,
    p_end: date,
    calendar: BusinessCalendar,
    events: Mapping[str, Event],
) -> list[_Candidate]:
    """The regular touches of one phase between its bounds, before the calendar moves them."""
    found: list[_Candidate] = []
    label = _label(phase)
    take = _rotation(phase, events)
    for k in range(MAX_TOUCHES_PER_PHASE):
        nominal = shift(p_start, phase.every, k, is_business_day=calendar.is_business_day)
        if nominal >= p_end:
            break
        survey = phase.survey is not None and (k + 1) % phase.survey.every == 0
        ref: TemplateRef | None
        if survey and phase.survey is not None and phase.survey.template is not None:
            ref = TemplateRef(template=phase.survey.template)  # its own message: the rotation waits
        else:
            ref = take(nominal)
        if ref is None:
            continue
        fields: _Fields = (
            f"{cadence_name}:{phase.name}:{k}",
            phase.name,
            k,
            "survey" if survey else "message",
            None,
            phase.channels,
            ref.template,
            ref.event,
            phase.survey.form if survey and phase.survey else None,
            None,
            None,
            f"{label} 第{k + 1}回 ({phase.every})",
        )
        found.append((nominal, (0, p_index, k), fields, None, None))
    return found


def _channels_on(cadence: Cadence, bounds: Sequence[tuple[date, date] | None], day: date) -> tuple[str, ...]:
    """The channel list of the phase ``day`` falls in (the later phase wins), else of the nearest one."""
    chosen: Phase | None = None
    for phase, bound in zip(cadence.phases, bounds, strict=True):
        if bound is not None and bound[0] <= day:
            chosen = phase
    return (chosen or cadence.phases[0]).channels


def _event_candidates(
    cadence_name: str,
    cadence: Cadence,
    bounds: Sequence[tuple[date, date] | None],
    events: _Events,
    offer: date,
    start: date,
    calendar: BusinessCalendar,
) -> list[_Candidate]:
    """Each event's touches for one holder, from the event's own dates (not from a rotation slot)."""
    found: list[_Candidate] = []
    for e_index, (name, event) in enumerate(events):
        event_day = event.starts_at.date()
        if event_day >= start:
            continue  # the holder works here by then: not an offer holders' event for them
        event_dates: dict[str, date | None] = {"deadline": event.deadline, "event": event_day}
        for t_index, (kind, touch) in enumerate(event.touches()):
            latest = event.latest(kind)
            if latest < offer or event_day < offer:
                continue  # offered after the deadline (or the event): too late to invite
            anchor = event.anchor(kind)
            nominal = anchor.resolve(event_dates, calendar.is_business_day)
            if nominal is None:
                continue
            label = f"{event.title}の{EVENT_TOUCH_LABELS.get(kind, kind)}"
            reason = f"{label} ({anchor}、締切 {latest.isoformat()})"
            if nominal < offer:
                later = f"内定日が {nominal.isoformat()} より後のため内定日に"
                reason = f"{label} ({later}、締切 {latest.isoformat()})"
                nominal = offer
            nominal = min(nominal, latest)
            earliest = event.earliest(kind)
            if earliest is not None:
                nominal = max(nominal, earliest)
            channels = event.channels or _channels_on(cadence, bounds, nominal)
            fields: _Fields = (
                f"{cadence_name}:event:{name}:{kind}",
                "event",
                -100 - 10 * e_index - t_index,
                "message",
                None,
                tuple(channels),
                touch.template,
                name,
                None,
                None,
                None,
                reason,
            )
            found.append((nominal, (2, e_index, t_index), fields, latest, earliest))
    return found


def _task_candidates(
    cadence_name: str,
    cadence: Cadence,
    bounds: Sequence[tuple[date, date] | None],
    tasks: _Tasks,
    dates: dict[str, date | None],
    calendar: BusinessCalendar,
) -> list[_Candidate]:
    """Each task's reminders for one holder, at offsets from the holder's due date."""
    offer, start = dates["offer"], dates["start"]
    assert offer is not None and start is not None
    found: list[_Candidate] = []
    for t_index, (name, task) in enumerate(tasks):
        due = task.due_on(dates, calendar.is_business_day)
        if due is None or due < offer:
            continue  # not accepted yet (an accepted-anchored task), or due before the holder's offer
        if task.done_on_acceptance and dates["accepted"] is not None:
            continue  # 入社承諾書: the acceptance is the submission
        for r_index, offset in enumerate(task.remind):
            nominal = offset.apply(due, calendar.is_business_day)
            after = offset.sign > 0 and offset.interval.amount > 0
            if nominal < offer or nominal >= start:
                continue
            latest = start - timedelta(days=1) if after else due
            earliest = due + timedelta(days=1) if after else None
            where = "期限後" if after else "期限前"
            reason = f"{task.title}のリマインド ({where}: 期限 {due.isoformat()} {offset})"
            channels = task.channels or _channels_on(cadence, bounds, nominal)
            fields: _Fields = (
                f"{cadence_name}:task:{name}:{offset}",
                "task",
                -1000 - 10 * t_index - r_index,
                "message",
                None,
                tuple(channels),
                task.template,
                None,
                None,
                None,
                None,
                reason,
            )
            found.append((nominal, (3, t_index, r_index), fields, latest, earliest))
    return found


def _compute_season(
    cadence_name: str,
    cadence: Cadence,
    offer: date,
    accepted: date | None,
    start: date,
    zone: ZoneInfo,
    calendar: BusinessCalendar,
    phase_cache: _PhaseCache | None = None,
    events: _Events = (),
    all_events: Mapping[str, Event] | None = None,
    tasks: _Tasks = (),
) -> _Season:
    dates: dict[str, date | None] = {"offer": offer, "accepted": accepted, "start": start}
    bounds = _phase_bounds(cadence, dates, calendar)
    phase_cache = {} if phase_cache is None else phase_cache
    known_events = dict(events) if all_events is None else all_events
    candidates: list[_Candidate] = _event_candidates(
        cadence_name, cadence, bounds, events, offer, start, calendar
    )
    candidates += _task_candidates(cadence_name, cadence, bounds, tasks, dates, calendar)
    for p_index, (phase, bound) in enumerate(zip(cadence.phases, bounds, strict=True)):
        if bound is not None:
            cache_key = (cadence_name, p_index, bound[0], bound[1])
            regular = phase_cache.get(cache_key)
            if regular is None:
                regular = _phase_candidates(
                    cadence_name, p_index, phase, bound[0], bound[1], calendar, known_events
                )
                phase_cache[cache_key] = regular
            candidates.extend(regular)
        # one-off touches keep their own date even when their phase was overridden by a later one
        for o_index, one_off in enumerate(phase.one_off):
            nominal = one_off.at.resolve(dates, calendar.is_business_day)
            if nominal is None:
                continue
            if nominal < offer:
                if one_off.at.base != "start" or start <= offer:
                    continue
                nominal = offer  # e.g. the first-day schedule for a late offer: still before the start
            manual = one_off.kind == "manual"
            fields: _Fields = (
                f"{cadence_name}:{phase.name}:once:{one_off.name}",
                phase.name,
                -1 - o_index,
                one_off.kind,
                (one_off.channel or "phone") if manual else None,
                () if manual else phase.channels,
                one_off.template,
                None,
                one_off.survey,
                one_off.assignee,
                one_off.note or None,
                f"{_label(phase)} {one_off.name} ({one_off.at})",
            )
            candidates.append((nominal, (1, p_index, o_index), fields, None, None))
    # (nominal, order) is unique; task reminders take their days last, so a cadence keeps its rhythm
    candidates.sort(key=lambda c: (c[1][0] == 3, c[0], c[1]))
    used: set[date] = set()
    slots: list[_Slot] = []
    stamps: list[float] = []
    for nominal, _order, fields, latest, earliest in candidates:
        day = calendar.next_business_day(nominal)
        why = calendar.closed_reason(nominal)
        while day in used:  # never two touches on one local day for one holder
            day = calendar.next_business_day(day + timedelta(days=1))
            why = why or "同日に別の接点あり"
        if latest is not None and (day > latest or day >= start):
            # an event touch never goes after its bound: the latest free business day before it, or
            # (every day taken) the latest business day even if another touch shares it
            until = min(latest + timedelta(days=1), start)
            floor = max(offer, earliest) if earliest is not None else offer
            earlier = _free_business_day_before(until, floor, used, calendar)
            if earlier is None:
                earlier = _free_business_day_before(until, floor, set(), calendar)
            if earlier is None:
                continue
            day, why = earlier, why or "締切より前に前倒し"
        elif day >= start:
            # moving forward would reach the first working day (e.g. year-end closure just before a
            # January start): move back to the last free business day before it instead, or drop it
            earlier = _free_business_day_before(nominal, offer, used, calendar)
            if earlier is None:
                continue
            day, why = earlier, why or "入社日より前に前倒し"
        used.add(day)
        due_at, stamp = calendar.moment(day, zone)
        if day == nominal:
            slots.append(_Slot(*fields, due_at))
        else:
            slots.append(_Slot(*fields, due_at, nominal, why))
        stamps.append(stamp)
    # sorting by stamp keeps slots aligned (days are distinct, except an event touch that had no free day)
    order = sorted(range(len(slots)), key=stamps.__getitem__)
    ordered = tuple(slots[i] for i in order)
    return _Season(
        slots=ordered,
        stamps=tuple(stamps[i] for i in order),
        by_suffix={s.suffix: s for s in ordered},
    )


def _free_business_day_before(
    day: date, earliest: date, used: set[date], calendar: BusinessCalendar
) -> date | None:
    """The latest business day before ``day`` (not before ``earliest``) with no touch yet, if any."""
    candidate = day - timedelta(days=1)
    while candidate >= earliest:
        if calendar.is_business_day(candidate) and candidate not in used:
            return candidate
        candidate -= timedelta(days=1)
    return None


def _channel_for(slot: _Slot, reachable: frozenset[str]) -> str | None:
    if slot.manual_channel is not None:
        return slot.manual_channel
    for channel in slot.channels:
        if channel in reachable:
            return channel
    return None


def _materialize(slot: _Slot, holder: HolderSnapshot, cadence_name: str, channel: str) -> PlannedTouch:
    return PlannedTouch(
        key=f"{holder.external_id}:{slot.suffix}",
        holder_id=holder.id,
        cadence=cadence_name,
        phase=slot.phase,
        seq=slot.seq,
        kind=slot.kind,
        channel=channel,
        template=slot.template,
        event=slot.event,
        survey_form=slot.survey_form,
        due_at=slot.due_at,
        assignee=slot.assignee,
        note=slot.note,
        reason=slot.explain(),
    )


def _unreachable_reason(slot: _Slot) -> str:
    return f"no reachable channel ({'/'.join(slot.channels)} all missing or opted out)"


class SeasonCache:
    """Seasons computed once per (cadence, dates, time zone, events) for one policy and calendar.

    ``plan()`` makes a fresh one per call; a caller that plans the same holders many times (the season
    simulation, one call per day) passes its own so each distinct season is worked out once per run. A
    season depends only on its key and the policy/calendar, never on ``now`` or the history.
    """

    def __init__(self, policy: Policy, calendar: BusinessCalendar) -> None:
        self.policy = policy
        self.calendar = calendar
        # events and tasks tuples are interned as small ints: hashing pydantic models per holder cost
        self._seasons: dict[tuple[str, date, date | None, date, str | None, int, int], _Season] = {}
        self._cadences: dict[tuple[str, str | None], tuple[str, Cadence] | None] = {}
        self._events: dict[tuple[str, str | None], tuple[_Events, int]] = {}
        self._event_ids: dict[_Events, int] = {}
        self._tasks: dict[tuple[str, str | None], tuple[_Tasks, int]] = {}
        self._task_ids: dict[_Tasks, int] = {}
        self._phases: _PhaseCache = {}

    def _events_entry(self, holder: HolderSnapshot) -> tuple[_Events, int]:
        signature = (holder.track, holder.department)
        found = self._events.get(signature)
        if found is None:
            events = events_for(self.policy, holder.track, holder.department)
            found = (events, self._event_ids.setdefault(events, len(self._event_ids)))
            self._events[signature] = found
        return found

    def _tasks_entry(self, holder: HolderSnapshot) -> tuple[_Tasks, int]:
        signature = (holder.track, holder.department)
        found = self._tasks.get(signature)
        if found is None:
            tasks = tasks_for(self.policy, holder.track, holder.department)
            found = (tasks, self._task_ids.setdefault(tasks, len(self._task_ids)))
            self._tasks[signature] = found
        return found

    def tasks_for(self, holder: HolderSnapshot) -> _Tasks:
        return self._tasks_entry(holder)[0]

    def events_for(self, holder: HolderSnapshot) -> _Events:
        return self._events_entry(holder)[0]

    def cadence_for(self, holder: HolderSnapshot) -> tuple[str, Cadence] | None:
        signature = (holder.track, holder.department)
        if signature not in self._cadences:
            self._cadences[signature] = self.policy.cadence_for(holder.track, holder.department)
        return self._cadences[signature]

    def season(self, holder: HolderSnapshot, cadence_name: str, cadence: Cadence) -> _Season:
        events, events_id = self._events_entry(holder)
        tasks, tasks_id = self._tasks_entry(holder)
        signature = (
            cadence_name,
            holder.offer_date,
            holder.accepted_date,
            holder.start_date,
            holder.timezone,
            events_id,
            tasks_id,
        )
        season = self._seasons.get(signature)
        if season is None:
            season = _compute_season(
                cadence_name,
                cadence,
                holder.offer_date,
                holder.accepted_date,
                holder.start_date,
                self.calendar.zone(holder.timezone),
                self.calendar,
                self._phases,
                events,
                self.policy.events,
                tasks,
            )
            self._seasons[signature] = season
        return season

    def due_stamps(self, holder: HolderSnapshot) -> tuple[float, ...] | None:
        """The due timestamps of the holder's season, sorted (None: no cadence applies)."""
        match = self.cadence_for(holder)
        if match is None:
            return None
        return self.season(holder, *match).stamps

    def season_for(self, holder: HolderSnapshot) -> _Season | None:
        """The holder's season (None: no cadence applies), computed once per distinct key."""
        match = self.cadence_for(holder)
        return None if match is None else self.season(holder, *match)

    def window_suffixes(self, holder: HolderSnapshot, low: float, high: float) -> tuple[str, ...] | None:
        """The key suffixes of the holder's season slots due in ``[low, high]`` (None: no cadence)."""
        match = self.cadence_for(holder)
        if match is None:
            return None
        season = self.season(holder, *match)
        first, last = bisect_left(season.stamps, low), bisect_right(season.stamps, high)
        return tuple(slot.suffix for slot in season.slots[first:last])

    def window(self, now: datetime) -> tuple[float, float]:
        """The [low, high] timestamps a tick at ``now`` creates touches in (catch-up floor, horizon)."""
        low = catch_up_floor(now, self.policy, self.calendar)
        high = shift_moment(now, self.policy.scheduler.horizon, 1)
        return low.timestamp(), high.timestamp()

    def __len__(self) -> int:
        """Distinct seasons computed so far."""
        return len(self._seasons)


def gains_slots(season: _Season, low: float, high: float, seen_low: float, seen_high: float) -> bool:
    """Whether the window ``[low, high]`` holds a slot the window ``[seen_low, seen_high]`` did not."""
    first, last = bisect_left(season.stamps, low), bisect_right(season.stamps, high)
    return first < last and (season.stamps[first] < seen_low or season.stamps[last - 1] > seen_high)


def window_suffixes(season: _Season, low: float, high: float) -> tuple[str, ...]:
    """The key suffixes of the season's slots due in ``[low, high]``."""
    first, last = bisect_left(season.stamps, low), bisect_right(season.stamps, high)
    return tuple(slot.suffix for slot in season.slots[first:last])


def unreachable_skip(season: _Season, low: float, high: float, suffixes: frozenset[str]) -> str | None:
    """The skip reason :func:`plan` gives a holder whose slots ``suffixes`` had no channel, when
    nothing about the holder changed since: the first of them still in the window ``[low, high]``."""
    first, last = bisect_left(season.stamps, low), bisect_right(season.stamps, high)
    for slot in season.slots[first:last]:
        if slot.suffix in suffixes:
            return _unreachable_reason(slot)
    return None


def events_for(policy: Policy, track: str | None, department: str | None) -> _Events:
    """The events that plan touches for a holder of this track and department (audience matches)."""
    return tuple(
        (name, event)
        for name, event in policy.events.items()
        if event.touches() and (event.audience is None or event.audience.matches(track, department))
    )


def tasks_for(policy: Policy, track: str | None, department: str | None) -> _Tasks:
    """The tasks with reminders for a holder of this track and department (audience matches)."""
    return tuple(
        (name, task) for name, task in policy.tasks.items() if task.remind and task.applies(track, department)
    )


def catch_up_floor(now: datetime, policy: Policy, calendar: BusinessCalendar) -> datetime:
    """The oldest due time a tick still creates: ``scheduler.catch_up`` counted in business days.

    ``3d`` and ``3bd`` are the last three business days, ``1w`` a week of workdays, so a long closure
    (シルバーウィーク, 年末年始 and a weekend) does not use the window up; months are calendar months."""
    interval = policy.scheduler.catch_up
    if interval.unit == "mo":
        return shift_moment(now, interval, -1)
    per_unit = len(policy.calendar.workdays) if interval.unit == "w" else 1
    business = Interval(interval.amount * per_unit, "bd")
    return shift_moment(now, business, -1, is_business_day=calendar.is_business_day)


def no_cadence_reason(policy: Policy, track: str, department: str | None) -> str:
    """Why a holder is not followed, in words HR can act on (the tracks that do have a cadence)."""
    tracks = sorted({t for c in policy.cadences.values() for t in c.applies_to.tracks})
    where = f"採用区分 {track!r}" + (f"・部署 {department!r}" if department else "")
    known = "、".join(tracks) if tracks else "(なし)"
    return (
        f"該当するケイデンスがありません: {where} に合う applies_to がないため、自動連絡は送られません "
        f"(ケイデンスのある採用区分: {known})"
    )


def season_schedule(
    holder: HolderSnapshot,
    cadence_name: str,
    cadence: Cadence,
    policy: Policy,
    calendar: BusinessCalendar | None = None,
) -> list[PlannedTouch]:
    """The holder's whole deterministic season (touches without a reachable channel left out)."""
    calendar = calendar or BusinessCalendar.from_policy(policy)
    season = _compute_season(
        cadence_name,
        cadence,
        holder.offer_date,
        holder.accepted_date,
        holder.start_date,
        calendar.zone(holder.timezone),
        calendar,
        None,
        events_for(policy, holder.track, holder.department),
        policy.events,
        tasks_for(policy, holder.track, holder.department),
    )
    touches = []
    for slot in season.slots:
        channel = _channel_for(slot, holder.reachable)
        if channel is not None:
            touches.append(_materialize(slot, holder, cadence_name, channel))
    return touches


def plan(
    holders: Iterable[HolderSnapshot],
    policy: Policy,
    existing: Mapping[int, Sequence[ExistingTouch]],
    now: datetime,
    calendar: BusinessCalendar | None = None,
    *,
    seasons: SeasonCache | None = None,
) -> PlanResult:
    """Decide what to create, move and cancel at ``now``; every decision carries its reason.

    ``seasons`` carries computed seasons across calls (same policy and calendar); default: a fresh cache."""
    if now.tzinfo is None:
        raise ValueError("plan() needs an aware 'now'")
    if seasons is None:
        calendar = calendar or BusinessCalendar.from_policy(policy)
        seasons = SeasonCache(policy, calendar)
    elif seasons.policy is not policy or (calendar is not None and calendar is not seasons.calendar):
        raise ValueError("a SeasonCache belongs to one policy and calendar")
    else:
        calendar = seasons.calendar
    low = catch_up_floor(now, policy, calendar)
    high = shift_moment(now, policy.scheduler.horizon, 1)
    low_stamp, high_stamp = low.timestamp(), high.timestamp()
    cadence_names = frozenset(policy.cadences)
    result = PlanResult()
    create, move, cancel, skipped, rechannel = (
        result.create,
        result.move,
        result.cancel,
        result.skipped,
        result.rechannel,
    )
    no_history: Sequence[ExistingTouch] = ()

    for holder in holders:
        history = existing.get(holder.id, no_history)
        if holder.status not in ACTIVE_STATUSES:
            reason = STATUS_REASONS.get(holder.status, f"holder {holder.status}")
            # the talent pool's touches are the pool planner's (followup.planning.pool), not ours
            cancel.extend(
                (t.id, reason) for t in history if t.status in PENDING_STATUSES and not is_pool_key(t.key)
            )
            continue
        match = seasons.cadence_for(holder)
        prefix = f"{holder.external_id}:"
        if match is None:
            skipped.append((holder.id, no_cadence_reason(policy, holder.track, holder.department)))
            gone = "該当するケイデンスがないため中止"
            cancel.extend(
                (t.id, gone)
                for t in history
                if t.status in PENDING_STATUSES and _is_planned_by_us(t, prefix, cadence_names)
            )
            continue
        cadence_name, cadence = match
        season = seasons.season(holder, cadence_name, cadence)

        quiet_until = _quiet_until(holder, policy, calendar)
        pause_end = _pause_end(holder, calendar)
        first = bisect_left(season.stamps, low_stamp)
        last = bisect_right(season.stamps, high_stamp)
        if first < last:
            keys = {t.key for t in history} if history else set()
            unreachable = False
            for slot in season.slots[first:last]:
                key = prefix + slot.suffix
                if key in keys or not _gate_open(slot, holder):
                    continue
                if pause_end is not None and _paused(slot, pause_end):
                    continue
                channel = _channel_for(slot, holder.reachable)
                if channel is None:
                    result.unreachable.append((holder.id, slot.suffix))
                    if not unreachable:
                        skipped.append((holder.id, _unreachable_reason(slot)))
                        unreachable = True
                    continue
                planned = _materialize(slot, holder, cadence_name, channel)
                if quiet_until is not None and _quiet(slot, quiet_until, holder):
                    planned = replace(
                        planned, due_at=quiet_until, reason=f"{planned.reason}、返信後の待機期間のため延期"
                    )
                create.append(planned)

        for touch in history:
            if touch.status != "planned" or not _is_planned_by_us(touch, prefix, cadence_names):
                continue
            current = season.by_suffix.get(touch.key[len(prefix) :])
            if current is None:
                cancel.append((touch.id, _gone_reason(touch, holder, policy)))
                continue
            if not _gate_open(current, holder):
                cancel.append((touch.id, _gate_reason(current, holder)))
                continue
            if pause_end is not None and _paused(current, pause_end) and touch.due_at < pause_end:
                cancel.append((touch.id, PAUSED_REASON))
                continue
            wanted = current.due_at
            if quiet_until is not None and _quiet(current, quiet_until, holder):
                wanted = quiet_until
            elif _postponed_for_reply(current, touch, holder, policy):
                wanted = touch.due_at  # the quiet period it waited for is over: it keeps its new time
            if wanted != touch.due_at and touch.due_at >= now and not touch.deferred:
                if current.due_at < low:
                    cancel.append((touch.id, "日程の変更で送信時期を過ぎたため中止"))
                    continue
                move.append((touch.id, wanted))
            if current.manual_channel is None and touch.channel not in holder.reachable:
                channel = _channel_for(current, holder.reachable)
                if channel is not None:
                    rechannel.append((touch.id, channel))
                # none left: the touch stays planned (HR may add a LINE id tomorrow); if it is still
                # unreachable when due, delivery records it as failed and the rules flag the holder
    return result


def _quiet_until(holder: HolderSnapshot, policy: Policy, calendar: BusinessCalendar) -> datetime | None:
    """The first send moment after the quiet period that follows the holder's latest reply, if any."""
    if policy.quiet_after_reply is None or holder.last_reply_at is None:
        return None
    zone = calendar.zone(holder.timezone)
    end = shift_moment(holder.last_reply_at, policy.quiet_after_reply, 1)
    day = calendar.next_business_day(end.astimezone(zone).date())
    moment, _ = calendar.moment(day, zone)
    if moment < end:
        moment, _ = calendar.moment(calendar.next_business_day(day + timedelta(days=1)), zone)
    return moment


PAUSED_REASON = "人事が自動連絡を一時停止したため中止"


def _pause_end(holder: HolderSnapshot, calendar: BusinessCalendar) -> datetime | None:
    """The first send moment on or after the day HR's pause ends (None: not paused)."""
    if holder.paused_until is None:
        return None
    zone = calendar.zone(holder.timezone)
    moment, _ = calendar.moment(calendar.next_business_day(holder.paused_until), zone)
    return moment


def _paused(slot: _Slot, pause_end: datetime) -> bool:
    """An automated touch (not a manual one) due before the pause ends."""
    return slot.kind in ("message", "survey") and slot.due_at < pause_end


def _postponed_for_reply(slot: _Slot, touch: ExistingTouch, holder: HolderSnapshot, policy: Policy) -> bool:
    """A planned touch that an earlier tick postponed after a reply (later than its season slot)."""
    return (
        policy.quiet_after_reply is not None
        and holder.last_reply_at is not None
        and slot.phase not in ("event", "task")
        and slot.kind in ("message", "survey")
        and holder.last_reply_at <= slot.due_at < touch.due_at
    )


def _quiet(slot: _Slot, quiet_until: datetime, holder: HolderSnapshot) -> bool:
    """An automated cadence touch due after the reply and before the quiet period ends."""
    if (
        slot.phase in ("event", "task")
        or slot.kind not in ("message", "survey")
        or holder.last_reply_at is None
    ):
        return False
    return holder.last_reply_at <= slot.due_at < quiet_until


def event_kind(slot_suffix: str) -> str | None:
    """The event touch kind of a key suffix ``CADENCE:event:NAME:KIND`` (None for other touches)."""
    parts = slot_suffix.split(":")
    return parts[-1] if len(parts) >= 4 and parts[-3] == "event" else None


def _gate_open(slot: _Slot, holder: HolderSnapshot) -> bool:
    """Whether the holder's state for the slot's event (or task) lets this touch go."""
    if slot.phase == "task":
        return holder.task_states.get(task_of(slot.suffix) or "", "pending") == "pending"
    if slot.phase != "event" or slot.event is None:
        return True
    kind = event_kind(slot.suffix)
    gate = EVENT_TOUCH_GATES.get(kind or "")
    return gate is None or holder.event_states.get(slot.event, "") in gate


_STATE_WORDS = {
    "attending": "出席と回答済み",
    "declined": "欠席と回答済み",
    "maybe": "未定と回答済み",
    "waitlisted": "キャンセル待ち",
    "attended": "出席を記録済み",
    "absent": "欠席を記録済み",
    "": "未回答",
}


def _gone_reason(touch: ExistingTouch, holder: HolderSnapshot, policy: Policy) -> str:
    """Why a planned touch left the season: 内定承諾 for a task handed in by accepting, else the dates."""
    task = policy.tasks.get(task_of(touch.key) or "") if touch.phase == "task" else None
    if task is not None and task.done_on_acceptance and holder.accepted_date is not None:
        return "内定承諾済み(提出済み)のため中止"
    return "日程の変更で予定から外れたため中止"


_TASK_WORDS = {"submitted": "提出済み", "confirmed": "確認済み", "exempt": "対象外"}


def _gate_reason(slot: _Slot, holder: HolderSnapshot) -> str:
    if slot.phase == "task":
        status = holder.task_states.get(task_of(slot.suffix) or "", "")
        return f"{_TASK_WORDS.get(status, status)}のため中止"
    state = holder.event_states.get(slot.event or "", "")
    return f"{_STATE_WORDS.get(state, state)}のため中止"


def _is_planned_by_us(touch: ExistingTouch, prefix: str, cadence_names: frozenset[str]) -> bool:
    """Touches of a cadence (not ad-hoc ones logged by hand or created by another area)."""
    if not touch.key.startswith(prefix):
        return False
    cadence = touch.key[len(prefix) :].split(":", 1)[0]
    return cadence in cadence_names
