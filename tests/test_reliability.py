"""End-to-end reliability: the whole production topology, a compressed season, and faults injected on
purpose; the providers must receive every due message exactly once.

Run it alone with ``pytest -m reliability -s`` to see the counts it prints.
"""

from __future__ import annotations

import random
import signal
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.delivery_fixtures import wait_until
from tests.services import PostgresServer
from tests.topology import Topology, delivery_key, season_anchor, write_holders_csv

HOLDERS = 96
# Simulated days (offsets from the anchor Monday, at 18:00 in Tokyo) on which the test plays the clock:
# every touch of the first three weeks of the season — welcome, the president's call, mentor intro, the
# handwritten letter, the first pulse survey — and none of the fourth week (the over-contact cap, 3 per 7
# days, would rightly hold a fourth message per holder back by a week).
SIM_DAYS = (1, 3, 8, 10, 15, 17)
FINAL = ("sent", "reminded")
TOKYO = ZoneInfo("Asia/Tokyo")  # organization.timezone


@pytest.fixture
def topology(tmp_path: Path, postgres_server: PostgresServer) -> Iterator[Topology]:
    topo = Topology(tmp_path, postgres_server)
    try:
        topo.start_backends()
        yield topo
    finally:
        topo.close()


def sent_at_least(topo: Topology, ids: list[int], n: int) -> Callable[[], bool]:
    return lambda: topo.status_counts(ids)["sent"] >= n


def leader_other_than(topo: Topology, owner: str | None) -> Callable[[], bool]:
    return lambda: topo.leader() not in (None, owner)


