"""A generated season for tests, benchmarks and demonstrations (pure, deterministic for a seed).

New graduates receive offers from April to July and start on 1 April of the next year. Follow-up
follows the seeds' rhythm (weekly for six weeks, monthly in the middle, weekly in the last eight weeks),
every third touch carries a pulse survey, and the president calls the day after the offer. Holders
who will join answer most surveys with a good pulse and reply now and then; a few have a bad week
(the false alarms a backtest should count). About a third decline; for some weeks before they do,
they drift: they answer fewer surveys, their pulse drops, they stop replying, some say
他社も検討している — what the rules should catch, and how early.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from followup.flags.rules import PulseResponse, TouchRecord
from followup.outcomes.records import HolderRecord, Season, SurveySent

JST = ZoneInfo("Asia/Tokyo")
START = date(2027, 4, 1)
REASONS = (
    "他社への入社を決めたため",
    "勤務地・条件面の不一致",
    "仕事内容のイメージの違い",
    "進学のため",
    None,
)
DEPARTMENTS = ("営業部", "開発部", "管理部")


def _schedule(offer: date) -> list[date]:
    days = [offer + timedelta(weeks=w) for w in range(1, 7)]
    day = offer + timedelta(weeks=6)
    pre_start = START - timedelta(weeks=8)
    while day < pre_start:
        days.append(day)
        day += timedelta(days=30)
    day = pre_start
    while day < START:
        days.append(day)
        day += timedelta(weeks=1)
    return days


def generated_season(n: int, seed: int = 7, decline_share: float = 0.3) -> Season:
    rng = random.Random(seed)
    moments: dict[tuple[date, int], datetime] = {}

    def at(day: date, hour: int) -> datetime:
        key = (day, hour)
        value = moments.get(key)
        if value is None:
            value = moments[key] = datetime(day.year, day.month, day.day, hour, 0, tzinfo=JST)
        return value

    holders: list[HolderRecord] = []
    touches: dict[int, tuple[TouchRecord, ...]] = {}
    responses: dict[int, tuple[PulseResponse, ...]] = {}
    engagement: dict[int, tuple[datetime, ...]] = {}
    surveys: list[SurveySent] = []
    for holder_id in range(1, n + 1):
        offer = date(2026, 4, 1) + timedelta(days=rng.randrange(120))
        declines = rng.random() < decline_share
        declined_at: datetime | None = None
        drift_from: datetime | None = None
        if declines:
            decline_day = offer + timedelta(days=rng.randrange(30, (date(2027, 2, 28) - offer).days))
            declined_at = at(decline_day, 15)
            drift_from = at(decline_day - timedelta(days=rng.randrange(20, 70)), 0)
        h_touches: list[TouchRecord] = [TouchRecord(at(offer + timedelta(days=1), 17), "phone", "manual")]
        h_responses: list[PulseResponse] = []
        h_engagement: list[datetime] = []
        for seq, day in enumerate(_schedule(offer), start=1):
            moment = at(day, 10)
            if declined_at is not None and moment >= declined_at:
                break
            if rng.random() < 0.04:
                continue  # HR skipped this one
            survey = seq % 3 == 0
            kind = "survey" if survey else "message"
            channel = rng.choice(("email", "line"))
            if rng.random() < 0.03:
                h_touches.append(TouchRecord(moment, channel, kind, "failed"))
                continue
            h_touches.append(TouchRecord(moment, channel, kind))
            drifting = drift_from is not None and moment >= drift_from
            evening = at(day, 20)
            if survey:
                answers = rng.random() < (0.35 if drifting else 0.85)
                score: float | None = None
                if answers:
                    if drifting:
                        score = rng.gauss(2.4, 0.45)
                    elif rng.random() < 0.04:
                        score = rng.gauss(2.7, 0.3)  # a bad week
                    else:
                        score = rng.gauss(3.9, 0.4)
                    score = round(min(5.0, max(1.0, score)), 2)
                    declining = drifting and rng.random() < 0.3
                    said = ("他社も検討している",) if declining else ()
                    h_responses.append(PulseResponse(evening, score, declining, said))
                surveys.append(SurveySent(holder_id, moment, answers, score))
            elif rng.random() < (0.05 if drifting else 0.45):
                h_engagement.append(evening)
        status = "declined" if declines else "joined"
        holders.append(
            HolderRecord(
                holder_id=holder_id,
                external_id=f"G-{holder_id:05d}",
                status=status,
                offer_date=offer,
                start_date=START,
                track="new_grad",
                department=DEPARTMENTS[holder_id % len(DEPARTMENTS)],
                accepted_date=offer + timedelta(days=rng.randrange(3, 30)) if rng.random() < 0.7 else None,
                decline_reason=rng.choice(REASONS) if declines else None,
                declined_at=declined_at,
                contacts=("email", "line"),
            )
        )
        touches[holder_id] = tuple(h_touches)
        responses[holder_id] = tuple(h_responses)
        engagement[holder_id] = tuple(h_engagement)
    return Season(
        holders=tuple(holders),
        recorded_until=at(START + timedelta(days=9), 9),
        touches=touches,
        responses=responses,
        engagement=engagement,
        surveys=tuple(surveys),
    )
