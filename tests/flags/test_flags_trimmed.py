"""The trimmed load (issue 18) against the whole history, on SQLite and PostgreSQL.

``load_histories`` reads only what the rules need (the latest delivered touch, the touches inside the
over-contact window, the automated touches after the last engagement, the last two survey responses).
For a seeded random season (long and short histories, replies, surveys, failures, opt-outs, manual
touches, tasks, events, the cohort channel) the flags it gives must be exactly those of evaluating every
holder's whole history (tests/flags_reference.py), at moments across the season, including moments where
the over-contact window's start falls on a touch and between two touches.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from followup.config.schema import Policy
from followup.db.models import (
    ChannelOptOut,
    DeliveryAttempt,
    EngagementEvent,
    EventRsvp,
    OfferHolder,
    SurveyResponse,
    TaskStatus,
    Touch,
)
from followup.durations import Interval
from followup.flags.rules import FlagDecision, HolderHistory, evaluate_many
from followup.flags.store import load_histories, no_reply_templates
from tests.conftest import make_context
from tests.flags_reference import load_full_histories

EDGE = datetime(2026, 10, 5, 1, 0, tzinfo=UTC)  # the boundary holder's first touch of four, a day apart
MOMENTS = [
    datetime(2026, 5, 20, 8, 30, tzinfo=UTC),
    datetime(2026, 7, 12, 23, 0, tzinfo=UTC),
    datetime(2026, 9, 30, 4, 0, tzinfo=UTC),
    EDGE + timedelta(days=7) - timedelta(seconds=1),  # all four touches inside the 7-day window
    EDGE + timedelta(days=7),  # the window starts exactly on the first touch: three inside
    EDGE + timedelta(days=7, hours=12),  # the window starts between the first and the second touch
    datetime(2026, 11, 16, 8, 30, tzinfo=UTC),
    datetime(2027, 2, 22, 0, 0, tzinfo=UTC),
]
SURVEY_ANSWERS = ("就職活動は終えた", "他社の選考結果を待っている", "他社も検討している", "迷っている")
TEMPLATES = ("checkin", "monthly_update", "mentor_intro", "pulse_survey", None)  # checkin: no reply expected


def _key(decisions: Sequence[FlagDecision]) -> list[tuple[Any, ...]]:
    return sorted((d.holder_id, d.rule, d.since, d.severity, d.reason, d.action) for d in decisions)


def _at(day: date, rng: random.Random) -> datetime:
    """A moment on ``day`` at a random second (touches of one holder rarely share a moment)."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=rng.randrange(86_400))


