"""read_committed vs read_uncommitted consume throughput on the same transactional log.

    python benchmarks/read_committed.py [--records 200000] [--size 100] [--txn-records 1000]
                                        [--abort-every 10] [--repeats 3]

Starts a broker in a temp dir and writes one partition with our wire client: transactions of
--txn-records records (batches of 100), every --abort-every-th one aborted, each ended with a
WriteTxnMarkers marker, as the transaction coordinator would. Then a confluent-kafka consumer
(librdkafka) reads the partition from offset 0 with each isolation level, --repeats times
alternately, and checks the count: read_uncommitted gets every record, read_committed exactly the
committed ones (librdkafka drops the aborted ones with the aborted-transaction lists the broker
sends). Prints one JSON line per run and the best run per isolation level: records delivered
per second, and the log's records (aborted ones included, which read_committed still fetches and
the client drops) per second, and the broker's CPU time per log record read (the better guide on a
shared machine, where wall-clock rates move a lot).
"""
from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

import psutil
from confluent_kafka import Consumer, TopicPartition

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.broker.test_bad_input import produce  # noqa: E402
from tests.broker.test_internal_topics import create_topic  # noqa: E402
from tests.broker.test_txn_markers import write_marker  # noqa: E402
from tests.broker_process import BrokerProcess  # noqa: E402
from tests.wire_client import WireClient  # noqa: E402
from kbroker.wire.records import Record, build_batch  # noqa: E402

BATCH_RECORDS = 100


def write_log(bootstrap: str, topic: str, records: int, size: int, txn_records: int, abort_every: int) -> int:
    """The transactional log; returns how many records were committed."""
    value = b"v" * size
    committed = 0
    with WireClient(bootstrap, timeout=60) as client:
        create_topic(client, topic)
        for txn, start in enumerate(range(0, records, txn_records)):
            producer_id = 1000 + txn % 50
            epoch = txn // 50  # each producer id's next transaction comes with a new epoch: sequences restart at 0
            count = min(txn_records, records - start)
            for sequence in range(0, count, BATCH_RECORDS):
                n = min(BATCH_RECORDS, count - sequence)
                batch = build_batch([Record(i, 1_700_000_000_000, None, value) for i in range(n)],
                                    producer_id=producer_id, producer_epoch=epoch, base_sequence=sequence,
                                    is_transactional=True)
                assert produce(client, topic, 0, batch, transactional_id=f"bench-{producer_id}").error_code == 0
            commit = (txn + 1) % abort_every != 0
            assert write_marker(client, topic, commit=commit, producer_id=producer_id, epoch=epoch) == {(topic, 0): 0}
            committed += count if commit else 0
    return committed


def broker_cpu_s(broker: BrokerProcess) -> float:
    times = psutil.Process(broker.process.pid).cpu_times()
    return times.user + times.system


def consume(broker: BrokerProcess, topic: str, isolation: str, expected: int, size: int, log_records: int) -> dict:
    bootstrap = broker.bootstrap
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "kbroker-read-committed",
                         "enable.auto.commit": False, "isolation.level": isolation,
                         "queued.min.messages": 1_000_000})
    consumer.assign([TopicPartition(topic, 0, 0)])
    gc.disable()
    seen = 0
    cpu_before = broker_cpu_s(broker)
    started = time.perf_counter()
    deadline = time.monotonic() + 120
    while seen < expected and time.monotonic() < deadline:
        for message in consumer.consume(10_000, 1.0):
            if message.error() is not None:
                raise SystemExit(f"consume error: {message.error()}")
            seen += 1
    elapsed = time.perf_counter() - started
    cpu = broker_cpu_s(broker) - cpu_before
    gc.enable()
    consumer.close()
    if seen != expected:
        raise SystemExit(f"{isolation}: read {seen} records, expected {expected}")
    return {"isolation": isolation, "records": seen, "seconds": round(elapsed, 3),
            "msg_per_s": round(seen / elapsed), "mb_per_s": round(seen * size / elapsed / 1e6, 1),
            "log_msg_per_s": round(log_records / elapsed),  # the log's records (aborted ones too) read per second
            "broker_cpu_us_per_log_record": round(cpu / log_records * 1e6, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--txn-records", type=int, default=1000)
    parser.add_argument("--abort-every", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kbroker-rc-") as tmp:
        # The log is written with hand-made markers, without a transaction coordinator to verify against.
        broker = BrokerProcess(Path(tmp) / "data", {"transaction.partition.verification.enable": "false"}).start()
        try:
            topic = "read-committed"
            started = time.perf_counter()
            committed = write_log(broker.bootstrap, topic, args.records, args.size, args.txn_records,
                                  args.abort_every)
            print(json.dumps({"phase": "write", "records": args.records, "committed": committed,
                              "seconds": round(time.perf_counter() - started, 1)}))
            best: dict[str, dict] = {}
            for _ in range(args.repeats):
                for isolation, expected in (("read_uncommitted", args.records), ("read_committed", committed)):
                    result = consume(broker, topic, isolation, expected, args.size, args.records)
                    print(json.dumps(result))
                    if isolation not in best or result["msg_per_s"] > best[isolation]["msg_per_s"]:
                        best[isolation] = result
        finally:
            broker.stop()
    print("\n| isolation | records delivered | best msg/s delivered | MB/s delivered | log records/s |"
          " broker CPU µs per log record |\n|---|---:|---:|---:|---:|---:|")
    for isolation, result in best.items():
        print(f"| {isolation} | {result['records']:,} | {result['msg_per_s']:,} | {result['mb_per_s']} | "
              f"{result['log_msg_per_s']:,} | {result['broker_cpu_us_per_log_record']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
