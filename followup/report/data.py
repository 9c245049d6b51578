"""What the weekly report says, as plain data read from the database at ``now``.

The report covers the seven days up to ``now``. It reads the ``flags`` table (the caller evaluates and
persists first, so "new", "continuing" and "resolved" mean the same thing everywhere), delivery attempts,
survey responses and the holders' status history (for last week's KPIs).

KPIs, as the seeds measure effect (000: 内定辞退率の推移): over the cohort whose offer date has passed,
内定承諾率 = (accepted + joined) / offers and 内定辞退率 = declined / offers (a decline after acceptance
counts as a decline). Last week's figures use each holder's status as of ``now - 7 days`` from the
lifecycle history.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property
from statistics import fmean
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from followup.calendar import BusinessCalendar
from followup.config.schema import Policy, Task
from followup.db.models import (
    DeliveryAttempt,
    EventRsvp,
    Flag,
    HolderChange,
    OfferHolder,
    SurveyResponse,
    Touch,
)
from followup.flags.phase import holder_phase
from followup.flags.risk import SEVERITY_WEIGHTS, holder_order, risk_score, sort_flags
from followup.flags.rules import describe_interval, manual_deadline
from followup.flags.store import reminded_manual_touches
from followup.labels import CHANNEL_LABELS, RULE_LABELS, SEVERITY_LABELS, STATUS_LABELS
from followup.report import charts
from followup.tasks.store import late_from, task_states
from followup.vocab import (
    ACTIVE_STATUSES,
    HOLDER_STATUSES,
    POOL_CADENCE,
    HolderStatus,
    TouchKind,
    TouchStatus,
)

NO_PHASE = "フェーズ外"
WEEK = timedelta(days=7)


def workspace_url(base_url: str) -> str:
    """The dashboard under ``FOLLOWUP_BASE_URL``: the report links there for every at-risk holder."""
    return f"{base_url.rstrip('/')}/dashboard"


def iso_week(now: datetime, policy: Policy) -> str:
    """``2026-W47`` for ``now`` in the organisation's time zone (the ReportRun dedupe key)."""
    year, week, _ = now.astimezone(policy.organization.tz).isocalendar()
    return f"{year}-W{week:02d}"


@dataclass(frozen=True)
class FlagRow:
    external_id: str
    name: str
    rule: str
    severity: str
    reason: str
    action: str
    first_seen: datetime
    resolved_at: datetime | None

    @property
    def rule_label(self) -> str:
        return RULE_LABELS.get(self.rule, self.rule)

    @property
    def severity_label(self) -> str:
        return SEVERITY_LABELS.get(self.severity, self.severity)


@dataclass(frozen=True)
class AtRiskHolder:
    external_id: str
    name: str
    status_label: str
    phase_label: str
    risk: int
    flags: list[FlagRow]


@dataclass(frozen=True)
class ChannelCounts:
    channel: str
    label: str
    sent: int = 0
    failed: int = 0
    retried: int = 0  # transient errors that will be tried again
    suppressed: int = 0


@dataclass(frozen=True)
class Kpi:
    offers: int
    accepted: int
    declined: int

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.offers if self.offers else None

    @property
    def decline_rate(self) -> float | None:
        return self.declined / self.offers if self.offers else None


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    png: bytes

    def cid(self, week: str) -> str:
        return f"{self.name}.{week}@followup.report"


@dataclass(frozen=True)
class EventCounts:
    """An upcoming event with its answers so far (出席 / キャンセル待ち / 欠席 / 未定 / 未回答)."""

    event: str
    title: str
    starts_at: datetime  # local time
    deadline: date | None
    capacity: int | None
    attending: int
    waitlisted: int
    declined: int
    maybe: int
    unanswered: int  # invited (invitation sent) and no answer


@dataclass(frozen=True)
class OverdueManual:
    """A manual touch (a call, a letter) reminded and still not logged past ``manual_overdue.after``."""

    external_id: str
    name: str
    channel_label: str
    what: str  # the touch's memo
    assignee: str  # 佐藤社長, a mentor's name, or the address
    reminded_at: datetime  # local time
    overdue_since: datetime  # local time
    escalated: bool  # the assignee has been asked again