def seed_season(session: Session, n: int, seed: int) -> None:
    """``n`` holders with a random season of rows, written in bulk."""
    rng = random.Random(seed)
    rows: dict[Any, list[dict[str, Any]]] = {
        t: [] for t in (OfferHolder, Touch, SurveyResponse, EngagementEvent, ChannelOptOut, DeliveryAttempt)
    }
    rows[EventRsvp], rows[TaskStatus] = [], []
    touch_id = 0

    def touch(hid: int, at: datetime, **values: Any) -> int:
        nonlocal touch_id
        touch_id += 1
        row = {
            "id": touch_id,
            "key": f"h{hid}:t{touch_id}",
            "holder_id": hid,
            "cadence": "new_grad",
            "phase": "initial",
            "seq": touch_id,
            "kind": "message",
            "channel": "email",
            "template": "checkin",
            "event": None,
            "due_at": at,
            "status": "sent",
            "sent_at": at,
            "assignee": None,
            "note": None,
        }
        row.update(values)
        rows[Touch].append(row)
        return touch_id

    for hid in range(1, n + 2):
        edge = hid == n + 1
        track = rng.choices(["new_grad", "mid_career", "second_new_grad"], [8, 3, 1])[0]
        if track == "mid_career":
            offer = date(2026, 6, 1) + timedelta(days=rng.randrange(150))
            start = offer + timedelta(days=rng.choice((45, 60, 90)))
        else:
            offer = date(2026, 4, 1) + timedelta(days=rng.randrange(100))
            start = date(2027, 4, 1)
        status = rng.choices(["offered", "accepted", "declined", "joined"], [4, 8, 1, 1])[0]
        rows[OfferHolder].append(
            {
                "id": hid,
                "external_id": f"S-{hid:04d}",
                "name": f"内定者 {hid}",
                "email": None if rng.random() < 0.05 else f"s{hid}@example.jp",
                "line_user_id": f"U{hid:032x}" if rng.random() < 0.3 else None,
                "track": "new_grad" if edge else track,
                "offer_date": date(2026, 4, 1) if edge else offer,
                "accepted_date": offer + timedelta(days=10) if status != "offered" else None,
                "start_date": start,
                "status": "accepted" if edge else status,
                "acceptance_deadline": offer + timedelta(days=21) if rng.random() < 0.3 else None,
                "erased_at": datetime(2026, 6, 1, tzinfo=UTC) if rng.random() < 0.02 else None,
            }
        )
        if edge:  # four touches a day apart, nothing else: the window boundary decides over_contacted
            for k in range(4):
                touch(hid, EDGE + timedelta(days=k), template="monthly_update")
            continue
        day = offer
        end = start if rng.random() < 0.8 else offer + timedelta(days=rng.randrange(10, 60))  # short ones too
        last_reply: datetime | None = None
        while day < end:
            day += timedelta(days=rng.choice((1, 2, 3, 7, 7, 7, 14, 30, 31, 45, 50)))
            if rng.random() < 0.06:  # a burst of contact
                burst = [day + timedelta(days=k) for k in range(rng.randrange(3, 6))]
            else:
                burst = [day]
            for moment_day in burst:
                at = _at(moment_day, rng)
                kind = rng.choices(["message", "survey", "manual"], [7, 2, 1])[0]
                if kind == "manual":
                    channel = rng.choice(("phone", "letter", "meeting", "other"))
                    manual_status = rng.choices(["done", "reminded", "planned"], [6, 2, 1])[0]
                    sent = at if manual_status != "planned" and rng.random() < 0.8 else None
                    if manual_status == "done" and sent is not None and rng.random() < 0.3:
                        sent = at - timedelta(days=1)  # logged as done before its due day
                    touch(
                        hid,
                        at,
                        kind="manual",
                        channel=channel,
                        template=None,
                        status=manual_status,
                        sent_at=sent,
                        assignee=rng.choice((None, "president@example.co.jp", "mentor@example.jp")),
                        note=rng.choice((None, "社長から内定のお祝いの電話をする\n詳細")),
                    )
                    continue
                channel = rng.choice(("email", "email", "line", "slack"))
                touch_status = rng.choices(["sent", "failed", "cancelled", "planned"], [20, 2, 1, 1])[0]
                delay = timedelta(hours=rng.choice((0, 0, 1, 30, 80)))  # held back, then sent later
                tid = touch(
                    hid,
                    at,
                    kind=kind,
                    channel=channel,
                    template="pulse_survey" if kind == "survey" else rng.choice(TEMPLATES),
                    status=touch_status,
                    sent_at=at + delay if touch_status == "sent" else None,
                )
                outcome = {"sent": "sent", "failed": "permanent"}.get(touch_status, "suppressed")
                rows[DeliveryAttempt].append(
                    {
                        "touch_id": tid,
                        "channel": channel,
                        "started_at": at,
                        "finished_at": at,
                        "outcome": outcome,
                    }
                )
                if touch_status != "sent":
                    continue
                sent_at = at + delay
                if kind == "survey" and rng.random() < 0.6:
                    answered = sent_at + timedelta(minutes=rng.randrange(1, 4_000))
                    situation = rng.choices(SURVEY_ANSWERS, [10, 3, 1, 1])[0]
                    score = round(rng.uniform(1.0, 5.0), 1)
                    rows[SurveyResponse].append(
                        {
                            "touch_id": tid,
                            "holder_id": hid,
                            "form": "pulse",
                            "answers": {"motivation": round(score), "anxiety": 2, "situation": situation},
                            "score": score,
                            "declining": situation in ("他社も検討している", "迷っている"),
                            "submitted_at": answered,
                            "updated_at": answered,
                        }
                    )
                elif rng.random() < 0.3:
                    same = rng.random() < 0.15  # a reply recorded at the touch's own moment
                    last_reply = sent_at if same else sent_at + timedelta(minutes=rng.randrange(1, 3_000))
                    kind_ = rng.choices(["reply", "button", "answer", "rsvp", "open"], [6, 1, 1, 1, 2])[0]
                    rows[EngagementEvent].append(
                        {"holder_id": hid, "at": last_reply, "kind": kind_, "channel": channel, "payload": {}}
                    )
        if rng.random() < 0.06:
            channel = rng.choice(("email", "line"))
            moment = _at(offer + timedelta(days=rng.randrange(20, 200)), rng)
            rows[ChannelOptOut].append({"holder_id": hid, "channel": channel, "at": moment, "source": "web"})
        if track == "new_grad":
            for event in ("zadankai", "naiteishiki", "konshinkai"):
                if rng.random() < 0.6:
                    touch(
                        hid,
                        datetime(2026, 6, 20, 1, tzinfo=UTC) + timedelta(days=rng.randrange(60)),
                        phase="event",
                        event=event,
                        key=f"h{hid}:event:{event}:invitation",
                        template=None,
                    )
                    if rng.random() < 0.6:
                        rows[EventRsvp].append(
                            {
                                "holder_id": hid,
                                "event": event,
                                "status": rng.choice(("attending", "declined", "maybe")),
                                "responded_at": datetime(2026, 7, 1, tzinfo=UTC)
                                + timedelta(days=rng.randrange(60)),
                                "attendance": rng.choice((None, "absent", "attended")),
                            }
                        )
        for task in ("guarantee", "health_check", "elearning"):
            if rng.random() < 0.3:
                rows[TaskStatus].append(
                    {
                        "holder_id": hid,
                        "task": task,
                        "status": rng.choice(("submitted", "confirmed", "exempt", "pending")),
                        "changed_at": datetime(2026, 9, 1, tzinfo=UTC),
                        "changed_by": "test",
                    }
                )
        if rng.random() < 0.2:
            invited = _at(offer + timedelta(days=rng.randrange(5, 120)), rng)
            rows[EngagementEvent].append(
                {"holder_id": hid, "at": invited, "kind": "cohort_invite", "channel": "slack", "payload": {}}
            )
            if rng.random() < 0.5:
                joined = invited + timedelta(days=rng.randrange(1, 60))
                rows[EngagementEvent].append(
                    {"holder_id": hid, "at": joined, "kind": "cohort_join", "channel": "slack", "payload": {}}
                )
    for model in (OfferHolder, Touch, SurveyResponse, EngagementEvent, ChannelOptOut, DeliveryAttempt):
        session.execute(insert(model), rows[model])
    for model in (EventRsvp, TaskStatus):
        if rows[model]:
            session.execute(insert(model), rows[model])


