"""The weekly report: its numbers, its HTML in a real Chromium, and its email at a real SMTP sink."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from followup.config.context import AppContext
from followup.db.models import OfferHolder, ReportRun
from followup.flags.store import evaluate_and_persist
from followup.report import (
    WeeklyReport,
    build_email,
    build_report,
    render_html,
    render_text,
    send_weekly_report,
)
from tests.cli import run_followup
from tests.conftest import make_context
from tests.rules_fixtures import NOW, add_holder, add_touch, seed_cohort
from tests.standins.smtp_sink import SmtpSink

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def context(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppContext:
    monkeypatch.delenv("SMTP_URL", raising=False)
    ctx = make_context(sqlite_url, tmp_path)
    with ctx.session() as session:
        seed_cohort(session)
    return ctx


@pytest.fixture
def report(context: AppContext) -> WeeklyReport:
    evaluate_and_persist(context, NOW)
    with context.session() as session:
        return build_report(session, context.policy, NOW)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as running:
        yield running


def test_the_report_counts_holders_flags_touches_and_kpis(report: WeeklyReport) -> None:
    assert report.week == "2026-W22"
    assert dict((s, n) for s, _, n in report.status_counts) == {
        "offered": 6,
        "accepted": 1,
        "joined": 0,
        "declined": 1,
        "withdrawn": 0,
    }
    assert sum(n for _, n in report.phase_counts) == 7
    # riskiest first: N-005 has low pulse (high) and a drop (medium)
    assert report.at_risk[0].external_id == "N-005" and report.at_risk[0].risk == 8
    assert [f.rule for f in report.at_risk[0].flags] == ["low_pulse", "pulse_drop"]
    assert {h.external_id for h in report.at_risk} == {"N-002", "N-004", "N-005", "N-006", "N-007"}
    assert all(f.action for h in report.at_risk for f in h.flags)
    email = next(d for d in report.deliveries if d.channel == "email")
    assert (email.sent, email.failed, email.suppressed) == (8, 1, 1)
    assert next(d for d in report.deliveries if d.channel == "phone").sent == 1
    assert report.pulse_trend and all(1 <= mean <= 5 for _, mean, _ in report.pulse_trend)
    assert (report.kpi.offers, report.kpi.accepted, report.kpi.declined) == (8, 1, 1)
    assert report.kpi.decline_rate == pytest.approx(0.125)
    assert report.kpi_previous.declined == 0  # the decline happened three days ago
    assert report.kpi_previous.accepted == 1
    assert all(chart.png.startswith(PNG_MAGIC) for chart in report.charts)


def test_new_continuing_and_resolved_flags_are_relative_to_last_week(context: AppContext) -> None:
    with context.session() as session:
        add_holder(session, "N-009", "久保 蓮", email=None)
        fixed = add_holder(session, "N-010", "小松 陽菜", email=None)
    evaluate_and_persist(context, NOW - timedelta(days=8))  # both unreachable (and never contacted)
    with context.session() as session:  # HR finds N-010's address and writes
        session.get(OfferHolder, fixed.id).email = "komatsu@example.jp"  # type: ignore[union-attr]
        add_touch(session, fixed, NOW - timedelta(days=2))
    evaluate_and_persist(context, NOW)
    with context.session() as session:
        report = build_report(session, context.policy, NOW)
    continuing = {(f.external_id, f.rule) for f in report.continuing_flags}
    new = {(f.external_id, f.rule) for f in report.new_flags}
    resolved = {(f.external_id, f.rule) for f in report.resolved_flags}
    assert {("N-009", "unreachable"), ("N-009", "neglected")} <= continuing
    assert {("N-010", "unreachable"), ("N-010", "neglected")} <= resolved
    assert ("N-004", "neglected") in resolved  # touched this week, no longer silent
    assert not (new & continuing) and not (continuing & resolved)
    assert ("N-007", "unreachable") in new and ("N-002", "neglected") in new
    text = render_text(report)
    assert f"解消 {len(resolved)}件:" in text and "小松 陽菜(連絡不可)" in text


def test_the_text_part_says_the_same_in_japanese(report: WeeklyReport) -> None:
    text = render_text(report)
    assert "内定承諾率: 12.5%(前週 12.5%" in text
    assert "内定辞退率: 12.5%(前週 0.0%" in text
    assert "岡田 健(N-005" in text and "→ 人事担当との個別面談" in text


def test_the_report_renders_in_chromium_with_its_charts(
    report: WeeklyReport, chromium_path: str, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    html = render_html(report, images="data")
    assert "<style" not in html and 'style="' in html  # CSS inlined for Gmail and Outlook
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "weekly-report.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 760, "height": 900})
            page.set_content(html, wait_until="load")
            body = page.inner_text("body")
            loaded = page.eval_on_selector_all(
                "img.chart", "imgs => imgs.map(i => i.complete && i.naturalWidth)"
            )
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert "内定承諾率" in body and "内定辞退率" in body
    assert "要フォローの内定者(リスク順)" in body
    assert body.index("岡田 健") < body.index("井上 大輔")  # riskiest first
    assert "自動連絡を2週間停止" in body
    assert len(loaded) == 2 and all(width and width > 300 for width in loaded)
    assert shot.read_bytes().startswith(PNG_MAGIC)


def _parts(msg: EmailMessage) -> tuple[str, str, dict[str, bytes]]:
    text = html = ""
    images: dict[str, bytes] = {}
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "text/plain":
            text = part.get_content()
        elif ctype == "text/html":
            html = part.get_content()
        elif ctype == "image/png":
            images[str(part["Content-ID"]).strip("<>")] = part.get_payload(decode=True)
    return text, html, images


def test_the_email_arrives_at_the_smtp_sink_with_text_html_and_images(
    context: AppContext, sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMTP_URL", sink.url)
    result = send_weekly_report(context, NOW)

    assert len(sink.messages) == 1
    mail = sink.messages[0]
    assert sorted(mail.rcpt_tos) == ["hr-managers@example.co.jp", "saiyo@example.co.jp"]
    msg = mail.message()
    assert result == msg["Message-ID"]
    assert msg["Subject"] == "【内定者フォロー】週次リスクレポート(2026-W22)"
    assert msg.get_content_type() == "multipart/alternative"
    related = msg.get_payload()[1]
    assert related.get_content_type() == "multipart/related"
    text, html, images = _parts(msg)
    assert "内定辞退率" in text and "岡田 健" in text
    assert "内定辞退率" in html and "岡田 健" in html
    assert len(images) == 2
    for cid, png in images.items():
        assert f"cid:{cid}" in html
        assert png.startswith(PNG_MAGIC)


def test_the_weekly_report_is_sent_once_per_week(
    context: AppContext, sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMTP_URL", sink.url)
    first = send_weekly_report(context, NOW)
    second = send_weekly_report(context, NOW + timedelta(minutes=5))  # another scheduler, same week
    assert len(sink.messages) == 1 and second == first
    send_weekly_report(context, NOW + timedelta(days=7))
    assert len(sink.messages) == 2
    with context.session() as session:
        assert session.scalars(select(ReportRun.week).order_by(ReportRun.week)).all() == [
            "2026-W22",
            "2026-W23",
        ]


def test_a_failed_send_leaves_the_week_open_for_a_retry(
    context: AppContext, sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMTP_URL", sink.url)
    sink.stop()
    with pytest.raises(OSError):
        send_weekly_report(context, NOW)
    sink.start()
    send_weekly_report(context, NOW + timedelta(minutes=5))
    assert len(sink.messages) == 1


def test_without_smtp_the_email_goes_to_the_outbox(context: AppContext, tmp_path: Path) -> None:
    result = send_weekly_report(context, NOW)
    assert isinstance(result, Path) and result.parent.is_relative_to(tmp_path)
    from email import message_from_bytes, policy

    msg = message_from_bytes(result.read_bytes(), policy=policy.default)
    assert "週次リスクレポート" in str(msg["Subject"])
    assert len(_parts(msg)[2]) == 2  # type: ignore[arg-type]


def test_build_email_is_a_pure_function_of_the_report(report: WeeklyReport, context: AppContext) -> None:
    a = build_email(report, context.policy).as_bytes()
    b = build_email(report, context.policy).as_bytes()
    assert a == b
    assert base64.b64encode(report.charts[0].png)[:20].decode() in render_html(report, images="data")


def test_the_report_command_writes_html_and_sends(
    sqlite_url: str, tmp_path: Path, sink: SmtpSink, context: AppContext
) -> None:
    env = {"FOLLOWUP_DATABASE_URL": sqlite_url, "FOLLOWUP_VAR_DIR": str(tmp_path), "SMTP_URL": sink.url}
    out = tmp_path / "r.html"
    result = run_followup("report", "--now", NOW.isoformat(), "--out", str(out), "--send", env=env)
    assert result.returncode == 0, result.stderr
    assert "要フォローの内定者" in out.read_text(encoding="utf-8")
    assert len(sink.messages) == 1
    again = run_followup("report", "--now", NOW.isoformat(), "--send", env=env)
    assert again.returncode == 0 and "送信済み" in again.stderr
    assert (tmp_path / "reports" / "weekly-2026-W22.html").exists()
    assert len(sink.messages) == 1


def test_an_hr_edited_report_template_cannot_reach_python_internals(
    report: WeeklyReport, tmp_path: Path
) -> None:
    import shutil

    from jinja2.exceptions import SecurityError

    from followup.report import render_html

    root = tmp_path / "templates"
    shutil.copytree(Path(__file__).resolve().parents[2] / "templates" / "report", root / "report")
    page = root / "report" / "weekly.html.j2"
    page.write_text("{{ cycler.__init__.__globals__.os.popen('id').read() }}", encoding="utf-8")
    with pytest.raises(SecurityError):
        render_html(report, templates_root=root)


def test_erasing_a_declined_holder_does_not_change_the_decline_rate(context: AppContext) -> None:
    from followup.holders.erasure import erase_holder
    from followup.report import build_report

    with context.session() as session:
        before = build_report(session, context.policy, NOW).kpi
        declined = session.scalars(select(OfferHolder).where(OfferHolder.status == "declined")).first()
        assert declined is not None
        erase_holder(session, declined, context.policy, now=NOW, actor="test")
    with context.session() as session:
        after = build_report(session, context.policy, NOW).kpi
    assert (after.offers, after.declined, after.decline_rate) == (
        before.offers,
        before.declined,
        before.decline_rate,
    )
