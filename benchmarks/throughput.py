"""Produce N records of S bytes with confluent-kafka (librdkafka), consume them back, verify.

    python benchmarks/throughput.py                      # starts its own broker in a temp dir
    python benchmarks/throughput.py --bootstrap host:port  # against a running broker

Prints one JSON line per phase and a summary table: produce and consume msg/s and MB/s,
end-to-end latency p50/p99 at a fixed rate, and the broker's peak RSS (sampled every 50 ms
when the benchmark started the broker). Every consumed record is checked: count and an
order-independent checksum (sum of CRC32s); a benchmark that loses or corrupts data exits non-zero.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import psutil
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.broker_process import BrokerProcess  # noqa: E402


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.running = True

    def run(self) -> None:
        while self.running:
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.05)


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result(30)


def payload(i: int, size: int) -> bytes:
    head = struct.pack(">q", i)
    return head + bytes((i + j) & 0xFF for j in range(min(size - 8, 32))) + b"\x00" * max(size - 40, 0)


def produce(bootstrap: str, topic: str, count: int, size: int, extra: dict) -> dict:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "batch.size": 1_000_000,
                         "queue.buffering.max.messages": 1_000_000, **extra})
    errors = []
    values = [payload(i, size) for i in range(min(count, 10_000))]

    def delivered(err, _msg):
        if err is not None:
            errors.append(err)

    checksum = 0
    started = time.perf_counter()
    for i in range(count):
        value = values[i % len(values)]
        checksum += zlib.crc32(value)
        while True:
            try:
                producer.produce(topic, value, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    remaining = producer.flush(120)
    elapsed = time.perf_counter() - started
    if errors or remaining:
        raise SystemExit(f"produce failed: {len(errors)} errors ({errors[:3]}), {remaining} undelivered")
    return {"phase": "produce", "records": count, "bytes": count * size, "seconds": elapsed,
            "msg_per_s": count / elapsed, "mb_per_s": count * size / elapsed / 1e6, "checksum": checksum}


def consume(bootstrap: str, topic: str, partitions: int, count: int) -> dict:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "kbroker-benchmark",
                         "enable.auto.commit": False, "fetch.max.bytes": 52428800})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen = 0
    total_bytes = 0
    checksum = 0
    started = time.perf_counter()
    deadline = started + 300
    while seen < count and time.perf_counter() < deadline:
        for message in consumer.consume(10_000, 1.0):
            if message.error():
                raise SystemExit(f"consume error: {message.error()}")
            value = message.value()
            checksum += zlib.crc32(value)
            total_bytes += len(value)
            seen += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    return {"phase": "consume", "records": seen, "bytes": total_bytes, "seconds": elapsed,
            "msg_per_s": seen / elapsed, "mb_per_s": total_bytes / elapsed / 1e6, "checksum": checksum}


def latency(bootstrap: str, topic: str, rate: int, seconds: float, client: dict | None = None) -> dict:
    """End-to-end latency at a fixed produce rate: send time is carried in each value. `client`:
    settings both clients share (e.g. security.protocol and its keys)."""
    client = client or {}
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "kbroker-latency",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 500, **client})
    consumer.assign([TopicPartition(topic, 0, 0)])
    samples: list[float] = []
    total = int(rate * seconds)
    done = threading.Event()

    def read() -> None:
        while len(samples) < total and not done.is_set():
            message = consumer.poll(0.2)  # one at a time: consume(n) would wait for n records
            if message is not None and not message.error():
                samples.append(time.perf_counter_ns() - struct.unpack(">q", message.value()[:8])[0])

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(1.0)  # let the consumer's first fetch be waiting
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": 1, **client})
    started = time.perf_counter()
    for i in range(total):
        target = started + i / rate
        while (now := time.perf_counter()) < target:
            time.sleep(min(target - now, 0.001))
        producer.produce(topic, struct.pack(">q", time.perf_counter_ns()) + b"x" * 92)
        producer.poll(0)
    producer.flush(30)
    reader.join(30)
    done.set()
    consumer.close()
    ms = sorted(s / 1e6 for s in samples)
    if len(ms) < total:
        raise SystemExit(f"latency phase lost records: {len(ms)}/{total}")
    return {"phase": "latency", "rate": rate, "records": len(ms), "p50_ms": statistics.median(ms),
            "p99_ms": ms[int(len(ms) * 0.99) - 1], "max_ms": ms[-1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", help="use a running broker instead of starting one")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--acks", default="all")
    parser.add_argument("--compression", default="none")
    parser.add_argument("--latency-rate", type=int, default=1000, help="msg/s for the latency phase (0: skip)")
    parser.add_argument("--latency-seconds", type=float, default=5.0)
    parser.add_argument("-o", "--override", action="append", default=[], help="broker config KEY=VALUE")
    parser.add_argument("-p", "--producer-config", action="append", default=[],
                        help="librdkafka producer config KEY=VALUE (e.g. linger.ms=0, enable.idempotence=true)")
    args = parser.parse_args()

    workdir = None
    sampler = None
    broker = None
    bootstrap = args.bootstrap
    if bootstrap is None:
        workdir = Path(tempfile.mkdtemp(prefix="kbroker-bench-"))
        overrides = dict(item.split("=", 1) for item in args.override)
        broker = BrokerProcess(workdir / "data", overrides).start()
        bootstrap = broker.bootstrap
        sampler = RssSampler(broker.process.pid)
        sampler.start()
    try:
        topic = f"bench-{os.getpid()}-{int(time.time())}"
        create_topic(bootstrap, topic, args.partitions)
        results = [produce(bootstrap, topic, args.records, args.size,
                           {"acks": args.acks, "compression.type": args.compression,
                            **dict(item.split("=", 1) for item in args.producer_config)})]
        results.append(consume(bootstrap, topic, args.partitions, args.records))
        if results[1]["records"] != args.records or results[1]["checksum"] != results[0]["checksum"]:
            print(json.dumps(results), file=sys.stderr)
            raise SystemExit("verification failed: consumed records differ from produced ones")
        if args.latency_rate:
            latency_topic = topic + "-latency"
            create_topic(bootstrap, latency_topic, 1)
            results.append(latency(bootstrap, latency_topic, args.latency_rate, args.latency_seconds))
        if sampler is not None:
            results.append({"phase": "broker", "peak_rss_mib": sampler.peak / 2**20})
        for result in results:
            print(json.dumps(result))
        produced, consumed = results[0], results[1]
        print(f"\n| records | size | produce msg/s | produce MB/s | consume msg/s | consume MB/s |"
              f"\n|---|---|---|---|---|---|\n| {args.records:,} | {args.size} B | {produced['msg_per_s']:,.0f} |"
              f" {produced['mb_per_s']:.1f} | {consumed['msg_per_s']:,.0f} | {consumed['mb_per_s']:.1f} |")
        return 0
    finally:
        if sampler is not None:
            sampler.running = False
        if broker is not None:
            broker.stop()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
