"""The HR policy as typed, immutable objects: what ``config/followup.yaml`` means.

Every model forbids unknown keys (a typo is an error, not a silently ignored setting) and is frozen
(the planner and the rules receive one policy and cannot change it).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from datetime import date, datetime, time
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PlainSerializer,
    create_model,
    field_validator,
    model_validator,
)

from followup.channels import CHANNELS, channel_class
from followup.channels import MESSAGE_CHANNELS as MESSAGE_CHANNELS
from followup.channels.base import ChannelPolicy, EnvRef
from followup.durations import Anchor, Interval, Offset, parse_anchor, parse_interval, parse_offset

MANUAL_CHANNELS = ("phone", "letter", "meeting", "other")
# the words of followup.vocab (Severity, WEEKDAYS); tests/test_vocab.py keeps the two in step
Severity = Literal["low", "medium", "high"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _to_interval(value: Any) -> Interval:
    return value if isinstance(value, Interval) else parse_interval(str(value))


def _to_anchor(value: Any) -> Anchor:
    return value if isinstance(value, Anchor) else parse_anchor(str(value))


def _to_offset(value: Any) -> Offset:
    return value if isinstance(value, Offset) else parse_offset(str(value))


def _known_channel(value: Any) -> str:
    if value not in MESSAGE_CHANNELS:
        raise ValueError(f"unknown channel {value!r}; one of {', '.join(MESSAGE_CHANNELS)}")
    return str(value)


IntervalField = Annotated[Interval, BeforeValidator(_to_interval), PlainSerializer(str)]
AnchorField = Annotated[Anchor, BeforeValidator(_to_anchor), PlainSerializer(str)]
OffsetField = Annotated[Offset, BeforeValidator(_to_offset), PlainSerializer(str)]
ChannelName = Annotated[str, AfterValidator(_known_channel)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Organization(Strict):
    name: str
    timezone: str = "Asia/Tokyo"
    locale: Literal["ja", "en"] = "ja"
    president: str = ""
    president_email: str = ""  # the president's own address: reminders for their calls say 「佐藤社長」
    hr_name: str = ""
    hr_email: str = ""
    hr_phone: str = ""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Asia/Tokyo)") from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class SendWindow(Strict):
    start: time = time(9, 0)
    end: time = time(19, 0)

    @model_validator(mode="after")
    def _ordered(self) -> SendWindow:
        if self.start >= self.end:
            raise ValueError("send_window start must be before end")
        return self


class YearEndClosure(Strict):
    """Closed from ``start`` (MM-DD, December) through ``end`` (MM-DD, January), both inclusive."""

    start: str = "12-29"
    end: str = "01-03"

    @field_validator("start", "end")
    @classmethod
    def _month_day(cls, value: str) -> str:
        try:
            date.fromisoformat(f"2000-{value}")
        except ValueError:
            raise ValueError(f"expected MM-DD, got {value!r}") from None
        return value


class CalendarPolicy(Strict):
    holidays: Literal["japan", "none"] = "japan"
    workdays: tuple[Weekday, ...] = Field(("mon", "tue", "wed", "thu", "fri"), min_length=1)
    year_end_closure: YearEndClosure | None = YearEndClosure()
    closed_dates: tuple[date, ...] = ()
    send_window: SendWindow = SendWindow()
    send_time: time | None = None  # preferred time of day; default: the window's start

    @model_validator(mode="after")
    def _send_time_in_window(self) -> CalendarPolicy:
        if self.send_time is not None and not (
            self.send_window.start <= self.send_time < self.send_window.end
        ):
            raise ValueError("send_time must fall inside send_window")
        return self

    @property
    def preferred_time(self) -> time:
        return self.send_time or self.send_window.start


M = TypeVar("M", bound=ChannelPolicy)


class ChannelsPolicy(Strict):
    """``channels:``: ``outbox_dir`` and one section per registered channel, validated by that channel's
    ``policy_model`` (a missing section is the model's defaults; email's needs ``from``)."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)
    outbox_dir: str = "var/outbox"

    @model_validator(mode="wrap")
    @classmethod
    def _sections(cls, data: Any, handler: ModelWrapValidatorHandler[ChannelsPolicy]) -> ChannelsPolicy:
        if isinstance(data, ChannelsPolicy) or not isinstance(data, dict):
            return handler(data)
        checked = _sections_model().model_validate(data)
        return handler({name: getattr(checked, name) for name in ("outbox_dir", *CHANNELS)})

    def section(self, name: str) -> ChannelPolicy:
        """The validated section of channel ``name``."""
        extra = self.model_extra or {}
        if name not in extra:
            raise KeyError(f"no channel section {name!r}")
        section: ChannelPolicy = extra[name]
        return section

    def of(self, model: type[M]) -> M:
        """The one section of type ``model`` (e.g. ``policy.channels.of(EmailPolicy).sender``)."""
        for section in (self.model_extra or {}).values():
            if isinstance(section, model):
                return section
        raise KeyError(f"no channel section of type {model.__name__}")


