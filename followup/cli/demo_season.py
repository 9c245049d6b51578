"""``followup demo``: the whole product on sample data, in fast-forward, in well under a minute.

A season from the first offers (April) to the end of November is played day by day on the embedded
default (SQLite, in-process delivery to the outbox): the planner creates the touches, the deliverer
renders and writes them, simulated offer holders answer their pulse surveys and reply — and a few of
them drift away (they stop answering, their pulse drops, one says 他社も検討している), one is
over-contacted by an eager mentor, one opts out of their only channel. Flags are evaluated every Monday,
and the weekly report for the last Monday is written as HTML and as an e-mail in the outbox.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

from sqlalchemy import func, select

from followup.config.context import AppContext
from followup.config.settings import Settings
from followup.db.models import ChannelOptOut, EngagementEvent, OfferHolder, Touch
from followup.db.session import dispose_engines
from followup.delivery.deliver import run_due
from followup.engagement.surveys import record_response
from followup.flags.rules import FlagDecision
from followup.flags.store import evaluate_and_persist
from followup.holders.importer import change_status, find_holder, import_holders, read_holders_csv
from followup.outcomes.backtest import BacktestResult
from followup.outcomes.store import load_season
from followup.planning.store import plan_tick
from followup.report import build_report, message_titles, render_html, send_weekly_report
from followup.report.season import build_season_report, render_season_html

SEASON_START = date(2026, 4, 1)
SEASON_END = date(2026, 11, 30)  # a Monday: the weekly report is written for this morning
DRIFTERS = {
    "NG-2027-005": date(2026, 7, 13),  # silent through three messages that ask for an answer
    "NG-2027-012": date(2026, 9, 14),
    "MC-2026-003": date(2026, 11, 2),
}
SIGNALLER = "NG-2027-017"  # answers 他社も検討している from October
DECLINER = ("NG-2027-021", date(2026, 10, 15), "他社への入社を決めたため")
DRIFTER_DECLINES = ("NG-2027-012", date(2026, 11, 25), "勤務地・条件面の不一致")  # drifting since 9/14
OVER_CONTACTED = ("NG-2027-008", date(2026, 11, 24))  # four meetings in one week: over the cap of 3 in 7 days
OPTS_OUT = ("NG-2027-015", "email", date(2026, 7, 6))  # opts out of e-mail, their only channel
FORGOTTEN_CALLS = {"NG-2027-023", "NG-2027-024"}  # the president never logs these calls


@dataclass
class DemoResult:
    directory: Path
    report_html: Path
    report_email: str
    outbox: Path
    flags: list[FlagDecision]
    sent: Counter[str] = field(default_factory=Counter)
    answers: int = 0
    replies: int = 0
    days: int = 0
    season_html: Path | None = None
    backtest: list[BacktestResult] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)  # external_id → 氏名, for the at-risk table


@contextmanager
def embedded_environment() -> Iterator[None]:
    """The demo always uses the outbox, even when SMTP/Slack/LINE endpoints are set in the shell."""
    names = ("SMTP_URL", "SLACK_BOT_TOKEN", "SLACK_API_URL", "LINE_CHANNEL_ACCESS_TOKEN", "LINE_API_URL")
    saved = {name: os.environ.pop(name) for name in names if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def _roll(*parts: object) -> float:
    """A deterministic pseudo-random number in [0, 1) so every demo run tells the same story."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _answers(form: str, external_id: str, day: date, drifting: bool) -> dict[str, object]:
    if drifting or (external_id == SIGNALLER and day >= date(2026, 10, 1)):
        situation = "他社も検討している" if form == "pulse" else None
        answers: dict[str, object] = {"motivation": 2, "anxiety": 4, "understanding": 2}
        if form == "pulse":
            answers.update(situation=situation, comment="条件面で少し迷っています")
        else:
            answers.update(preparation="入社を迷っている")
        return answers
    r = _roll(external_id, day)
    answers = {"motivation": 4 + (r > 0.4), "anxiety": 2 + (r > 0.8), "understanding": 3 + (r > 0.3)}
    if form == "pulse":
        answers.update(situation="就職活動は終えた", comment="")
    else:
        answers.update(preparation="進めている", first_day="", comment="")
    return answers


def _at(day: date, hour: int, context: AppContext) -> datetime:
    return datetime.combine(day, time(hour), context.policy.organization.tz)