@dataclass(frozen=True)
class AnnouncementCounts:
    """One announcement (一斉配信): sent this week, sent in all, still planned, failed."""

    name: str
    template: str
    sent_week: int
    sent: int
    planned: int
    failed: int
    title: str = ""  # the message as HR calls it (the template's description)


@dataclass(frozen=True)
class OverdueTask:
    """A task (提出物) past its due date for some holders: how many, and the longest overdue first."""

    task: str
    title: str
    count: int
    top: list[tuple[str, str, date, int]]  # (external_id, name, due date, business days late)


@dataclass
class WeeklyReport:
    organization: str
    subject: str
    week: str
    now: datetime
    period_start: datetime  # local time
    period_end: datetime
    status_counts: list[tuple[str, str, int]]  # (status, label, count)
    phase_counts: list[tuple[str, int]]  # (phase label, active holders)
    new_flags: list[FlagRow]
    continuing_flags: list[FlagRow]
    resolved_flags: list[FlagRow]
    at_risk: list[AtRiskHolder]
    deliveries: list[ChannelCounts]
    pulse_trend: list[tuple[str, float, int]]  # (week starting, mean score, responses)
    pulse_threshold: float
    kpi: Kpi
    kpi_previous: Kpi
    upcoming_events: list[EventCounts] = field(default_factory=list)
    overdue_manual: list[OverdueManual] = field(default_factory=list)  # 未実施の個別フォロー
    announcements: list[AnnouncementCounts] = field(default_factory=list)  # 一斉配信
    manual_overdue_after: str = "3営業日"  # the limit, as the section's heading says it
    overdue_tasks: list[OverdueTask] = field(default_factory=list)  # 期限を過ぎた提出物
    charts: list[Chart] = field(default_factory=list)
    status_by_track: dict[tuple[str, str], int] = field(default_factory=dict)  # (track, status) → holders
    # ``at_risk`` is the top ``top_n``; these say how many there are in all and what the rest are
    top_n: int = 50
    at_risk_total: int = 0
    at_risk_rest: list[tuple[str, str, int]] = field(default_factory=list)  # (severity, label, holders)
    workspace_url: str | None = None  # the dashboard, where every holder is listed

    @property
    def at_risk_more(self) -> int:
        """At-risk holders not shown in full."""
        return max(0, self.at_risk_total - len(self.at_risk))

    @property
    def total_holders(self) -> int:
        return sum(count for _, _, count in self.status_counts)

    def summary(self) -> dict[str, Any]:
        """A small JSON record of the report (stored in ReportRun.summary)."""
        return {
            "week": self.week,
            "holders": self.total_holders,
            "at_risk": self.at_risk_total,
            "new_flags": len(self.new_flags),
            "continuing_flags": len(self.continuing_flags),
            "resolved_flags": len(self.resolved_flags),
            "acceptance_rate": self.kpi.acceptance_rate,
            "decline_rate": self.kpi.decline_rate,
            "overdue_manual": len(self.overdue_manual),
            "announcements_sent_week": sum(a.sent_week for a in self.announcements),
        }


def _phase_labels(policy: Policy) -> dict[tuple[str, str], str]:
    return {
        (cname, phase.name): phase.label or phase.name
        for cname, cadence in policy.cadences.items()
        for phase in cadence.phases
    }


