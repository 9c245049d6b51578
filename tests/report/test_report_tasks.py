"""The weekly report's 「期限を過ぎた提出物」: counts per task and the longest-overdue holders, from the
business day after the due date (身元保証書 due 2/18 (木)), not counting those marked 提出済・対象外."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from followup.config import load_policy
from followup.db.models import OfferHolder
from followup.db.session import get_engine, session_scope
from followup.report import build_report
from followup.report.render import render_html, render_text
from followup.tasks.store import set_status

REPO = Path(__file__).resolve().parents[2]
POLICY = load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy
TOKYO = ZoneInfo("Asia/Tokyo")


def seed(url: str) -> None:
    get_engine(url)
    with session_scope(url) as session:
        for i in range(8):
            session.add(
                OfferHolder(
                    external_id=f"NG-{i}",
                    name=f"内定者 {i}",
                    track="new_grad",
                    offer_date=date(2026, 6, 1),
                    accepted_date=date(2026, 6, 10),
                    start_date=date(2027, 4, 1) if i else date(2027, 4, 8),  # NG-0 due 2/25
                    status="accepted",
                )
            )
        session.flush()
        ids = {h.external_id: h.id for h in session.query(OfferHolder)}
        at = datetime(2027, 2, 10, tzinfo=TOKYO)
        set_status(session, ids["NG-1"], "guarantee", "submitted", at=at, actor="hr")
        set_status(session, ids["NG-2"], "guarantee", "exempt", at=at, actor="hr")


def test_not_on_the_due_day_and_from_the_next_business_day(sqlite_url: str) -> None:
    seed(sqlite_url)
    with session_scope(sqlite_url) as session:
        on_the_day = build_report(session, POLICY, datetime(2027, 2, 18, 17, tzinfo=TOKYO))
        next_day = build_report(session, POLICY, datetime(2027, 2, 22, 8, 30, tzinfo=TOKYO))
    assert on_the_day.overdue_tasks == []
    [row] = next_day.overdue_tasks
    assert (row.task, row.title, row.count) == ("guarantee", "身元保証書", 5)  # NG-3..7; NG-0 is due 2/25
    assert len(row.top) == 5
    assert row.top[0] == ("NG-3", "内定者 3", date(2027, 2, 18), 2)  # 2/19 (金), 2/22 (月)
    text = render_text(next_day)
    assert "■ 期限を過ぎた提出物" in text and "身元保証書: 未提出 5名" in text
    assert "内定者 3(NG-3、期限 02/18、2営業日超過)" in text
    html = render_html(next_day)
    assert "期限を過ぎた提出物" in html and "内定者 7(NG-7" in html
