"""`simulate` over a full season (2026-04-01 → 2027-03-31) for N holders, beside the per-day recomputation.

    python benchmarks/simulate_season.py [--holders 10000] [--baseline-holders 500]

Ours is what ``followup simulate`` runs: ``simulate_season`` with the ``FlagTimeline`` observer, each
distinct season computed once per run and each day's planner call given only the holders a slot of
theirs enters the window for. The baseline is the straightforward path, the code as it was:
``cache_seasons=False`` (every holder planned every day, seasons recomputed daily, the whole history)
with the reference flag observer (every holder, every report, all rules). The baseline is slow, so it
runs on M holders, and ours runs on the same M too: the ratio on the last line compares the same work
(and the benchmark checks both give the same records and flag notes). Wall and CPU time are printed:
on a shared machine the CPU time is the steadier figure.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from plan_tick import make_holders  # noqa: E402

from followup.config import load_policy  # noqa: E402
from followup.planning.simulate import FlagTimeline, SimulationResult, simulate_season  # noqa: E402
from tests.planning.simulate_reference import ReferenceFlagTimeline  # noqa: E402

START, END = date(2026, 4, 1), date(2027, 3, 31)


def timed(run: Callable[[], SimulationResult]) -> tuple[float, float, SimulationResult]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holders", type=int, default=10_000)
    parser.add_argument("--baseline-holders", type=int, default=500)
    args = parser.parse_args()
    policy = load_policy(REPO / "config" / "followup.yaml", check_templates=False).policy

    def ours(n: int) -> Callable[[], SimulationResult]:
        holders = make_holders(n)
        return lambda: simulate_season(holders, policy, START, END, observers=[FlagTimeline(policy)])

    def baseline(n: int) -> Callable[[], SimulationResult]:
        holders = make_holders(n)
        observer: Callable[[datetime, SimulationResult], Any] = ReferenceFlagTimeline(policy)
        return lambda: simulate_season(holders, policy, START, END, observers=[observer], cache_seasons=False)

    print(f"simulate {START} → {END} ({(END - START).days + 1} days), example policy")
    n = args.holders
    wall, cpu, result = timed(ours(n))
    verdict = "met" if wall <= 10 else "NOT met"
    print(f"ours     {n:>7,} holders: {wall:7.2f} s wall, {cpu:7.2f} s CPU, {len(result.touches):,} touches, "
          f"{len(result.notes):,} flag notes  (target ≤ 10 s at 10,000: {verdict})")  # fmt: skip

    m = args.baseline_holders
    our_wall, our_cpu, fast = timed(ours(m))
    base_wall, base_cpu, slow = timed(baseline(m))
    same = fast.records() == slow.records() and fast.notes == slow.notes
    print(f"ours     {m:>7,} holders: {our_wall:7.2f} s wall, {our_cpu:7.2f} s CPU")
    print(f"baseline {m:>7,} holders: {base_wall:7.2f} s wall, {base_cpu:7.2f} s CPU "
          f"(per-day recomputation); same records and notes: {same}")  # fmt: skip
    print(f"ratio: baseline {base_wall:.2f} s / ours {our_wall:.2f} s = {base_wall / our_wall:.1f}x "
          f"faster for {m:,} holders (CPU {base_cpu / our_cpu:.1f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