def wait_for_wave(topo: Topology, ids: list[int], timeout: float) -> None:
    """Until this wave is delivered, or ``timeout`` (the next wave may overlap: that is load, not harm)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = topo.status_counts(ids)
        if sum(counts[s] for s in FINAL) == len(ids):
            return
        time.sleep(0.25)


def error_kind(error: str | None) -> str:
    text = error or ""
    for marker, kind in (
        ("rate limited", "slack 429"),
        ("line: HTTP 5", "line 500"),
        ("SMTP unavailable", "smtp unavailable"),
        ("unreachable", "connection dropped"),
    ):
        if marker in text:
            return kind
    return text[:40]


@pytest.mark.reliability
def test_a_compressed_season_on_the_full_topology_delivers_every_due_message_exactly_once(
    topology: Topology, tmp_path: Path
) -> None:
    """PostgreSQL, redis-server (AOF), two ``followup worker`` processes, two ``followup scheduler``
    processes (one leads through the database lease), the web app, the SMTP sink and the Slack and LINE
    stand-ins, each its own process on 127.0.0.1. Holders are imported with ``followup import-holders``.

    The season is compressed honestly: the schedulers run on the real clock and do the real dispatching
    (every 2 s, ``FOLLOWUP_DISPATCH_INTERVAL``), while the test plays the planner's calendar. For each
    simulated day it runs ``followup plan --now <that day>`` — the production planner, which creates the
    touches due around that day — and then makes the touches planned on or before that day due now (their
    ``due_at`` set a minute into the past). The season lies two years ahead, so the schedulers' own plan
    ticks at the real now neither create nor move any of it. From there on, nothing of the test takes part:
    the leader enqueues, the workers claim, render, send, retry and record.

    Faults, each while a wave is in flight: Slack 429 with Retry-After and LINE 500s; a redis-server
    restart; a worker killed with SIGKILL mid-batch (twice, one per worker) and restarted; the SMTP sink
    stopped for a few seconds; the leading scheduler stopped (the standby takes over) and restarted.

    Exactly once is counted at the providers per touch: Message-ID for email (the reminders of manual
    touches included), X-Line-Retry-Key for LINE, and for Slack the (recipient, text) of each message plus
    the message ``ts`` that the touch recorded as its provider id.

    The documented exactly-once window — a kill in the milliseconds between a provider accepting and the
    database recording it — is kept out of this test by construction: each kill happens at a random moment
    in a batch, but only after new provider connections have been held for a second (see
    ``Topology.kill_worker_mid_batch``), so the killed worker's claims are all waiting for a connection.
    A kill landing in that window would (rightly) duplicate an email or a Slack message; LINE's retry key
    would absorb it. How likely is that window? On this loopback topology a delivery task takes ~50 ms and
    the window (the 250 reply, QUIT, then the result's transaction) a sizeable part of it under load: the
    same season with eleven kills at random moments and no hold produced three duplicate emails (and this
    test's accounting reported each of them). So a kill without the hold would fail this test often, which
    is why the hold is there; the window itself is the documented trade-off, not something this test hides.
    """
    rng = random.Random()
    topo = topology
    started = time.monotonic()
    anchor = season_anchor(datetime.now().date())
    csv_path = tmp_path / "holders.csv"
    write_holders_csv(csv_path, HOLDERS, anchor)
    topo.cli("db", "upgrade")  # migrate once, before six processes race to
    imported = topo.cli("import-holders", str(csv_path))
    assert f"created {HOLDERS}" in imported
    topo.start_app()
    wait_until(lambda: topo.leader() is not None, 30, 0.2, "a scheduler leading")
    print(f"\nreliability: topology up in {time.monotonic() - started:.1f}s (leader {topo.leader()})")

    released: list[int] = []
    faults: Counter[str] = Counter()
    kills: list[int] = []
    try:
        for wave, offset in enumerate(SIM_DAYS):
            sim_day = datetime.combine(anchor + timedelta(days=offset), clock_time(18, 0), TOKYO)
            if wave in (0, 4):  # providers push back: 429 with Retry-After, 500s
                topo.slack("rate_limit", n=6, retry_after=2)
                topo.line("fail", n=6, status=500)
                faults["slack 429 ×6, line 500 ×6"] += 1
            topo.cli("plan", "--now", sim_day.isoformat())
            ids = topo.release_due(sim_day)
            assert ids, f"nothing planned by simulated day {sim_day:%Y-%m-%d}"
            released += ids
            if wave == 1:  # the broker restarts with a batch queued and in flight (AOF keeps the queue)
                wait_until(sent_at_least(topo, ids, 3), 30, 0.05, "a few of the wave sent")
                assert topo.redis is not None
                topo.redis.restart(downtime=1.5)
                faults["redis restart"] += 1
            if wave in (2, 5):  # a worker dies mid-batch, holding claims and reserved tasks
                name = "worker1" if wave == 2 else "worker2"
                kills.append(topo.kill_worker_mid_batch(name, rng))
                time.sleep(1.0)
                topo.services[name].start().wait_ready()
                faults[f"kill -9 {name}"] += 1
            if wave == 3:  # the leading scheduler stops; the standby takes the lease over
                leader = topo.leader()
                name = "scheduler1" if leader == "sched-a" else "scheduler2"
                topo.services[name].stop(signal.SIGINT)
                wait_until(leader_other_than(topo, leader), 30, 0.2, "the standby leading")
                topo.services[name].start().wait_ready()
                faults["leader handover"] += 1
            if wave == 4:  # the SMTP relay goes away for a while, in the largest wave
                wait_until(sent_at_least(topo, ids, 3), 30, 0.05, "a few of the wave sent")
                topo.smtp_outage(4.0)
                faults["smtp outage 4s"] += 1
            wait_for_wave(topo, ids, timeout=12)

        deadline = time.monotonic() + 120
        while (counts := topo.status_counts(released)).total() != sum(counts[s] for s in FINAL):
            assert time.monotonic() < deadline, f"not every released touch delivered after 120 s: {counts}"
            time.sleep(0.5)
        time.sleep(1.0)  # a late duplicate, if any, has time to arrive
    except BaseException:
        for name, service in topo.services.items():
            print(f"--- {name} ---\n{service.log_tail(25)}")
        raise

    # --- the accounting -------------------------------------------------------------------------------
    touches = topo.query(
        "SELECT id, key, kind, channel, status, provider_id FROM touches WHERE id = ANY(:ids)", ids=released
    )
    received = topo.received()
    slack_ts = topo.slack_timestamps()
    expected: Counter[str] = Counter()
    delivered_per_touch: list[int] = []
    per_channel: Counter[str] = Counter()
    slack_matched = 0
    for t in touches:
        channel = "reminder" if t.kind == "manual" else t.channel
        per_channel[channel] += 1
        key = delivery_key(t.kind, t.channel, t.key)
        if key is None:  # Slack: the message whose ts the touch recorded
            n = slack_ts[t.provider_id] if t.provider_id else 0
            slack_matched += min(n, 1)
        else:
            expected[key] += 1
            n = received[key]
        delivered_per_touch.append(n)
    slack_records = sum(n for k, n in received.items() if k.startswith("slack:"))
    unexpected = sum(n for k, n in received.items() if not k.startswith("slack:") and k not in expected)
    lost = sum(1 for n in delivered_per_touch if n == 0)
    duplicated = (
        sum(n - 1 for n in delivered_per_touch if n > 1)
        + (slack_records - slack_matched)  # Slack messages no touch recorded: a second send
        + unexpected
    )
    delivered = sum(1 for n in delivered_per_touch if n >= 1)
    attempts = Counter(
        {
            r.outcome: r.n
            for r in topo.query(
                "SELECT outcome, count(*) AS n FROM delivery_attempts "
                "WHERE touch_id = ANY(:ids) GROUP BY outcome",
                ids=released,
            )
        }
    )
    errors = Counter(
        error_kind(r.error)
        for r in topo.query(
            "SELECT error FROM delivery_attempts WHERE touch_id = ANY(:ids) AND outcome = 'transient'",
            ids=released,
        )
    )
    elapsed = time.monotonic() - started
    print(
        f"reliability: expected {len(touches)}, delivered {delivered}, lost {lost}, duplicated {duplicated}\n"
        f"reliability: by channel {dict(per_channel)}; attempts {dict(attempts)}; "
        f"retried because {dict(errors)}\n"
        f"reliability: faults {dict(faults)}; claims held by the killed workers {kills}; {elapsed:.0f}s wall"
    )

    assert len(touches) == len(released)
    assert {t.status for t in touches} <= set(FINAL), "every touch ends sent (manual ones: reminded)"
    assert (lost, duplicated) == (0, 0)
    assert all(n == 1 for k, n in received.items() if k.startswith("slack:")), "a Slack text twice"
    assert set(per_channel) == {"email", "slack", "line", "reminder"}
    # the faults really happened: the providers refused, and killed workers left claims to recover
    assert errors["slack 429"] >= 1 and errors["line 500"] >= 1 and errors["smtp unavailable"] >= 1
    assert sum(kills) >= 1
    with urllib.request.urlopen(topo.web_url("/readyz"), timeout=5) as response:
        assert response.status == 200
    assert topo.leader() in ("sched-a", "sched-b")
