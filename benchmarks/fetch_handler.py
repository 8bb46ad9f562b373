"""The Fetch handler's CPU per request, in-process: no sockets, no clients, the real partition service.

    python benchmarks/fetch_handler.py [--calls 10000] [--rounds 9] [--kbroker-src DIR ...]

Each --kbroker-src (a directory holding a `kbroker` package, e.g. `git archive <rev> kbroker`
unpacked; default: this checkout) runs in its own process, alternating, --rounds times, so drift
in the machine's load hits each alike. A process fills 16 partitions with 3 batches of 50
100-byte records and times `handle_fetch` on: 1 partition with data, 16 partitions with data, 16
partitions at their log end (an idle consumer's re-read). The figure is CPU time (process_time)
per call, the median over rounds of each round's best of 5 timings: the per-partition cost of the
read path, which end-to-end runs (bench.py) hide behind the client's cost per record.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = (("1 partition, data", 1, 0), ("16 partitions, data", 16, 0), ("16 partitions, at the log end", 16, 150))


async def measure(calls: int) -> dict[str, float]:
    """This process's kbroker: µs of CPU per handle_fetch, best of 5, per case."""
    from kbroker.broker.broker import Broker
    from kbroker.broker.dispatch import RequestContext
    from kbroker.broker.handlers.fetch import handle_fetch
    from kbroker.config import build_config
    from kbroker.log.log_manager import LogManager
    from kbroker.wire.frames import RequestHeader
    from kbroker.wire.messages.fetch import FetchPartition, FetchRequest, FetchTopic
    from kbroker.wire.records import Record, build_batch

    class Connection:
        peer, listener_name, sasl = "127.0.0.1:9", None, None

    with tempfile.TemporaryDirectory() as data_dir:
        config = build_config({"log.dirs": data_dir})
        logs = LogManager(config.data_dir, config.log_defaults()).load()
        logs.create_topic("t", 16, {})
        broker = Broker(config, logs)
        for partition in range(16):
            for _ in range(3):
                appends = broker.partitions.appends(1)
                batch = bytearray(build_batch([Record(i, 1, b"k", b"v" * 100) for i in range(50)]))
                appends.produce("t", partition, memoryview(batch), 9, None, 1)
                appends.complete(1000)
        ctx = RequestContext(broker, Connection(), RequestHeader(1, 12, 1, "bench"))
        results = {}
        for name, count, offset in CASES:
            request = FetchRequest(
                max_wait_ms=0, min_bytes=1, max_bytes=1 << 20, isolation_level=0, session_id=0, session_epoch=-1,
                topics=[FetchTopic(topic="t", topic_id=uuid.UUID(int=0), partitions=[
                    FetchPartition(partition=p, fetch_offset=offset, partition_max_bytes=1 << 20)
                    for p in range(count)])], forgotten_topics_data=[], rack_id="")
            timings = []
            for _ in range(5):
                started = time.process_time()
                for _ in range(calls):
                    handle_fetch(ctx, request)
                timings.append((time.process_time() - started) / calls * 1e6)
            results[name] = min(timings)
        broker.flusher.close()
        logs.shutdown()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--kbroker-src", action="append", default=[])
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(measure(args.calls))))
        return
    sources = args.kbroker_src or [str(ROOT)]
    rounds: dict[str, list[dict[str, float]]] = {source: [] for source in sources}
    for _ in range(args.rounds):
        for source in sources:
            env = {**os.environ, "PYTHONPATH": source}
            out = subprocess.run([sys.executable, __file__, "--child", "--calls", str(args.calls)], env=env,
                                 capture_output=True, text=True, check=True).stdout
            rounds[source].append(json.loads(out))
    for name, _, _ in CASES:
        for source in sources:
            print(f"{name:32} {statistics.median(r[name] for r in rounds[source]):8.2f} µs/Fetch  {source}")


if __name__ == "__main__":
    main()
