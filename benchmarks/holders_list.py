"""`holders list --json` on SQLite for N holders: the streamed command beside the old whole-list path.

    python benchmarks/holders_list.py [--holders 100000]

Seeds N holders with the set-based import (benchmarks/import_holders.py's CSV), then times, each in
its own child process (peak RSS from ru_maxrss): ours, the command as shipped (keyset pages, records
written as they come), and the baseline, the previous implementation (every holder as an ORM object
with its opt-outs, one list of records, Rich's ``print_json``), both writing to /dev/null.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def child(mode: str, url: str) -> None:
    started = time.perf_counter()
    if mode == "ours":
        subprocess.run(
            [sys.executable, "-m", "followup", "holders", "list", "--json"],
            env={**os.environ, "FOLLOWUP_DATABASE_URL": url},
            stdout=subprocess.DEVNULL,
            check=True,
        )
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    else:
        from rich.console import Console
        from sqlalchemy import select
        from sqlalchemy.orm import selectinload

        from followup.db.models import OfferHolder
        from followup.db.session import session_scope
        from followup.holders.timeline import holder_record

        with session_scope(url) as session, open(os.devnull, "w") as sink:
            holders = list(
                session.scalars(
                    select(OfferHolder)
                    .options(selectinload(OfferHolder.opt_outs))
                    .order_by(OfferHolder.external_id)
                )
            )
            records = [holder_record(h, [o.channel for o in h.opt_outs]) for h in holders]
            Console(file=sink).print_json(json.dumps(records, ensure_ascii=False))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": time.perf_counter() - started, "peak_mib": peak}))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holders", type=int, default=100_000)
    parser.add_argument(
        "--modes",
        default="ours,baseline",
        help="ours,baseline (default) or ours alone: the baseline needs ~7 GB at 100k holders",
    )
    args = parser.parse_args()
    modes = [m for m in args.modes.split(",") if m in ("ours", "baseline")]
    sys.path.insert(0, str(REPO / "benchmarks"))
    from import_holders import NOW, write_csv

    from followup.db.session import dispose_engines, session_scope
    from followup.holders.importer import import_holders, read_holders_csv

    tmp = Path(tempfile.mkdtemp(prefix="bench-list-"))
    url = f"sqlite:///{tmp}/list.db"
    write_csv(tmp / "h.csv", args.holders)
    rows, _ = read_holders_csv(tmp / "h.csv")
    with session_scope(url) as session:
        import_holders(session, rows, now=NOW)
    del rows
    dispose_engines()
    results = {}
    for mode in modes:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", mode, url],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{mode:9} {results[mode]['seconds']:7.2f} s  peak RSS {results[mode]['peak_mib']:.0f} MiB")
    if "baseline" not in results or "ours" not in results:
        print(f"no ratio: only {', '.join(results)} ran ({args.holders:,} holders)")
        return
    ours, base = results["ours"]["seconds"], results["baseline"]["seconds"]
    print(
        f"ratio ({args.holders:,} holders): baseline {base:.2f} s"
        f" / holders list --json {ours:.2f} s = {base / ours:.1f}x"
    )


if __name__ == "__main__":
    main()