def _statuses_at(session: Session, moment: datetime) -> Counter[tuple[date, str]]:
    """(offer date, status at ``moment``) → offer holders (not the talent pool's): from the lifecycle
    history for the holders who have one, else the current status (``offered`` for an acceptance dated
    after ``moment``). Grouped in SQL for the holders without a history; only those with one one by one."""
    changed = select(HolderChange.holder_id).where(HolderChange.field == "status").distinct()
    changes: dict[int, list[tuple[datetime, str | None, str | None]]] = defaultdict(list)
    for holder_id, at, old, new in session.execute(
        select(HolderChange.holder_id, HolderChange.at, HolderChange.old_value, HolderChange.new_value)
        .where(HolderChange.field == "status")
        .order_by(HolderChange.at)
    ):
        changes[holder_id].append((at, old, new))
    offers = OfferHolder.status != HolderStatus.REJECTED.value
    out: Counter[tuple[date, str]] = Counter()
    for holder_id, status, offer_date in session.execute(
        select(OfferHolder.id, OfferHolder.status, OfferHolder.offer_date).where(
            offers, OfferHolder.id.in_(changed)
        )
    ):
        history = changes[holder_id]
        before = [new for at, _, new in history if at <= moment]
        value = before[-1] if before else history[0][1]
        out[(offer_date, value if value in HOLDER_STATUSES else status)] += 1
    for status, offer_date, accepted_date, count in session.execute(
        select(OfferHolder.status, OfferHolder.offer_date, OfferHolder.accepted_date, func.count())
        .where(offers, OfferHolder.id.not_in(changed))
        .group_by(OfferHolder.status, OfferHolder.offer_date, OfferHolder.accepted_date)
    ):
        pending = status == "accepted" and accepted_date is not None and accepted_date > moment.date()
        out[(offer_date, "offered" if pending else status)] += count
    return out


def _kpi(statuses: Counter[tuple[date, str]], day: date) -> Kpi:
    """Rates over the cohort offered by ``day``, from (offer date, status) → holders."""
    counts: Counter[str] = Counter()
    for (offer, status), n in statuses.items():
        if offer <= day:
            counts[status] += n
    return Kpi(sum(counts.values()), counts["accepted"] + counts["joined"], counts["declined"])


_FLAG_ROW_COLUMNS = (
    OfferHolder.external_id,
    OfferHolder.name,
    Flag.rule,
    Flag.severity,
    Flag.reason,
    Flag.action,
    Flag.first_seen,
    Flag.resolved_at,
)


def _flag_rows(session: Session, *conditions: Any) -> list[FlagRow]:
    """Plain rows (no ORM objects), in external id then rule order."""
    rows = session.execute(
        select(*_FLAG_ROW_COLUMNS)
        .join(OfferHolder, OfferHolder.id == Flag.holder_id)
        .where(*conditions)
        .order_by(OfferHolder.external_id, Flag.rule)
    )
    return [FlagRow(*row) for row in rows]


# --- the week being reported, shared by the sections -------------------------------------------------


