"""``followup demo`` tells the season's story on the embedded default, and its report opens in a browser."""

from __future__ import annotations

import json
from email import policy as email_policy
from email.parser import BytesParser
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.cli import run_followup

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def test_the_demo_flags_the_drifting_holders_and_writes_the_report(
    tmp_path: Path, chromium_path: str
) -> None:
    directory = tmp_path / "demo"
    result = run_followup("demo", "--dir", str(directory), "--json", timeout=120)
    assert result.returncode == 0, result.stderr
    flags = json.loads(result.stdout)
    by_holder: dict[str, set[str]] = {}
    for flag in flags:
        assert set(flag) >= {"external_id", "rule", "severity", "reason", "since"}
        by_holder.setdefault(flag["external_id"], set()).add(flag["rule"])
    assert "declining_signal" in by_holder["NG-2027-017"]  # answered 他社も検討している
    assert "unresponsive" in by_holder["NG-2027-005"]  # stopped answering
    assert "over_contacted" in by_holder["NG-2027-008"]  # four meetings in a week
    assert "unreachable" in by_holder["NG-2027-015"]  # opted out of the only channel
    assert "NG-2027-021" not in by_holder  # declined: no longer followed

    outbox = directory / "outbox"
    emails = list(outbox.glob("*.eml"))
    assert len(emails) > 100
    welcome = next(p for p in emails if "initial_0" in p.name and p.name.startswith("NG-2027-002"))
    message = BytesParser(policy=email_policy.default).parsebytes(welcome.read_bytes())
    assert "佐藤 健太" in message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]

    report = directory / "weekly-report.html"
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 1400})
        page.goto(report.as_uri())
        text = page.inner_text("body")
        assert "内定承諾率" in text and "NG-2027-017" in text
        assert page.locator("img").count() >= 2
        assert all(
            page.evaluate("img => img.naturalWidth", img) > 0 for img in page.locator("img").element_handles()
        )
        page.screenshot(path=str(ARTIFACTS / "demo-weekly-report.png"), full_page=True)
        browser.close()


def test_the_demo_prints_japanese_labels_and_where_to_look(tmp_path: Path) -> None:
    result = run_followup("demo", "--dir", str(tmp_path / "demo"), timeout=120)
    assert result.returncode == 0, result.stderr
    assert "要フォロー内定者" in result.stdout and "週次レポート" in result.stdout
    assert str(tmp_path / "demo" / "weekly-report.html") in result.stdout.replace("\n", "")
