"""``followup run --once`` embedded (no broker, no credentials: the outbox) and ``followup worker``."""

from __future__ import annotations

import json
import os
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from tests.cli import run_followup
from tests.delivery_fixtures import CHANNEL_ENV, add_holder, make_context


@pytest.fixture(autouse=True)
def no_channel_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*CHANNEL_ENV, "FOLLOWUP_BROKER_URL"):
        monkeypatch.delenv(name, raising=False)


def embedded_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        FOLLOWUP_DATABASE_URL=f"sqlite:///{tmp_path}/t.db",
        FOLLOWUP_VAR_DIR=str(tmp_path),
        FOLLOWUP_SECRET_KEY="cli-test-secret-0123456789abcdefghijkl",
        COLUMNS="200",
    )
    return env


def test_run_once_plans_and_writes_what_is_due_to_the_outbox(tmp_path: Path) -> None:
    context = make_context(tmp_path, f"sqlite:///{tmp_path}/t.db")
    with context.session() as s:
        add_holder(s, "NG-1", email="hanako@example.ac.jp", line="U1")  # line first in the initial phase
        add_holder(s, "NG-2", email="taro@example.ac.jp", name="鈴木 太郎")
    env = embedded_env(tmp_path)

    first = run_followup("run", "--once", "--now", "2026-06-02T10:30+09:00", env=env)
    again = run_followup("run", "--once", "--now", "2026-06-02T10:30+09:00", env=env)

    assert first.returncode == 0, first.stderr
    assert "送信 4件" in first.stdout and "sent 4" in first.stdout
    assert "created 0, sent 0" in again.stdout  # nothing planned or sent twice
    outbox = sorted((tmp_path / "outbox").iterdir())
    assert [p.suffix for p in outbox] == [".json", ".eml", ".eml", ".eml"]
    line = json.loads(next(p for p in outbox if p.suffix == ".json").read_text())
    assert line["recipient"] == "U1"
    assert line["payload"]["messages"][0]["text"].startswith("山田様\n")  # LINE gets the short form
    welcome = next(p for p in outbox if p.name.startswith("NG-2") and "reminder" not in p.name)
    mail = message_from_bytes(welcome.read_bytes(), policy=policy.default)
    assert "内定" in str(mail["Subject"]) and mail["To"] == "taro@example.ac.jp"
    reminders = [p for p in outbox if "reminder" in p.name]
    assert len(reminders) == 2  # the president's call for each holder, reminded by email


def test_worker_without_a_broker_says_what_to_set(tmp_path: Path) -> None:
    result = run_followup("worker", env=embedded_env(tmp_path))
    assert result.returncode == 2
    assert "FOLLOWUP_BROKER_URL" in result.stderr
