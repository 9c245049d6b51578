"""The production topology as separate OS processes on 127.0.0.1, for the end-to-end reliability suite.

PostgreSQL (a fresh database), a redis-server of its own with AOF, two ``followup worker`` processes, two
``followup scheduler`` processes, the web app, and the SMTP / Slack / LINE stand-ins. Every provider is
reached through a :class:`~tests.delivery_fixtures.HoldingProxy`, so a test can freeze new connections for
a moment: that is how a worker is killed mid-batch without landing in the documented exactly-once window
(provider accepted, result not yet committed) — see ``Topology.kill_worker_mid_batch``.

Every process runs in its own session (so a kill takes a prefork worker's children with it) and is torn
down by ``Topology.close`` in a ``finally``, by an atexit hook, and, should the test process be killed,
by the parent-death signal.
"""

from __future__ import annotations

import atexit
import contextlib
import csv
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from followup.channels.email import message_id_for
from followup.channels.line import retry_key_for
from followup.db.session import get_engine
from tests.delivery_fixtures import CHANNEL_ENV, HoldingProxy, always_open_config, wait_until
from tests.services import PostgresServer, RedisServer, _pdeathsig_preexec, free_port, start_redis
from tests.standins import control, read_jsonl, wait_for_port
from tests.standins.line_api import DEFAULT_TOKEN as LINE_TOKEN
from tests.standins.slack_api import DEFAULT_TOKEN as SLACK_TOKEN
from tests.standins.smtp_sink import read_log

REPO = Path(__file__).resolve().parents[1]
SENDER = "saiyo@example.co.jp"  # channels.email.from in config/followup.yaml
REPORT_SUBJECT = "【内定者フォロー】週次リスクレポート"

# Compressed time: seconds instead of the production minutes. Retries back off from 0.5 s to 3 s; a claim
# is taken back after 8 s (well above the slowest send here, which is one held connection of ~1 s); the
# leader dispatches every 2 s; attempts are capped high because one touch can meet several injected faults
# within seconds, which in production would be spread over hours of backoff.
FAST = {
    "FOLLOWUP_CLAIM_TIMEOUT": "8",
    "FOLLOWUP_RETRY_BASE": "0.5",
    "FOLLOWUP_RETRY_CAP": "3",
    "FOLLOWUP_MAX_ATTEMPTS": "40",
    "FOLLOWUP_DISPATCH_INTERVAL": "2",
}

_live: set[Service] = set()
_live_lock = threading.Lock()


@atexit.register
def _kill_leftovers() -> None:
    with _live_lock:
        services = list(_live)
    for service in services:
        with contextlib.suppress(Exception):
            service.kill9()


# --- one process ------------------------------------------------------------------------------------------


@dataclass(eq=False)
class Service:
    """One OS process (and its children) in its own session, logging to ``log_path``."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    ready: Callable[[Service], bool] | None = None
    proc: subprocess.Popen[bytes] | None = None
    _offset: int = 0

    def start(self) -> Service:
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_pdeathsig_preexec(),
            )
        with _live_lock:
            _live.add(self)
        return self

    def wait_ready(self, timeout: float = 45) -> Service:
        def check() -> bool:
            if self.proc is None or self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited before it was ready:\n{self.log_tail()}")
            return self.ready is None or self.ready(self)

        wait_until(check, timeout, interval=0.1, what=f"{self.name} ready")
        return self

    def log_since_start(self) -> str:
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(self._offset)
                return handle.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> set[int]:
        """Every live process of this service's session (a prefork worker: the parent and its children)."""
        if self.proc is None:
            return set()
        found = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
                if int(fields[3]) == self.proc.pid:  # session id
                    found.add(int(entry))
        return found

    def send_signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def kill9(self) -> None:
        """SIGKILL the whole session: no shutdown, no acks, claims and reserved tasks left behind."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        self.proc = None
        with _live_lock:
            _live.discard(self)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> None:
        if self.proc is None:
            return
        self.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)
        self.kill9()  # the leader of a session may exit before its children: take them all


def _log_contains(marker: bytes) -> Callable[[Service], bool]:
    def check(service: Service) -> bool:
        return marker.decode() in service.log_since_start()

    return check


def _port_ready(port: int) -> Callable[[Service], bool]:
    def check(service: Service) -> bool:
        try:
            wait_for_port(port, timeout=0.1)
        except TimeoutError:
            return False
        return True

    return check


def _http_ok(url: str) -> Callable[[Service], bool]:
    def check(service: Service) -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    return check


def compressed_season_config(directory: Path) -> Path:
    """The always-open example policy with the over-contact cap counted but not enforced.

    The compressed season plays weeks of the calendar in minutes of the real clock, and the cap counts
    touches sent in the last 7 real days: every holder would look over-contacted after their third
    message (a task reminder is the fourth) and delivery would re-time the rest by a week. Enforcement
    itself is tested with a frozen clock in tests/delivery/test_delivery_inprocess.py.
    """
    path = always_open_config(directory)
    text = path.read_text(encoding="utf-8")
    capped = "over_contacted: {severity: medium, max_touches: 3, window: 7d, enforce: true}"
    assert capped in text, "the example's over_contacted rule changed: update compressed_season_config"
    path.write_text(text.replace(capped, capped.replace("enforce: true", "enforce: false")), encoding="utf-8")
    return path


# --- holders for a compressed season ----------------------------------------------------------------------


def season_anchor(today: date) -> date:
    """A Monday in June two years ahead: a season the real clock never reaches during the test, so the
    schedulers' own plan ticks (at the real now) create and move nothing of it."""
    day = date(today.year + 2, 6, 1)
    while day.weekday() != 0:
        day += timedelta(days=1)
    return day


