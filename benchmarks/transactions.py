"""Transactional produce throughput against the same load without transactions, and the restart
time of a broker with many transactional ids.

    python benchmarks/transactions.py [--records 20000] [--size 1024] [--partitions 3] [--ids 100000]

Starts a broker in a temporary directory and sends `--records` records of `--size` bytes with
confluent-kafka (librdkafka), one producer per run on a fresh topic, timed after a warm-up
(one record per partition, in a transaction for the transactional runs):

    plain         idempotent producer (librdkafka's acks=all default), flushed at the end
    txn-100       transactional: begin, 100 records, commit_transaction, repeated
    txn-1000      the same with 1,000 records per transaction

Each transaction costs AddPartitionsToTxn, EndTxn (PrepareCommit logged), and the markers plus
CompleteCommit written by the coordinator. Then `--ids` transactional ids get a producer id
(pipelined InitProducerId, one `__transaction_state` record each), the broker is stopped (SIGTERM)
and started again, and the time from the process start until DescribeTransactions of the last id
answers (no COORDINATOR_LOAD_IN_PROGRESS) is the restart time. Prints one JSON line per run.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kbroker.wire.messages.describe_transactions import DescribeTransactionsRequest  # noqa: E402
from kbroker.wire.messages.init_producer_id import InitProducerIdRequest  # noqa: E402
from tests.broker_process import BrokerProcess  # noqa: E402
from tests.wire_client import WireClient  # noqa: E402

PIPELINE = 500
COORDINATOR_LOAD_IN_PROGRESS = 14


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the topic exists
    admin.create_topics([NewTopic(name, partitions)])[name].result(30)


def run(bootstrap: str, name: str, records: int, size: int, partitions: int, per_txn: int | None) -> dict:
    from confluent_kafka import Producer

    topic = f"bench-{name}"
    create_topic(bootstrap, topic, partitions)
    settings = {"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True}
    if per_txn is not None:
        settings["transactional.id"] = f"bench-{name}"
    producer = Producer(settings)
    value = b"x" * size
    # Warm up outside the timing: connections, the producer id, the partitions' leaders.
    if per_txn is not None:
        producer.init_transactions(30)
        producer.begin_transaction()
    for partition in range(partitions):
        producer.produce(topic, value=value, partition=partition)
    if per_txn is not None:
        producer.commit_transaction(60)
    assert producer.flush(60) == 0
    started = time.perf_counter()
    sent = transactions = 0
    while sent < records:
        batch = min(per_txn or records, records - sent)
        if per_txn is not None:
            producer.begin_transaction()
        for i in range(batch):
            while True:
                try:
                    producer.produce(topic, value=value, partition=(sent + i) % partitions)
                    break
                except BufferError:
                    producer.poll(0.01)
        if per_txn is not None:
            producer.commit_transaction(60)
            transactions += 1
        sent += batch
    assert producer.flush(60) == 0
    elapsed = time.perf_counter() - started
    return {"run": name, "records": records, "record_bytes": size, "records_per_txn": per_txn,
            "seconds": round(elapsed, 3), "records_per_s": round(records / elapsed),
            "mib_per_s": round(records * size / elapsed / 2**20, 2),
            "txn_per_s": round(transactions / elapsed, 1) if per_txn else None}


def init_ids(bootstrap: str, ids: int) -> float:
    """InitProducerId for `ids` transactional ids, `PIPELINE` requests in flight; the seconds taken."""
    started = time.perf_counter()
    with WireClient(bootstrap, timeout=60) as client:
        for first in range(0, ids, PIPELINE):
            chunk = range(first, min(first + PIPELINE, ids))
            for i in chunk:
                client.send(22, 4, InitProducerIdRequest(transactional_id=f"bench-id-{i}", transaction_timeout_ms=60000))
            for _ in chunk:
                _, answer = client.receive(22, 4)
                assert answer.error_code == 0, answer
    return time.perf_counter() - started


def restart_time(broker: BrokerProcess, last_id: str) -> float:
    """From the process start until the coordinator answers for `last_id`."""
    broker.stop()
    started = time.perf_counter()
    broker.start(timeout=300)
    while True:
        with WireClient(broker.bootstrap) as client:
            answer = client.request(65, 0, DescribeTransactionsRequest(transactional_ids=[last_id]))
        if answer.transaction_states[0].error_code != COORDINATOR_LOAD_IN_PROGRESS:
            assert answer.transaction_states[0].error_code == 0, answer
            return time.perf_counter() - started
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--ids", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = BrokerProcess(Path(tmp) / "data").start()
        try:
            for name, per_txn in (("plain", None), ("txn-100", 100), ("txn-1000", 1000)):
                print(json.dumps(run(broker.bootstrap, name, args.records, args.size, args.partitions, per_txn)),
                      flush=True)
            if args.ids:
                seconds = init_ids(broker.bootstrap, args.ids)
                print(json.dumps({"run": "init-ids", "ids": args.ids, "seconds": round(seconds, 2),
                                  "ids_per_s": round(args.ids / seconds)}), flush=True)
                print(json.dumps({"run": "restart", "ids": args.ids,
                                  "seconds": round(restart_time(broker, f"bench-id-{args.ids - 1}"), 2)}), flush=True)
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
