"""A Jepsen-style checker for replicated partitions: what was acknowledged must be there.

`LoadProducer` runs an idempotent acks=all confluent-kafka producer in a thread, sending values
`<partition>-<sequence>` round-robin, and keeps every acknowledged (partition, offset, value).
`check` reads every partition back in full from the cluster and reports: acknowledged records
missing or at another offset, duplicate values (an idempotent producer must not write one twice),
values out of order within a partition, and replicas whose logs differ below the high watermark
(the batches' offsets and CRCs, read from each broker's segment files).
"""
from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from kbroker.wire.records import scan_batches
from tests.cluster_process import ClusterProcesses
from tests.waiting import wait_until


@dataclass
class Acked:
    partition: int
    offset: int
    value: bytes


class LoadProducer:
    def __init__(self, bootstrap: str, topic: str, partitions: int, rate_per_s: int = 500) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.partitions = partitions
        self.acked: list[Acked] = []
        self.acked_at: list[float] = []  # time.monotonic() of each acknowledgement, as `acked`
        self.errors: list[str] = []
        self._interval = 1 / rate_per_s
        self._producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                                   "linger.ms": 2, "message.timeout.ms": 120_000})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._sent = 0
        self.sequences = [0] * partitions  # the next value's sequence, per partition

    def start(self) -> LoadProducer:
        self._thread.start()
        return self

    def _report(self, err, msg) -> None:
        if err is not None:
            self.errors.append(f"{err.name()}: {err.str()}")
        else:
            self.acked_at.append(time.monotonic())  # first: whoever sees acked[i] finds acked_at[i]
            self.acked.append(Acked(msg.partition(), msg.offset(), msg.value()))

    def _run(self) -> None:
        sequence = self.sequences
        while not self._stop.is_set():
            partition = self._sent % self.partitions
            value = f"{partition}-{sequence[partition]}".encode()
            try:
                self._producer.produce(self.topic, value=value, partition=partition, on_delivery=self._report)
            except BufferError:
                self._producer.poll(0.05)
                continue
            sequence[partition] += 1
            self._sent += 1
            self._producer.poll(0)
            time.sleep(self._interval)

    def acked_since(self, count: int, timeout: float = 60) -> None:
        """Wait until `count` more records than now are acknowledged (the cluster makes progress)."""
        target = len(self.acked) + count
        wait_until(lambda: len(self.acked) >= target, lambda: f"{target} records acknowledged (only "
                   f"{len(self.acked)}); errors {self.errors[-3:]}", timeout, poll=0.05)

    def mark(self) -> tuple[int, list[int]]:
        """Where a fault begins: (acknowledgements so far, the next sequence of each partition)."""
        return len(self.acked), list(self.sequences)

    def first_ack_after(self, mark: tuple[int, list[int]], partitions: Collection[int], timeout: float = 60,
                        min_offset: int = 0) -> float:
        """When (time.monotonic) the first record of one of `partitions` sent after `mark` was acknowledged
        (at `min_offset` or past it: e.g. the first offset a new leader wrote): the end of a failover.
        Records sent before the mark do not count: their acknowledgements may still be on their way
        from a leader that is fine."""
        since, sequences = mark
        deadline = time.monotonic() + timeout
        while True:
            end = len(self.acked)
            for i in range(since, end):
                ack = self.acked[i]
                if (ack.partition in partitions and ack.offset >= min_offset
                        and int(ack.value.split(b"-")[1]) >= sequences[ack.partition]):
                    return self.acked_at[i]
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing sent after the mark acknowledged on partitions {sorted(partitions)} "
                                     f"within {timeout}s; errors {self.errors[-3:]}")
            since = end
            time.sleep(0.002)

    def halt(self) -> None:
        """Stop sending (what is in flight is still acknowledged or failed by `stop`)."""
        self._stop.set()
        self._thread.join()

    def stop(self, timeout: float = 120) -> None:
        self.halt()
        remaining = self._producer.flush(timeout)
        assert remaining == 0, f"{remaining} records never acknowledged nor failed"


@dataclass
class Report:
    missing: list[Acked] = field(default_factory=list)
    duplicates: list[bytes] = field(default_factory=list)
    out_of_order: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    records: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicates or self.out_of_order or self.diverged)


def _read_all(bootstrap: str, topic: str, partitions: int) -> dict[int, list[tuple[int, bytes]]]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "replication-checker",
                         "enable.auto.commit": False, "isolation.level": "read_uncommitted"})
    try:
        ends = {p: _high_watermark(consumer, TopicPartition(topic, p)) for p in range(partitions)}
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        read: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(partitions)}
        deadline = time.monotonic() + 60
        while any((read[p][-1][0] + 1 if read[p] else 0) < ends[p] for p in range(partitions)):
            assert time.monotonic() < deadline, f"could not read back {topic} up to {ends}"
            for message in consumer.consume(1000, 0.5):
                assert message.error() is None, message.error()
                read[message.partition()].append((message.offset(), message.value()))
        return read
    finally:
        consumer.close()


_LEADER_MOVED = {6, 5, 74, 75}  # NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, FENCED / UNKNOWN_LEADER_EPOCH


def _high_watermark(consumer, partition) -> int:
    """The partition's high watermark, asking again while the client's metadata still names an old leader."""
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + 30
    while True:
        try:
            return consumer.get_watermark_offsets(partition, timeout=10)[1]
        except KafkaException as exc:
            # librdkafka does not flag these retriable here, but they are: the metadata catches up.
            if exc.args[0].code() not in _LEADER_MOVED or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def batches_below(data_dir: Path, topic: str, partition: int, high_watermark: int) -> list[tuple[int, int]]:
    """(base offset, CRC) of each batch of one replica that lies wholly below the high watermark."""
    found = []
    for segment in sorted((data_dir / f"{topic}-{partition}").glob("*.log")):
        for _, header in scan_batches(segment.read_bytes()):
            if header.next_offset <= high_watermark:
                found.append((header.base_offset, header.crc))
    return found


def check(cluster: ClusterProcesses, topic: str, partitions: int, acked: list[Acked], via: int) -> Report:
    report = Report()
    read = _read_all(cluster.bootstrap(via), topic, partitions)
    stored = {(p, offset): value for p, records in read.items() for offset, value in records}
    report.records = len(stored)
    report.missing = [a for a in acked if stored.get((a.partition, a.offset)) != a.value]
    report.duplicates = sorted(v for v, n in Counter(stored.values()).items() if n > 1)[:10]
    for partition, records in read.items():
        sequences = [int(value.split(b"-")[1]) for _, value in records]
        report.out_of_order += [(partition, records[i][1], records[i + 1][1])
                                for i in range(len(sequences) - 1) if sequences[i + 1] <= sequences[i]][:5]
    view = cluster.metadata(via, [topic])
    for partition in range(partitions):
        high_watermark = read[partition][-1][0] + 1 if read[partition] else 0
        replicas = view.topics[topic][partition].replicas
        logs = {node: batches_below(cluster.brokers[node].data_dir, topic, partition, high_watermark)
                for node in replicas if node in cluster.alive()}
        reference = logs.get(view.topics[topic][partition].leader)
        for node, batches in logs.items():
            if reference is not None and batches != reference[:len(batches)]:
                report.diverged.append(f"{topic}-{partition} on broker {node}")
    return report
