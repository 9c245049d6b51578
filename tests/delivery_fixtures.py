"""Helpers for the delivery tests: holders and touches straight into the database, stand-ins and a real
Celery worker as separate processes, and a TCP proxy that can hold SMTP connections (to stop a worker
at a known point: claimed, connected, nothing accepted yet)."""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select as sql_select

from followup.config.context import AppContext
from followup.config.settings import Settings
from followup.db.models import DeliveryAttempt, OfferHolder, Touch
from followup.db.session import get_engine
from tests.standins import control, free_port, read_jsonl, spawn, wait_for_port
from tests.standins.line_api import DEFAULT_TOKEN as LINE_TOKEN
from tests.standins.slack_api import DEFAULT_TOKEN as SLACK_TOKEN
from tests.standins.smtp_sink import read_log

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "config" / "followup.yaml"
NOW = datetime(2026, 7, 1, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo, a Wednesday
CHANNEL_ENV = (
    "SMTP_URL",
    "SLACK_BOT_TOKEN",
    "SLACK_API_URL",
    "LINE_CHANNEL_ACCESS_TOKEN",
    "LINE_CHANNEL_SECRET",
    "LINE_API_URL",
)
FAST_RETRIES = {"claim_timeout": 3.0, "retry_base": 0.2, "retry_cap": 1.0, "max_attempts": 8}


def make_context(tmp_path: Path, db_url: str, *, config: Path = CONFIG, **settings: Any) -> AppContext:
    get_engine(db_url)  # create and migrate once, before any worker races to do it
    values: dict[str, Any] = {
        "database_url": db_url,
        "var_dir": tmp_path,
        "config": config,
        "secret_key": "delivery-test-secret-0123456789abcdefgh",
        "broker_url": "",
        **FAST_RETRIES,
        **settings,
    }
    return AppContext(settings=Settings(**values))


def add_holder(
    session: Any,
    external_id: str,
    *,
    email: str | None = None,
    slack: str | None = None,
    line: str | None = None,
    status: str = "offered",
    name: str = "山田 花子",
    mentor_email: str | None = "tanaka.k@example.co.jp",
) -> OfferHolder:
    holder = OfferHolder(
        external_id=external_id,
        name=name,
        email=email,
        slack_user_id=slack,
        line_user_id=line,
        track="new_grad",
        department="営業部",
        offer_date=date(2026, 6, 1),
        start_date=date(2027, 4, 1),
        status=status,
        mentor_email=mentor_email,
    )
    session.add(holder)
    session.flush()
    return holder


def add_touch(
    session: Any,
    holder: OfferHolder,
    seq: int,
    *,
    channel: str = "email",
    template: str | None = "checkin",
    kind: str = "message",
    due_at: datetime = NOW - timedelta(minutes=5),
    status: str = "planned",
    sent_at: datetime | None = None,
    event: str | None = None,
    assignee: str | None = None,
    note: str | None = None,
) -> Touch:
    touch = Touch(
        key=f"{holder.external_id}:new_grad:initial:{seq}",
        holder_id=holder.id,
        cadence="new_grad",
        phase="initial",
        seq=seq,
        kind=kind,
        channel=channel,
        template=template,
        event=event,
        due_at=due_at,
        status=status,
        sent_at=sent_at,
        assignee=assignee,
        note=note,
    )
    session.add(touch)
    session.flush()
    return touch


def touch_state(context: AppContext, touch_id: int) -> Touch:
    with context.session() as session:
        touch = session.get(Touch, touch_id)
        assert touch is not None
        return touch


def attempts_of(context: AppContext, touch_id: int) -> list[DeliveryAttempt]:
    with context.session() as session:
        return list(
            session.scalars(
                sql_select(DeliveryAttempt)
                .where(DeliveryAttempt.touch_id == touch_id)
                .order_by(DeliveryAttempt.id)
            )
        )


def statuses(context: AppContext) -> dict[str, int]:
    with context.session() as session:
        counts: dict[str, int] = {}
        for status in session.scalars(sql_select(Touch.status)):
            counts[status] = counts.get(status, 0) + 1
        return counts


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.1, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


# --- stand-ins as separate processes ---------------------------------------------------------------------


class StandInProcesses:
    """SMTP sink, Slack API and LINE API stand-ins, each its own process on 127.0.0.1, logging to JSONL."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.smtp_port, self.slack_port, self.line_port = free_port(), free_port(), free_port()
        self.smtp_log = directory / "smtp.jsonl"
        self.slack_log = directory / "slack.jsonl"
        self.line_log = directory / "line.jsonl"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self) -> StandInProcesses:
        self.start_smtp()
        self.procs["slack"] = spawn("slack_api", self.slack_port, self.slack_log)
        self.procs["line"] = spawn("line_api", self.line_port, self.line_log)
        return self

    def start_smtp(self) -> None:
        self.procs["smtp"] = spawn("smtp_sink", self.smtp_port, self.smtp_log)

    def stop_smtp(self) -> None:
        _terminate(self.procs.pop("smtp"))

    def stop(self) -> None:
        for proc in self.procs.values():
            _terminate(proc)
        self.procs.clear()

    @property
    def slack_api_url(self) -> str:
        return f"http://127.0.0.1:{self.slack_port}/api/"

    @property
    def line_api_url(self) -> str:
        return f"http://127.0.0.1:{self.line_port}"

    def env(self, smtp_port: int | None = None) -> dict[str, str]:
        return {
            "SMTP_URL": f"smtp://127.0.0.1:{smtp_port or self.smtp_port}",
            "SLACK_BOT_TOKEN": SLACK_TOKEN,
            "SLACK_API_URL": self.slack_api_url,
            "LINE_CHANNEL_ACCESS_TOKEN": LINE_TOKEN,
            "LINE_API_URL": self.line_api_url,
        }

    def received(self) -> dict[str, int]:
        """Messages accepted per recipient across the three sinks (email address / Slack / LINE user id)."""
        counts: dict[str, int] = {}
        for mail in read_log(self.smtp_log):
            for rcpt in mail.rcpt_tos:
                counts[rcpt.lower()] = counts.get(rcpt.lower(), 0) + 1
        for record in read_jsonl(self.slack_log) + read_jsonl(self.line_log):
            counts[record["recipient"]] = counts.get(record["recipient"], 0) + 1
        return counts

    def slack_control(self, action: str, **params: Any) -> dict[str, Any]:
        return control(f"http://127.0.0.1:{self.slack_port}", action, **params)


def _terminate(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


# --- a real Celery worker ----------------------------------------------------------------------------------


@dataclass
class WorkerProcess:
    """``celery -A workers.celery_app worker`` in its own process group, with the test's environment."""

    env: dict[str, str]
    log_path: Path
    concurrency: int = 4
    pool: str = "threads"
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> WorkerProcess:
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "workers.celery_app",
                    "worker",
                    f"--pool={self.pool}",
                    f"--concurrency={self.concurrency}",
                    "--loglevel=INFO",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "-n",
                    f"test{os.getpid()}-{time.monotonic_ns()}@%h",
                    *self.extra_args,
                ],
                cwd=REPO,
                env={**os.environ, **self.env, "PYTHONPATH": str(REPO)},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"celery worker exited:\n{self.log_tail()}")
            with self.log_path.open("rb") as handle:
                handle.seek(offset)
                return b" ready." in handle.read()

        wait_until(ready, timeout, what="celery worker ready")
        return self

    def kill9(self) -> None:
        """SIGKILL the whole process group: no shutdown, no acks, claims left behind."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


def worker_env(context: AppContext, standins: StandInProcesses, **extra: str) -> dict[str, str]:
    s = context.settings
    env = {
        "FOLLOWUP_DATABASE_URL": s.effective_database_url,
        "FOLLOWUP_BROKER_URL": s.broker_url,
        "FOLLOWUP_CONFIG": str(s.config),
        "FOLLOWUP_VAR_DIR": str(s.var_dir),
        "FOLLOWUP_SECRET_KEY": s.secret_key,
        "FOLLOWUP_CLAIM_TIMEOUT": str(s.claim_timeout),
        "FOLLOWUP_RETRY_BASE": str(s.retry_base),
        "FOLLOWUP_RETRY_CAP": str(s.retry_cap),
        "FOLLOWUP_MAX_ATTEMPTS": str(s.max_attempts),
        **standins.env(),
        **extra,
    }
    return env


# --- a TCP proxy that can hold connections ---------------------------------------------------------------


class HoldingProxy:
    """Forwards 127.0.0.1:port → target. While ``hold`` is on, new connections are accepted and left waiting
    (the client sees no SMTP greeting yet, so nothing can be delivered); ``held`` counts them."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.hold = False
        self.held = 0
        self._lock = threading.Lock()
        self._waiting: list[socket.socket] = []
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()
        wait_for_port(self.port)

    def _accept(self) -> None:
        self._server.settimeout(0.1)
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                if self.hold:
                    self.held += 1
                    self._waiting.append(client)
                    continue
            threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def _pipe(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        except OSError:
            client.close()
            return
        sockets = [client, upstream]
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select(sockets, [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is client else client).sendall(data)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()

    def drop_held(self) -> None:
        """Stop holding; connections held so far are closed (their client is gone anyway)."""
        with self._lock:
            self.hold = False
            for sock in self._waiting:
                sock.close()
            self._waiting.clear()

    def close(self) -> None:
        self._stop.set()
        self.drop_held()
        self._server.close()


@contextlib.contextmanager
def running(*things: Any) -> Iterator[None]:
    try:
        yield
    finally:
        for thing in reversed(things):
            with contextlib.suppress(Exception):
                (thing.close if hasattr(thing, "close") else thing.stop)()


ALWAYS_OPEN_CALENDAR = """calendar:
  holidays: none
  year_end_closure: null
  workdays: [mon, tue, wed, thu, fri, sat, sun]
  send_window: {start: "00:00", end: "23:59"}
  send_time: "00:00"

"""


def always_open_config(directory: Path) -> Path:
    """The example policy with its calendar open every day around the clock.

    Tests that run real worker processes on the real clock (at whatever hour CI runs) use it, so a
    retry is not moved to tomorrow's send window; the calendar itself is tested in test_calendar.py.
    """
    text = CONFIG.read_text(encoding="utf-8")
    start, end = text.index("calendar:\n"), text.index("channels:\n")
    text = text[:start] + ALWAYS_OPEN_CALENDAR + text[end:]
    text = text.replace("templates_dir: ../templates", f"templates_dir: {REPO / 'templates'}")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "always-open.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def copy_config(tmp_path: Path) -> Path:
    """config/ and templates/ copied, so a test can add an HR template of its own."""
    shutil.copytree(REPO / "config", tmp_path / "config")
    shutil.copytree(REPO / "templates", tmp_path / "templates")
    return tmp_path / "config" / "followup.yaml"