def _sections_model() -> type[BaseModel]:
    """A strict model of ``channels:`` for the channels registered now (so errors keep their YAML path)."""
    key = tuple(CHANNELS.items())
    cached = _SECTIONS.get(key)
    if cached is None:
        fields: dict[str, Any] = {"outbox_dir": (str, "var/outbox")}
        for name in CHANNELS:
            model = channel_class(name).policy_model
            required = any(f.is_required() for f in model.model_fields.values())
            fields[name] = (model, ...) if required else (model, Field(default_factory=model))
        cached = _SECTIONS[key] = create_model("ChannelSections", __base__=Strict, **fields)
    return cached


_SECTIONS: dict[tuple[tuple[str, str], ...], type[BaseModel]] = {}


class AppliesTo(Strict):
    tracks: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()

    def matches(self, track: str | None, department: str | None) -> bool:
        track_ok = not self.tracks or (track in self.tracks)
        department_ok = not self.departments or (department in self.departments)
        return track_ok and department_ok


# The touches an event plans from its own dates, in order: the invitation to everyone of the audience,
# a reminder before the RSVP deadline to those who have not answered, a day-before note to those who
# said 出席, a thank-you after to those recorded present and a kind follow-up to those absent. Each is a
# template and an anchor on the event's dates, with its own "never later than" bound (``Event.latest``)
# and a gate on the holder's RSVP/attendance state (``EVENT_TOUCH_GATES``, applied by the planner).
EVENT_TOUCH_KINDS = ("invitation", "reminder", "day_before", "thanks", "follow_up")
EVENT_ANCHOR_BASES = ("deadline", "event")
EVENT_TOUCH_LABELS = {
    "invitation": "ご案内",
    "reminder": "出欠確認のリマインド",
    "day_before": "前日のご連絡",
    "thanks": "ご参加のお礼",
    "follow_up": "欠席者へのフォロー",
}
# The holder's state for an event (followup.events): "" = no answer yet.
RSVP_STATES = ("attending", "declined", "maybe", "waitlisted")
ATTENDANCE_STATES = ("attended", "absent")
# Which states a kind's touch goes to. The state is the attendance once recorded, else the RSVP answer.
EVENT_TOUCH_GATES: dict[str, frozenset[str]] = {
    "invitation": frozenset({""}),
    "reminder": frozenset({"", "maybe"}),
    "day_before": frozenset({"attending"}),
    "thanks": frozenset({"attended"}),
    "follow_up": frozenset({"absent", "declined"}),
}
_EVENT_DEFAULT_AT = {
    "reminder": ("deadline - 3bd", "event - 1w"),
    "day_before": ("event - 1bd", "event - 1bd"),
    "thanks": ("event + 1bd", "event + 1bd"),
    "follow_up": ("event + 1bd", "event + 1bd"),
}
AFTER_EVENT_WINDOW = dt.timedelta(days=14)  # a thank-you or follow-up later than this is not sent


