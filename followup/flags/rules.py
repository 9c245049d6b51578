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
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from followup.config.schema import Policy
from followup.durations import Interval, shift_moment

ACTIVE_STATUSES = frozenset({"offered", "accepted"})
RULE_ORDER = (
    "declining_signal",
    "low_pulse",
    "neglected",
    "unreachable",
    "pulse_drop",
    "unresponsive",
    "over_contacted",
)
# A high flag outweighs a medium plus a low one: two medium flags (6) outrank one high (5), because two
# independent warning signs about one holder are worth a look before a single strong one.
SEVERITY_WEIGHTS: dict[str, int] = {"low": 1, "medium": 3, "high": 5}
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
}
ENGAGING_MANUAL_CHANNELS = frozenset({"phone", "meeting"})  # a completed call or meeting is two-way
AUTOMATED_KINDS = frozenset({"message", "survey"})
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
    phase: str | None = None  # the cadence phase at the evaluation time, None outside every phase
    reachable_channels: tuple[str, ...] = ("email",)
    delivered: tuple[TouchRecord, ...] = ()
    undelivered: tuple[TouchRecord, ...] = ()  # failed sends and suppressed attempts: never contact
    responses: tuple[PulseResponse, ...] = ()
    engagement: tuple[datetime, ...] = ()  # replies, answers, button presses
    opt_outs: tuple[datetime, ...] = ()
    # derived, sorted, for binary search
    delivered_at: tuple[datetime, ...] = field(init=False, repr=False, compare=False)
    automated_at: tuple[datetime, ...] = field(init=False, repr=False, compare=False)
    engaged_at: tuple[datetime, ...] = field(init=False, repr=False, compare=False)
    responded_at: tuple[datetime, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        delivered = tuple(sorted(self.delivered, key=_at))
        responses = tuple(sorted(self.responses, key=_submitted))
        engaged = list(self.engagement)
        engaged.extend(r.submitted_at for r in responses)
        engaged.extend(t.at for t in delivered if t.channel in ENGAGING_MANUAL_CHANNELS)
        setattr_ = object.__setattr__
        setattr_(self, "delivered", delivered)
        setattr_(self, "responses", responses)
        setattr_(self, "delivered_at", tuple(t.at for t in delivered))
        setattr_(
            self,
            "automated_at",
            tuple(t.at for t in delivered if t.kind in AUTOMATED_KINDS and t.expects_reply),
        )
        setattr_(self, "engaged_at", tuple(sorted(engaged)))
        setattr_(self, "responded_at", tuple(r.submitted_at for r in responses))

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


def risk_score(flags: Iterable[FlagDecision] | Iterable[str]) -> int:
    """Sum of severity weights (low 1, medium 3, high 5) over a holder's open flags."""
    total = 0
    for flag in flags:
        severity = flag if isinstance(flag, str) else flag.severity
        total += SEVERITY_WEIGHTS.get(severity, 0)
    return total


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


class RuleEngine:
    """The policy's rule parameters resolved once; :meth:`evaluate` is then cheap per holder."""

    def __init__(self, policy: Policy) -> None:
        rules = policy.rules
        self.policy = policy
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

    def _offer_at(self, day: date) -> datetime:
        moment = self.offer_moments.get(day)
        if moment is None:
            moment = datetime.combine(day, time(0, 0), self.tz)
            self.offer_moments[day] = moment
        return moment

    def _local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.policy.organization.tz).date()

    def _local(self, moment: datetime) -> str:
        return moment.astimezone(self.tz).strftime("%-m/%-d")

    def evaluate(self, h: HolderHistory, now: datetime) -> list[FlagDecision]:
        if h.status not in ACTIVE_STATUSES or self._local_date(now) >= h.start_date:
            return []  # follow-up ends on the first working day (HR then marks the holder joined)
        rules = self.policy.rules
        out: list[FlagDecision] = []

        def flag(rule: str, severity: str, reason: str, since: datetime) -> None:
            out.append(FlagDecision(h.holder_id, h.external_id, rule, severity, reason, ACTIONS[rule], since))

        # --- responses: latest and previous at `now`
        n_resp = bisect_right(h.responded_at, now) if h.responded_at else 0
        if n_resp:
            latest = h.responses[n_resp - 1]
            if latest.declining:
                said = "・".join(f"「{a}」" for a in latest.declining_answers) or "辞退を考えている旨"
                flag(
                    "declining_signal",
                    rules.declining_signal.severity,
                    f"{self._local(latest.submitted_at)}のサーベイで{said}と回答しています。",
                    latest.submitted_at,
                )
            score = latest.score
            if score is not None:
                if score < rules.low_pulse.threshold:
                    flag(
                        "low_pulse",
                        rules.low_pulse.severity,
                        f"最新のパルスサーベイのスコアが{score:.1f}です"
                        f"(基準{rules.low_pulse.threshold:.1f}未満、5段階)。",
                        latest.submitted_at,
                    )
                if n_resp >= 2:
                    previous = h.responses[n_resp - 2].score
                    if previous is not None and previous - score >= rules.pulse_drop.drop - _EPSILON:
                        flag(
                            "pulse_drop",
                            rules.pulse_drop.severity,
                            f"パルスサーベイのスコアが{previous:.1f}から{score:.1f}に"
                            f"下がりました(−{previous - score:.1f})。",
                            latest.submitted_at,
                        )

        # --- neglected: since the last delivered touch, or the offer date
        delivered_at = h.delivered_at
        n_delivered = bisect_right(delivered_at, now) if delivered_at else 0
        gap = self.gaps.get((h.cadence, h.phase), self.default_gap)
        if n_delivered:
            last = delivered_at[n_delivered - 1]
            deadline = gap.after(last)
            if now > deadline:
                days = (now - last).days
                where = f"{gap.label}の" if gap.label else ""
                flag(
                    "neglected",
                    rules.neglected.severity,
                    f"最後の連絡({self._local(last)})から{days}日間、連絡が届いていません"
                    f"({where}上限{describe_interval(gap.interval)})。",
                    deadline,
                )
        else:
            offer_at = self._offer_at(h.offer_date)
            deadline = gap.after(offer_at)
            if now > deadline:
                days = (now - offer_at).days
                flag(
                    "neglected",
                    rules.neglected.severity,
                    f"内定日({self._local(offer_at)})から{days}日間、一度も連絡が届いていません"
                    f"(上限{describe_interval(gap.interval)})。",
                    deadline,
                )

        # --- over_contacted: delivered touches in (now - window, now]
        if n_delivered > rules.over_contacted.max_touches:
            window_start = (
                now - self.window_fixed
                if self.window_fixed is not None
                else shift_moment(now, self.window, -1)
            )
            first = bisect_right(delivered_at, window_start, 0, n_delivered)
            count = n_delivered - first
            cap = rules.over_contacted.max_touches
            if count > cap:
                flag(
                    "over_contacted",
                    rules.over_contacted.severity,
                    f"直近{self.window_text}で{count}回連絡しています(上限{cap}回)。",
                    delivered_at[first + cap],
                )

        # --- unresponsive: automated touches after the last engagement
        automated_at = h.automated_at
        k = rules.unresponsive.consecutive
        if len(automated_at) >= k:
            end = bisect_right(automated_at, now)
            if end >= k:
                engaged_at = h.engaged_at
                e = bisect_right(engaged_at, now) if engaged_at else 0
                begin = bisect_right(automated_at, engaged_at[e - 1], 0, end) if e else 0
                streak = end - begin
                if streak >= k:
                    flag(
                        "unresponsive",
                        rules.unresponsive.severity,
                        f"直近{streak}回の連絡に返信・回答がありません。",
                        automated_at[begin + k - 1],
                    )

        # --- unreachable
        if not h.reachable_channels:
            n_opt = bisect_right(h.opt_outs, now) if h.opt_outs else 0
            since = h.opt_outs[n_opt - 1] if n_opt else self._offer_at(h.offer_date)
            flag(
                "unreachable",
                rules.unreachable.severity,
                "連絡できるチャネルがありません(メール・Slack・LINEが未登録か、すべて配信停止)。",
                since,
            )
        return out


