"""A season of the talent pool against real components: 50 rejected candidates imported from an ATS
export, mail through aiosmtpd, consent and opt-out through the web app, a re-application, the report.

Hand counts (what the assertions say): rejection mail 50; 20 consent in the import (同意: はい) and 10
on the rejection mail's page, so the follow-up after a month goes to 30; R-005 opts out after it;
R-007 applies again under the same id and R-008 under a new id with the same email (C-100, who accepts);
the news after three months goes to 30 - 3 = 27. Nothing goes on a weekend, a holiday or at night.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from followup.calendar import BusinessCalendar
from followup.db.models import AuditEntry, HolderChange, OfferHolder, Touch
from followup.delivery.deliver import run_due
from followup.flags.store import evaluate_and_persist
from followup.holders.importer import import_holders, read_holders_file
from followup.holders.timeline import holder_timeline
from followup.outcomes.store import load_season
from followup.planning.store import plan_tick
from followup.pool.figures import compute_pool_figures
from followup.pool.store import pool_people
from followup.report.data import build_report
from followup.report.season import build_season_report, render_season_html
from followup.web.app import create_app
from tests.delivery_fixtures import CHANNEL_ENV, make_context
from tests.standins.fixtures import smtp_sink_fixture  # noqa: F401 (the fixture, by name)
from tests.standins.smtp_sink import SmtpSink

TOKYO = ZoneInfo("Asia/Tokyo")
SUBJECTS = {
    "選考結果のご連絡": "rejection",
    "その後いかがお過ごし": "follow_up",
    "近況と募集のご案内": "news",
}


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=TOKYO)


def pool_mails(sink: SmtpSink) -> list[tuple[str, str, str]]:
    """(step, recipient, text) of every pool mail the sink received."""
    found = []
    for mail in sink.messages:
        message = mail.message()
        step = next((s for words, s in SUBJECTS.items() if words in str(message["Subject"])), None)
        if step is not None:
            body = message.get_body(("plain",))
            found.append((step, mail.rcpt_tos[0], body.get_content() if body else ""))
    return found


def link(text: str, prefix: str) -> str:
    match = re.search(rf"https?://[^/\s]+({prefix}/[A-Za-z0-9._-]+)", text)
    assert match, f"no {prefix} link in the mail"
    return match.group(1)


@pytest.fixture
def smtp_env(monkeypatch: pytest.MonkeyPatch, smtp_sink: SmtpSink) -> SmtpSink:
    for name in CHANNEL_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("FOLLOWUP_BROKER_URL", raising=False)
    monkeypatch.setenv("SMTP_URL", smtp_sink.url)
    return smtp_sink


def test_a_season_of_the_talent_pool_matches_the_hand_counts(smtp_env: SmtpSink, tmp_path: Path) -> None:
    sink = smtp_env
    context = make_context(tmp_path, f"sqlite:///{tmp_path}/pool.db")
    calendar = BusinessCalendar.from_policy(context.policy)
    rejected = date(2026, 6, 1)  # a Monday
    lines = ["応募者ID,氏名,メールアドレス,ステータス,不採用日,同意"]
    for i in range(1, 51):
        lines.append(
            f"R-{i:03d},応募 太郎{i},r{i}@example.jp,不採用,{rejected:%Y/%m/%d},{'はい' if i <= 20 else ''}"
        )
    ats = tmp_path / "ats.csv"
    ats.write_text("\n".join(lines) + "\n", encoding="utf-8")
    imported_at = at(rejected, 20, 30)  # HR imports in the evening, after the send window closed
    with context.session() as session:
        import_holders(session, read_holders_file(ats).rows, now=imported_at)

    clock = {"now": imported_at}
    client = TestClient(create_app(context, clock=lambda: clock["now"].astimezone(UTC)))

    def tick(moment: datetime) -> None:
        plan_tick(context, moment)
        run_due(context, moment)

    tick(imported_at)
    assert pool_mails(sink) == []  # after 19:00: held to the next morning, not sent at night
    day = rejected + timedelta(days=1)
    last = date(2026, 9, 30)
    while day <= last:
        for hour, minute in ((10, 30), (20, 30)):
            moment = at(day, hour, minute)
            clock["now"] = moment
            tick(moment)
        if day == date(2026, 6, 3):
            rejection_text = {rcpt: text for step, rcpt, text in pool_mails(sink) if step == "rejection"}
            assert len(rejection_text) == 50
            for i in range(21, 31):  # ten tick the box on the rejection mail's page
                path = link(rejection_text[f"r{i}@example.jp"], "/r")
                assert "同意" in client.get(path).text
                assert client.post(path, data={"consent": "yes"}).status_code == 200
            client.get(link(rejection_text["r31@example.jp"], "/r"))  # only looks: no consent on GET
            for i in (1, 2, 3, 1):  # three open the career-support link, one of them twice
                response = client.get(link(rejection_text[f"r{i}@example.jp"], "/go"), follow_redirects=False)
                assert response.status_code == 303
                assert response.headers["location"] == "https://career-relay.example.jp/"
                assert response.headers["referrer-policy"] == "no-referrer"
        if day == date(2026, 7, 2):
            follow_up = {rcpt: text for step, rcpt, text in pool_mails(sink) if step == "follow_up"}
            opt_out = link(follow_up["r5@example.jp"], "/opt-out")
            assert "当社の近況・募集・イベントのご案内" in client.get(opt_out).text  # not 内定者フォロー
            done = client.post(opt_out, data={"List-Unsubscribe": "One-Click"})
            assert done.status_code == 200 and "ご案内の配信を停止しました" in done.text
        if day == date(2026, 8, 3):
            again = tmp_path / "again.csv"
            again.write_text(
                "応募者ID,氏名,メールアドレス,ステータス,内定日,入社予定日\n"
                "R-007,応募 太郎7,r7@example.jp,内定,2026-08-03,2027-04-01\n"
                "C-100,応募 太郎8,r8@example.jp,承諾,2026-08-03,2027-04-01\n",
                encoding="utf-8",
            )
            with context.session() as session:
                import_holders(session, read_holders_file(again).rows, now=at(day, 9, 0))
        day += timedelta(days=1)

    mails = pool_mails(sink)
    by_step: dict[str, list[str]] = {}
    for step, rcpt, _ in mails:
        by_step.setdefault(step, []).append(rcpt)
    assert len(by_step["rejection"]) == len(set(by_step["rejection"])) == 50
    consented = {f"r{i}@example.jp" for i in range(1, 31)}
    assert sorted(by_step["follow_up"]) == sorted(consented)
    assert sorted(by_step["news"]) == sorted(consented - {"r5@example.jp", "r7@example.jp", "r8@example.jp"})
    assert "r31@example.jp" not in by_step["follow_up"]

    with context.session() as session:
        sent = list(session.scalars(select(Touch).where(Touch.cadence == "pool", Touch.status == "sent")))
        assert len(sent) == 50 + 30 + 27
        for touch in sent:
            local = touch.sent_at.astimezone(TOKYO) if touch.sent_at else None
            assert local is not None and calendar.is_business_day(local.date())
            assert 9 <= local.hour < 19
        first = {t.sent_at.astimezone(TOKYO).date() for t in sent if t.phase == "rejection" and t.sent_at}
        assert first == {date(2026, 6, 2)}
        assert {t.sent_at.astimezone(TOKYO).date() for t in sent if t.phase == "news" and t.sent_at} == {
            date(2026, 9, 1)
        }
        r5 = session.scalars(select(OfferHolder).where(OfferHolder.external_id == "R-005")).one()
        timeline = [(c.field, c.source) for c in r5.history]
        assert ("consent_date", "import") in timeline
        items = [(i["type"], i["summary"]) for i in holder_timeline(session, r5)["items"]]
        assert any(
            t == "change" and s.startswith("consent_date") for t, s in items
        )  # consent, on the timeline
        assert any(t == "opt_out" for t, _ in items)  # and the opt-out
        web_consents = session.scalars(select(AuditEntry).where(AuditEntry.action == "pool_consent")).all()
        assert len(web_consents) == 10
        assert session.scalars(select(AuditEntry).where(AuditEntry.action == "pool_opt_out")).all()
        c100 = session.scalars(select(OfferHolder).where(OfferHolder.external_id == "C-100")).one()
        r8 = session.scalars(select(OfferHolder).where(OfferHolder.external_id == "R-008")).one()
        assert c100.reapplied_from_id == r8.id
        assert len(session.scalars(select(HolderChange).where(HolderChange.field == "reapplied")).all()) == 2

        # the weekly report of offer follow-up sees none of the 50 rejection mails of that week
        weekly = build_report(session, context.policy, at(date(2026, 6, 5), 12))
        assert weekly.deliveries == [] and "rejected" not in {s for s, _, _ in weekly.status_counts}

        end = at(last, 23, 0)
        figures = compute_pool_figures(pool_people(session, context.policy, end))
        season = load_season(session, context.policy, end)
    assert figures.size == 48 and figures.by_status == {"rejected": 48}
    assert figures.consented == 28 and figures.consent_by_source == {"import": 18, "web": 10}
    assert figures.reached == {"email": 50}
    assert figures.sent_by_step == {"follow_up": 30, "news": 27, "rejection": 50}
    assert figures.opened == {"career": 3}
    assert (figures.opted_out, figures.reapplied, figures.hired) == (1, 2, 1)
    decisions, _ = evaluate_and_persist(context, end)  # no 放置 or other flag for anyone in the pool
    assert {d.external_id for d in decisions} <= {"R-007", "C-100"}
    # the offer holders' figures see only the two re-applicants, never the pool
    assert season.holders and {h.external_id for h in season.holders} == {"R-007", "C-100"}
    report = build_season_report(season, context.policy, now=end, pool=figures)
    assert report.outcomes.total.offers == 2
    html = render_season_html(report)
    assert (
        'data-figure="pool_size"' in html and "48名" in html and 'data-figure="pool_opened_career">3<' in html
    )
    assert report.to_json()["pool"]["hired_from_pool"] == 1
