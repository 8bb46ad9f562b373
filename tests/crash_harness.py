"""Kill the broker with SIGKILL under load, again and again, and prove nothing acknowledged was lost.

One cycle (`CrashCycles.run_cycle`):
  1. the broker starts on the same data dir and port as before (recovering what the kill tore);
  2. a real producer (confluent-kafka, enable.idempotence=true, acks=all) and a consumer-group
     member that commits its position every few hundred ms run against it for a random time;
  3. SIGKILL, at once: requests in flight, fsyncs half done, segments rolling;
  4. the broker restarts; the load pauses once every record the producer had sent is answered
     (librdkafka reconnects and retries; the idempotent producer's retries must be recognised
     by the restarted broker, whose producer state comes from its snapshots and the log);
  5. checks, with the broker quiet: each partition read back with a consumer holds exactly the
     producer's sequence 0, 1, 2, ... in offset order (no loss, no duplicate, no reordering) and
     every acknowledged record at its acknowledged offset; the files pass `log_audit` (CRC of
     every batch, indexes agree with the log); the group's committed offsets are at least the
     last commit acknowledged before the kill and at most the last one attempted.

The broker runs with log.flush.interval.messages=1 (an answer waits for the fsync) and small
segments, so kills land during rolls too. The producer and the group member live in threads
of this process and survive every broker restart.
"""
from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from tests.broker_process import BrokerProcess
from tests.log_audit import audit_data_dir, problems_in

BROKER_SETTINGS = {
    "log.flush.interval.messages": "1",
    "log.segment.bytes": str(256 * 1024),
    "log.index.interval.bytes": "1024",
    "group.initial.rebalance.delay.ms": "0",
}


class HarnessFailure(AssertionError):
    pass


def _value(partition: int, sequence: int, size: int) -> bytes:
    head = b"%d:%d:" % (partition, sequence)
    return head + b"x" * max(size - len(head), 0)


def _sequence(value: bytes) -> tuple[int, int]:
    partition, sequence, _ = value.split(b":", 2)
    return int(partition), int(sequence)


class LoadThread(threading.Thread):
    """A client loop in a thread that can be paused at a quiet point and resumed."""

    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self._go = threading.Event()
        self._quiet = threading.Event()
        self._stopping = threading.Event()
        self.failure: str | None = None

    def resume(self) -> None:
        self._quiet.clear()
        self._go.set()

    def pause(self, timeout: float) -> None:
        """Stop new work and wait until the loop says it is quiet."""
        self._go.clear()
        if not self._quiet.wait(timeout):
            raise HarnessFailure(f"{self.name} did not quiesce within {timeout}s")
        if self.failure:
            raise HarnessFailure(f"{self.name}: {self.failure}")

    def stop(self) -> None:
        self._stopping.set()
        self._go.set()
        self.join(30)


