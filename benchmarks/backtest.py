"""The backtest of the rules over a generated season: the incremental replay (one history per
segment, evaluated only on the days after an event) beside a naive replay that rebuilds every
holder's history truncated at each day and evaluates every day.

    python benchmarks/backtest.py [--holders 10000] [--baseline-holders 1000] [--seed 7]

The naive replay is run on the first ``--baseline-holders`` holders (it takes minutes for 10,000);
times are wall clock and CPU (the CPU time is what to compare on a shared machine); the ratio on the
last line compares both replays' CPU time on those same holders (per-holder work is
independent, so the naive time for all holders is that time scaled, printed as an estimate). Both
replays must give the same result per holder, checked here.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from followup.config import load_policy
from followup.outcomes.backtest import run_backtest
from followup.outcomes.synthetic import generated_season

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--holders", type=int, default=10_000)
    parser.add_argument("--baseline-holders", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    policy = load_policy(REPO / "config" / "followup.yaml").policy
    season = generated_season(args.holders, seed=args.seed)
    touches = sum(len(t) for t in season.touches.values())
    print(f"season: {args.holders} holders, {touches} touches, {len(season.surveys)} surveys")

    began, cpu = time.perf_counter(), time.process_time()
    result = run_backtest(season, policy)
    fast, fast_cpu = time.perf_counter() - began, time.process_time() - cpu
    q = result.lead_quartiles()
    print(
        f"incremental: {fast:.2f} s ({fast_cpu:.2f} s CPU) for {args.holders} holders "
        f"({result.evaluations} evaluations); "
        f"recall {result.recall:.1%}, lead median {q[1] if q else 0:.0f} d, "
        f"false alarms {result.false_alarms_per_100_per_month or 0:.1f}/100/month"
    )

    n = min(args.baseline_holders, args.holders)
    subset = season.only({h.holder_id for h in season.holders[:n]})
    began, cpu = time.perf_counter(), time.process_time()
    fast_subset = run_backtest(subset, policy)
    fast_n, fast_n_cpu = time.perf_counter() - began, time.process_time() - cpu
    began, cpu = time.perf_counter(), time.process_time()
    naive = run_backtest(subset, policy, strategy="naive")
    slow_n, slow_n_cpu = time.perf_counter() - began, time.process_time() - cpu
    if naive.replays != fast_subset.replays:
        raise SystemExit("the incremental and the naive replay disagree")
    print(
        f"naive baseline: {slow_n:.2f} s ({slow_n_cpu:.2f} s CPU) for {n} holders "
        f"({naive.evaluations} evaluations), incremental {fast_n:.2f} s ({fast_n_cpu:.2f} s CPU) for the "
        f"same {n}; naive for {args.holders} ≈ {slow_n_cpu * args.holders / n:.0f} s CPU"
    )
    print(f"ratio (naive / incremental CPU time, same {n} holders): {slow_n_cpu / fast_n_cpu:.1f}x")


if __name__ == "__main__":
    main()