class EventTouch(Strict):
    """One touch an event plans for every holder of its audience: a template at an anchor on the event's
    dates (``deadline - 3w``, ``event - 1d``; ``deadline`` is the RSVP deadline, ``event`` the event day)."""

    template: str
    at: AnchorField | None = None  # None: the kind's default (invitation: deadline - 2w, or event - 3w)


class EventQuestion(Strict):
    """A question on the RSVP page (e.g. アレルギー); free text unless ``choices`` are given."""

    id: str = Field(pattern=r"^[A-Za-z0-9_]{1,40}$")
    text: str
    choices: tuple[str, ...] = ()
    required: bool = False


class Event(Strict):
    title: str
    starts_at: datetime
    place: str = ""
    url: str = ""
    deadline: date | None = None
    audience: AppliesTo | None = None  # None: every holder a cadence follows
    channels: tuple[Literal["email", "slack", "line"], ...] | None = None  # None: the holder's phase's
    rsvp: bool = True  # holders answer 出席 / 欠席 / 未定 (a signed link, Slack buttons, LINE postback)
    capacity: int | None = Field(default=None, ge=1)  # seats; further 出席 answers join the waiting list
    questions: tuple[EventQuestion, ...] = ()
    invitation: EventTouch | None = None
    reminder: EventTouch | None = None
    day_before: EventTouch | None = None
    thanks: EventTouch | None = None
    follow_up: EventTouch | None = None

    @model_validator(mode="after")
    def _dates(self) -> Event:
        if self.deadline is not None and self.deadline >= self.starts_at.date():
            raise ValueError("the deadline (申込締切) must be before the event day")
        if not self.rsvp and (self.reminder or self.day_before or self.capacity):
            raise ValueError("reminder, day_before and capacity need rsvp: true (出欠の回答を受け付ける)")
        for kind in EVENT_TOUCH_KINDS:
            touch = self.touch(kind)
            if touch is None or touch.at is None:
                continue
            base = touch.at.base
            if not isinstance(base, date) and base not in EVENT_ANCHOR_BASES:
                raise ValueError(
                    f"{kind}.at: an event touch is anchored on the event's dates: "
                    "deadline - 3w, event - 2w or a date (not offer/accepted/start)"
                )
            if base == "deadline" and self.deadline is None:
                raise ValueError(f"{kind}.at uses the deadline, but the event has no deadline:")
        return self

    def touch(self, kind: str) -> EventTouch | None:
        value = getattr(self, kind)
        return value if isinstance(value, EventTouch) else None

    def touches(self) -> list[tuple[str, EventTouch]]:
        """(kind, touch) for the kinds this event plans, in EVENT_TOUCH_KINDS order."""
        found = [(kind, self.touch(kind)) for kind in EVENT_TOUCH_KINDS]
        return [(kind, touch) for kind, touch in found if touch is not None]

    def anchor(self, kind: str) -> Anchor:
        """Where this kind's touch goes (the configured ``at`` or the kind's default)."""
        touch = self.touch(kind)
        if touch is not None and touch.at is not None:
            return touch.at
        if kind in _EVENT_DEFAULT_AT:
            with_deadline, without = _EVENT_DEFAULT_AT[kind]
            return parse_anchor(with_deadline if self.deadline is not None else without)
        if self.deadline is not None:
            return parse_anchor("deadline - 2w")
        return parse_anchor("event - 3w")

    def latest(self, kind: str) -> date:
        """The last day this kind's touch may go out: invitation and reminder the RSVP deadline (else the
        day before), the day-before note the day before, a thank-you or follow-up two weeks after."""
        event_day = self.starts_at.date()
        if kind in ("thanks", "follow_up"):
            return event_day + AFTER_EVENT_WINDOW
        if kind == "day_before":
            return event_day - dt.timedelta(days=1)
        if self.deadline is not None:
            return self.deadline
        return event_day - dt.timedelta(days=1)

    def earliest(self, kind: str) -> date | None:
        """The first day this kind's touch may go out (after the event for a thank-you or follow-up)."""
        if kind in ("thanks", "follow_up"):
            return self.starts_at.date() + dt.timedelta(days=1)
        return None


