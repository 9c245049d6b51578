"""`import-holders` of a generated N-row CSV on SQLite and on PostgreSQL, beside two baselines.

    python benchmarks/import_holders.py [--rows 100000] [--no-postgres] [--no-per-row]

Each import runs in its own child process on a fresh, migrated database, so the peak memory is the
process's peak RSS (ru_maxrss: interpreter and libraries included) and nothing is shared between runs.
Timed: reading and validating the file, the import and the commit (not the interpreter start).

* ``bulk``: ``read_holders_csv`` + ``import_holders`` (set-based upsert per chunk), then the same file
  again (every row unchanged) and a file with 10 % of the rows changed (start date, status, name);
* baseline ``per-row``: the same through the per-row ORM import as it was (tests/import_reference.py);
  on PostgreSQL it cannot run at this size (one IN list over 65,535 bind parameters), which is reported;
* baseline ``executemany``: the same parse, then a plain Core ``executemany`` INSERT of the holders (no
  upsert, no change rows): the floor of writing these rows through SQLAlchemy.

The last line is the ratio per-row / bulk on SQLite (and bulk / executemany per backend above it).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

JST = timezone(timedelta(hours=9))
NOW = datetime(2026, 12, 2, 10, 0, tzinfo=JST)
HEADER = [
    "external_id",
    "name",
    "email",
    "line_user_id",
    "slack_user_id",
    "track",
    "department",
    "offer_date",
    "start_date",
    "status",
    "mentor_email",
]
DEPARTMENTS = ["営業部", "開発部", "人事部", "経理部", "マーケティング部", ""]


def write_csv(path: Path, n: int, *, changed_every: int = 0, seed: int = 18) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        for i in range(n):
            offer = date(2026, 3, 1) + timedelta(days=rng.randrange(240))
            start = date(2027, 4, 1)
            status = rng.choice(["offered", "accepted", "accepted", "内定", "承諾"])
            name = f"内定者 {i:06d}"
            if changed_every and i % changed_every == 0:
                start, status, name = date(2027, 4, 5), "joined", name + " (改)"
            writer.writerow(
                [
                    f"NG-{i:07d}",
                    name,
                    f"holder{i}@example.ac.jp",
                    f"U{i:032x}" if i % 3 == 0 else "",
                    f"U{i:010d}" if i % 5 == 0 else "",
                    "中途" if i % 7 == 0 else "new_grad",
                    DEPARTMENTS[i % len(DEPARTMENTS)],
                    offer.isoformat(),
                    start.strftime("%Y/%m/%d"),
                    status,
                    "mentor@example.co.jp" if i % 2 else "",
                ]
            )


def child(mode: str, url: str, paths: list[str]) -> None:
    """One import (or a sequence of them) in this process; prints JSON on the last line."""
    from sqlalchemy import insert

    from followup.db.models import OfferHolder
    from followup.db.session import get_engine, session_scope
    from followup.holders.importer import import_holders, read_holders_csv
    from tests.import_reference import import_holders_per_row

    get_engine(url)  # migrated by the parent: this only checks the revision
    results = []
    for path in paths:
        started = time.perf_counter()
        rows, _ = read_holders_csv(path)
        parsed = time.perf_counter()
        with session_scope(url) as session:
            if mode == "executemany":
                session.execute(
                    insert(OfferHolder.__table__),
                    [
                        {
                            "external_id": r.external_id,
                            "name": r.name,
                            "email": r.email,
                            "line_user_id": r.address("line_user_id"),
                            "slack_user_id": r.address("slack_user_id"),
                            "track": r.track,
                            "department": r.department,
                            "offer_date": r.offer_date,
                            "start_date": r.start_date,
                            "status": r.status,
                            "mentor_email": r.mentor_email,
                            "created_at": NOW,
                            "updated_at": NOW,
                        }
                        for r in rows
                    ],
                )
                counts = [len(rows), 0, 0]
            else:
                run = import_holders if mode == "bulk" else import_holders_per_row
                summary = run(session, rows, now=NOW)
                counts = [summary.created, summary.updated, summary.unchanged]
        del rows
        results.append({"parse": parsed - started, "total": time.perf_counter() - started, "counts": counts})
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"runs": results, "peak_mib": peak}))


def run_child(mode: str, url: str, paths: list[Path]) -> dict[str, object] | str:
    from followup.db.session import dispose_engines, get_engine

    get_engine(url)  # create and migrate outside the timed child
    dispose_engines()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", mode, url, *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if proc.returncode != 0:
        return proc.stderr.strip().splitlines()[-1][:160]
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], sys.argv[4:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-per-row", action="store_true", help="skip the (slow) per-row baseline")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-import-"))
    new, changed = tmp / "holders.csv", tmp / "holders-changed.csv"
    write_csv(new, args.rows)
    write_csv(changed, args.rows, changed_every=10)
    print(f"{args.rows:,} rows, {new.stat().st_size / 2**20:.1f} MiB CSV")

    backends: list[tuple[str, object]] = [("sqlite", None)]
    postgres = None
    if not args.no_postgres:
        from tests.services import start_postgres

        postgres = start_postgres(tmp / "pg")
        backends.append(("postgresql", postgres))
    figures: dict[tuple[str, str], float] = {}
    try:
        for backend, server in backends:
            modes = ["bulk", "executemany"] + ([] if args.no_per_row else ["per-row"])
            for mode in modes:
                name = f"{backend}-{mode}"
                url = (
                    f"sqlite:///{tmp}/{name}.db"
                    if server is None
                    else server.create_database(name.replace("-", "_"))  # type: ignore[attr-defined]
                )
                paths = [new, new, changed] if mode == "bulk" else [new]
                result = run_child(mode, url, paths)
                if isinstance(result, str):
                    print(f"{backend:10} {mode:12} failed: {result}")
                    continue
                runs = result["runs"]
                assert isinstance(runs, list)
                labels = ["new file", "same file again", "10 % changed"]
                for label, r in zip(labels, runs, strict=False):
                    print(
                        f"{backend:10} {mode:12} {label:16} {r['total']:7.2f} s (parse {r['parse']:.2f} s)"
                        f"  created/updated/unchanged {tuple(r['counts'])}"
                    )
                print(f"{backend:10} {mode:12} peak RSS {result['peak_mib']:.0f} MiB")
                figures[(backend, mode)] = runs[0]["total"]
    finally:
        if postgres is not None:
            postgres.stop()
    for backend, _ in backends:
        if (backend, "executemany") in figures and (backend, "bulk") in figures:
            bulk, plain = figures[(backend, "bulk")], figures[(backend, "executemany")]
            print(f"{backend}: bulk {bulk:.2f} s / plain executemany {plain:.2f} s = {bulk / plain:.2f}x")
    if ("sqlite", "per-row") in figures:
        per_row, bulk = figures[("sqlite", "per-row")], figures[("sqlite", "bulk")]
        print(
            f"ratio (SQLite, new file, {args.rows:,} rows): per-row ORM {per_row:.2f} s"
            f" / bulk {bulk:.2f} s = {per_row / bulk:.1f}x"
        )


if __name__ == "__main__":
    main()
