"""How long the ``followup`` command takes to start, beside ``python -c pass`` in the same run.

    python benchmarks/cli_startup.py [--runs 7]

Each command runs as a user types it (a fresh interpreter, ``python -m followup``), several times; the
median is printed with the target from issues 10 and 18 (``followup --help`` and every
``followup <command> --help`` ≤ 0.3 s, ``check-config`` ≤ 0.8 s on this 2-core machine). The baseline
is the bare interpreter start, so the ratio is the cost of our imports and work over Python's own
start-up; the slowest command's help is also set beside ``followup --help``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from followup.cli import COMMANDS  # noqa: E402 - the table only: importing it loads no command

FOLLOWUP = [sys.executable, "-m", "followup"]
CASES: tuple[tuple[str, list[str], float | None], ...] = (
    ("python -c pass", [sys.executable, "-c", "pass"], None),
    ("followup --help", [*FOLLOWUP, "--help"], 0.3),
    *((f"followup {name} --help", [*FOLLOWUP, name, "--help"], 0.3) for name in COMMANDS),
    ("followup holders list --help", [*FOLLOWUP, "holders", "list", "--help"], 0.3),
    ("followup check-config", [*FOLLOWUP, "check-config"], 0.8),
)


def median_seconds(command: list[str], runs: int, env: dict[str, str]) -> tuple[float, float]:
    """Median wall-clock and median CPU (user + system) seconds of ``command``: on a shared machine
    the CPU figure is the steadier one."""
    times, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(times), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "FOLLOWUP_DATABASE_URL": f"sqlite:///{tmp}/bench.db"}
        measured = {label: median_seconds(cmd, args.runs, env) for label, cmd, _ in CASES}
    results = {label: wall for label, (wall, _) in measured.items()}
    cpu = {label: used for label, (_, used) in measured.items()}
    baseline = results["python -c pass"]
    for label, _, target in CASES:
        verdict = ""
        if target is not None:
            verdict = f"  target ≤ {target:.1f} s: " + ("met" if results[label] <= target else "MISSED")
        print(
            f"{label:36s} {results[label]:6.3f} s, cpu {cpu[label]:6.3f} s (median of {args.runs}){verdict}"
        )
    help_time = results["followup --help"]
    commands = [f"followup {name} --help" for name in COMMANDS]
    slowest = max(commands, key=results.__getitem__)
    print(
        f"slowest command help: {slowest} {results[slowest]:.3f} s"
        f" = {results[slowest] / help_time:.2f}x followup --help ({help_time:.3f} s);"
        f" cpu {cpu[slowest]:.3f} s = {cpu[slowest] / cpu['followup --help']:.2f}x"
    )
    print(
        f"followup --help {help_time:.3f} s / python -c pass {baseline:.3f} s:"
        f" ratio {help_time / baseline:.1f}x; slowest <command> --help / python -c pass:"
        f" ratio {results[slowest] / baseline:.1f}x"
    )


if __name__ == "__main__":
    main()