# A task (提出物 or pre-start learning) has one status per holder: 未提出 until HR marks it 提出済 or
# 確認済, or 対象外 for a holder it does not concern. Reminders go only while it is pending.
TASK_STATUSES = ("pending", "submitted", "confirmed", "exempt")
TASK_DONE_STATUSES = frozenset({"submitted", "confirmed", "exempt"})


class Task(Strict):
    """One thing every holder of the audience hands in or completes by a due date (``start - 6w``,
    ``offer + 2w`` or a date), with reminders relative to that date (``remind: [-1w, -1bd, +2bd]``)."""

    title: str = Field(min_length=1)
    kind: Literal["document", "learning"] = "document"  # 提出物 | 入社前研修 (e-learning and the like)
    due: AnchorField
    audience: AppliesTo | None = None  # None: every holder a cadence follows
    remind: tuple[OffsetField, ...] = ()
    template: str = "task_reminder"
    channels: tuple[Literal["email", "slack", "line"], ...] | None = None  # None: the holder's phase's
    submit_url: str = ""  # where to upload or take the course (shown in the reminder)
    how: str = ""  # how to hand it in, in HR's words (郵送・持参・アップロード)
    # 入社承諾書: accepting the offer is handing it in. An accepted holder counts as 提出済; one still
    # offered is reminded, and flagged by acceptance_pending (not task_overdue: one signal, not two)
    done_on_acceptance: bool = False

    @field_validator("due")
    @classmethod
    def _anchored_on_holder(cls, value: Anchor) -> Anchor:
        if value.base in EVENT_ANCHOR_BASES:
            raise ValueError(f"{value}: a task is due relative to offer, accepted, start or a date")
        return value

    @field_validator("remind")
    @classmethod
    def _each_once(cls, value: tuple[Offset, ...]) -> tuple[Offset, ...]:
        seen = [str(r) for r in value]
        if len(set(seen)) != len(seen):
            raise ValueError("remind: each offset once (e.g. [-1w, -1bd, +2bd])")
        return value

    def due_on(
        self, dates: dict[str, date | None], is_business_day: Callable[[date], bool] | None = None
    ) -> date | None:
        """The holder's due date (None: anchored on an acceptance that has not happened)."""
        return self.due.resolve(dates, is_business_day)

    def applies(self, track: str | None, department: str | None) -> bool:
        return self.audience is None or self.audience.matches(track, department)