def write_holders_csv(path: Path, count: int, anchor: date) -> None:
    """``count`` holders: email / Slack / LINE in turn (every 8th also has a second channel), offers on
    the Monday, Tuesday or Wednesday of the anchor week, two thirds new graduates, one third mid-career."""
    names = (
        "山田 花子",
        "佐藤 健太",
        "鈴木 美咲",
        "高橋 翔太",
        "田中 結衣",
        "伊藤 大輝",
        "渡辺 葵",
        "中村 蓮",
    )
    mentors = ("tanaka.k@example.co.jp", "kobayashi.m@example.co.jp", "ito.s@example.co.jp")
    columns = [
        "external_id", "name", "email", "line_user_id", "slack_user_id", "track", "department",
        "offer_date", "start_date", "status", "mentor_email",
    ]  # fmt: skip
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for i in range(count):
            channel = ("email", "slack", "line")[i % 3]
            offer = anchor + timedelta(days=(i // 3) % 3)
            mid_career = (i // 9) % 3 == 2
            start = offer + timedelta(days=80) if mid_career else date(anchor.year + 1, 4, 1)
            email = f"rel{i:03d}@example.ac.jp" if channel == "email" or i % 8 == 0 else ""
            line = f"U{uuid.uuid5(uuid.NAMESPACE_URL, f'line-{i}').hex}" if channel == "line" else ""
            slack = f"UREL{i:05d}" if channel == "slack" else ""
            writer.writerow(
                [
                    f"REL-{i:03d}", names[i % len(names)], email, line, slack,
                    "mid_career" if mid_career else "new_grad", ("営業部", "開発部")[i % 2],
                    offer.isoformat(), start.isoformat(), "offered", mentors[i % 3],
                ]
            )  # fmt: skip


# --- the topology -----------------------------------------------------------------------------------------


@dataclass
class Topology:
    """Everything up and wired together; ``close()`` tears it all down (call it in a ``finally``)."""

    tmp: Path
    postgres: PostgresServer
    workers: int = 2
    worker_concurrency: int = 2
    schedulers: int = 2
    redis: RedisServer | None = None
    db_url: str = ""
    env: dict[str, str] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    proxies: dict[str, HoldingProxy] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    # -- bring up --------------------------------------------------------------------------------------

    def start_backends(self) -> None:
        """Database, broker, the three providers and their proxies."""
        self.db_url = self.postgres.create_database(f"reliability_{uuid.uuid4().hex[:10]}")
        self.redis = start_redis(self.tmp, appendonly=True)
        for name in ("smtp", "slack", "line"):
            self.ports[name] = free_port()
            self.logs[name] = self.tmp / f"{name}.jsonl"
            module = {"smtp": "smtp_sink", "slack": "slack_api", "line": "line_api"}[name]
            self.services[name] = Service(
                name,
                [
                    sys.executable,
                    "-m",
                    f"tests.standins.{module}",
                    "--port",
                    str(self.ports[name]),
                    "--log",
                    str(self.logs[name]),
                ],
                {**os.environ, "PYTHONPATH": str(REPO)},
                self.tmp / f"{name}.log",
                ready=_port_ready(self.ports[name]),
            ).start()
        for name in ("smtp", "slack", "line"):
            self.services[name].wait_ready()
            self.proxies[name] = HoldingProxy(self.ports[name])
        base = {k: v for k, v in os.environ.items() if not k.startswith("FOLLOWUP_") and k not in CHANNEL_ENV}
        var_dir = self.tmp / "var"
        var_dir.mkdir(exist_ok=True)
        self.ports["web"] = free_port()
        self.env = {
            **base,
            "PYTHONPATH": str(REPO),
            "PYTHONUNBUFFERED": "1",
            "FOLLOWUP_DATABASE_URL": self.db_url,
            "FOLLOWUP_BROKER_URL": self.redis.url,
            "FOLLOWUP_CONFIG": str(compressed_season_config(self.tmp / "cfg")),
            "FOLLOWUP_VAR_DIR": str(var_dir),
            "FOLLOWUP_SECRET_KEY": "reliability-secret-0123456789abcdefghij",
            "FOLLOWUP_DASHBOARD_TOKEN": "reliability-dashboard-0123456789abcdef",
            "FOLLOWUP_BASE_URL": f"http://127.0.0.1:{self.ports['web']}",
            **FAST,
            "SMTP_URL": f"smtp://127.0.0.1:{self.proxies['smtp'].port}",
            "SLACK_BOT_TOKEN": SLACK_TOKEN,
            "SLACK_API_URL": f"http://127.0.0.1:{self.proxies['slack'].port}/api/",
            "LINE_CHANNEL_ACCESS_TOKEN": LINE_TOKEN,
            "LINE_API_URL": f"http://127.0.0.1:{self.proxies['line'].port}",
        }

    def cli(self, *args: str, timeout: float = 60) -> str:
        """``followup <args>`` as its own process; returns its output, fails the test on a non-zero exit."""
        result = subprocess.run(
            [sys.executable, "-m", "followup", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise AssertionError(
                f"followup {' '.join(args)} → {result.returncode}\n{result.stdout}{result.stderr}"
            )
        return result.stdout

    def _followup(self, name: str, *args: str, ready: Callable[[Service], bool]) -> Service:
        service = Service(
            name, [sys.executable, "-m", "followup", *args], self.env, self.tmp / f"{name}.log", ready=ready
        )
        self.services[name] = service
        return service

    def start_app(self) -> None:
        """The web app, the workers and the schedulers, started together (the database is migrated)."""
        web = self._followup(
            "web", "web", "--port", str(self.ports["web"]), ready=_http_ok(self.web_url("/readyz"))
        )
        starting = [web.start()]
        for i in range(self.workers):
            worker = self._followup(
                f"worker{i + 1}",
                "worker",
                "--concurrency",
                str(self.worker_concurrency),
                ready=_log_contains(b" ready."),
            )
            starting.append(worker.start())
        for i in range(self.schedulers):
            owner = f"sched-{'abcdefgh'[i]}"
            scheduler = self._followup(
                f"scheduler{i + 1}", "scheduler", "--owner", owner, ready=_log_contains(b"starting")
            )
            starting.append(scheduler.start())
        for service in starting:
            service.wait_ready()

    def web_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.ports['web']}{path}"

    # -- tear down -------------------------------------------------------------------------------------

    def close(self) -> None:
        for name in reversed(list(self.services)):
            with contextlib.suppress(Exception):
                self.services[name].stop(signal.SIGINT if name.startswith("scheduler") else signal.SIGTERM)
        for proxy in self.proxies.values():
            with contextlib.suppress(Exception):
                proxy.close()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                self.redis.stop(kill=True)
        if self.db_url:
            from followup.db.session import dispose_engines

            dispose_engines()
            with contextlib.suppress(Exception):
                self.postgres.drop_database(self.db_url.rsplit("/", 1)[1])

    # -- the database, seen from the test --------------------------------------------------------------

    @property
    def engine(self) -> Engine:
        return get_engine(self.db_url, migrate=False)

    def query(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.begin() as connection:
            return list(connection.execute(text(sql), params))

    def release_due(self, sim_day: datetime) -> list[int]:
        """The compression: touches the planner put on or before the simulated day become due now.

        Only touches still in the simulated future are moved (a retry's real-time ``due_at`` and its
        backoff stay untouched). They are set a minute into the past, so a planner tick at the real now
        never moves them back (it only moves touches that are not yet due).
        """
        rows = self.query(
            "UPDATE touches SET due_at = now() - interval '1 minute' "
            "WHERE status = 'planned' AND due_at <= :day AND due_at > now() + interval '1 day' RETURNING id",
            day=sim_day,
        )
        return [row.id for row in rows]

    def status_counts(self, ids: list[int]) -> Counter[str]:
        rows = self.query(
            "SELECT status, count(*) AS n FROM touches WHERE id = ANY(:ids) GROUP BY status", ids=ids
        )
        return Counter({row.status: row.n for row in rows})

    def sending_claims_of(self, service: Service) -> int:
        """Touches a worker's processes hold in ``sending`` (``claimed_by`` carries the process id)."""
        pids = service.pids()
        rows = self.query("SELECT claimed_by FROM touches WHERE status = 'sending'")
        return sum(1 for row in rows if _claim_pid(row.claimed_by) in pids)

    def leader(self) -> str | None:
        rows = self.query(
            "SELECT owner FROM scheduler_leases WHERE name = 'scheduler' AND expires_at > now()"
        )
        return rows[0].owner if rows else None

    # -- faults ----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def providers_held(self, *names: str) -> Iterator[None]:
        """New connections to these providers wait at the proxy (nothing reaches the provider); on exit
        they are closed, which the senders see as a transient network failure and retry."""
        proxies = [self.proxies[n] for n in names or ("smtp", "slack", "line")]
        for proxy in proxies:
            proxy.hold = True
        try:
            yield
        finally:
            for proxy in proxies:
                proxy.drop_held()

    def kill_worker_mid_batch(self, name: str, rng: random.Random, settle: float = 1.0) -> int:
        """SIGKILL a worker while it holds claimed touches; returns how many it held.

        The moment is random within the batch; then new provider connections are held for ``settle``
        seconds, long enough for every send already past its connection to finish and commit. So at the
        kill, each of the worker's claims is waiting for a connection and nothing of it reached a
        provider: the kill lands outside the documented window (provider accepted, result not yet
        committed) by construction, not by luck.
        """
        worker = self.services[name]
        wait_until(lambda: self.sending_claims_of(worker) > 0, 30, 0.02, f"{name} claiming touches")
        time.sleep(rng.uniform(0.0, 0.4))
        with self.providers_held():
            time.sleep(settle)
            wait_until(self._sinks_quiet, 10, 0.05, "the providers quiet while connections are held")
            held = self.sending_claims_of(worker)
            worker.kill9()
        return held

    def _sinks_quiet(self, quiet: float = 0.3) -> bool:
        """Nothing reached any provider for ``quiet`` seconds (their logs did not grow)."""
        before = [p.stat().st_size if p.exists() else 0 for p in self.logs.values()]
        time.sleep(quiet)
        return before == [p.stat().st_size if p.exists() else 0 for p in self.logs.values()]

    def smtp_outage(self, seconds: float) -> None:
        """Stop the SMTP sink process for ``seconds`` and start it again on the same port.

        The sink is stopped between SMTP sessions (new connections held briefly first), as a relay going
        down for maintenance would be; an abrupt stop in the middle of a DATA reply is the same documented
        window as a kill -9 and is not what this fault is about.
        """
        with self.providers_held("smtp"):
            time.sleep(0.5)
            self.services["smtp"].stop()
        time.sleep(seconds)
        self.services["smtp"].start().wait_ready()

    def slack(self, action: str, **params: Any) -> dict[str, Any]:
        return control(f"http://127.0.0.1:{self.ports['slack']}", action, **params)

    def line(self, action: str, **params: Any) -> dict[str, Any]:
        return control(f"http://127.0.0.1:{self.ports['line']}", action, **params)

    # -- what the providers received -------------------------------------------------------------------

    def received(self) -> Counter[str]:
        """Messages accepted by the providers, one count per delivery key: ``email:<Message-ID>``,
        ``line:<X-Line-Retry-Key>``, ``slack:<recipient>:<text>``. The weekly report is not a touch."""
        counts: Counter[str] = Counter()
        for mail in read_log(self.logs["smtp"]):
            parsed = mail.message()
            if str(parsed.get("Subject", "")).startswith(REPORT_SUBJECT):
                continue
            counts[f"email:{parsed.get('Message-ID', '')}"] += 1
        for record in read_jsonl(self.logs["line"]):
            counts[f"line:{record['retry_key']}"] += 1
        for record in read_jsonl(self.logs["slack"]):
            counts[f"slack:{record['recipient']}:{record['text']}"] += 1
        return counts

    def slack_timestamps(self) -> Counter[str]:
        """``<DM channel>:<ts>`` of every Slack message accepted (what a sent touch stores as provider_id)."""
        return Counter(f"{r['channel']}:{r['ts']}" for r in read_jsonl(self.logs["slack"]))


def _claim_pid(claimed_by: str | None) -> int | None:
    """``celery@host:<pid>:<thread>#<token>`` → pid."""
    if not claimed_by:
        return None
    try:
        return int(claimed_by.split("#", 1)[0].split(":")[1])
    except (IndexError, ValueError):
        return None


def delivery_key(kind: str, channel: str, key: str) -> str | None:
    """The provider-side key of a touch's message (Slack has none: matched by provider_id instead)."""
    if kind == "manual":
        return f"email:{message_id_for(f'{key}:reminder', SENDER)}"
    if kind == "escalation":  # manual_overdue: the assignee asked once more, by mail (key escalation:<id>)
        return f"email:{message_id_for(key, SENDER)}"
    if channel == "email":
        return f"email:{message_id_for(key, SENDER)}"
    if channel == "line":
        return f"line:{retry_key_for(key)}"
    return None
