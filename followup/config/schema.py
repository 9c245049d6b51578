"""The HR policy as typed, immutable objects: what ``config/followup.yaml`` means.

Every model forbids unknown keys (a typo is an error, not a silently ignored setting) and is frozen
(the planner and the rules receive one policy and cannot change it).
"""

from __future__ import annotations

import datetime as dt
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
from followup.channels.base import ChannelPolicy
from followup.durations import Anchor, Interval, parse_anchor, parse_interval

MANUAL_CHANNELS = ("phone", "letter", "meeting", "other")
# the words of followup.vocab (Severity, WEEKDAYS); tests/test_vocab.py keeps the two in step
Severity = Literal["low", "medium", "high"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _to_interval(value: Any) -> Interval:
    return value if isinstance(value, Interval) else parse_interval(str(value))


def _to_anchor(value: Any) -> Anchor:
    return value if isinstance(value, Anchor) else parse_anchor(str(value))


def _known_channel(value: Any) -> str:
    if value not in MESSAGE_CHANNELS:
        raise ValueError(f"unknown channel {value!r}; one of {', '.join(MESSAGE_CHANNELS)}")
    return str(value)


IntervalField = Annotated[Interval, BeforeValidator(_to_interval), PlainSerializer(str)]
AnchorField = Annotated[Anchor, BeforeValidator(_to_anchor), PlainSerializer(str)]
ChannelName = Annotated[str, AfterValidator(_known_channel)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Organization(Strict):
    name: str
    timezone: str = "Asia/Tokyo"
    locale: Literal["ja", "en"] = "ja"
    president: str = ""
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


class Event(Strict):
    title: str
    starts_at: datetime
    place: str = ""
    url: str = ""
    deadline: date | None = None


class TemplateRef(Strict):
    """One entry of a phase's template rotation; an event invitation names its event."""

    template: str
    event: str | None = None


def _to_template_ref(value: Any) -> Any:
    return {"template": value} if isinstance(value, str) else value


class SurveyEvery(Strict):
    form: str
    every: int = Field(ge=1, description="every Nth touch of the phase carries this survey")
    template: str | None = "pulse_survey"  # the message that carries the link; None: the rotation's template


class OneOffTouch(Strict):
    name: str
    at: AnchorField
    kind: Literal["manual", "message", "survey"] = "manual"
    channel: str | None = None  # manual: phone (default) | letter | meeting | other; others: phase channels
    assignee: str | None = None
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


class AppliesTo(Strict):
    tracks: tuple[str, ...] = ()
    departments: tuple[str, ...] = ()

    def matches(self, track: str | None, department: str | None) -> bool:
        track_ok = not self.tracks or (track in self.tracks)
        department_ok = not self.departments or (department in self.departments)
        return track_ok and department_ok


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


class Rules(Strict):
    neglected: NeglectedRule = NeglectedRule()
    over_contacted: OverContactedRule = OverContactedRule()
    low_pulse: LowPulseRule = LowPulseRule()
    pulse_drop: PulseDropRule = PulseDropRule()
    unresponsive: UnresponsiveRule = UnresponsiveRule()
    declining_signal: SimpleRule = SimpleRule()
    unreachable: SimpleRule = SimpleRule()


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


class Policy(Strict):
    version: Literal[1] = 1
    organization: Organization
    calendar: CalendarPolicy = CalendarPolicy()
    channels: ChannelsPolicy
    templates_dir: str = "../templates"
    mentors: dict[str, str] = {}
    events: dict[str, Event] = {}
    cadences: dict[str, Cadence] = Field(min_length=1)
    rules: Rules = Rules()
    surveys: dict[str, Survey] = {}
    report: ReportPolicy
    scheduler: SchedulerPolicy = SchedulerPolicy()
    budget: Budget | None = None  # フォロー費用・採用単価・ROI in the season report

    def cadence_for(self, track: str | None, department: str | None) -> tuple[str, Cadence] | None:
        """The first cadence (in file order) whose ``applies_to`` matches the holder."""
        for name, cadence in self.cadences.items():
            if cadence.applies_to.matches(track, department):
                return name, cadence
        return None