def _to_mentor(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class Mentor(Strict):
    """A mentor under ``mentors:`` (email → name, or email → {name, department}). The department is the
    mentor's own, shown in 「所属」; it is not the offer holder's."""

    name: str = Field(min_length=1)
    department: str = ""


class ScheduleItem(Strict):
    time: str
    what: str


class FirstDayOverride(Strict):
    time: str | None = None
    place: str | None = None
    reception: str | None = None
    dress_code: str | None = None
    bring: tuple[str, ...] | None = None
    schedule: tuple[ScheduleItem, ...] | None = None
    lunch: str | None = None


class FirstDay(Strict):
    """What ``first_day_schedule`` tells a holder about the first working day; ``by_track`` overrides
    fields for one track (mid-career hires rarely have an 入社式)."""

    time: str
    place: str
    reception: str = ""  # what to say at the reception desk
    dress_code: str
    bring: tuple[str, ...] = ()
    schedule: tuple[ScheduleItem, ...] = ()
    lunch: str = ""
    by_track: dict[str, FirstDayOverride] = {}

    def for_track(self, track: str | None) -> dict[str, Any]:
        base = self.model_dump(exclude={"by_track"})
        override = self.by_track.get(track or "")
        if override is not None:
            base.update(override.model_dump(exclude_none=True))
        return base


class Topic(Strict):
    title: str = ""
    body: str = Field(min_length=1)

    @model_validator(mode="after")
    def _no_placeholder(self) -> Topic:
        from followup.rendering.quality import find_placeholders

        text = f"{self.title}\n{self.body}"
        found = find_placeholders(text) or (["{{"] if "{{" in text or "{%" in text else [])
        if found:
            raise ValueError(f"placeholder text 「{found[0]}」: write the month's real content")
        return self


def _to_topic(value: Any) -> Any:
    return {"body": value} if isinstance(value, str) else value


class ContentEntry(Strict):
    """One month's content for a template (``content: {monthly_update: [{month: 2026-07, ...}]}``):
    the touch sent in that month (organisation's time zone) shows it."""

    month: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    intro: str = ""
    topics: tuple[Annotated[Topic, BeforeValidator(_to_topic)], ...] = Field(min_length=1)

    @field_validator("month", mode="before")
    @classmethod
    def _month_text(cls, value: Any) -> Any:
        return f"{value.year}-{value.month:02d}" if isinstance(value, date) else value


class TemplateRef(Strict):
    """One entry of a phase's template rotation.

    ``once``: only on the rotation's first round (a welcome); later rounds go on with the other entries.
    ``event``: the template sees this event (prefer ``events.NAME.invitation``, planned from the event's
    own dates; an event entry of a rotation is skipped once the event's deadline has passed).
    """

    template: str
    event: str | None = None
    once: bool = False


def _to_template_ref(value: Any) -> Any:
    return {"template": value} if isinstance(value, str) else value


class SurveyEvery(Strict):
    form: str
    every: int = Field(ge=1, description="every Nth touch of the phase carries this survey")
    # the message that carries the link: None (default) = the rotation's template due at that touch, with
    # the survey link added; a name = that template, and the rotation waits for the next touch (no entry
    # of the rotation is ever skipped)
    template: str | None = None


class OneOffTouch(Strict):
    name: str
    at: AnchorField
    kind: Literal["manual", "message", "survey"] = "manual"
    channel: str | None = None  # manual: phone (default) | letter | meeting | other; others: phase channels
    assignee: str | None = None
    assignee_name: str = ""  # how the reminder addresses the assignee when config does not already know
    why: str = ""  # the reminder's memo: why this call matters now (a default is given for phone calls)
    template: str | None = None
    survey: str | None = None
    note: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> OneOffTouch:
        if self.kind == "manual" and (self.channel or "phone") not in MANUAL_CHANNELS:
            raise ValueError(f"a manual touch's channel is one of {', '.join(MANUAL_CHANNELS)}")
        if self.kind != "manual" and self.channel is not None:
            raise ValueError(
                "a message or survey one-off touch is sent on the phase's channels: remove channel"
            )
        if self.kind != "manual" and self.template is None:
            raise ValueError("a message or survey one-off touch needs a template")
        if self.kind == "survey" and self.survey is None:
            raise ValueError("a survey one-off touch needs survey: FORM")
        return self


class Phase(Strict):
    name: str
    label: str = ""
    start: AnchorField = Field(alias="from")
    end: AnchorField = Field(alias="to")
    every: IntervalField
    channels: tuple[ChannelName, ...] = Field(min_length=1)
    templates: tuple[Annotated[TemplateRef, BeforeValidator(_to_template_ref)], ...] = Field(min_length=1)
    survey: SurveyEvery | None = None
    one_off: tuple[OneOffTouch, ...] = ()
    max_gap: IntervalField | None = None  # the neglected rule's limit in this phase

    @model_validator(mode="after")
    def _rotation_goes_on(self) -> Phase:
        for anchor in (self.start, self.end, *(o.at for o in self.one_off)):
            if anchor.base in EVENT_ANCHOR_BASES:
                raise ValueError(
                    f"{anchor}: phases and one-off touches are anchored on offer, accepted, start or a date"
                )
        if all(ref.once for ref in self.templates):
            raise ValueError("every template of the rotation is 'once': leave at least one that repeats")
        return self


class Cadence(Strict):
    applies_to: AppliesTo
    phases: tuple[Phase, ...] = Field(min_length=1)


class NeglectedRule(Strict):
    severity: Severity = "high"
    max_gap: IntervalField = Interval(14, "d")


class OverContactedRule(Strict):
    severity: Severity = "medium"
    max_touches: int = Field(3, ge=1)
    window: IntervalField = Interval(7, "d")
    enforce: bool = True


class LowPulseRule(Strict):
    severity: Severity = "high"
    threshold: float = Field(2.5, ge=1, le=5)


class PulseDropRule(Strict):
    severity: Severity = "medium"
    drop: float = Field(1.0, gt=0, le=4)


class UnresponsiveRule(Strict):
    severity: Severity = "medium"
    consecutive: int = Field(3, ge=1)


class SimpleRule(Strict):
    severity: Severity = "high"


class AcceptancePendingRule(Strict):
    severity: Severity = "high"
    # without an acceptance_deadline column: offer + this (e.g. 2w); unset = only holders with a deadline
    default_wait: IntervalField | None = None


class EventAbsentRule(Strict):
    severity: Severity = "medium"
    window: IntervalField = Interval(4, "w")  # flagged this long after the event's start


class TaskOverdueRule(Strict):
    severity: Severity = "medium"


class CohortNotJoinedRule(Strict):
    severity: Severity = "low"
    after: IntervalField = Interval(4, "w")  # invited to the cohort channel, not joined this long after


class Cohort(Strict):
    """内定者同士の交流: a Slack channel the bot invites a track's accepted holders to, with a short
    peer-introduction post naming who joined (``cohorts.<track>`` in the YAML)."""

    title: str = "内定者同士の交流チャンネル"
    slack_channel: EnvRef | None = None  # a channel id (C…), or ${ENV}; unset: no invitations
    intro: bool = True  # post 「〇〇さんが参加しました」 in the channel after inviting
    # a LINE group instead (or as well): its invitation URL, sent once to each accepted holder in ``template``
    line_group_url: EnvRef | None = None
    template: str | None = None  # the invitation message (e.g. cohort_invite); unset: no message


class ManualOverdueRule(Strict):
    severity: Severity = "medium"
    # a reminded call/letter not logged this long after its reminder: a flag and one escalation mail
    after: IntervalField = Interval(3, "bd")


class Rules(Strict):
    neglected: NeglectedRule = NeglectedRule()
    over_contacted: OverContactedRule = OverContactedRule()
    low_pulse: LowPulseRule = LowPulseRule()
    pulse_drop: PulseDropRule = PulseDropRule()
    unresponsive: UnresponsiveRule = UnresponsiveRule()
    declining_signal: SimpleRule = SimpleRule()
    unreachable: SimpleRule = SimpleRule()
    no_cadence: SimpleRule = SimpleRule()
    no_rsvp: SimpleRule = SimpleRule(severity="medium")
    acceptance_pending: AcceptancePendingRule = AcceptancePendingRule()
    event_absent: EventAbsentRule = EventAbsentRule()
    task_overdue: TaskOverdueRule = TaskOverdueRule()
    manual_overdue: ManualOverdueRule = ManualOverdueRule()
    cohort_not_joined: CohortNotJoinedRule = CohortNotJoinedRule()


class Question(Strict):
    id: str
    text: str
    type: Literal["scale", "choice", "text"]
    choices: tuple[str, ...] = ()
    declining: tuple[str, ...] = ()  # choices that signal the holder may decline
    low_label: str = ""
    high_label: str = ""
    reverse: bool = False  # a scale where 5 is bad (e.g. 不安の大きさ); inverted for the pulse score
    required: bool = True
    why: str = ""  # shown under the question: why it is asked (a personal question says so)

    @model_validator(mode="after")
    def _choices(self) -> Question:
        if self.type == "choice" and not self.choices:
            raise ValueError("a choice question needs choices")
        unknown = [c for c in self.declining if c not in self.choices]
        if unknown:
            raise ValueError(f"declining answers not among the choices: {', '.join(unknown)}")
        return self


class Survey(Strict):
    title: str
    intro: str = ""
    questions: tuple[Question, ...] = Field(min_length=1)
    valid_for: IntervalField = Interval(14, "d")


class WeeklyReport(Strict):
    day: Weekday = "mon"
    time: dt.time = dt.time(8, 30)
    to: tuple[str, ...] = Field(min_length=1)
    subject: str = "【内定者フォロー】週次レポート"


class ReportPolicy(Strict):
    weekly: WeeklyReport
    # the weekly report shows this many at-risk holders in full; the rest as counts and a link
    top_n: int = Field(50, ge=1, le=10_000)


class SchedulerPolicy(Strict):
    plan_every_minutes: int = Field(5, ge=1, le=1440)
    horizon: IntervalField = Interval(2, "d")  # how far ahead touches are created
    catch_up: IntervalField = Interval(3, "d")  # missed touches older than this are skipped, not burst


class InternalCost(Strict):
    """People's time for human touches: hours per logged (done) manual touch × an hourly rate."""

    hourly_rate: float = Field(0, ge=0)  # 円/時間 (salary + overhead of whoever calls or writes)
    hours: dict[str, float] = {"phone": 0.5, "letter": 0.5, "meeting": 1.0, "other": 0.5}

    @field_validator("hours")
    @classmethod
    def _known_channels(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(MANUAL_CHANNELS))
        if unknown:
            raise ValueError(f"hours are per manual channel ({', '.join(MANUAL_CHANNELS)}), not {unknown}")
        if any(hours < 0 for hours in value.values()):
            raise ValueError("hours cannot be negative")
        return value


class Budget(Strict):
    """What follow-up costs and what a hire is worth (seeds 003/004: 採用単価, ROI), all in yen.

    ``channels``: external cost per delivered touch on that channel (SMS/LINE fees, postage);
    ``events``: the total cost of each event (会場費・飲食費); ``tools``: the season's tool fees;
    ``internal``: hours × rate for logged human touches; ``hiring_cost``: the season's other recruiting
    costs (媒体費・紹介料), for 採用単価; ``value_per_hire``: 採用による利益 per hire, for the ROI."""

    channels: dict[str, float] = {}
    events: dict[str, float] = {}
    tools: dict[str, float] = {}
    internal: InternalCost = InternalCost()
    hiring_cost: float | None = Field(None, ge=0)
    value_per_hire: float | None = Field(None, ge=0)

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, value: dict[str, float]) -> dict[str, float]:
        known = (*MESSAGE_CHANNELS, *MANUAL_CHANNELS)
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"unknown channels {unknown} (one of {', '.join(known)})")
        return value

    @field_validator("channels", "events", "tools")
    @classmethod
    def _not_negative(cls, value: dict[str, float]) -> dict[str, float]:
        if any(amount < 0 for amount in value.values()):
            raise ValueError("costs cannot be negative")
        return value


