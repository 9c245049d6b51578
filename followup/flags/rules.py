"""The rule engine: a holder's history + the policy + ``now`` → flags. Pure: no clock, no I/O.

Seven rule kinds (SPEC "Rules (flags)"), each producing a :class:`FlagDecision` with a reason in plain
Japanese and a suggested action taken from the seeds (000: 放置フォロー and 過剰フォロー are the two NG
behaviours; a personal call, a meeting with HR or an executive, a pause of automated messages are the
remedies). ``evaluate_many`` is the batch path the weekly report and the benchmark use; it hoists the
policy look-ups out of the per-holder loop and answers every "how many / since when" question with a
binary search over the holder's sorted times, so 100,000 holders take well under two seconds.

Definitions (the tests pin each one):

* A *delivered* touch is a sent message/survey or a completed (``done``) manual touch. Failed sends and
  suppressed attempts are kept for the report but never count as contact.
* ``neglected``: more than the phase's ``max_gap`` (else ``rules.neglected.max_gap``) since the last
  delivered touch, or since the offer date (start of that day in the organisation's time zone) for a
  holder never contacted. Exactly at the limit is not yet neglected; one second later it is.
* ``over_contacted``: more than ``max_touches`` delivered touches in the window ``(now - window, now]``,
  all channels and manual touches together.
* ``low_pulse`` / ``pulse_drop`` / ``declining_signal`` look at the latest survey response at ``now``
  (and the one before it for the drop).
* ``unresponsive``: at least ``consecutive`` automated touches (message or survey) that expect a reply
  (not those whose template is marked ``expects_reply: false``, e.g. 「ご返信は不要です」) delivered after the
  holder's last sign of engagement (a reply, an answer, a button, a survey response, or a completed phone
  call or meeting). Letters and other manual touches neither count nor reset.
* ``unreachable``: no message channel left (no address, or opted out of every one).
* ``no_cadence``: an active holder whom no cadence applies to (e.g. track 「第二新卒」): never contacted.
* ``no_rsvp``: invited to an event (its invitation was sent), the RSVP deadline's day has ended and there
  is no answer (未定 counts as no answer), while the event has not started yet.
* ``acceptance_pending``: still ``offered`` after the acceptance deadline's day (the holder's
  ``acceptance_deadline``, else ``offer + rules.acceptance_pending.default_wait`` when that is set).
* ``event_absent``: answered 出席 and was recorded absent, within ``rules.event_absent.window`` after the
  event's start.
* ``task_overdue``: a task (提出物) still 未提出 from the first business day after its due date (the due day
  itself is not late); not once it is 提出済・確認済・対象外.
* ``manual_overdue``: a manual touch (a call, a letter) whose assignee was reminded and which is still
  not logged ``rules.manual_overdue.after`` (``3bd``: business days of the organisation's calendar)
  after the reminder. Exactly at the limit is not yet overdue. The same deadline
  (:func:`manual_deadline`) decides when the assignee gets the one escalation mail.
* ``cohort_not_joined``: invited to the track's cohort channel (内定者同士の交流) and not seen joining it
  (Slack ``member_joined_channel``) ``rules.cohort_not_joined.after`` after the invitation.

Each rule is a small function ``(history, now, params) -> FlagDecision | None`` and :data:`RULES` is
the tuple the engine runs, in order; ``params`` is the :class:`RuleParams` resolved once from the
policy. Adding a rule is one function, one entry in ``RULES`` and one test (CONTRIBUTING.md, "How to
add a rule").
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from followup.calendar import BusinessCalendar
from followup.config.schema import Policy, Rules
from followup.durations import Interval, shift_moment
from followup.flags.phase import current_phase
from followup.flags.risk import RULE_ORDER, SEVERITY_WEIGHTS, holder_order, risk_score, sort_flags
from followup.vocab import ACTIVE_STATUSES, TouchKind

# Suggested actions, drawn from seeds/000 (内定者フォローの具体策 and its NG behaviours).
ACTIONS: dict[str, str] = {
    "neglected": "メンター(または人事担当)から個別に電話し、近況と不安を聞いてください。",
    "over_contacted": "自動連絡を2週間停止し、連絡の頻度と内容を見直してください。",
    "low_pulse": "人事担当との個別面談(オンライン可)を設定し、不安や疑問を聞いてください。",
    "pulse_drop": "メンターとの1on1で、気持ちが変わったきっかけを確認してください。",
    "unresponsive": "連絡手段を変えて(電話や手書きのメッセージなど)個別に連絡してください。",
    "declining_signal": "社長・役員との面談を設定し、仕事内容や条件面を改めて説明してください。",
    "unreachable": "配信停止はご本人の意思として尊重し、入社手続きの連絡方法(電話・郵送など)を"
    "確認してください。連絡先が未登録の場合は、登録してください。",
    "acceptance_pending": (
        "人事担当から電話し、承諾を迷っている点(条件・配属・他社の状況)を伺ってください。"
        "必要なら社員との面談を設定してください。"
    ),
    "no_rsvp": ("人事担当から電話で予定を伺い、参加しやすい形(オンライン参加など)を提案してください。"),
    "event_absent": ("体調や事情を気づかう一言とともに個別に連絡し、当日の内容と資料を共有してください。"),
    "task_overdue": (
        "人事担当から電話やメールで、提出方法や書類の準備で困っていることがないか伺ってください。"
        "事情があれば期限の延長や別の提出方法を相談してください。"
    ),
    "no_cadence": (
        "採用区分(track)を既存の区分に直すか、この区分の cadence を followup.yaml に追加してください。"
    ),
    "cohort_not_joined": (
        "メンターや同期から、交流チャンネルへの参加を気軽に声がけしてください(参加は任意であることも添えて)。"
    ),
    "manual_overdue": (
        "担当者に実施の予定を確認し、難しければ人事担当が代わりに連絡してください。"
        "実施後は「実施済みにする」リンクか touch log で記録してください。"
    ),
}
ENGAGING_MANUAL_CHANNELS = frozenset({"phone", "meeting"})  # a completed call or meeting is two-way
AUTOMATED_KINDS = frozenset({TouchKind.MESSAGE.value, TouchKind.SURVEY.value})
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class TouchRecord:
    """One touch outcome: ``delivered`` (sent, or a manual touch done), ``failed`` or ``suppressed``."""

    at: datetime
    channel: str
    kind: str = "message"  # message | survey | manual
    outcome: str = "delivered"
    expects_reply: bool = True  # False: the message said 「ご返信は不要です」 (not counted by unresponsive)


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One event the holder was invited to or answered: what they said and what HR recorded."""

    event: str
    title: str
    starts_at: datetime
    answer_closes: datetime | None  # the end of the RSVP deadline's day (None: no deadline)
    invited: bool  # its invitation was sent
    answer: str = ""  # attending | declined | maybe | waitlisted | "" (none)
    attendance: str = ""  # attended | absent | "" (not recorded)


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One task of the holder's audience: its due date, when it counts as late, and the status."""

    task: str
    title: str
    due: date
    late_from: datetime  # the start of the first business day after ``due`` (organisation's time zone)
    status: str = "pending"  # pending | submitted | confirmed | exempt


