"""One planning tick for 10,000 and 100,000 holders with a season of history, beside a baseline.

    python benchmarks/plan_tick.py [--holders N] [--baseline-holders M] [--tick-holders K]

The planner is timed on in-memory snapshots (what ``load_snapshots`` hands it); the history holds every
touch of the season so far (sent) except the last day's, so the tick has real work to do, as after a
day of scheduler downtime. Peak memory comes from a second, traced run (tracemalloc slows allocation).

The baseline is the straightforward implementation: a per-holder ORM loop over a SQLite database
(lazy-load each holder's touches and opt-outs, compute its season, add the missing Touch objects),
run on M holders. The ratio on the last line compares it with our own full tick (load + plan + apply)
on a copy of the same database: the same scope on both sides, not a database loop against the
in-memory planner.

``--tick-holders K`` (repeatable; 100,000 by default; 1,000,000 works: the seed streams in chunks, COPY
on PostgreSQL, executemany on SQLite) times the tick end to end on a database of K holders with their
season so far, on ``--backend sqlite|postgres`` (repeatable), each side in its own child process on its
own copy of one database (a file copy; ``CREATE DATABASE … TEMPLATE`` on PostgreSQL): the full tick
(every active holder and its history loaded, then plan and apply) beside ours, ``plan_tick`` (only the
holders whose plan can differ from empty are loaded: ``due_holders``), first tick and the steady one
ten minutes later. Both create the same touches. ``--holders 0`` / ``--baseline-holders 0`` skip the
pure-planner and ORM-loop parts; ``--skip-full`` times only ours. The last line is the steady-tick
ratio, full / ours, for each size and backend.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from followup.calendar import BusinessCalendar  # noqa: E402
from followup.config import Policy, load_policy  # noqa: E402
from followup.db.models import ChannelOptOut, OfferHolder, Touch  # noqa: E402
from followup.db.session import dispose_engines, get_engine, session_scope  # noqa: E402
from followup.durations import shift_moment  # noqa: E402
from followup.planning.planner import (  # noqa: E402
    ExistingTouch,
    HolderSnapshot,
    SeasonCache,
    _channel_for,
    plan,
    season_schedule,
)
from followup.planning.store import apply_plan, load_snapshots, plan_tick  # noqa: E402

TOKYO = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 11, 16, 9, 0, tzinfo=TOKYO)
CHANNEL_SETS = [
    frozenset({"email", "line"}),
    frozenset({"email"}),
    frozenset({"email", "slack"}),
    frozenset({"email", "line", "slack"}),
    frozenset({"line"}),
]


def make_holders(n: int, seed: int = 7) -> list[HolderSnapshot]:
    """New graduates (offers March–October, start next April) and mid-career hires (start 1–3 months on)."""
    rng = random.Random(seed)
    holders = []
    for i in range(1, n + 1):
        mid_career = rng.random() < 0.15
        offer = date(2026, 3, 1) + timedelta(days=rng.randrange(245))
        start = offer + timedelta(days=rng.randrange(30, 95)) if mid_career else date(2027, 4, 1)
        status = rng.choices(["offered", "accepted", "declined"], [0.45, 0.5, 0.05])[0]
        holders.append(
            HolderSnapshot(
                id=i,
                external_id=f"H{i:06d}",
                track="mid_career" if mid_career else "new_grad",
                department=None,
                status=status,
                offer_date=offer,
                accepted_date=offer + timedelta(days=7) if status == "accepted" else None,
                start_date=start,
                reachable=CHANNEL_SETS[i % len(CHANNEL_SETS)],
            )
        )
    return holders


def make_history(
    holders: list[HolderSnapshot], policy: Policy, calendar: BusinessCalendar
) -> dict[int, list[ExistingTouch]]:
    """Every touch of the season that a scheduler running until a day ago would have created."""
    cutoff = NOW - timedelta(days=1)
    cache: dict[tuple[object, ...], list[tuple[str, str, int, str, str, datetime]]] = {}
    history: dict[int, list[ExistingTouch]] = {}
    next_id = 1
    for h in holders:
        match = policy.cadence_for(h.track, h.department)
        if match is None:
            continue
        signature = (match[0], h.offer_date, h.accepted_date, h.start_date, h.reachable)
        season = cache.get(signature)
        if season is None:
            season = [
                (t.key.split(":", 1)[1], t.phase, t.seq, t.kind, t.channel, t.due_at)
                for t in season_schedule(h, match[0], match[1], policy, calendar)
                if t.due_at < cutoff
            ]
            cache[signature] = season
        touches = []
        for suffix, phase, seq, kind, channel, due_at in season:
            touches.append(
                ExistingTouch(
                    next_id, f"{h.external_id}:{suffix}", h.id, phase, seq, kind, channel, due_at, "sent"
                )
            )
            next_id += 1
        history[h.id] = touches
    return history


def time_planner(n: int, policy: Policy) -> tuple[float, float, int, int]:
    """Seconds (best of 3), peak MiB, touches created, history size, for one tick over ``n`` holders."""
    calendar = BusinessCalendar.from_policy(policy)
    holders = make_holders(n)
    history = make_history(holders, policy, calendar)
    history_size = sum(len(v) for v in history.values())
    best = float("inf")
    created = 0
    for _ in range(3):
        fresh = BusinessCalendar.from_policy(policy)  # no warm caches carried between runs
        started = time.perf_counter()
        result = plan(holders, policy, history, NOW, fresh)
        best = min(best, time.perf_counter() - started)
        created = len(result.create)
    tracemalloc.start()
    plan(holders, policy, history, NOW, BusinessCalendar.from_policy(policy))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return best, peak / 2**20, created, history_size


def build_db(url: str, n: int, policy: Policy) -> None:
    calendar = BusinessCalendar.from_policy(policy)
    holders = make_holders(n, seed=11)
    history = make_history(holders, policy, calendar)
    get_engine(url)
    with session_scope(url) as session:
        session.add_all(
            OfferHolder(
                id=h.id,
                external_id=h.external_id,
                name=f"内定者 {h.id}",
                email=f"h{h.id}@example.ac.jp" if "email" in h.reachable else None,
                line_user_id=f"U{h.id:032x}" if "line" in h.reachable else None,
                slack_user_id=f"U{h.id:010d}" if "slack" in h.reachable else None,
                track=h.track,
                offer_date=h.offer_date,
                accepted_date=h.accepted_date,
                start_date=h.start_date,
                status=h.status,
            )
            for h in holders
        )
        session.flush()
        session.add_all(ChannelOptOut(holder_id=h.id, channel="line") for h in holders[::20])
        rows = [
            {
                "key": t.key, "holder_id": t.holder_id, "cadence": t.key.split(":")[1], "phase": t.phase,
                "seq": t.seq, "kind": t.kind, "channel": t.channel, "due_at": t.due_at, "status": "sent",
            }
            for touches in history.values()
            for t in touches
        ]  # fmt: skip
        session.execute(Touch.__table__.insert(), rows)


def baseline_tick(session: Session, policy: Policy, now: datetime) -> int:
    """The straightforward way: one ORM object graph per holder, its whole season computed each time."""
    calendar = BusinessCalendar.from_policy(policy)
    low = shift_moment(now, policy.scheduler.catch_up, -1)
    high = shift_moment(now, policy.scheduler.horizon, 1)
    created = 0
    for holder in session.scalars(select(OfferHolder)):
        if holder.status not in ("offered", "accepted"):
            for touch in holder.touches:
                if touch.status == "planned":
                    touch.status = "cancelled"
            continue
        match = policy.cadence_for(holder.track, holder.department)
        if match is None:
            continue
        contact = {"email": holder.email, "line": holder.line_user_id, "slack": holder.slack_user_id}
        opted = {o.channel for o in holder.opt_outs}
        snapshot = HolderSnapshot(
            holder.id, holder.external_id, holder.track, holder.department, holder.status, holder.offer_date,
            holder.accepted_date, holder.start_date, frozenset(c for c, v in contact.items() if v) - opted,
        )  # fmt: skip
        existing = {t.key: t for t in holder.touches}
        for touch in season_schedule(snapshot, match[0], match[1], policy, calendar):
            old = existing.get(touch.key)
            if old is None and low <= touch.due_at <= high:
                session.add(
                    Touch(
                        key=touch.key, holder_id=holder.id, cadence=touch.cadence, phase=touch.phase,
                        seq=touch.seq, kind=touch.kind, channel=touch.channel, template=touch.template,
                        event=touch.event, survey_form=touch.survey_form, due_at=touch.due_at,
                        assignee=touch.assignee, note=touch.note,
                    )
                )  # fmt: skip
                created += 1
            elif old is not None and old.status == "planned" and old.due_at != touch.due_at:
                old.due_at = touch.due_at
    return created


def time_database(m: int, policy: Policy) -> tuple[float, int, float, int]:
    """(baseline seconds, created) and (our tick seconds, created) on copies of one SQLite database."""
    with tempfile.TemporaryDirectory() as tmp:
        base_url = f"sqlite:///{tmp}/base.db"
        build_db(base_url, m, policy)
        ours_url = f"sqlite:///{tmp}/ours.db"
        build_db(ours_url, m, policy)  # the same data (same seed), built again
        started = time.perf_counter()
        with session_scope(base_url) as session:
            base_created = baseline_tick(session, policy, NOW)
        base_seconds = time.perf_counter() - started

        started = time.perf_counter()
        with session_scope(ours_url) as session:
            holders, existing = load_snapshots(session, policy, NOW)
            counts = apply_plan(
                session, plan(holders, policy, existing, NOW, BusinessCalendar.from_policy(policy))
            )
        ours_seconds = time.perf_counter() - started
    return base_seconds, base_created, ours_seconds, counts.created


def _season_rows(
    holders: list[HolderSnapshot], seasons: SeasonCache, first_id: int
) -> list[tuple[object, ...]]:
    """The history rows (sent) of ``holders``, one tuple per touch, as ``season_schedule`` gives them
    but with each distinct season computed once (channels chosen per holder)."""
    cutoff = (NOW - timedelta(days=1)).timestamp()
    rows: list[tuple[object, ...]] = []
    next_id = first_id
    for h in holders:
        match = seasons.cadence_for(h)
        season = seasons.season_for(h)
        if match is None or season is None:
            continue
        for slot, stamp in zip(season.slots, season.stamps, strict=True):
            if stamp >= cutoff:
                continue
            channel = _channel_for(slot, h.reachable)
            if channel is None:
                continue
            key = f"{h.external_id}:{slot.suffix}"
            rows.append((next_id, key, h.id, match[0], slot.phase, slot.seq, slot.kind, channel, slot.due_at))
            next_id += 1
    return rows


_HOLDER_COLUMNS = (
    "id", "external_id", "name", "email", "line_user_id", "slack_user_id", "track", "offer_date",
    "accepted_date", "start_date", "status", "created_at", "updated_at",
)  # fmt: skip
_TOUCH_COLUMNS = ("id", "key", "holder_id", "cadence", "phase", "seq", "kind", "channel", "due_at", "status",
                  "attempts", "suppressed_count", "in_doubt_resends", "created_at")  # fmt: skip


def bulk_db(url: str, n: int, policy: Policy, chunk: int = 50_000) -> int:
    """K holders and their history so far, streamed in chunks: COPY on PostgreSQL, Core executemany on
    SQLite (the ORM seed took over 30 minutes at 1M); memory flat in K."""
    holders = make_holders(n, seed=13)
    calendar = BusinessCalendar.from_policy(policy)
    engine = get_engine(url)  # migrated
    stamp = datetime(2026, 3, 1, tzinfo=UTC)
    seasons = SeasonCache(policy, calendar)
    touches = 0
    postgres = url.startswith("postgresql")
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for start in range(0, len(holders), chunk):
            part = holders[start : start + chunk]
            holder_rows = [
                (
                    h.id, h.external_id, f"内定者 {h.id}",
                    f"h{h.id}@example.ac.jp" if "email" in h.reachable else None,
                    f"U{h.id:032x}" if "line" in h.reachable else None,
                    f"U{h.id:010d}" if "slack" in h.reachable else None,
                    h.track, h.offer_date, h.accepted_date, h.start_date, h.status, stamp, stamp,
                )
                for h in part
            ]  # fmt: skip
            touch_rows = [(*row, "sent", 0, 0, 0, stamp) for row in _season_rows(part, seasons, touches + 1)]
            touches += len(touch_rows)
            opt_rows = [(h.id, "line", stamp, "web") for h in part if h.id % 20 == 0]
            if postgres:
                for table, columns, data in (
                    ("offer_holders", _HOLDER_COLUMNS, holder_rows),
                    ("touches", _TOUCH_COLUMNS, touch_rows),
                    ("channel_opt_outs", ("holder_id", "channel", "at", "source"), opt_rows),
                ):
                    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                        for row in data:
                            copy.write_row(row)
            else:

                def text(row: tuple[object, ...]) -> tuple[object, ...]:
                    return tuple(
                        v.astimezone(UTC).replace(tzinfo=None).isoformat(" ") if isinstance(v, datetime)
                        else v.isoformat() if isinstance(v, date) else v
                        for v in row
                    )  # fmt: skip

                for table, columns, data in (
                    ("offer_holders", _HOLDER_COLUMNS, holder_rows),
                    ("touches", _TOUCH_COLUMNS, touch_rows),
                    ("channel_opt_outs", ("holder_id", "channel", "at", "source"), opt_rows),
                ):
                    marks = ", ".join("?" * len(columns))
                    cursor.executemany(
                        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                        [text(r) for r in data],
                    )
        if postgres:
            cursor.execute("SELECT setval('offer_holders_id_seq', (SELECT max(id) FROM offer_holders))")
            cursor.execute("SELECT setval('touches_id_seq', (SELECT max(id) FROM touches))")
        raw.commit()
    finally:
        raw.close()
    if postgres:
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    return touches


def tick_child(mode: str, url: str) -> None:
    """Two ticks in this process, as a scheduler runs them: the first (every season computed) at NOW,
    then the steady one ten minutes later, after delivery sent what was due (those touches marked
    sent, as delivery would). Prints for each: seconds, touches created, holders loaded; then the
    peak RSS in MiB."""
    from tests.conftest import make_context

    policy = load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy
    get_engine(url)  # migrations checked before the clock starts, as in a running scheduler
    figures: list[str] = []
    with tempfile.TemporaryDirectory() as var:
        context = make_context(url, Path(var))
        assert context.policy is not None
        for now in (NOW, NOW + timedelta(minutes=10)):
            started = time.perf_counter()
            if mode == "ours":
                counts = plan_tick(context, now)
                created, loaded = counts.created, counts.loaded
            else:
                with session_scope(url) as session:
                    holders, existing = load_snapshots(session, policy, now)
                    result = plan(holders, policy, existing, now, BusinessCalendar.from_policy(policy))
                    created, loaded = apply_plan(session, result).created, len(holders)
            figures += [str(time.perf_counter() - started), str(created), str(loaded)]
            with session_scope(url) as session:  # delivery's part, outside the timed tick
                session.execute(
                    Touch.__table__.update()  # type: ignore[attr-defined]
                    .where(Touch.status == "planned", Touch.due_at <= now + timedelta(minutes=10))
                    .values(status="sent")
                )
    # VmHWM, not ru_maxrss: Linux carries the parent's high-water mark over fork and exec
    status = Path("/proc/self/status").read_text().split("VmHWM:")[1].split()
    print(" ".join([*figures, str(int(status[0]) / 1024)]))


def time_ticks(k: int, policy: Policy, backend: str, skip_full: bool = False) -> tuple[float, float]:
    """The tick end to end at K holders: ours and the full tick, each on its own copy of one database
    (a file copy on SQLite, CREATE DATABASE … TEMPLATE on PostgreSQL). Returns (full, ours) steady s."""
    with tempfile.TemporaryDirectory() as tmp:
        postgres = None
        if backend == "postgres":
            from tests.services import start_postgres

            postgres = start_postgres(Path(tmp) / "pg")
            base_url = postgres.create_database("tick_base")
        else:
            base = Path(tmp) / "base.db"
            base_url = f"sqlite:///{base}"
        try:
            started = time.perf_counter()
            touches = bulk_db(base_url, k, policy)
            dispose_engines()  # the WAL checkpointed / no connection left on the template
            print(f"tick     {k:>8,} holders, {touches:,} past touches on {backend} (seeded in "
                  f"{time.perf_counter() - started:.0f} s)")  # fmt: skip
            steady = {"full": float("nan")}
            for mode in ("ours",) if skip_full else ("full", "ours"):
                if postgres is not None:
                    url = postgres.create_database(f"tick_{mode}", template="tick_base")
                else:
                    copy = Path(tmp) / f"{mode}.db"
                    shutil.copy(base, copy)
                    url = f"sqlite:///{copy}"
                out = subprocess.run(
                    [sys.executable, __file__, "--child", mode, url],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout.split()
                what = "full tick (every active holder loaded)" if mode == "full" else "ours: plan_tick"
                for label, at in (("first", 0), ("steady", 3)):
                    seconds, created, loaded = float(out[at]), int(out[at + 1]), int(out[at + 2])
                    print(f"  {what:40s} {label:6s} {seconds:7.3f} s, {created:,} created, "
                          f"{loaded:,} holders loaded")  # fmt: skip
                steady[mode] = float(out[3])
                print(f"  {what:40s} peak RSS {float(out[6]):7.1f} MiB")
                if postgres is not None:
                    postgres.drop_database(f"tick_{mode}")
                else:
                    copy.unlink()
        finally:
            if postgres is not None:
                postgres.stop()
        target = 1.5 if k <= 100_000 else 10.0
        verdict = "met" if steady["ours"] <= target else "NOT met"
        print(f"  steady tick at {k:,} on {backend}: {steady['ours']:.3f} s (target ≤ {target} s: {verdict})")
    return steady["full"], steady["ours"]


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        tick_child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--holders", type=int, action="append", help="holders for the pure planner (repeatable; 0: skip)"
    )
    parser.add_argument(
        "--baseline-holders", type=int, default=2000, help="holders in the ORM baseline's database (0: skip)"
    )
    parser.add_argument(
        "--tick-holders", type=int, action="append", help="holders for the end-to-end tick (repeatable)"
    )
    parser.add_argument("--backend", choices=("sqlite", "postgres"), action="append", help="(repeatable)")
    parser.add_argument("--skip-full", action="store_true", help="time only our tick (no full-tick side)")
    args = parser.parse_args()
    sizes = [n for n in (args.holders or [10_000, 100_000]) if n > 0]
    policy = load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy

    print(f"planning tick at {NOW.isoformat()} (example policy, horizon {policy.scheduler.horizon}, "
          f"catch-up {policy.scheduler.catch_up})")  # fmt: skip
    results = {}
    for n in sizes:
        seconds, peak, created, history = time_planner(n, policy)
        results[n] = seconds
        print(f"planner  {n:>8,} holders, {history:>9,} past touches: {seconds:7.3f} s, "
              f"peak {peak:7.1f} MiB, {created:,} touches to create")  # fmt: skip

    m = args.baseline_holders
    if m > 0:
        base_seconds, base_created, ours_seconds, ours_created = time_database(m, policy)
        print(f"baseline {m:>8,} holders, per-holder ORM loop on SQLite: {base_seconds:7.3f} s "
              f"({base_created:,} created)")  # fmt: skip
        print(f"ours     {m:>8,} holders, load + plan + apply on SQLite:  {ours_seconds:7.3f} s "
              f"({ours_created:,} created); ORM / ours {base_seconds / ours_seconds:.1f}x")  # fmt: skip
    if sizes:
        n = max(sizes)
        print(f"pure planner for {n:,} holders: {results[n]:.3f} s (target < 2 s: "
              f"{'met' if results[n] < 2 else 'NOT met'})")  # fmt: skip

    ratios = []
    for backend in args.backend or ["sqlite"]:
        for k in args.tick_holders or [100_000]:
            full, ours = time_ticks(k, policy, backend, args.skip_full)
            ratios.append(f"{backend} {k:,}: full {full:.3f} s / ours {ours:.3f} s = {full / ours:.1f}x")
    # the ratio compares the same scope on both sides: the steady tick end to end on copies of one database
    print("ratio (steady tick, end to end): " + "; ".join(ratios))


if __name__ == "__main__":
    main()