class ImportPolicy(Strict):
    """How the ATS export is read: ``columns`` maps the ATS's own header names to holder fields
    (``応募者番号: external_id``); checked against the known fields when a file is imported."""

    columns: dict[str, str] = {}


def _to_delay(value: Any) -> Interval:
    return value if isinstance(value, Interval) else parse_interval(str(value), allow_zero=True)


DelayField = Annotated[Interval, BeforeValidator(_to_delay), PlainSerializer(str)]  # ≥ 0, zero allowed
PoolStatus = Literal["rejected", "declined"]


def _https_url(value: str | None) -> str | None:
    if value is not None and not value.startswith("https://"):
        raise ValueError("a link in the talent pool's mails must start with https://")
    return value


class PoolStep(Strict):
    """One touch of the talent pool (人材プール), counted from the 不採用日 / 辞退日.

    ``consent: false`` only for the rejection mail itself (an answer to the application, not promotion);
    every other step is 特定電子メール and goes only to people with recorded consent."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    at: DelayField = Interval(0, "d")  # after the anchor date; 0d = the rejection day itself
    every: IntervalField | None = None  # repeat from ``at`` until ``stop_after``
    template: str
    consent: bool = True
    statuses: tuple[PoolStatus, ...] = ("rejected", "declined")


DEFAULT_POOL_STEPS = (
    PoolStep(name="rejection", template="pool_rejection", consent=False, statuses=("rejected",)),
    PoolStep(name="follow_up", at=Interval(1, "mo"), template="pool_follow_up"),
    PoolStep(name="news", at=Interval(3, "mo"), every=Interval(3, "mo"), template="pool_news"),
)


class PoolPolicy(Strict):
    """The talent pool: people not hired (不採用) and declined offer holders stay in touch, with consent.

    Off unless ``enabled``: a rejection mail is a decision HR takes on purpose. Pool touches never count
    for the offer holders' cadences, flags or 内定承諾率."""

    enabled: bool = False
    statuses: tuple[PoolStatus, ...] = ("rejected", "declined")
    channels: tuple[ChannelName, ...] = Field(("email",), min_length=1)
    stop_after: IntervalField = Interval(18, "mo")
    # one line in the rejection mail (キャリア支援・紹介サービス), through the signed redirect /go/TOKEN
    career_support_url: Annotated[str | None, AfterValidator(_https_url)] = None
    career_support_label: str = "キャリア相談サービスのご案内"
    openings_url: Annotated[str | None, AfterValidator(_https_url)] = None  # 募集職種一覧
    steps: tuple[PoolStep, ...] = DEFAULT_POOL_STEPS

    @model_validator(mode="after")
    def _unique_steps(self) -> PoolPolicy:
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError("pool step names must be unique")
        return self


