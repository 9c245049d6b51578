"""What a person reads in the CLI tables is Japanese: labels, a 氏名 column, subjects, 11/25(水) dates."""

from __future__ import annotations

import re
from pathlib import Path

from followup.flags.store import evaluate_and_persist
from tests.cli import run_followup
from tests.conftest import make_context
from tests.rules_fixtures import NOW, seed_cohort

ENGLISH = (
    "declining_signal",
    "low_pulse",
    "neglected",
    "unreachable",
    "mid_career",
    "new_grad",
    "welcome_president",
    "checkin",
    "severity",
    "external_id",
)
SHORT_DATE = re.compile(r"\d{1,2}/\d{1,2}\([月火水木金土日]\)")


def seeded_env(sqlite_url: str, tmp_path: Path) -> dict[str, str]:
    context = make_context(sqlite_url, tmp_path)
    with context.session() as session:
        seed_cohort(session)
    evaluate_and_persist(context, NOW)
    return {"FOLLOWUP_DATABASE_URL": sqlite_url, "FOLLOWUP_VAR_DIR": str(tmp_path)}


def test_flags_holders_and_the_timeline_speak_japanese(sqlite_url: str, tmp_path: Path) -> None:
    env = seeded_env(sqlite_url, tmp_path)

    flags = run_followup("flags", "--now", NOW.isoformat(), env=env)
    holders = run_followup("holders", env=env)
    show = run_followup("holders", "show", "N-002", env=env)

    for result in (flags, holders, show):
        assert result.returncode == 0, result.stderr
        for word in ENGLISH:
            assert word not in result.stdout, (word, result.stdout)
        assert SHORT_DATE.search(result.stdout)
    assert "氏名" in flags.stdout and "辞退の兆候" in flags.stdout and "放置" in flags.stdout
    assert "重要度" in flags.stdout and "高" in flags.stdout
    assert "氏名" in holders.stdout and "新卒" in holders.stdout and "内定(承諾前)" in holders.stdout
    # the timeline names the message by its subject, its status in Japanese
    assert "メール:その後お変わりございませんか" in show.stdout
    assert "送信済み" in show.stdout and " sent" not in show.stdout
    assert not re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", show.stdout)  # no ISO timestamps
