"""The weekly report lists reminded calls and letters not logged in time under 「未実施の個別フォロー」."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from followup.config import load_policy
from followup.db.models import OfferHolder, Touch
from followup.db.session import get_engine, session_scope
from followup.report import build_report
from followup.report.render import render_html, render_text

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy
NOW = datetime(2026, 11, 30, 0, 0, tzinfo=UTC)  # Mon 11/30 09:00 in Tokyo


def manual(holder: OfferHolder, reminded: datetime, status: str = "reminded", n: int = 0) -> Touch:
    return Touch(
        key=f"{holder.external_id}:new_grad:initial:once:call{n}",
        holder_id=holder.id,
        cadence="new_grad",
        phase="initial",
        seq=-1,
        kind="manual",
        channel="phone",
        assignee="president@example.co.jp",
        note="社長から内定のお祝いの電話をする",
        due_at=reminded,
        sent_at=reminded,
        status=status,
    )


def test_overdue_manual_touches_are_listed_with_who_what_since_and_escalation(sqlite_url: str) -> None:
    get_engine(sqlite_url)
    with session_scope(sqlite_url) as session:
        holders = []
        for i in range(4):
            h = OfferHolder(
                external_id=f"NG-{i}",
                name=f"内定者 {i}",
                track="new_grad",
                offer_date=date(2026, 11, 2),
                start_date=date(2027, 4, 1),
                status="accepted",
            )
            session.add(h)
            session.flush()
            holders.append(h)
        # Tue 11/24 10:00 → 3 business days → Fri 11/27 10:00: overdue, and the assignee was asked again
        late = manual(holders[0], datetime(2026, 11, 24, 1, 0, tzinfo=UTC))
        session.add(late)
        session.flush()
        session.add(
            Touch(
                key=f"escalation:{late.id}",
                holder_id=holders[0].id,
                cadence="new_grad",
                phase="initial",
                seq=-1,
                kind="escalation",
                channel="phone",
                due_at=datetime(2026, 11, 27, 1, 0, tzinfo=UTC),
                status="reminded",
            )
        )
        # Wed 11/25 10:00 → Mon 11/30 10:00: not yet (now is 09:00)
        session.add(manual(holders[1], datetime(2026, 11, 25, 1, 0, tzinfo=UTC)))
        # logged: nothing to chase
        session.add(manual(holders[2], datetime(2026, 11, 20, 1, 0, tzinfo=UTC), status="done"))
        # Fri 11/20 (Mon 11/23 is a holiday) → Thu 11/26: overdue, no escalation yet
        session.add(manual(holders[3], datetime(2026, 11, 20, 1, 0, tzinfo=UTC)))

    with session_scope(sqlite_url) as session:
        report = build_report(session, POLICY, NOW)

    rows = [(m.external_id, m.overdue_since.date(), m.escalated) for m in report.overdue_manual]
    assert rows == [("NG-3", date(2026, 11, 26), False), ("NG-0", date(2026, 11, 27), True)]
    first = report.overdue_manual[0]
    assert (first.assignee, first.what, first.channel_label) == (
        "佐藤社長",
        "社長から内定のお祝いの電話をする",
        "電話",
    )
    assert report.summary()["overdue_manual"] == 2

    text = render_text(report)
    assert "■ 未実施の個別フォロー(依頼から3営業日を過ぎても実施済みの記録がないもの)" in text
    assert (
        "内定者 0(NG-0): 電話「社長から内定のお祝いの電話をする」 担当 佐藤社長、"
        "11/24依頼、11/27から未実施(再依頼済み)" in text
    )
    assert "内定者 1" not in text.split("■ 未実施の個別フォロー")[1].split("■")[0]
    html = render_html(report)
    assert "未実施の個別フォロー</h2>" in html and "内定者 3(NG-3)" in html


def test_the_section_is_left_out_when_nothing_is_overdue(sqlite_url: str) -> None:
    get_engine(sqlite_url)
    with session_scope(sqlite_url) as session:
        report = build_report(session, POLICY, NOW + timedelta(days=1))
    assert report.overdue_manual == []
    assert "未実施の個別フォロー" not in render_text(report) and "未実施の個別フォロー" not in render_html(
        report
    )