class ReportWeek:
    """What every section reads: the session, the policy, ``now`` and the seven days before it, and
    the holder rows (read once; the phase of each active holder worked out once, on first use)."""

    def __init__(self, session: Session, policy: Policy, now: datetime) -> None:
        self.session = session
        self.policy = policy
        self.now = now
        self.tz = policy.organization.tz
        self.start = now - WEEK
        self.local_now = now.astimezone(self.tz)
        self.today = self.local_now.date()
        self.phase_labels = _phase_labels(policy)
        # holders grouped by what the sections count them by (status, track, their season's dates,
        # erased or not): a few hundred rows however many holders there are. Erased holders too: cohort
        # counts and rates must still add up after a deletion request. 不採用 is the talent pool's.
        erased = OfferHolder.erased_at.is_not(None)
        self.groups: list[Any] = list(
            session.execute(
                select(
                    OfferHolder.status,
                    OfferHolder.track,
                    OfferHolder.department,
                    OfferHolder.offer_date,
                    OfferHolder.accepted_date,
                    OfferHolder.start_date,
                    erased.label("erased"),
                    func.count().label("count"),
                )
                .where(OfferHolder.status != HolderStatus.REJECTED.value)
                .group_by(
                    OfferHolder.status,
                    OfferHolder.track,
                    OfferHolder.department,
                    OfferHolder.offer_date,
                    OfferHolder.accepted_date,
                    OfferHolder.start_date,
                    erased,
                )
            )
        )
        self._season_labels: dict[tuple[Any, ...], str] = {}

    def followed(self) -> list[Any]:
        """The groups of active, not erased holders (the ones the phases and tasks are about)."""
        return [g for g in self.groups if g.status in ACTIVE_STATUSES and not g.erased]

    def phase_label(self, season: tuple[Any, ...]) -> str:
        """The label of the current phase for a (track, department, offer, accepted, start) season
        (フェーズ外 if none); holders share seasons, so each is worked out once."""
        label = self._season_labels.get(season)
        if label is None:
            track, department, offer, accepted, start = season
            cadence, phase = holder_phase(
                self.policy,
                track=track,
                department=department,
                offer_date=offer,
                accepted_date=accepted,
                start_date=start,
                today=self.today,
            )
            label = self._season_labels[season] = self.phase_labels.get(
                (cadence or "", phase or ""), NO_PHASE
            )
        return label

    @cached_property
    def ranked(self) -> list[tuple[int, str, int, str]]:
        """Every active holder with open flags as (risk, external id, holder id, highest severity),
        riskiest first: one query of (holder, severity) pairs, summed here."""
        severities: dict[int, list[str]] = defaultdict(list)
        external: dict[int, str] = {}
        for holder_id, external_id, severity in self.session.execute(
            select(Flag.holder_id, OfferHolder.external_id, Flag.severity)
            .join(OfferHolder, OfferHolder.id == Flag.holder_id)
            .where(Flag.resolved_at.is_(None), OfferHolder.status.in_(ACTIVE_STATUSES))
        ):
            severities[holder_id].append(severity)
            external[holder_id] = external_id
        ranked = [
            (risk_score(found), external[hid], hid, max(found, key=lambda s: SEVERITY_WEIGHTS.get(s, 0)))
            for hid, found in severities.items()
        ]
        ranked.sort(key=lambda r: holder_order(r[0], r[1]))
        return ranked


# --- one function per section of the report, in the order the report shows them -------------------


def status_counts(week: ReportWeek) -> list[tuple[str, str, int]]:
    """Holders per status, every status listed (zeros too), in lifecycle order; 不採用 is the talent
    pool's (the season report), not an offer holder's status."""
    counter: Counter[str] = Counter()
    for group in week.groups:
        counter[group.status] += group.count
    return [(s, STATUS_LABELS[s], counter[s]) for s in HOLDER_STATUSES if s != HolderStatus.REJECTED]


def phase_counts(week: ReportWeek) -> list[tuple[str, int]]:
    """Active holders per phase label, in the policy's phase order, フェーズ外 last; empty ones left out."""
    counter: Counter[str] = Counter()
    for g in week.followed():
        counter[week.phase_label((g.track, g.department, g.offer_date, g.accepted_date, g.start_date))] += (
            g.count
        )
    ordered = list(dict.fromkeys([*week.phase_labels.values(), NO_PHASE]))
    return [(label, counter[label]) for label in ordered if counter[label]]


def new_flags(week: ReportWeek) -> list[FlagRow]:
    """Open flags first seen this week."""
    return _flag_rows(week.session, Flag.resolved_at.is_(None), Flag.first_seen > week.start)


def continuing_flags(week: ReportWeek) -> list[FlagRow]:
    """Open flags already open before this week."""
    return _flag_rows(week.session, Flag.resolved_at.is_(None), Flag.first_seen <= week.start)


def resolved_flags(week: ReportWeek) -> list[FlagRow]:
    """Flags resolved this week."""
    return _flag_rows(week.session, Flag.resolved_at > week.start, Flag.resolved_at <= week.now)


