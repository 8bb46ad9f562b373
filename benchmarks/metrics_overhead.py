"""What metrics.listener costs: broker CPU seconds for the same load with metrics off and on.

    python benchmarks/metrics_overhead.py [--records 300000] [--rounds 3]

Each round starts a fresh broker with metrics off, then one with them on (alternating, so drift
in the machine's load hits both), produces --records 100-byte records with confluent-kafka
(linger.ms=0 by default: many small Produce requests, the case where per-request costs show),
consumes them back, verifies count and checksum, and reads the broker's CPU time (user + system)
before it stops; with metrics on, a scrape every second runs meanwhile, as Prometheus would
(every 15 s, usually). Throughput on a shared machine is noisy; the broker's CPU time for a fixed
load is the steadier figure. Prints per round and the medians, and the overhead in percent.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.throughput import consume, create_topic, produce  # noqa: E402
from tests.broker_process import BrokerProcess  # noqa: E402

METRICS_PORT = re.compile(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")


def scrape_every_second(broker: BrokerProcess, stop: threading.Event, scrapes: list[int]) -> None:
    url = f"http://127.0.0.1:{METRICS_PORT.search(broker.log()).group(1)}/metrics"
    while not stop.wait(1.0):
        with urllib.request.urlopen(url, timeout=10) as answer:
            scrapes.append(len(answer.read()))


def one_run(metrics: bool, records: int, producer_config: dict) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="kbroker-metrics-bench-"))
    overrides = {"metrics.listener": "http://127.0.0.1:0"} if metrics else {}
    broker = BrokerProcess(workdir / "data", overrides).start()
    stop = threading.Event()
    scrapes: list[int] = []
    scraper = threading.Thread(target=scrape_every_second, args=(broker, stop, scrapes)) if metrics else None
    try:
        topic = f"overhead-{os.getpid()}-{int(time.time() * 1000)}"
        create_topic(broker.bootstrap, topic, 1)
        process = psutil.Process(broker.process.pid)
        before = process.cpu_times()
        if scraper is not None:
            scraper.start()
        produced = produce(broker.bootstrap, topic, records, 100, producer_config)
        consumed = consume(broker.bootstrap, topic, 1, records)
        after = process.cpu_times()
        if consumed["records"] != records or consumed["checksum"] != produced["checksum"]:
            raise SystemExit("verification failed: consumed records differ from produced ones")
        return {"metrics": metrics, "cpu_s": (after.user + after.system) - (before.user + before.system),
                "produce_msg_per_s": produced["msg_per_s"], "consume_msg_per_s": consumed["msg_per_s"],
                "scrapes": len(scrapes)}
    finally:
        stop.set()
        if scraper is not None and scraper.is_alive():
            scraper.join()
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-p", "--producer-config", action="append", default=["linger.ms=0"],
                        help="librdkafka producer config KEY=VALUE")
    args = parser.parse_args()
    producer_config = dict(item.split("=", 1) for item in args.producer_config)
    runs = []
    for _ in range(args.rounds):
        for metrics in (False, True):
            runs.append(one_run(metrics, args.records, producer_config))
            print(json.dumps(runs[-1]))
    summary = {}
    for metrics in (False, True):
        mine = [r for r in runs if r["metrics"] == metrics]
        summary[metrics] = {key: statistics.median(r[key] for r in mine)
                            for key in ("cpu_s", "produce_msg_per_s", "consume_msg_per_s")}
    off, on = summary[False], summary[True]
    print("\n| metrics | broker CPU s (median) | produce msg/s | consume msg/s |\n|---|---|---|---|")
    for name, row in (("off", off), ("on", on)):
        print(f"| {name} | {row['cpu_s']:.2f} | {row['produce_msg_per_s']:,.0f} | {row['consume_msg_per_s']:,.0f} |")
    print(f"\nCPU overhead with metrics on: {100 * (on['cpu_s'] / off['cpu_s'] - 1):+.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