def _simulate_offer_holders(context: AppContext, day: date, result: DemoResult) -> None:
    """What the offer holders (and HR) do today in reaction to what they received."""
    policy = context.policy
    evening = _at(day, 20, context)
    start, end = _at(day, 0, context), _at(day + timedelta(days=1), 0, context)
    with context.session() as session:
        touches = session.scalars(
            select(Touch).join(OfferHolder).where(Touch.sent_at >= start, Touch.sent_at < end)
        ).all()
        for touch in touches:
            holder = touch.holder
            drift_from = DRIFTERS.get(holder.external_id)
            drifting = drift_from is not None and day >= drift_from
            silent = drift_from is not None and day >= drift_from + timedelta(days=21)
            if touch.status == "sent" and touch.kind == "survey" and touch.survey_form and not silent:
                survey = policy.surveys[touch.survey_form]
                record_response(
                    session,
                    touch,
                    survey,
                    _answers(touch.survey_form, holder.external_id, day, drifting),
                    evening,
                )
                result.answers += 1
            elif touch.status == "sent" and not drifting and _roll("reply", touch.key) < 0.45:
                session.add(
                    EngagementEvent(
                        holder_id=holder.id,
                        touch_id=touch.id,
                        at=evening,
                        kind="reply",
                        channel=touch.channel,
                        payload={"text": "ありがとうございます!"},
                    )
                )
                result.replies += 1
        reminded = session.scalars(
            select(Touch)
            .join(OfferHolder)
            .where(Touch.kind == "manual", Touch.status == "reminded", Touch.due_at < end)
        ).all()
        for touch in reminded:
            if touch.holder.external_id not in FORGOTTEN_CALLS:
                touch.status, touch.sent_at = "done", evening
        _scripted_events(context, session, day)


def _scripted_events(context: AppContext, session: object, day: date) -> None:
    from sqlalchemy.orm import Session

    assert isinstance(session, Session)
    for external_id, decline_day, reason in (DECLINER, DRIFTER_DECLINES):
        if day == decline_day:
            holder = find_holder(session, external_id)
            if holder is not None:
                change_status(
                    session, holder, "declined", at=_at(day, 15, context), reason=reason, source="demo"
                )
    external_id, channel, opt_day = OPTS_OUT
    if day == opt_day:
        holder = find_holder(session, external_id)
        if holder is not None:
            holder.line_user_id = holder.slack_user_id = None  # the demo's sample data, not a channel list
            session.add(
                ChannelOptOut(holder_id=holder.id, channel=channel, at=_at(day, 21, context), source="demo")
            )
    external_id, week_start = OVER_CONTACTED
    if week_start <= day < week_start + timedelta(days=4):
        holder = find_holder(session, external_id)
        if holder is not None:
            session.add(
                Touch(
                    key=f"{external_id}:demo:meeting:{day}",
                    holder_id=holder.id,
                    cadence="adhoc",
                    phase="adhoc",
                    seq=0,
                    kind="manual",
                    channel="meeting",
                    due_at=_at(day, 17, context),
                    sent_at=_at(day, 17, context),
                    status="done",
                    note="メンターとの面談",
                )
            )


def run_demo(
    directory: Path,
    config: Path,
    holders_csv: Path,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> DemoResult:
    """Play the season into ``directory`` (wiped first) and return where everything is."""
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    settings = Settings(
        database_url=f"sqlite:///{directory.resolve()}/followup.db",
        var_dir=directory,
        config=config,
        broker_url="",
    )
    context = AppContext(settings=settings)
    policy = context.policy
    rows, _ = read_holders_csv(holders_csv)
    with context.session() as session:
        import_holders(session, rows, now=_at(SEASON_START, 9, context), source="demo", actor="demo")
    result = DemoResult(directory, directory / "weekly-report.html", "", directory / "outbox", [])
    days = (SEASON_END - SEASON_START).days
    with embedded_environment():
        for index in range(days + 1):
            day = SEASON_START + timedelta(days=index)
            plan_tick(context, _at(day, 7, context))
            run_due(context, _at(day, 10, context) + timedelta(minutes=5), limit=10_000)
            run_due(context, _at(day, 18, context), limit=10_000)  # retries and late moves
            _simulate_offer_holders(context, day, result)
            if day.weekday() == 0:
                result.flags, _ = evaluate_and_persist(context, _at(day, 8, context))
            if progress:
                progress(index + 1, days + 1)
        report_time = datetime.combine(SEASON_END, policy.report.weekly.time, policy.organization.tz)
        result.flags, _ = evaluate_and_persist(context, report_time)
        with context.session() as session:
            report = build_report(session, policy, report_time, titles=message_titles(context))
            # the headline counts are the database's: each touch once, sent or done (a reminded call
            # counts when the president logged it, not also when the reminder went out)
            result.sent = Counter(
                dict(
                    session.execute(
                        select(Touch.channel, func.count())
                        .where(Touch.status.in_(("sent", "done")))
                        .group_by(Touch.channel)
                    ).all()
                )
            )
            result.names = dict(
                session.execute(select(OfferHolder.external_id, OfferHolder.name)).tuples().all()
            )
        result.report_html.write_text(
            render_html(report, images="data", templates_root=context.templates_root), encoding="utf-8"
        )
        result.report_email = str(send_weekly_report(context, report_time))
        # the season so far: outcomes, the rules replayed day by day (backtest) and the cost
        with context.session() as session:
            recorded = load_season(session, policy, report_time)
        season = build_season_report(recorded, policy, now=report_time)
        result.backtest = season.backtests
        result.season_html = directory / "season-report.html"
        result.season_html.write_text(
            render_season_html(season, templates_root=context.templates_root), encoding="utf-8"
        )
    result.days = days + 1
    dispose_engines()
    return result