def at_risk(week: ReportWeek) -> list[AtRiskHolder]:
    """The ``report.top_n`` riskiest active holders with open flags (``flags/risk.py``), each with
    their flags; only their flags are read in full."""
    top = week.ranked[: week.policy.report.top_n]
    if not top:
        return []
    grouped: dict[int, list[FlagRow]] = defaultdict(list)
    status: dict[int, str] = {}
    phase: dict[int, str] = {}
    ids = [hid for _, _, hid, _ in top]
    for holder_id, holder_status, erased_at, *season_and_row in week.session.execute(
        select(
            Flag.holder_id,
            OfferHolder.status,
            OfferHolder.erased_at,
            OfferHolder.track,
            OfferHolder.department,
            OfferHolder.offer_date,
            OfferHolder.accepted_date,
            OfferHolder.start_date,
            *_FLAG_ROW_COLUMNS,
        )
        .join(OfferHolder, OfferHolder.id == Flag.holder_id)
        .where(Flag.resolved_at.is_(None), Flag.holder_id.in_(ids))
    ):
        season, row = tuple(season_and_row[:5]), season_and_row[5:]
        grouped[holder_id].append(FlagRow(*row))
        status[holder_id] = holder_status
        followed = holder_status in ACTIVE_STATUSES and erased_at is None
        phase[holder_id] = week.phase_label(season) if followed else NO_PHASE
    return [
        AtRiskHolder(
            external_id=external_id,
            name=grouped[hid][0].name,
            status_label=STATUS_LABELS.get(status[hid], status[hid]),
            phase_label=phase[hid],
            risk=risk,
            flags=sort_flags(grouped[hid]),
        )
        for risk, external_id, hid, _ in top
    ]


def at_risk_total(week: ReportWeek) -> int:
    """How many active holders have open flags (shown in full or not)."""
    return len(week.ranked)


def at_risk_rest(week: ReportWeek) -> list[tuple[str, str, int]]:
    """The at-risk holders beyond the top N, counted by their most severe open flag (high first)."""
    counter = Counter(severity for _, _, _, severity in week.ranked[week.policy.report.top_n :])
    order = sorted(counter, key=lambda s: -SEVERITY_WEIGHTS.get(s, 0))
    return [(s, SEVERITY_LABELS.get(s, s), counter[s]) for s in order]


def deliveries(week: ReportWeek) -> list[ChannelCounts]:
    """This week's delivery attempts per channel (sent, failed, retried, suppressed), plus completed
    manual touches counted as sent, in the channel label order."""
    session, start, now = week.session, week.start, week.now
    finished = func.coalesce(DeliveryAttempt.finished_at, DeliveryAttempt.started_at)
    per_channel: dict[str, Counter[str]] = defaultdict(Counter)
    for channel, outcome, count in session.execute(
        select(DeliveryAttempt.channel, DeliveryAttempt.outcome, func.count())
        .join(Touch, Touch.id == DeliveryAttempt.touch_id)
        .where(finished > start, finished <= now, Touch.cadence != POOL_CADENCE)  # pool: season report
        .group_by(DeliveryAttempt.channel, DeliveryAttempt.outcome)
    ):
        per_channel[channel][outcome] += count
    touched = func.coalesce(Touch.sent_at, Touch.due_at)
    for channel, count in session.execute(
        select(Touch.channel, func.count())
        .where(
            Touch.kind == TouchKind.MANUAL.value,
            Touch.status == TouchStatus.DONE.value,
            touched > start,
            touched <= now,
        )
        .group_by(Touch.channel)
    ):
        per_channel[channel]["sent"] += count
    channel_order = list(CHANNEL_LABELS)
    return [
        ChannelCounts(
            channel,
            CHANNEL_LABELS.get(channel, channel),
            sent=c["sent"],
            failed=c["permanent"],
            retried=c["transient"],
            suppressed=c["suppressed"],
        )
        for channel, c in sorted(
            per_channel.items(),
            key=lambda item: channel_order.index(item[0]) if item[0] in channel_order else 99,
        )
    ]


def pulse_trend(week: ReportWeek) -> list[tuple[str, float, int]]:
    """The weekly mean pulse score over the season: (Monday as ``m/d``, mean, responses)."""
    weekly: dict[date, list[float]] = defaultdict(list)
    for score, at in week.session.execute(
        select(SurveyResponse.score, SurveyResponse.submitted_at).where(
            SurveyResponse.score.is_not(None), SurveyResponse.submitted_at <= week.now
        )
    ):
        if score is None:
            continue
        local_day = at.astimezone(week.tz).date()
        weekly[local_day - timedelta(days=local_day.weekday())].append(float(score))
    return [
        (f"{monday.month}/{monday.day}", round(fmean(scores), 2), len(scores))
        for monday, scores in sorted(weekly.items())
    ]