class Policy(Strict):
    version: Literal[1] = 1
    organization: Organization
    calendar: CalendarPolicy = CalendarPolicy()
    channels: ChannelsPolicy
    templates_dir: str = "../templates"
    mentors: dict[str, Annotated[Mentor, BeforeValidator(_to_mentor)]] = {}
    events: dict[str, Event] = {}
    tasks: dict[str, Task] = {}  # 提出物・入社前研修, keyed by a short name (keys, CLI, CSV)
    first_day: FirstDay | None = None
    content: dict[str, tuple[ContentEntry, ...]] = {}  # template name → dated entries
    # a reply or an answer is contact: the next automated cadence touch waits this long after it
    quiet_after_reply: IntervalField | None = None
    cadences: dict[str, Cadence] = Field(min_length=1)
    rules: Rules = Rules()
    surveys: dict[str, Survey] = {}
    report: ReportPolicy
    scheduler: SchedulerPolicy = SchedulerPolicy()
    budget: Budget | None = None  # フォロー費用・採用単価・ROI in the season report
    cohorts: dict[str, Cohort] = {}  # track → its cohort channel (内定者同士の交流)
    import_: ImportPolicy = Field(ImportPolicy(), alias="import")
    pool: PoolPolicy = PoolPolicy()

    @field_validator("tasks")
    @classmethod
    def _task_names(cls, value: dict[str, Task]) -> dict[str, Task]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9_]{1,60}", name):
                raise ValueError(
                    f"task name {name!r}: letters, digits and _ only (it is part of keys and the CLI)"
                )
        return value

    def cadence_for(self, track: str | None, department: str | None) -> tuple[str, Cadence] | None:
        """The first cadence (in file order) whose ``applies_to`` matches the holder."""
        for name, cadence in self.cadences.items():
            if cadence.applies_to.matches(track, department):
                return name, cadence
        return None

    def content_for(self, template: str | None, day: date) -> ContentEntry | None:
        """The entry of ``template`` for the month of ``day``, or None."""
        month = f"{day.year}-{day.month:02d}"
        return next((e for e in self.content.get(template or "", ()) if e.month == month), None)
