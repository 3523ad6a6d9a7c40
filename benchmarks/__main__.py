"""``python -m benchmarks [--quick] [--out DIR]``: run the benchmark and write its report."""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.errors import BenchmarkError
from benchmarks.report import render_markdown, write_all
from benchmarks.runner import PHASES, BenchConfig, log, run

DEFAULT_OUT = Path("benchmarks") / "results"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; the exit status is 0 when it ran (targets are reported, not asserted)."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark herald against raw Celery on this machine's Postgres and Redis.",
    )
    parser.add_argument("--quick", action="store_true", help="a shorter run (about a minute)")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"report directory (default {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)} (default: all)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work directory (process logs, projects)"
    )
    parser.add_argument(
        "--log-level", default="WARNING", help="herald's log level in its processes"
    )
    args = parser.parse_args(argv)
    phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    unknown = sorted(set(phases) - set(PHASES))
    if unknown:
        parser.error(f"unknown phase(s) {', '.join(unknown)}; choose from {', '.join(PHASES)}")
    config = BenchConfig.quick() if args.quick else BenchConfig.full()
    config = dataclasses.replace(config, phases=phases, log_level=args.log_level.upper())
    # SIGTERM unwinds like Ctrl-C: the run's processes stop and its database is dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        report = run(config, keep=args.keep)
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc.message}", file=sys.stderr)
        return 1
    paths = write_all(report, args.out)
    print(render_markdown(report))
    log("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
