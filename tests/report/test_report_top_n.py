"""The weekly report at any size (issue 18): the top N at-risk holders in full, counts for the rest
and a link to the workspace; the same top N as the full ranking."""

from __future__ import annotations

from pathlib import Path

import pytest

from followup.config.context import AppContext
from followup.flags.store import evaluate_and_persist
from followup.report import build_email, build_report, render_html, render_text, workspace_url
from tests.conftest import make_context
from tests.rules_fixtures import NOW, seed_cohort

DASHBOARD = "https://followup.example.co.jp/dashboard"


@pytest.fixture
def context(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppContext:
    monkeypatch.delenv("SMTP_URL", raising=False)
    ctx = make_context(sqlite_url, tmp_path)
    with ctx.session() as session:
        seed_cohort(session)
    evaluate_and_persist(ctx, NOW)
    return ctx


def test_the_report_shows_the_top_n_in_full_and_counts_the_rest(context: AppContext) -> None:
    policy = context.policy
    with context.session() as session:
        full = build_report(session, policy, NOW)
    assert (
        policy.report.top_n == 50 and full.at_risk_total == len(full.at_risk) == 5 and not full.at_risk_more
    )
    small = policy.model_copy(update={"report": policy.report.model_copy(update={"top_n": 2})})
    with context.session() as session:
        top = build_report(session, small, NOW, workspace_url=DASHBOARD)
    assert [h.external_id for h in top.at_risk] == [h.external_id for h in full.at_risk[:2]]
    assert [h.flags for h in top.at_risk] == [h.flags for h in full.at_risk[:2]]
    assert top.at_risk_total == 5 and top.at_risk_more == 3
    assert sum(n for _, _, n in top.at_risk_rest) == 3
    rest = full.at_risk[2:]
    assert {s for s, _, _ in top.at_risk_rest} == {
        max((f.severity for f in h.flags), key={"low": 1, "medium": 3, "high": 5}.get) for h in rest
    }
    assert top.summary()["at_risk"] == 5
    html = render_html(top, templates_root=context.templates_root)
    text = render_text(top, templates_root=context.templates_root)
    assert "ほか <strong>3名</strong>" in html and "ほか 3名" in text
    for body in (html, text):
        assert DASHBOARD in body
        assert all(h.name in body for h in full.at_risk[:2])
    at_risk_section = html.split("フラグの動き")[0]
    assert all(h.external_id not in at_risk_section for h in rest)
    assert f'href="{DASHBOARD}"' in html
    msg = build_email(top, small, templates_root=context.templates_root)
    assert len(msg.as_bytes()) < 1_000_000


def test_the_workspace_link_is_the_dashboard_under_the_base_url() -> None:
    assert workspace_url("https://hr.example.jp/") == "https://hr.example.jp/dashboard"