def evaluate(history: HolderHistory, policy: Policy, now: datetime) -> list[FlagDecision]:
    """The flags one holder raises at ``now`` (inactive holders raise none)."""
    _require_aware(now)
    return RuleEngine(policy).evaluate(history, now)


def evaluate_many(histories: Sequence[HolderHistory], policy: Policy, now: datetime) -> list[FlagDecision]:
    """The batch path: the same rules, policy resolved once, no per-holder setup."""
    _require_aware(now)
    engine = RuleEngine(policy)
    run = engine.evaluate
    out: list[FlagDecision] = []
    extend = out.extend
    for history in histories:
        extend(run(history, now))
    return out


def sort_by_risk(decisions: Iterable[FlagDecision]) -> list[tuple[int, list[FlagDecision]]]:
    """Decisions grouped per holder, riskiest holder first, flags within a holder by rule order."""
    grouped: dict[int, list[FlagDecision]] = {}
    for decision in decisions:
        grouped.setdefault(decision.holder_id, []).append(decision)
    order = {rule: i for i, rule in enumerate(RULE_ORDER)}
    rows = [
        (risk_score(flags), sorted(flags, key=lambda f: (-SEVERITY_WEIGHTS[f.severity], order[f.rule])))
        for flags in grouped.values()
    ]
    rows.sort(key=lambda row: (-row[0], row[1][0].external_id))
    return rows


def current_phase(
    policy: Policy,
    cadence_name: str | None,
    dates: dict[str, date | None],
    today: date,
) -> str | None:
    """The cadence phase whose ``[from, to)`` contains ``today``; where phases overlap the later one
    wins (SPEC). None when no phase applies (before the offer, after the start, or an anchor the holder
    lacks, e.g. ``accepted`` before acceptance)."""
    if cadence_name is None or cadence_name not in policy.cadences:
        return None
    found: str | None = None
    for phase in policy.cadences[cadence_name].phases:
        begin, end = phase.start.resolve(dates), phase.end.resolve(dates)
        if begin is not None and end is not None and begin <= today < end:
            found = phase.name
    return found


def _require_aware(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")


__all__ = [
    "ACTIONS",
    "ACTIVE_STATUSES",
    "SEVERITY_WEIGHTS",
    "FlagDecision",
    "HolderHistory",
    "PulseResponse",
    "RuleEngine",
    "TouchRecord",
    "current_phase",
    "evaluate",
    "evaluate_many",
    "risk_score",
]