def status_by_track(week: ReportWeek) -> dict[tuple[str, str], int]:
    """Holders per (track, status): the status table split into 新卒 and 中途."""
    counter: Counter[tuple[str, str]] = Counter()
    for group in week.groups:
        counter[(group.track, group.status)] += group.count
    return dict(counter)


UPCOMING_EVENTS = timedelta(weeks=8)  # events starting within this are listed with their answers


def upcoming_events(week: ReportWeek) -> list[EventCounts]:
    """Events starting in the next eight weeks, soonest first, with their RSVP counts."""
    soon = [
        (name, e)
        for name, e in week.policy.events.items()
        if week.now <= e.starts_at <= week.now + UPCOMING_EVENTS and e.rsvp
    ]
    if not soon:
        return []
    names = [name for name, _ in soon]
    answers: dict[str, Counter[str]] = defaultdict(Counter)
    answered: set[tuple[int, str]] = set()
    for holder_id, name, status in week.session.execute(
        select(EventRsvp.holder_id, EventRsvp.event, EventRsvp.status).where(EventRsvp.event.in_(names))
    ):
        if status:
            answers[name][status] += 1
            answered.add((holder_id, name))
    invited: dict[str, set[int]] = defaultdict(set)
    for holder_id, touch_event in week.session.execute(
        select(Touch.holder_id, Touch.event)
        .join(OfferHolder, OfferHolder.id == Touch.holder_id)
        .where(
            Touch.event.in_(names),
            Touch.phase == "event",
            Touch.status == "sent",
            Touch.key.like("%:invitation"),
            OfferHolder.status.in_(sorted(ACTIVE_STATUSES)),
        )
    ):
        invited[touch_event or ""].add(holder_id)
    rows = []
    for name, e in sorted(soon, key=lambda item: item[1].starts_at):
        c = answers[name]
        unanswered = sum(1 for h in invited[name] if (h, name) not in answered)
        rows.append(
            EventCounts(
                name,
                e.title,
                e.starts_at.astimezone(week.tz),
                e.deadline,
                e.capacity,
                c["attending"],
                c["waitlisted"],
                c["declined"],
                c["maybe"],
                unanswered,
            )
        )
    return rows


def overdue_manual(week: ReportWeek) -> list[OverdueManual]:
    """「未実施の個別フォロー」: reminded calls and letters past the manual_overdue limit, oldest first, with
    whether the assignee was asked again (the same deadline as the rule and the escalation mail)."""
    policy, now = week.policy, week.now
    reminded = reminded_manual_touches(week.session, policy, now)
    if not reminded:
        return []
    calendar = BusinessCalendar.from_policy(policy)
    after = policy.rules.manual_overdue.after
    late = [
        (deadline, holder_id, record)
        for holder_id, records in reminded.items()
        for record in records
        if now > (deadline := manual_deadline(record.reminded_at, after, week.tz, calendar))
    ]
    if not late:
        return []
    keys = [f"escalation:{record.touch_id}" for _, _, record in late]
    escalated = set(
        week.session.scalars(
            select(Touch.key).where(Touch.key.in_(keys), Touch.status == TouchStatus.REMINDED.value)
        )
    )
    people = {
        holder_id: (external_id, name)
        for holder_id, external_id, name in week.session.execute(
            select(OfferHolder.id, OfferHolder.external_id, OfferHolder.name).where(
                OfferHolder.id.in_({holder_id for _, holder_id, _ in late})
            )
        )
    }
    rows = []
    for deadline, holder_id, record in sorted(late, key=lambda item: (item[0], item[2].touch_id)):
        external_id, name = people[holder_id]
        rows.append(
            OverdueManual(
                external_id,
                name,
                CHANNEL_LABELS.get(record.channel, record.channel),
                record.what,
                record.assignee,
                record.reminded_at.astimezone(week.tz),
                deadline.astimezone(week.tz),
                f"escalation:{record.touch_id}" in escalated,
            )
        )
    return rows