@dataclass(frozen=True, slots=True)
class ManualRecord:
    """A manual touch whose assignee was reminded and which is not logged yet (status ``reminded``)."""

    touch_id: int
    channel: str  # phone | letter | meeting | other
    what: str  # the touch's memo (e.g. 社長から内定のお祝いの電話), else the kind of contact
    assignee: str  # who was asked, as the reminder addressed them (佐藤社長), else the address
    reminded_at: datetime


@dataclass(frozen=True, slots=True)
class PulseResponse:
    submitted_at: datetime
    score: float | None  # mean of the 1–5 scale answers, reverse-scored ones inverted; higher is better
    declining: bool = False
    declining_answers: tuple[str, ...] = ()  # the answers that signalled it, e.g. 他社も検討している


@dataclass(frozen=True, slots=True)
class HolderHistory:
    """What the rules may know about one holder. Sequences are sorted by time (``load_histories``
    guarantees it; ``__post_init__`` sorts anyway so hand-built histories in tests need not care)."""

    holder_id: int
    external_id: str
    name: str
    status: str
    offer_date: date
    start_date: date
    cadence: str | None = None
    track: str | None = None  # for the no_cadence reason
    phase: str | None = None  # the cadence phase at the evaluation time, None outside every phase
    reachable_channels: tuple[str, ...] = ("email",)
    delivered: tuple[TouchRecord, ...] = ()
    undelivered: tuple[TouchRecord, ...] = ()  # failed sends and suppressed attempts: never contact
    responses: tuple[PulseResponse, ...] = ()
    engagement: tuple[datetime, ...] = ()  # replies, answers, button presses
    opt_outs: tuple[datetime, ...] = ()
    events: tuple[EventRecord, ...] = ()
    tasks: tuple[TaskRecord, ...] = ()
    acceptance_deadline: date | None = None  # 内定承諾期限 from the ATS export, if any
    manual: tuple[ManualRecord, ...] = ()  # reminded manual touches not logged yet
    cohort_invited_at: datetime | None = None  # invited to the track's cohort channel
    cohort_joined_at: datetime | None = None  # seen joining it (Slack member_joined_channel)
    # derived, sorted, for binary search
    delivered_at: tuple[datetime, ...] = field(init=False, repr=False, compare=False)
    automated_at: tuple[datetime, ...] = field(init=False, repr=False, compare=False)
    engaged_at: tuple[datetime, ...] = field(init=False, repr=False, compare=False)
    responded_at: tuple[datetime, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Input already in time order (load_histories' ORDER BY) is not sorted again, and empty
        # sequences cost nothing: building 100,000 histories costs little more than reading their rows.
        setattr_ = object.__setattr__
        delivered, responses, engagement = self.delivered, self.responses, self.engagement
        delivered_at: Sequence[datetime] = ()
        automated_at: tuple[datetime, ...] = ()
        engaged: list[datetime] = list(engagement) if engagement else []
        if delivered:
            delivered_at = [t.at for t in delivered]
            if len(delivered_at) > 1 and delivered_at != sorted(delivered_at):
                delivered = tuple(sorted(delivered, key=_at))
                delivered_at = [t.at for t in delivered]
            elif type(delivered) is not tuple:
                delivered = tuple(delivered)
            setattr_(self, "delivered", delivered)
            automated_at = tuple([t.at for t in delivered if t.kind in AUTOMATED_KINDS and t.expects_reply])
            engaged += [t.at for t in delivered if t.channel in ENGAGING_MANUAL_CHANNELS]
        responded_at: Sequence[datetime] = ()
        if responses:
            responded_at = [r.submitted_at for r in responses]
            if len(responded_at) > 1 and responded_at != sorted(responded_at):
                responses = tuple(sorted(responses, key=_submitted))
                responded_at = [r.submitted_at for r in responses]
            elif type(responses) is not tuple:
                responses = tuple(responses)
            setattr_(self, "responses", responses)
            engaged += responded_at
        if len(engaged) > 1:
            engaged.sort()
        setattr_(self, "delivered_at", tuple(delivered_at))
        setattr_(self, "automated_at", automated_at)
        setattr_(self, "engaged_at", tuple(engaged))
        setattr_(self, "responded_at", tuple(responded_at))

    def unanswered_streak(self, now: datetime) -> int:
        """Automated touches delivered after the last engagement, up to ``now``."""
        last_engaged_index = bisect_right(self.engaged_at, now)
        last_engaged = self.engaged_at[last_engaged_index - 1] if last_engaged_index else None
        end = bisect_right(self.automated_at, now)
        begin = bisect_right(self.automated_at, last_engaged) if last_engaged is not None else 0
        return max(0, end - begin)


def _at(record: TouchRecord) -> datetime:
    return record.at


def _submitted(response: PulseResponse) -> datetime:
    return response.submitted_at


@dataclass(frozen=True, slots=True)
class FlagDecision:
    holder_id: int
    external_id: str
    rule: str
    severity: str
    reason: str  # plain Japanese, says what was seen
    action: str  # what HR could do about it (seeds/000)
    since: datetime  # the moment the condition began, as far as the history tells

    def record(self) -> dict[str, str]:
        """The SPEC flag record: ``external_id, rule, severity, reason, since``."""
        return {
            "external_id": self.external_id,
            "rule": self.rule,
            "severity": self.severity,
            "reason": self.reason,
            "since": self.since.isoformat(),
        }


def manual_deadline(
    reminded_at: datetime, after: Interval, tz: ZoneInfo, calendar: BusinessCalendar
) -> datetime:
    """When a reminded manual touch becomes overdue: ``after`` from the reminder, business days counted
    on the organisation's calendar (holidays, year-end), at the reminder's local time of day. The rule
    and the escalation both use it, so the flag and the mail never disagree."""
    local = reminded_at.astimezone(tz)
    return shift_moment(local, after, is_business_day=calendar.is_business_day)


def contact_window_start(window: Interval, now: datetime) -> datetime:
    """The open start of over_contacted's window ``(start, now]``: the longest look-back any rule takes
    over the touches (the loader reads the touches after it, and the rule counts them)."""
    fixed = _fixed(window)
    return now - fixed if fixed is not None else shift_moment(now, window, -1)


def describe_interval(interval: Interval) -> str:
    """``14d`` → 14日, ``2w`` → 2週間, ``1mo`` → 1か月, ``3bd`` → 3営業日."""
    unit = {"d": "日", "w": "週間", "bd": "営業日", "mo": "か月"}[interval.unit]
    return f"{interval.amount}{unit}"


def _fixed(interval: Interval) -> timedelta | None:
    if interval.unit == "d":
        return timedelta(days=interval.amount)
    if interval.unit == "w":
        return timedelta(weeks=interval.amount)
    return None


@dataclass(frozen=True, slots=True)
class _Gap:
    interval: Interval
    fixed: timedelta | None
    label: str  # the phase label for the reason, "" outside phases

    def after(self, moment: datetime) -> datetime:
        return moment + self.fixed if self.fixed is not None else shift_moment(moment, self.interval)


# --- the parameters every rule reads, resolved once per policy -------------------------------------


class RuleParams:
    """The policy's rule settings, resolved once: ``rules`` is the policy's ``rules:`` section (a rule
    reads its own entry, e.g. ``params.rules.low_pulse.threshold``); the rest are the look-ups that
    would otherwise be repeated for every holder (phase gaps, the contact window, the time zone)."""

    __slots__ = (
        "calendar",
        "default_gap",
        "gaps",
        "offer_moments",
        "policy",
        "rules",
        "tz",
        "window",
        "window_fixed",
        "window_text",
    )

    def __init__(self, policy: Policy) -> None:
        rules = policy.rules
        self.policy = policy
        self.rules: Rules = rules
        self.tz = ZoneInfo(policy.organization.timezone)
        self.default_gap = _Gap(rules.neglected.max_gap, _fixed(rules.neglected.max_gap), "")
        self.gaps: dict[tuple[str | None, str | None], _Gap] = {}
        for cadence_name, cadence in policy.cadences.items():
            for phase in cadence.phases:
                interval = phase.max_gap or rules.neglected.max_gap
                self.gaps[(cadence_name, phase.name)] = _Gap(
                    interval, _fixed(interval), phase.label or phase.name
                )
        self.window = rules.over_contacted.window
        self.window_fixed = _fixed(self.window)
        self.window_text = describe_interval(self.window)
        self.offer_moments: dict[date, datetime] = {}
        self.calendar = BusinessCalendar.from_policy(policy)

    def manual_deadline(self, reminded_at: datetime) -> datetime:
        return manual_deadline(reminded_at, self.rules.manual_overdue.after, self.tz, self.calendar)

    def offer_at(self, day: date) -> datetime:
        """The start of the offer day in the organisation's time zone (cached: cohorts share days)."""
        moment = self.offer_moments.get(day)
        if moment is None:
            moment = datetime.combine(day, time(0, 0), self.tz)
            self.offer_moments[day] = moment
        return moment

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.policy.organization.tz).date()

    def local(self, moment: datetime) -> str:
        """``5/11``: how a reason names a day."""
        return moment.astimezone(self.tz).strftime("%-m/%-d")


Rule = Callable[[HolderHistory, datetime, RuleParams], FlagDecision | None]


def decide(
    h: HolderHistory, rule: str, severity: str, reason: str, since: datetime, action: str | None = None
) -> FlagDecision:
    """The decision a rule returns; the suggested action defaults to the rule's entry in ``ACTIONS``."""
    return FlagDecision(
        h.holder_id, h.external_id, rule, severity, reason, ACTIONS[rule] if action is None else action, since
    )


# --- the rules --------------------------------------------------------------------------------------
# Each looks at the history up to ``now`` only (binary search over the sorted times) and returns one
# decision or None. The engine has already skipped inactive holders.


def declining_signal(h: HolderHistory, now: datetime, p: RuleParams) -> FlagDecision | None:
    """The latest survey response at ``now`` chose a declining answer (e.g. 他社も検討している)."""
    n = bisect_right(h.responded_at, now) if h.responded_at else 0
    if not n:
        return None
    latest = h.responses[n - 1]
    if not latest.declining:
        return None
    said = "・".join(f"「{a}」" for a in latest.declining_answers) or "辞退を考えている旨"
    return decide(
        h,
        "declining_signal",
        p.rules.declining_signal.severity,
        f"{p.local(latest.submitted_at)}のサーベイで{said}と回答しています。",
        latest.submitted_at,
    )


def low_pulse(h: HolderHistory, now: datetime, p: RuleParams) -> FlagDecision | None:
    """The latest pulse score at ``now`` is below the threshold."""
    n = bisect_right(h.responded_at, now) if h.responded_at else 0
    if not n:
        return None
    latest = h.responses[n - 1]
    score = latest.score
    threshold = p.rules.low_pulse.threshold
    if score is None or score >= threshold:
        return None
    return decide(
        h,
        "low_pulse",
        p.rules.low_pulse.severity,
        f"最新のパルスサーベイのスコアが{score:.1f}です(基準{threshold:.1f}未満、5段階)。",
        latest.submitted_at,
    )


def pulse_drop(h: HolderHistory, now: datetime, p: RuleParams) -> FlagDecision | None:
    """The latest pulse score at ``now`` fell by at least ``drop`` from the one before it."""
    n = bisect_right(h.responded_at, now) if h.responded_at else 0
    if n < 2:
        return None
    latest = h.responses[n - 1]
    score = latest.score
    previous = h.responses[n - 2].score
    if score is None or previous is None or previous - score < p.rules.pulse_drop.drop - _EPSILON:
        return None
    return decide(
        h,
        "pulse_drop",
        p.rules.pulse_drop.severity,
        f"パルスサーベイのスコアが{previous:.1f}から{score:.1f}に下がりました(−{previous - score:.1f})。",
        latest.submitted_at,
    )


def neglected(h: HolderHistory, now: datetime, p: RuleParams) -> FlagDecision | None:
    """More than the phase's ``max_gap`` since the last delivered touch, or since the offer date."""
    delivered_at = h.delivered_at
    n = bisect_right(delivered_at, now) if delivered_at else 0
    gap = p.gaps.get((h.cadence, h.phase), p.default_gap)
    if n:
        last = delivered_at[n - 1]
        deadline = gap.after(last)
        if now <= deadline:
            return None
        where = f"{gap.label}の" if gap.label else ""
        reason = (
            f"最後の連絡({p.local(last)})から{(now - last).days}日間、連絡が届いていません"
            f"({where}上限{describe_interval(gap.interval)})。"
        )
    else:
        offer_at = p.offer_at(h.offer_date)
        deadline = gap.after(offer_at)
        if now <= deadline:
            return None
        reason = (
            f"内定日({p.local(offer_at)})から{(now - offer_at).days}日間、一度も連絡が届いていません"
            f"(上限{describe_interval(gap.interval)})。"
        )
    return decide(h, "neglected", p.rules.neglected.severity, reason, deadline)


def over_contacted(h: HolderHistory, now: datetime, p: RuleParams) -> FlagDecision | None:
    """More than ``max_touches`` delivered touches in ``(now - window, now]``, all channels together."""
    cap = p.rules.over_contacted.max_touches
    delivered_at = h.delivered_at
    if len(delivered_at) <= cap:
        return None
    n = bisect_right(delivered_at, now)
    if n <= cap:
        return None
    window_start = contact_window_start(p.window, now)
    first = bisect_right(delivered_at, window_start, 0, n)
    count = n - first
    if count <= cap:
        return None
    return decide(
        h,
        "over_contacted",
        p.rules.over_contacted.severity,
        f"直近{p.window_text}で{count}回連絡しています(上限{cap}回)。",
        delivered_at[first + cap],
    )


def unresponsive(h: HolderHistory, now: datetime, p: RuleParams) -> FlagDecision | None:
    """At least ``consecutive`` automated touches delivered after the last sign of engagement."""
    automated_at = h.automated_at
    k = p.rules.unresponsive.consecutive
    if len(automated_at) < k:
        return None
    end = bisect_right(automated_at, now)
    if end < k:
        return None
    engaged_at = h.engaged_at
    e = bisect_right(engaged_at, now) if engaged_at else 0
    begin = bisect_right(automated_at, engaged_at[e - 1], 0, end) if e else 0
    streak = end - begin
    if streak < k:
        return None
    return decide(
        h,
        "unresponsive",
        p.rules.unresponsive.severity,
        f"直近{streak}回の連絡に返信・回答がありません。",
        automated_at[begin + k - 1],
    )


def unreachable(h: HolderHistory, now: datetime, p: RuleParams) -> FlagDecision | None:
    """No message channel left: since the last opt-out, or the offer date if there was no address."""
    if h.reachable_channels:
        return None
    n = bisect_right(h.opt_outs, now) if h.opt_outs else 0
    since = h.opt_outs[n - 1] if n else p.offer_at(h.offer_date)
    return decide(
        h,
        "unreachable",
        p.rules.unreachable.severity,
        "連絡できるチャネルがありません(メール・Slack・LINEが未登録か、すべて配信停止)。",
        since,
    )


# The built-in rules, in the order their flags are returned (display order is RULE_ORDER).
def no_cadence(h: HolderHistory, now: datetime, p: RuleParams) -> FlagDecision | None:
    """An active holder no cadence applies to: nothing will ever be sent, so say so (and why)."""
    if h.cadence is not None:
        return None
    tracks = sorted({t for c in p.policy.cadences.values() for t in c.applies_to.tracks})
    who = f"採用区分「{h.track}」" if h.track else "この内定者"
    return decide(
        h,
        "no_cadence",
        p.rules.no_cadence.severity,
        f"{who}に合うケイデンスがないため、自動連絡が一度も送られません"
        f"(ケイデンスのある区分: {'、'.join(tracks) or 'なし'})。",
        p.offer_at(h.offer_date),
    )


def acceptance_pending(h: HolderHistory, now: datetime, p: RuleParams) -> FlagDecision | None:
    """Offered, not accepted, once the acceptance deadline's day (or offer + default_wait) is over."""
    if h.status != "offered":
        return None
    if h.acceptance_deadline is not None:
        closes = p.offer_at(h.acceptance_deadline + timedelta(days=1))
        said = f"承諾期限({h.acceptance_deadline.month}/{h.acceptance_deadline.day})"
    else:
        wait = p.rules.acceptance_pending.default_wait
        if wait is None:
            return None
        closes = shift_moment(p.offer_at(h.offer_date), wait)
        said = f"内定日({p.local(p.offer_at(h.offer_date))})から{describe_interval(wait)}"
    if now <= closes:
        return None
    return decide(
        h,
        "acceptance_pending",
        p.rules.acceptance_pending.severity,
        f"{said}を過ぎても内定承諾の回答がありません。",
        closes,
    )


def no_rsvp(h: HolderHistory, now: datetime, p: RuleParams) -> FlagDecision | None:
    """Invited, the deadline's day is over, no answer (or only 未定), and the event is still ahead."""
    late = [
        e
        for e in h.events
        if e.invited
        and e.answer_closes is not None
        and e.answer_closes < now < e.starts_at
        and e.answer in ("", "maybe")
        and not e.attendance
    ]
    if not late:
        return None
    first = min(late, key=lambda e: e.starts_at)
    assert first.answer_closes is not None
    said = "「未定」のまま" if first.answer == "maybe" else "回答がなく"
    return decide(
        h,
        "no_rsvp",
        p.rules.no_rsvp.severity,
        f"「{first.title}」({p.local(first.starts_at)})の出欠が、"
        f"締切({p.local(first.answer_closes - timedelta(seconds=1))})を過ぎても{said}未確定です。",
        first.answer_closes,
    )


def event_absent(h: HolderHistory, now: datetime, p: RuleParams) -> FlagDecision | None:
    """Said 出席, recorded absent; flagged from the event's start for ``window``."""
    window = p.rules.event_absent.window
    missed = [
        e
        for e in h.events
        if e.answer == "attending"
        and e.attendance == "absent"
        and e.starts_at <= now <= shift_moment(e.starts_at, window)
    ]
    if not missed:
        return None
    last = max(missed, key=lambda e: e.starts_at)
    return decide(
        h,
        "event_absent",
        p.rules.event_absent.severity,
        f"「{last.title}」({p.local(last.starts_at)})に出席と回答していましたが、当日は欠席でした。",
        last.starts_at,
    )


def task_overdue(h: HolderHistory, now: datetime, p: RuleParams) -> FlagDecision | None:
    """A task still pending once the first business day after its due date has begun."""
    late = sorted((t for t in h.tasks if t.status == "pending" and t.late_from <= now), key=lambda t: t.due)
    if not late:
        return None
    first = late[0]
    more = f"(ほか{len(late) - 1}件: {'、'.join(t.title for t in late[1:])})" if len(late) > 1 else ""
    return decide(
        h,
        "task_overdue",
        p.rules.task_overdue.severity,
        f"「{first.title}」の期限({first.due.month}/{first.due.day})を過ぎても未提出です{more}。",
        first.late_from,
    )


def manual_overdue(h: HolderHistory, now: datetime, p: RuleParams) -> FlagDecision | None:
    """A reminded call or letter still not logged ``after`` (business days) the reminder."""
    if not h.manual:
        return None
    late = sorted(
        (deadline, m.touch_id, m)
        for m in h.manual
        if m.reminded_at <= now and now > (deadline := p.manual_deadline(m.reminded_at))
    )
    if not late:
        return None
    since, _, first = late[0]
    after = describe_interval(p.rules.manual_overdue.after)
    more = f"ほか{len(late) - 1}件も未実施です。" if len(late) > 1 else ""
    return decide(
        h,
        "manual_overdue",
        p.rules.manual_overdue.severity,
        f"{first.assignee}に{p.local(first.reminded_at)}にお願いした「{first.what}」が、"
        f"{after}を過ぎても実施済みになっていません。{more}",
        since,
    )


def cohort_not_joined(h: HolderHistory, now: datetime, p: RuleParams) -> FlagDecision | None:
    """Invited to the cohort channel, not joined ``after`` the invitation (a join after ``now`` is not
    seen yet)."""
    invited = h.cohort_invited_at
    if invited is None or invited > now:
        return None
    if h.cohort_joined_at is not None and h.cohort_joined_at <= now:
        return None
    after = p.rules.cohort_not_joined.after
    limit = shift_moment(invited.astimezone(p.tz), after)
    if now <= limit:
        return None
    return decide(
        h,
        "cohort_not_joined",
        p.rules.cohort_not_joined.severity,
        f"内定者同士の交流チャンネルに{p.local(invited)}に招待しましたが、"
        f"{describe_interval(after)}を過ぎても参加していません。",
        limit,
    )


RULES: tuple[Rule, ...] = (
    declining_signal,
    low_pulse,
    pulse_drop,
    neglected,
    over_contacted,
    unresponsive,
    unreachable,
    acceptance_pending,
    no_rsvp,
    event_absent,
    task_overdue,
    manual_overdue,
    cohort_not_joined,
    no_cadence,
)


# --- the engine ---------------------------------------------------------------------------------------


class RuleEngine:
    """The policy resolved once (:class:`RuleParams`) and a tuple of rules; :meth:`evaluate` is then
    cheap per holder. ``rules`` defaults to the built-in :data:`RULES`."""

    def __init__(self, policy: Policy, rules: Sequence[Rule] = RULES) -> None:
        self.policy = policy
        self.params = RuleParams(policy)
        self.tz = self.params.tz
        self.rules: tuple[Rule, ...] = tuple(rules)

    def evaluate(self, h: HolderHistory, now: datetime) -> list[FlagDecision]:
        if h.status not in ACTIVE_STATUSES or self.params.local_date(now) >= h.start_date:
            return []  # follow-up ends on the first working day (HR then marks the holder joined)
        params = self.params
        out: list[FlagDecision] = []
        for rule in self.rules:
            decision = rule(h, now, params)
            if decision is not None:
                out.append(decision)
        return out

    def evaluate_many(self, histories: Iterable[HolderHistory], now: datetime) -> list[FlagDecision]:
        """The same as :meth:`evaluate` per holder, with ``now``'s local date computed once."""
        params = self.params
        rules = self.rules
        today = params.local_date(now)
        out: list[FlagDecision] = []
        append = out.append
        for h in histories:
            if h.status not in ACTIVE_STATUSES or today >= h.start_date:
                continue
            for rule in rules:
                decision = rule(h, now, params)
                if decision is not None:
                    append(decision)
        return out


def evaluate(
    history: HolderHistory, policy: Policy, now: datetime, rules: Sequence[Rule] = RULES
) -> list[FlagDecision]:
    """The flags one holder raises at ``now`` (inactive holders raise none)."""
    _require_aware(now)
    return RuleEngine(policy, rules).evaluate(history, now)


def evaluate_many(
    histories: Sequence[HolderHistory], policy: Policy, now: datetime, rules: Sequence[Rule] = RULES
) -> list[FlagDecision]:
    """The batch path: the same rules, policy resolved once, no per-holder setup."""
    _require_aware(now)
    return RuleEngine(policy, rules).evaluate_many(histories, now)


def sort_by_risk(decisions: Iterable[FlagDecision]) -> list[tuple[int, list[FlagDecision]]]:
    """Decisions grouped per holder, riskiest holder first, flags within a holder in display order
    (:mod:`followup.flags.risk`)."""
    grouped: dict[int, list[FlagDecision]] = {}
    for decision in decisions:
        grouped.setdefault(decision.holder_id, []).append(decision)
    rows = [(risk_score(flags), sort_flags(flags)) for flags in grouped.values()]
    rows.sort(key=lambda row: holder_order(row[0], row[1][0].external_id))
    return rows


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")


__all__ = [
    "ACTIONS",
    "ACTIVE_STATUSES",
    "RULES",
    "RULE_ORDER",
    "SEVERITY_WEIGHTS",
    "EventRecord",
    "FlagDecision",
    "HolderHistory",
    "ManualRecord",
    "PulseResponse",
    "Rule",
    "RuleEngine",
    "RuleParams",
    "TouchRecord",
    "contact_window_start",
    "current_phase",
    "decide",
    "evaluate",
    "evaluate_many",
    "manual_deadline",
    "risk_score",
    "sort_by_risk",
]
