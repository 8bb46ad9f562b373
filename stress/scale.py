"""10,000 partitions and 1,000 concurrent connections: start-up time, RSS and open descriptors.

    python stress/scale.py                                   # 100 topics x 100 partitions, 1,000 connections
    python stress/scale.py --topics 10 --partitions 100 --connections 200 --seconds 10

The long version of tests/broker/test_scale.py (the harness is tests/scale_harness.py):
  1. a fresh broker; create the topics and put one batch in every partition;
  2. SIGTERM and start again (clean start-up), then SIGKILL and start again (unclean start-up:
     every segment above its recovery point is CRC-scanned); each start-up is timed from the
     process start to the first answered request, with the broker's own "log loaded" figure;
  3. `--connections` connections at once, each producing to its own partition and fetching the
     batch back for `--seconds`;
and prints, after each step, the broker's RSS and open descriptors (a JSON line per step).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kbroker.wire.messages.api_versions import ApiVersionsRequest  # noqa: E402
from tests.broker_process import BrokerProcess  # noqa: E402
from tests.scale_harness import BrokerFootprint, create_topics, fill, raise_client_fd_limit, run_clients  # noqa: E402
from tests.wire_client import WireClient  # noqa: E402


def report(step: str, broker: BrokerProcess, **figures: object) -> None:
    footprint = BrokerFootprint.of(broker.process.pid)
    print(json.dumps({"step": step, "rss_mib": round(footprint.rss_mib, 1), "fds": footprint.fds, **figures}),
          flush=True)


def timed_start(broker: BrokerProcess, timeout: float) -> tuple[float, float | None]:
    """Seconds from the process start to an answered request, and the broker's 'log loaded in' figure."""
    began = time.monotonic()
    broker.start(timeout=timeout)
    with WireClient(broker.bootstrap, timeout=timeout) as client:
        client.request(18, 0, ApiVersionsRequest())
    elapsed = time.monotonic() - began
    loaded = re.findall(r"log loaded in ([0-9.]+) s", broker.log())
    return elapsed, float(loaded[-1]) if loaded else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--topics", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=100, help="per topic")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--open-file-limit", type=int, default=None, help="RLIMIT_NOFILE for the broker")
    parser.add_argument("--keep", action="store_true", help="keep the data dir")
    parser.add_argument("-o", "--override", action="append", default=[], help="broker config KEY=VALUE")
    args = parser.parse_args()
    raise_client_fd_limit()
    overrides = dict(item.split("=", 1) for item in args.override)
    work = Path(tempfile.mkdtemp(prefix="kbroker-scale-"))
    broker = BrokerProcess(work / "data", overrides, open_file_limit=args.open_file_limit)
    total = args.topics * args.partitions
    try:
        began = time.monotonic()
        broker.start()
        asyncio.run(create_topics(broker.port, args.topics, args.partitions))
        created = time.monotonic() - began
        report("created", broker, partitions=total, seconds=round(created, 2))
        began = time.monotonic()
        asyncio.run(fill(broker.port, args.topics, args.partitions))
        report("filled", broker, partitions=total, seconds=round(time.monotonic() - began, 2))

        broker.stop(timeout=300)
        elapsed, loaded = timed_start(broker, timeout=600)
        report("clean start-up", broker, partitions=total, seconds=round(elapsed, 2), log_loaded_seconds=loaded)
        broker.kill()
        elapsed, loaded = timed_start(broker, timeout=600)
        report("unclean start-up", broker, partitions=total, seconds=round(elapsed, 2), log_loaded_seconds=loaded)

        run = asyncio.run(run_clients(broker.port, args.topics, args.partitions, args.connections, args.seconds,
                                      broker.process.pid))
        report("connections", broker, connections=args.connections, connect_seconds=round(run.connect_seconds, 2),
               round_trips=run.round_trips, per_second=round(run.round_trips / args.seconds),
               p50_ms=round(run.percentile(0.5) * 1000, 1), p99_ms=round(run.percentile(0.99) * 1000, 1),
               peak_rss_mib=round(run.peak.rss_mib, 1) if run.peak else None,
               peak_fds=run.peak.fds if run.peak else None, errors=len(run.errors),
               fewest_round_trips_of_a_connection=min(run.per_connection))
        for error in run.errors[:10]:
            print("error:", error, file=sys.stderr)
        if broker.stop(timeout=300) != 0:
            print("broker did not stop cleanly", file=sys.stderr)
            return 1
        return 1 if run.errors else 0
    finally:
        broker.kill()
        if args.keep:
            print(f"data dir kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