def announcements(week: ReportWeek, titles: Mapping[str, str] | None = None) -> list[AnnouncementCounts]:
    """Every announcement with a touch sent this week or still planned: sent (this week and in all),
    planned and failed, one grouped query over the ``announce:<name>:…`` keys."""
    sent_week: Counter[str] = Counter()
    totals: dict[str, Counter[str]] = defaultdict(Counter)
    templates: dict[str, str] = {}
    for key, template, status, sent_at in week.session.execute(
        select(Touch.key, Touch.template, Touch.status, Touch.sent_at).where(Touch.key.like("announce:%"))
    ):
        name = key.split(":")[1]
        templates.setdefault(name, template or "")
        totals[name][status] += 1
        if status == TouchStatus.SENT.value and sent_at is not None and week.start < sent_at <= week.now:
            sent_week[name] += 1
    rows = [
        AnnouncementCounts(
            name,
            templates[name],
            sent_week[name],
            c[TouchStatus.SENT.value],
            c[TouchStatus.PLANNED.value] + c[TouchStatus.SENDING.value],
            c[TouchStatus.FAILED.value],
            (titles or {}).get(templates[name], ""),
        )
        for name, c in totals.items()
    ]
    return sorted((r for r in rows if r.sent_week or r.planned), key=lambda r: r.name)


OVERDUE_TOP = 5  # holders named per overdue task; the rest are in ``followup tasks show``


def overdue_tasks(week: ReportWeek) -> list[OverdueTask]:
    """期限を過ぎた提出物: per task, the active holders still 未提出 from the business day after its due
    date (as ``task_overdue`` counts), the longest overdue named first."""
    tasks = {n: t for n, t in week.policy.tasks.items() if not t.done_on_acceptance}
    if not tasks:
        return []
    calendar = BusinessCalendar.from_policy(week.policy)
    seasons: dict[tuple[Any, ...], list[tuple[str, date]]] = {}  # cohorts share their dates
    for g in week.followed():
        season = (g.track, g.department, g.offer_date, g.accepted_date, g.start_date)
        if season not in seasons:
            seasons[season] = _past_due(week, tasks, calendar, season)
    if not any(seasons.values()):
        return []  # no season has a task past due yet: no holder to read
    done = task_states(week.session)
    late: dict[str, list[tuple[int, date]]] = defaultdict(list)
    for row in week.session.execute(
        select(
            OfferHolder.id,
            OfferHolder.track,
            OfferHolder.department,
            OfferHolder.offer_date,
            OfferHolder.accepted_date,
            OfferHolder.start_date,
        ).where(OfferHolder.status.in_(ACTIVE_STATUSES), OfferHolder.erased_at.is_(None))
    ):
        season = (row.track, row.department, row.offer_date, row.accepted_date, row.start_date)
        past = seasons.get(season)
        if past is None:  # a holder added since the counts were read
            past = seasons[season] = _past_due(week, tasks, calendar, season)
        for name, due in past:
            if name not in done.get(row.id, {}):
                late[name].append((row.id, due))
    named = [hid for found in late.values() for hid, _ in sorted(found, key=lambda x: x[1])[:OVERDUE_TOP]]
    people = dict(
        (hid, (ext, nm))
        for hid, ext, nm in week.session.execute(
            select(OfferHolder.id, OfferHolder.external_id, OfferHolder.name).where(OfferHolder.id.in_(named))
        )
    )
    rows = []
    for name, task in tasks.items():
        found = sorted(late.get(name, []), key=lambda x: (x[1], people.get(x[0], ("", ""))[0]))
        if not found:
            continue
        top = []
        for hid, due in found[:OVERDUE_TOP]:
            ext, person = people.get(hid, (str(hid), ""))
            days = _business_days_between(calendar, due, week.today)
            top.append((ext, person, due, days))
        rows.append(OverdueTask(name, task.title, len(found), top))
    return rows


