"""``followup run`` as a long-running process: SIGTERM finishes the touch in hand and exits cleanly; a
database outage prints one line per failed pass (kind and count, no tracebacks) and backs off; the
scheduler's jobs do the same."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from followup.config.context import AppContext
from followup.config.settings import Settings
from tests.cli import REPO
from tests.delivery_fixtures import (
    CHANNEL_ENV,
    add_holder,
    add_touch,
    always_open_config,
    make_context,
    statuses,
    wait_until,
)
from workers.scheduler import Leader

DEAD_DB = "postgresql+psycopg://followup:x@127.0.0.1:1/followup"  # nothing listens on port 1


def run_env(tmp_path: Path, db_url: str, config: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (*CHANNEL_ENV, "FOLLOWUP_BROKER_URL")}
    env.update(
        FOLLOWUP_DATABASE_URL=db_url,
        FOLLOWUP_VAR_DIR=str(tmp_path),
        FOLLOWUP_SECRET_KEY="run-loop-test-secret-0123456789abcdefghij",
        FOLLOWUP_CONFIG=str(config),
        COLUMNS="200",
    )
    return env


def start_run(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "followup", "run", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigterm_lets_run_finish_the_current_touch_and_exit_cleanly(tmp_path: Path) -> None:
    """Given ``followup run`` delivering a large batch to the outbox, when it gets SIGTERM mid-batch, then
    it exits 0 soon after, no touch is left ``sending``, and the rest stay planned for the next run."""
    config = always_open_config(tmp_path / "cfg")
    db_url = f"sqlite:///{tmp_path}/t.db"
    context = make_context(tmp_path, db_url, config=config)
    now = datetime.now(UTC)
    with context.session() as s:
        for i in range(400):
            holder = add_holder(s, f"T{i:03d}", email=f"t{i:03d}@example.ac.jp")
            add_touch(s, holder, 1, due_at=now - timedelta(minutes=5))
    proc = start_run(run_env(tmp_path, db_url, config), "--interval", "0.2")
    try:
        wait_until(lambda: statuses(context).get("sent", 0) >= 5, 60, 0.05, "a few sent")
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert "SIGTERM" in stderr
    counts = statuses(context)
    assert counts.get("sending", 0) == 0
    assert counts.get("planned", 0) > 0  # it stopped mid-batch rather than finishing all 400


def test_a_database_outage_prints_one_line_per_pass_and_backs_off(tmp_path: Path) -> None:
    """Given a database that does not answer, when ``run`` keeps trying for 8 s at ``--interval 0.1``,
    then it prints one line per failed pass, naming the kind with its count, no traceback, and the
    passes back off (a handful, not the ~70 of a fixed 0.1 s interval)."""
    proc = start_run(run_env(tmp_path, DEAD_DB, REPO / "config" / "followup.yaml"), "--interval", "0.1")
    try:
        time.sleep(8.0)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    lines = [line for line in stderr.splitlines() if line.startswith("エラー")]
    assert "Traceback" not in stderr
    assert 2 <= len(lines) <= 8, stderr
    assert "OperationalError" in lines[0] and "×1" in lines[0]
    assert "×2" in lines[1]
    assert proc.returncode == 0


def test_the_scheduler_backs_off_and_logs_one_line_per_failure_while_the_database_is_away(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    context = AppContext(
        settings=Settings(
            database_url=DEAD_DB, var_dir=tmp_path, secret_key="scheduler-test-secret-0123456789abcdefghij"
        )
    )
    leader = Leader(context, "sched-test")
    calls = []
    with caplog.at_level(logging.INFO, logger="followup.scheduler"):
        for _ in range(20):  # twenty dispatch ticks in quick succession
            leader.run("dispatch", lambda _c, _n: calls.append(1))
            leader.heartbeat()
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failures) == 1  # the first tick failed; the rest waited out the back-off
    assert failures[0].exc_info is None and "OperationalError" in failures[0].getMessage()
    assert "×1" in failures[0].getMessage() and calls == []
