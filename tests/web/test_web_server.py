"""The app under a real uvicorn: `followup web` as a process, and simultaneous double submissions
(a double tap, a retrying phone) on SQLite and PostgreSQL leaving exactly one response."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from followup.db.models import EngagementEvent, SurveyResponse
from followup.db.session import get_engine
from followup.delivery.links import LinkSigner
from followup.web import create_app
from tests.services import free_port
from tests.web_fixtures import REPO, ServerThread, WebEnv, make_web_context


def test_followup_web_serves_the_app_on_the_given_port(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "FOLLOWUP_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db",
        "FOLLOWUP_VAR_DIR": str(tmp_path / "var"),
        "FOLLOWUP_CONFIG": str(REPO / "config" / "followup.yaml"),
        "FOLLOWUP_DASHBOARD_TOKEN": "cli-token-0123456789abcdefghijklmnopq",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "followup", "web", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.HTTPError:
                assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
                assert time.monotonic() < deadline, "followup web did not start"
                time.sleep(0.1)
        assert ready.json() == {"status": "ok", "database": True}
        api = httpx.get(
            f"http://127.0.0.1:{port}/api/holders",
            headers={"Authorization": "Bearer cli-token-0123456789abcdefghijklmnopq"},
        )
        assert api.json() == {"holders": [], "next_cursor": None, "total": 0}
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_bad_port_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "followup", "web", "--port", "70000"],
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2


def test_simultaneous_submissions_of_one_survey_leave_one_response(tmp_path: Path, any_db_url: str) -> None:
    get_engine(any_db_url)
    port = free_port()
    context = make_web_context(tmp_path, base_url=f"http://127.0.0.1:{port}", database_url=any_db_url)
    server = ServerThread(create_app(context), port)
    server.start()
    try:
        env = WebEnv(context, LinkSigner.from_settings(context.settings), None, tmp_path)  # type: ignore[arg-type]
        touch_id = env.survey_touch(env.holder())
        url = env.signer.survey_url(touch_id)
        form = {"motivation": "3", "anxiety": "3", "understanding": "3", "situation": "迷っている"}

        def submit(i: int) -> int:
            with httpx.Client() as client:
                return client.post(url, data={**form, "comment": f"#{i}"}).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(submit, range(16)))
        assert statuses == [303] * 16
        assert env.count(SurveyResponse) == 1
        assert env.count(EngagementEvent) == 16  # every submission is kept as an 'answer' event
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _no_real_channels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMTP_URL", raising=False)