def _past_due(
    week: ReportWeek, tasks: dict[str, Task], calendar: BusinessCalendar, season: tuple[Any, ...]
) -> list[tuple[str, date]]:
    """(task, due date) of the tasks late by ``week.today`` for a (track, department, dates) season."""
    track, department, offer, accepted, start = season
    if week.policy.cadence_for(track, department) is None:
        return []
    dates = {"offer": offer, "accepted": accepted, "start": start}
    found = []
    for name, task in tasks.items():
        if not task.applies(track, department):
            continue
        due = task.due_on(dates, calendar.is_business_day)
        if due is None or due < offer:
            continue
        if late_from(due, calendar) <= week.today:
            found.append((name, due))
    return found


def _business_days_between(calendar: BusinessCalendar, after: date, until: date) -> int:
    """Business days in (after, until]."""
    count, day = 0, after
    while day < until:
        day += timedelta(days=1)
        count += calendar.is_business_day(day)
    return count


def kpi(week: ReportWeek) -> Kpi:
    """This week's acceptance and decline rates, from the holders' current statuses."""
    current: Counter[tuple[date, str]] = Counter()
    for group in week.groups:
        current[(group.offer_date, group.status)] += group.count
    return _kpi(current, week.today)


def kpi_previous(week: ReportWeek) -> Kpi:
    """Last week's rates: each holder's status as of ``now - 7 days`` from the lifecycle history."""
    moment = week.now - WEEK
    return _kpi(_statuses_at(week.session, moment), moment.astimezone(week.tz).date())


def report_charts(report: WeeklyReport) -> list[Chart]:
    """The charts, drawn from the report's own numbers (so they always agree with the tables)."""
    return [
        Chart(
            "pulse",
            "パルスサーベイの推移",
            charts.pulse_trend_chart(
                [label for label, _, _ in report.pulse_trend],
                [mean for _, mean, _ in report.pulse_trend],
                report.pulse_threshold,
            ),
        ),
        Chart(
            "deliveries",
            "今週の連絡(チャネル別)",
            charts.deliveries_chart(
                [d.label for d in report.deliveries],
                [d.sent for d in report.deliveries],
                [d.failed for d in report.deliveries],
                [d.suppressed for d in report.deliveries],
            ),
        ),
    ]


def build_report(
    session: Session,
    policy: Policy,
    now: datetime,
    *,
    workspace_url: str | None = None,
    titles: Mapping[str, str] | None = None,
) -> WeeklyReport:
    """The week up to ``now`` as data (and charts as PNG bytes); reads, never writes. Each field is
    one section function above; a new section is a function, a field here and its template part.
    ``workspace_url`` (the dashboard) is where the report sends readers for the holders it leaves out;
    ``titles`` (template → description) names the announcements as HR does."""
    week = ReportWeek(session, policy, now)
    report = WeeklyReport(
        organization=policy.organization.name,
        subject=policy.report.weekly.subject,
        week=iso_week(now, policy),
        now=now,
        period_start=week.start.astimezone(week.tz),
        period_end=week.local_now,
        status_counts=status_counts(week),
        phase_counts=phase_counts(week),
        new_flags=new_flags(week),
        continuing_flags=continuing_flags(week),
        resolved_flags=resolved_flags(week),
        at_risk=at_risk(week),
        deliveries=deliveries(week),
        pulse_trend=pulse_trend(week),
        pulse_threshold=policy.rules.low_pulse.threshold,
        kpi=kpi(week),
        kpi_previous=kpi_previous(week),
        status_by_track=status_by_track(week),
        top_n=policy.report.top_n,
        at_risk_total=at_risk_total(week),
        at_risk_rest=at_risk_rest(week),
        workspace_url=workspace_url,
        upcoming_events=upcoming_events(week),
        overdue_manual=overdue_manual(week),
        announcements=announcements(week, titles),
        manual_overdue_after=describe_interval(policy.rules.manual_overdue.after),
        overdue_tasks=overdue_tasks(week),
    )
    report.charts = report_charts(report)
    return report
