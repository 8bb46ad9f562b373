"""SIGKILL the broker under an idempotent producer's load, many times, and check every cycle.

    python stress/crash_cycles.py --cycles 200
    python stress/crash_cycles.py --duration 600 --partitions 6 --rate 0   # 0: no rate limit

The long version of tests/broker/test_crash_cycles.py (the harness and its checks are in
tests/crash_harness.py): after each kill and restart, every acknowledged record is present
exactly once, in order, at its acknowledged offset; every batch passes its CRC and the indexes
agree with the log; group commits acknowledged before the kill are intact. Prints one JSON line
per cycle and a summary; exits 1 on the first failed check, with the broker's log tail.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.crash_harness import CrashCycles, HarnessFailure  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=50, help="stop after this many kills")
    parser.add_argument("--duration", type=float, default=None, help="or stop after this many seconds")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--rate", type=float, default=20000, help="records/s (0: as fast as acknowledged)")
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--min-run", type=float, default=0.05, help="shortest load before a kill, seconds")
    parser.add_argument("--max-run", type=float, default=3.0, help="longest load before a kill, seconds")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the data dir")
    parser.add_argument("-o", "--override", action="append", default=[], help="broker config KEY=VALUE")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="kbroker-crash-"))
    settings = dict(item.split("=", 1) for item in args.override)
    started = time.monotonic()
    status = 0
    harness = CrashCycles(workdir / "data", partitions=args.partitions, value_size=args.value_size,
                          rate=args.rate or None, run_s=(args.min_run, args.max_run), seed=args.seed,
                          settings=settings)
    try:
        with harness:
            while len(harness.report.cycles) < args.cycles and (
                    args.duration is None or time.monotonic() - started < args.duration):
                print(json.dumps(asdict(harness.run_cycle())), flush=True)
    except HarnessFailure as failure:
        print(f"FAILED in cycle {len(harness.report.cycles) + 1}: {failure}", file=sys.stderr)
        status = 1
        args.keep = True
    finally:
        if harness.report.cycles:
            print(harness.report.summary())
        print(f"{time.monotonic() - started:.0f}s; data dir {workdir if args.keep else '(removed)'}")
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