def _compare(session: Session, policy: Policy, quiet: frozenset[str]) -> tuple[set[str], int, int]:
    fired: set[str] = set()
    trimmed_touches = full_touches = 0
    for now in MOMENTS:
        trimmed: list[HolderHistory] = load_histories(session, policy, now, quiet)
        full = load_full_histories(session, policy, now, quiet)
        assert [h.holder_id for h in trimmed] == [h.holder_id for h in full]
        got, want = evaluate_many(trimmed, policy, now), evaluate_many(full, policy, now)
        assert _key(got) == _key(want), now
        fired |= {d.rule for d in got}
        trimmed_touches += sum(len(h.delivered) for h in trimmed)
        full_touches += sum(len(h.delivered) for h in full)
    return fired, trimmed_touches, full_touches


def test_the_trimmed_load_raises_the_flags_of_the_whole_history(any_db_url: str, tmp_path: Path) -> None:
    context = make_context(any_db_url, tmp_path)
    with context.session() as session:
        seed_season(session, 150, seed=18)
    policy, quiet = context.policy, no_reply_templates(context)
    assert "checkin" in quiet  # some touches expect no reply: unresponsive must not count them
    with context.session() as session:
        fired, trimmed, full = _compare(session, policy, quiet)
        edge = {
            now: {
                d.rule
                for d in evaluate_many(load_histories(session, policy, now, quiet), policy, now)
                if d.external_id == "S-0151"
            }
            for now in MOMENTS[3:6]
        }
    # every kind of history shows up, so each rule's slice of the load is exercised
    assert {
        "neglected",
        "over_contacted",
        "unresponsive",
        "low_pulse",
        "pulse_drop",
        "declining_signal",
        "unreachable",
        "no_cadence",
        "acceptance_pending",
        "task_overdue",
        "manual_overdue",
        "cohort_not_joined",
    } <= fired
    assert trimmed < full / 2  # and the load is trimmed indeed
    # the boundary: four touches inside the window, then the window starting on one and after it
    assert [("over_contacted" in rules) for rules in edge.values()] == [True, False, False]


def test_a_month_long_window_is_trimmed_by_the_calendar_too(sqlite_url: str, tmp_path: Path) -> None:
    """over_contacted's window in months (``1mo``: calendar arithmetic, not a fixed length): the loader
    reads the same window the rule counts."""
    context = make_context(sqlite_url, tmp_path)
    with context.session() as session:
        seed_season(session, 80, seed=5)
    base = context.policy
    over = base.rules.over_contacted.model_copy(update={"window": Interval(1, "mo"), "max_touches": 4})
    policy = base.model_copy(update={"rules": base.rules.model_copy(update={"over_contacted": over})})
    with context.session() as session:
        fired, trimmed, full = _compare(session, policy, no_reply_templates(context))
    assert "over_contacted" in fired and trimmed < full