class ProducerLoad(LoadThread):
    """Numbered values round-robin over the partitions; remembers every acknowledgement."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, value_size: int, rate: float | None) -> None:
        super().__init__("idempotent producer")
        self.rate = rate  # values per second, None: as fast as the broker answers
        self.topic = topic
        self.partitions = partitions
        self.value_size = value_size
        self.sent = [0] * partitions  # per partition: values handed to the producer
        self.acked: dict[int, dict[int, int]] = defaultdict(dict)  # partition -> {sequence: offset}
        self.producer = Producer({
            "bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all",
            "linger.ms": 1, "batch.size": 16384,
            # a short queue: a pause waits for every queued value to be answered
            "queue.buffering.max.messages": 20_000,
            # keep retrying across restarts: a timed-out message would be a lost one
            "message.timeout.ms": 300_000, "reconnect.backoff.max.ms": 200, "retry.backoff.max.ms": 200,
            "log_level": 0,  # connection refused while the broker restarts, every few ms
        })

    def _delivered(self, err: KafkaError | None, message) -> None:
        if err is not None:
            self.failure = self.failure or f"delivery failed: {err}"
            return
        partition, sequence = _sequence(message.value())
        if sequence in self.acked[partition]:
            self.failure = self.failure or f"sequence {sequence} of partition {partition} acknowledged twice"
        self.acked[partition][sequence] = message.offset()

    def run(self) -> None:
        n = paced_n = 0
        paced_from = time.monotonic()
        while not self._stopping.is_set():
            if not self._go.is_set():
                paced_from, paced_n = time.monotonic(), n
                if len(self.producer) == 0:
                    self._quiet.set()
                    self._go.wait(0.05)
                else:
                    self.producer.poll(0.05)
                continue
            if self.rate is not None and n - paced_n > (time.monotonic() - paced_from) * self.rate:
                self.producer.poll(0.001)
                continue
            partition = n % self.partitions
            try:
                self.producer.produce(self.topic, _value(partition, self.sent[partition], self.value_size),
                                      partition=partition, on_delivery=self._delivered)
            except BufferError:
                self.producer.poll(0.05)
                continue
            self.sent[partition] += 1
            n += 1
            if n % 100 == 0:
                self.producer.poll(0)
        self.producer.flush(10)

    @property
    def acked_count(self) -> int:
        return sum(len(a) for a in self.acked.values())


class CommitLoad(LoadThread):
    """A group member that reads the topic and commits its position (synchronously) every 200 ms."""

    def __init__(self, bootstrap: str, topic: str, group: str) -> None:
        super().__init__("group committer")
        self.group = group
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "session.timeout.ms": 30_000,
            "reconnect.backoff.max.ms": 200, "log_level": 0,
        })
        self.consumer.subscribe([topic])
        self.attempted: dict[int, int] = {}  # partition -> the last offset we tried to commit
        self.committed: dict[int, int] = {}  # partition -> the last offset a commit acknowledged
        self.commits = 0

    def run(self) -> None:
        last_commit = time.monotonic()
        while not self._stopping.is_set():
            if not self._go.is_set():
                self._quiet.set()
                self._go.wait(0.05)
                continue
            self.consumer.consume(1000, 0.05)
            if time.monotonic() - last_commit < 0.2:
                continue
            last_commit = time.monotonic()
            positions = [tp for tp in self.consumer.position(self.consumer.assignment()) if tp.offset >= 0]
            if not positions:
                continue
            for tp in positions:
                self.attempted[tp.partition] = tp.offset
            try:
                done = self.consumer.commit(offsets=positions, asynchronous=False)
            except KafkaException:
                continue  # the broker is down or restarting: not acknowledged
            for tp in done or ():
                if tp.error is None:
                    self.committed[tp.partition] = tp.offset
            self.commits += 1
        self.consumer.close()


@dataclass(slots=True)
class CycleReport:
    cycle: int
    ran_s: float
    acked_before_kill: int
    in_flight_at_kill: int  # sent but not yet answered when the broker died
    records_in_log: int
    commits_before_kill: int  # group commits acknowledged in this cycle, before the kill
    restart_s: float


@dataclass(slots=True)
class HarnessReport:
    cycles: list[CycleReport] = field(default_factory=list)
    records_acked: int = 0
    records_lost: int = 0
    duplicates: int = 0

    def summary(self) -> str:
        restarts = sorted(c.restart_s for c in self.cycles)
        return (f"{len(self.cycles)} SIGKILL cycles survived ({sum(c.in_flight_at_kill > 0 for c in self.cycles)} "
                f"with records in flight); {self.records_acked} records acknowledged, "
                f"{self.records_lost} lost, {self.duplicates} duplicated; "
                f"{sum(c.commits_before_kill for c in self.cycles)} group commits checked; restart "
                f"(recovery) median {restarts[len(restarts) // 2]:.2f}s, max {restarts[-1]:.2f}s")


class CrashCycles:
    def __init__(self, data_dir: Path, *, partitions: int = 3, value_size: int = 100, rate: float | None = 5000,
                 run_s: tuple[float, float] = (0.3, 1.5), seed: int | None = None,
                 settings: dict[str, str] | None = None) -> None:
        self.random = random.Random(seed)
        self.broker = BrokerProcess(data_dir, {**BROKER_SETTINGS, **(settings or {})})
        self.topic = "crash"
        self.partitions = partitions
        self.run_s = run_s
        self.value_size = value_size
        self.rate = rate
        self.report = HarnessReport()
        self.producer: ProducerLoad | None = None
        self.committer: CommitLoad | None = None

    def __enter__(self) -> CrashCycles:
        self.broker.start()
        admin = AdminClient({"bootstrap.servers": self.broker.bootstrap})
        admin.create_topics([NewTopic(self.topic, self.partitions, 1)])[self.topic].result(30)
        self.producer = ProducerLoad(self.broker.bootstrap, self.topic, self.partitions, self.value_size,
                                     self.rate)
        self.committer = CommitLoad(self.broker.bootstrap, self.topic, "crash-committer")
        self.producer.start()
        self.committer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        for load in (self.producer, self.committer):
            if load is not None:
                load.stop()
        self.broker.kill()

    def run_cycle(self) -> CycleReport:
        assert self.producer is not None and self.committer is not None
        self.producer.resume()
        self.committer.resume()
        commits_from = self.committer.commits
        ran = self.random.uniform(*self.run_s)
        time.sleep(ran)  # the scenario: the load runs for a random while, then the crash comes
        acked = self.producer.acked_count
        in_flight = sum(self.producer.sent) - acked
        committed_before = dict(self.committer.committed)
        commits = self.committer.commits - commits_from
        self.broker.kill()
        started = time.monotonic()
        self.broker.start(timeout=60)
        restart_s = time.monotonic() - started
        self.producer.pause(timeout=120)
        self.committer.pause(timeout=60)
        in_log = self.check_records()
        self.check_files()
        self.check_commits(committed_before)
        cycle = CycleReport(len(self.report.cycles) + 1, ran, acked, in_flight, in_log, commits, restart_s)
        self.report.cycles.append(cycle)
        self.report.records_acked = self.producer.acked_count
        return cycle

    def check_records(self) -> int:
        """Read every partition back; it must hold exactly the producer's sequence, in order."""
        assert self.producer is not None
        consumer = Consumer({"bootstrap.servers": self.broker.bootstrap, "group.id": "crash-reader",
                             "enable.auto.commit": False, "check.crcs": True})
        problems = []
        total = lost_total = duplicates = 0
        try:
            for partition in range(self.partitions):
                values = _read_partition(consumer, self.topic, partition)
                total += len(values)
                acked = self.producer.acked[partition]
                sequences = [_sequence(v)[1] for _, v in values]
                offsets = [o for o, _ in values]
                lost = [s for s in acked if s >= len(sequences) or sequences[s] != s]
                lost_total += len(lost)
                duplicates += len(sequences) - len(set(sequences))
                if sequences != list(range(len(sequences))):
                    first_bad = next(i for i, s in enumerate(sequences + [None]) if s != i)
                    problems.append(f"partition {partition}: sequences are not 0..{len(sequences) - 1} in order; "
                                    f"first difference at offset {first_bad}: {sequences[first_bad:first_bad + 5]}")
                if offsets != list(range(len(offsets))):
                    problems.append(f"partition {partition}: offsets are not contiguous from 0")
                if len(sequences) != self.producer.sent[partition]:
                    problems.append(f"partition {partition}: {len(sequences)} records in the log, "
                                    f"{self.producer.sent[partition]} sent and answered")
                wrong = [(s, o) for s, o in acked.items() if s < len(offsets) and offsets[s] != o]
                if lost or wrong:
                    problems.append(f"partition {partition}: {len(lost)} acknowledged records lost "
                                    f"(first {sorted(lost)[:5]}), {len(wrong)} at other offsets than acknowledged")
        finally:
            consumer.close()
        self.report.records_lost = max(self.report.records_lost, lost_total)
        self.report.duplicates = max(self.report.duplicates, duplicates)
        if problems:
            raise HarnessFailure("; ".join(problems) + f"\n{self.broker.log()}")
        return total

    def check_files(self) -> None:
        problems = problems_in(audit_data_dir(self.broker.data_dir))
        if problems:
            raise HarnessFailure("log audit: " + "; ".join(problems[:10]))

    def check_commits(self, before_kill: dict[int, int]) -> None:
        assert self.committer is not None
        admin = AdminClient({"bootstrap.servers": self.broker.bootstrap})
        result = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(self.committer.group)])
        listed = result[self.committer.group].result(30)
        stored = {tp.partition: tp.offset for tp in listed.topic_partitions if tp.topic == self.topic}
        for partition, offset in before_kill.items():
            attempted = self.committer.attempted[partition]
            if not offset <= stored.get(partition, -1) <= attempted:
                raise HarnessFailure(f"partition {partition}: committed offset {stored.get(partition)} after the "
                                     f"restart, but {offset} was acknowledged before the kill "
                                     f"(and {attempted} is the last one attempted)")


def _read_partition(consumer: Consumer, topic: str, partition: int, timeout: float = 60) -> list[tuple[int, bytes]]:
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
    if low != 0:
        raise HarnessFailure(f"partition {partition}: log start offset {low}, expected 0")
    consumer.assign([TopicPartition(topic, partition, 0)])
    out: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + timeout
    while len(out) < high and time.monotonic() < deadline:
        for message in consumer.consume(10_000, 0.5):
            if message.error():
                raise HarnessFailure(f"partition {partition}: consume error {message.error()}")
            out.append((message.offset(), message.value()))
    consumer.unassign()
    if len(out) < high:
        raise HarnessFailure(f"partition {partition}: read {len(out)} of {high} records within {timeout}s")
    return out
