"""The season's outcomes from plain records (pure): what seed 000 says to measure (内定辞退率の推移,
アンケートでの満足度, 入社後の早期離職率) and what seed 003 calls 内定承諾率.

Definitions (the hand-checked test in tests/outcomes/test_outcomes.py pins each one):

* The cohort at ``as_of`` is every holder whose offer date has passed (erased holders included, so
  rates still add up after a deletion request). 内定承諾率 = (accepted + joined) / offers and
  内定辞退率 = declined / offers, as in the weekly report; withdrawn and rejected count as offers only.
* Declines by month since the offer: whole calendar months from the offer date to the decline date
  (0 = within the first month). By calendar month: the month of the decline date. A decline whose date
  the history does not know is counted under ``unknown``.
* Survey response rate = answered / surveys delivered; the pulse trend is the monthly mean score.
* Early turnover (入社後3か月・1年以内の離職率): among holders who joined and were observed for the
  whole span (start date + 3 months, or + 1 year, on or before ``as_of``), the share whose 退職日 falls
  before the end of the span. Holders who joined more recently are left out of that span's rate, or
  the early leavers among them would inflate it.
"""

from __future__ import annotations

import calendar
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import date
from statistics import fmean
from typing import Any
from zoneinfo import ZoneInfo

from followup.outcomes.records import HolderRecord, Season, season_of

UNKNOWN_REASON = "未記入"


def ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def add_months(day: date, months: int) -> date:
    """Same day ``months`` later, clamped to the month's end (1/31 + 1 month → 2/28)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def months_between(first: date, later: date) -> int:
    """Whole calendar months from ``first`` to ``later`` (4/15 → 5/14 is 0, → 5/15 is 1)."""
    months = (later.year - first.year) * 12 + later.month - first.month
    return months - 1 if later.day < first.day else months


@dataclass(frozen=True)
class GroupRate:
    key: str
    offers: int
    accepted: int  # accepted or joined
    declined: int

    @property
    def acceptance_rate(self) -> float | None:
        return ratio(self.accepted, self.offers)

    @property
    def decline_rate(self) -> float | None:
        return ratio(self.declined, self.offers)

    def record(self) -> dict[str, Any]:
        return {**asdict(self), "acceptance_rate": self.acceptance_rate, "decline_rate": self.decline_rate}


@dataclass(frozen=True)
class ReasonCount:
    reason: str
    count: int
    share: float  # of the declines


@dataclass(frozen=True)
class SurveyMonth:
    month: str  # YYYY-MM
    sent: int
    answered: int
    mean_score: float | None

    @property
    def response_rate(self) -> float | None:
        return ratio(self.answered, self.sent)


@dataclass(frozen=True)
class Turnover:
    observed_3m: int
    left_3m: int
    observed_1y: int
    left_1y: int

    @property
    def rate_3m(self) -> float | None:
        return ratio(self.left_3m, self.observed_3m)

    @property
    def rate_1y(self) -> float | None:
        return ratio(self.left_1y, self.observed_1y)


@dataclass(frozen=True)
class Outcomes:
    as_of: date
    total: GroupRate
    by_track: list[GroupRate]
    by_department: list[GroupRate]
    by_offer_month: list[GroupRate]
    by_season: list[GroupRate]
    decline_reasons: list[ReasonCount]
    declines_by_months_since_offer: list[tuple[int, int]]  # (months, declines), every month up to the max
    declines_by_calendar_month: list[tuple[str, int]]  # (YYYY-MM, declines)
    declines_undated: int
    surveys_sent: int
    surveys_answered: int
    survey_months: list[SurveyMonth]
    turnover: Turnover

    @property
    def response_rate(self) -> float | None:
        return ratio(self.surveys_answered, self.surveys_sent)

    def to_json(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "total": self.total.record(),
            "by_track": [g.record() for g in self.by_track],
            "by_department": [g.record() for g in self.by_department],
            "by_offer_month": [g.record() for g in self.by_offer_month],
            "by_season": [g.record() for g in self.by_season],
            "decline_reasons": [asdict(r) for r in self.decline_reasons],
            "declines_by_months_since_offer": [
                {"months": m, "declines": n} for m, n in self.declines_by_months_since_offer
            ],
            "declines_by_calendar_month": [
                {"month": m, "declines": n} for m, n in self.declines_by_calendar_month
            ],
            "declines_undated": self.declines_undated,
            "surveys": {
                "sent": self.surveys_sent,
                "answered": self.surveys_answered,
                "response_rate": self.response_rate,
                "by_month": [{**asdict(m), "response_rate": m.response_rate} for m in self.survey_months],
            },
            "early_turnover": {
                **asdict(self.turnover),
                "rate_3m": self.turnover.rate_3m,
                "rate_1y": self.turnover.rate_1y,
            },
        }


def _rates(holders: Iterable[HolderRecord], key: Callable[[HolderRecord], str]) -> list[GroupRate]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for holder in holders:
        c = counts[key(holder)]
        c["offers"] += 1
        c["accepted"] += holder.status in ("accepted", "joined")
        c["declined"] += holder.status == "declined"
    return [GroupRate(k, c["offers"], c["accepted"], c["declined"]) for k, c in sorted(counts.items())]


def decline_day(holder: HolderRecord, tz: ZoneInfo) -> date | None:
    return holder.declined_at.astimezone(tz).date() if holder.declined_at is not None else None


def compute_outcomes(season: Season, tz: ZoneInfo, as_of: date | None = None) -> Outcomes:
    """Every outcome figure of ``season`` as of ``as_of`` (default: the day the record ends)."""
    as_of = as_of or season.recorded_until.astimezone(tz).date()
    cohort = [h for h in season.holders if h.offer_date <= as_of]
    total = _rates(cohort, lambda h: "全体")
    declined = [h for h in cohort if h.status == "declined"]

    reasons = Counter((h.decline_reason or "").strip() or UNKNOWN_REASON for h in declined)
    decline_reasons = [
        ReasonCount(reason, count, count / len(declined))
        for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
    ]
    since_offer: Counter[int] = Counter()
    by_month: Counter[str] = Counter()
    undated = 0
    for holder in declined:
        day = decline_day(holder, tz)
        if day is None:
            undated += 1
            continue
        since_offer[max(0, months_between(holder.offer_date, day))] += 1
        by_month[f"{day:%Y-%m}"] += 1
    months_since = [(m, since_offer[m]) for m in range(max(since_offer) + 1)] if since_offer else []

    cohort_ids = {h.holder_id for h in cohort}
    survey_table: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    scores: dict[str, list[float]] = defaultdict(list)
    sent = answered = 0
    for survey in season.surveys:
        if survey.holder_id not in cohort_ids or survey.sent_at.astimezone(tz).date() > as_of:
            continue
        month = f"{survey.sent_at.astimezone(tz):%Y-%m}"
        survey_table[month][0] += 1
        sent += 1
        if survey.answered:
            survey_table[month][1] += 1
            answered += 1
            if survey.score is not None:
                scores[month].append(survey.score)
    survey_months = [
        SurveyMonth(month, s, a, round(fmean(scores[month]), 2) if scores[month] else None)
        for month, (s, a) in sorted(survey_table.items())
    ]

    joined = [h for h in cohort if h.status == "joined" or h.left_date is not None]
    counts = Counter[str]()
    for holder in joined:
        for label, months in (("3m", 3), ("1y", 12)):
            end = add_months(holder.start_date, months)
            left_early = holder.left_date is not None and holder.left_date < end
            if end <= as_of:  # only holders observed for the whole span: no bias from recent joiners
                counts[f"observed_{label}"] += 1
                counts[f"left_{label}"] += left_early
    turnover = Turnover(counts["observed_3m"], counts["left_3m"], counts["observed_1y"], counts["left_1y"])

    return Outcomes(
        as_of=as_of,
        total=total[0] if total else GroupRate("全体", 0, 0, 0),
        by_track=_rates(cohort, lambda h: h.track),
        by_department=_rates(cohort, lambda h: h.department or "(未設定)"),
        by_offer_month=_rates(cohort, lambda h: f"{h.offer_date:%Y-%m}"),
        by_season=_rates(cohort, lambda h: f"{season_of(h)}年度入社"),
        decline_reasons=decline_reasons,
        declines_by_months_since_offer=months_since,
        declines_by_calendar_month=sorted(by_month.items()),
        declines_undated=undated,
        surveys_sent=sent,
        surveys_answered=answered,
        survey_months=survey_months,
        turnover=turnover,
    )
