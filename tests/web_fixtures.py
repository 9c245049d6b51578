"""Fixtures for the web tests: a migrated SQLite database, an AppContext, holders and survey touches."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from followup.config.context import AppContext
from followup.config.settings import Settings
from followup.db.models import EngagementEvent, OfferHolder, SurveyResponse, Touch
from followup.db.session import dispose_engines, get_engine
from followup.delivery.links import LinkSigner
from followup.web import create_app

REPO = Path(__file__).resolve().parents[1]
DASHBOARD_TOKEN = "hr-dashboard-token-for-tests-0123456789"
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
LINE_SECRET = "line-channel-secret-for-tests"


@dataclass
class WebEnv:
    context: AppContext
    signer: LinkSigner
    client: TestClient
    tmp_path: Path

    def holder(self, external_id: str = "NG2027-0001", **fields: Any) -> int:
        values: dict[str, Any] = {
            "external_id": external_id,
            "name": "山田 花子",
            "email": f"{external_id.lower()}@example.ac.jp",
            "track": "new_grad",
            "department": "営業部",
            "offer_date": date(2026, 6, 1),
            "start_date": date(2027, 4, 1),
            "status": "offered",
        }
        values.update(fields)
        with self.context.session() as session:
            holder = OfferHolder(**values)
            session.add(holder)
            session.flush()
            return holder.id

    def survey_touch(
        self, holder_id: int, form: str = "pulse", seq: int = 3, channel: str = "email", status: str = "sent"
    ) -> int:
        due = datetime(2026, 6, 22, 1, 0, tzinfo=UTC)
        with self.context.session() as session:
            touch = Touch(
                key=f"{holder_id}:new_grad:initial:{seq}",
                holder_id=holder_id,
                cadence="new_grad",
                phase="initial",
                seq=seq,
                kind="survey",
                channel=channel,
                template="pulse_survey",
                survey_form=form,
                due_at=due,
                status=status,
                sent_at=due if status == "sent" else None,
            )
            session.add(touch)
            session.flush()
            return touch.id

    def responses(self) -> list[SurveyResponse]:
        with self.context.session() as session:
            return list(session.scalars(select(SurveyResponse).order_by(SurveyResponse.id)))

    def events(self, kind: str | None = None) -> list[EngagementEvent]:
        with self.context.session() as session:
            query = select(EngagementEvent).order_by(EngagementEvent.id)
            if kind:
                query = query.where(EngagementEvent.kind == kind)
            return list(session.scalars(query))

    def count(self, model: type[Any]) -> int:
        with self.context.session() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)


def make_web_context(tmp_path: Path, base_url: str = "http://testserver", **settings: Any) -> AppContext:
    url = f"sqlite:///{tmp_path}/web.db"
    get_engine(url)
    values: dict[str, Any] = {
        "database_url": url,
        "var_dir": tmp_path / "var",
        "config": REPO / "config" / "followup.yaml",
        "base_url": base_url,
        "secret_key": "test-secret-key-" + "x" * 32,
        "dashboard_token": DASHBOARD_TOKEN,
    }
    values.update(settings)
    return AppContext(settings=Settings(**values))


@pytest.fixture
def web(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WebEnv]:
    """The app under FastAPI's TestClient, with the Slack and LINE secrets in the environment."""
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SLACK_SECRET)
    monkeypatch.setenv("LINE_CHANNEL_SECRET", LINE_SECRET)
    context = make_web_context(tmp_path)
    with TestClient(create_app(context), follow_redirects=False) as client:
        yield WebEnv(context, LinkSigner.from_settings(context.settings), client, tmp_path)
    dispose_engines()


class ServerThread:
    """A real uvicorn server on 127.0.0.1 in a thread (for the browser tests)."""

    def __init__(self, app: Any, port: int) -> None:
        import uvicorn

        self.port = port
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("uvicorn did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def days_ago(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)
