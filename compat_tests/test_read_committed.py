"""read_committed with real consumers: aborted and still-open transactional records never show.

The transactions are written at the protocol level (no transaction coordinator is needed for the
log side): transactional batches with our wire client's Produce, then COMMIT / ABORT markers with
WriteTxnMarkers, as the coordinator would have them written (so the brokers here do not verify a
transaction's first batch with a coordinator: UNVERIFIED). Partition 0 then holds, over several
small segments (so the .txnindex entries a fetch needs lie in more than one segment):

    A committed (two batches) | B aborted (two batches) | C committed and D aborted, interleaved
    | plain records n0 n1 | E open (e0 e1) | plain record m0

A read_committed consumer (confluent-kafka's and kcat's default, kafka-python and aiokafka told so) must read
a0 a1 a2 c0 c1 n0 n1 and then nothing, since E holds the last stable offset; ListOffsets LATEST
must answer that offset. A read_uncommitted consumer reads every data record. Once E is
committed, read_committed consumers read e0 e1 m0 too. The same view survives a SIGKILL of the
broker and, at replication factor 3, the death of the leader; kafka-python's admin finds E with
DescribeProducers and aborts it with WriteTxnMarkers.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from compat_tests.clients import ConfluentKafka, Kcat
from tests.broker.test_bad_input import fetch_all, produce
from tests.broker.test_internal_topics import create_topic
from tests.broker.test_txn_markers import TXN_ID, UNVERIFIED, txn_batch, write_marker
from tests.broker_process import BrokerProcess
from tests.wire_client import WireClient

A, B, C, D, E = 7001, 7002, 7003, 7004, 7005
COMMITTED = [b"a0", b"a1", b"a2", b"c0", b"c1", b"n0", b"n1"]
EVERYTHING = [b"a0", b"a1", b"a2", b"b0", b"b1", b"b2", b"c0", b"d0", b"c1", b"d1", b"n0", b"n1", b"e0", b"e1", b"m0"]
LATER = [b"e0", b"e1", b"m0"]
CLIENTS = ("confluent-kafka", "kafka-python", "aiokafka", "kcat")
QUIET_S = 1.5  # how long a consumer that has read everything it may must then stay empty
TIMEOUT_S = 30.0
SMALL_SEGMENTS = {"segment.bytes": "600"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path_factory.mktemp("broker") / "data", UNVERIFIED).start()
    yield process
    process.stop()


@dataclass(frozen=True)
class Log:
    last_stable_offset: int
    high_watermark: int


def write_transactions(bootstrap: str, topic: str, *, create: bool = True) -> Log:
    """Partition 0 as the module docstring draws it (`bootstrap`: its leader); E left open."""
    with WireClient(bootstrap) as client:
        if create:
            create_topic(client, topic, SMALL_SEGMENTS)

        def send(batch: bytes) -> int:
            result = produce(client, topic, 0, batch, transactional_id=TXN_ID)
            assert result.error_code == 0, result
            return result.base_offset

        def end(producer_id: int, commit: bool) -> None:
            assert write_marker(client, topic, commit=commit, producer_id=producer_id) == {(topic, 0): 0}

        send(txn_batch(0, b"a0", b"a1", producer_id=A))
        send(txn_batch(2, b"a2", producer_id=A))
        end(A, commit=True)
        send(txn_batch(0, b"b0", b"b1", producer_id=B))
        send(txn_batch(2, b"b2", producer_id=B))
        end(B, commit=False)
        send(txn_batch(0, b"c0", producer_id=C))
        send(txn_batch(0, b"d0", producer_id=D))
        send(txn_batch(1, b"c1", producer_id=C))
        send(txn_batch(1, b"d1", producer_id=D))
        end(D, commit=False)
        end(C, commit=True)
        send(txn_batch(-1, b"n0", b"n1", producer_id=-1, epoch=-1, transactional=False))
        open_at = send(txn_batch(0, b"e0", b"e1", producer_id=E))
        send(txn_batch(-1, b"m0", producer_id=-1, epoch=-1, transactional=False))
        state = fetch_all(client, topic, 0, isolation_level=1)
        assert state.last_stable_offset == open_at
        return Log(open_at, state.high_watermark)


def wait_for_state(bootstrap: str, topic: str, log: Log, timeout: float = TIMEOUT_S):
    """The read_committed view of partition 0 once its offsets are `log`'s (a new leader's high
    watermark catches up as its followers fetch from it); the last view after `timeout`."""
    deadline = time.monotonic() + timeout
    with WireClient(bootstrap) as client:
        while True:
            state = fetch_all(client, topic, 0, isolation_level=1)
            settled = (state.error_code, state.last_stable_offset, state.high_watermark) == \
                (0, log.last_stable_offset, log.high_watermark)
            if settled or time.monotonic() > deadline:
                return state
            time.sleep(0.05)


def commit_open_transaction(bootstrap: str, topic: str) -> int:
    """Commit E; the new high watermark (= the last stable offset)."""
    with WireClient(bootstrap) as client:
        assert write_marker(client, topic, commit=True, producer_id=E) == {(topic, 0): 0}
        state = fetch_all(client, topic, 0, isolation_level=1)
        assert state.last_stable_offset == state.high_watermark
        return state.high_watermark


def read(client: str, bootstrap: str, topic: str, isolation: str, want: int) -> tuple[list[bytes], int]:
    """Values of partition 0 from offset 0: until `want` arrived, then for QUIET_S more (anything
    past what this isolation level allows would show there); and the client's end offset."""
    return READERS[client](bootstrap, topic, isolation, want)


def _confluent(bootstrap: str, topic: str, isolation: str, want: int) -> tuple[list[bytes], int]:
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"rc-{uuid.uuid4().hex[:8]}",
                         "isolation.level": isolation, "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        values: list[bytes] = []
        deadline = time.monotonic() + TIMEOUT_S
        quiet_until = None
        while time.monotonic() < (quiet_until or deadline):
            for message in consumer.consume(num_messages=100, timeout=0.2):
                assert message.error() is None, message.error()
                values.append(message.value())
            if quiet_until is None and len(values) >= want:
                quiet_until = time.monotonic() + QUIET_S
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        return values, high
    finally:
        consumer.close()


def _kafka_python(bootstrap: str, topic: str, isolation: str, want: int) -> tuple[list[bytes], int]:
    from kafka import KafkaConsumer, TopicPartition
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        values: list[bytes] = []
        deadline = time.monotonic() + TIMEOUT_S
        quiet_until = None
        while time.monotonic() < (quiet_until or deadline):
            for batch in consumer.poll(timeout_ms=200).values():
                values += [m.value for m in batch]
            if quiet_until is None and len(values) >= want:
                quiet_until = time.monotonic() + QUIET_S
        return values, consumer.end_offsets([tp])[tp]
    finally:
        consumer.close()


def _aiokafka(bootstrap: str, topic: str, isolation: str, want: int) -> tuple[list[bytes], int]:
    async def run() -> tuple[list[bytes], int]:
        from aiokafka import AIOKafkaConsumer, TopicPartition
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation, enable_auto_commit=False)
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            consumer.seek(tp, 0)
            values: list[bytes] = []
            deadline = time.monotonic() + TIMEOUT_S
            quiet_until = None
            while time.monotonic() < (quiet_until or deadline):
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    values += [m.value for m in batch]
                if quiet_until is None and len(values) >= want:
                    quiet_until = time.monotonic() + QUIET_S
            return values, (await consumer.end_offsets([tp]))[tp]
        finally:
            await consumer.stop()
    return asyncio.run(run())


def _kcat(bootstrap: str, topic: str, isolation: str, want: int) -> tuple[list[bytes], int]:
    """kcat -e stops where librdkafka reports the partition's end: for read_committed, the last
    stable offset (so no quiet period is needed); -Q asks ListOffsets LATEST (timestamp -1)."""
    settings = ["-b", bootstrap, "-X", f"isolation.level={isolation}"]
    done = Kcat._run(["-C", *settings, "-t", topic, "-p", "0", "-o", "beginning", "-e", "-q", "-f", "%s\\n"],
                     timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    query = Kcat._run(["-Q", *settings, "-t", f"{topic}:0:-1", "-J"], timeout=TIMEOUT_S)
    assert query.returncode == 0, query.stderr
    return done.stdout.split(b"\n")[:-1], json.loads(query.stdout)[topic]["0"]["offset"]


READERS = {"confluent-kafka": _confluent, "kafka-python": _kafka_python, "aiokafka": _aiokafka, "kcat": _kcat}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("client", CLIENTS)
def test_read_committed_skips_aborted_records_and_stops_at_the_open_transaction(broker, topic_name, client):
    log = write_transactions(broker.bootstrap, topic_name)
    assert read(client, broker.bootstrap, topic_name, "read_committed", len(COMMITTED)) == \
        (COMMITTED, log.last_stable_offset)
    assert read(client, broker.bootstrap, topic_name, "read_uncommitted", len(EVERYTHING)) == \
        (EVERYTHING, log.high_watermark)
    end = commit_open_transaction(broker.bootstrap, topic_name)
    assert read(client, broker.bootstrap, topic_name, "read_committed", len(COMMITTED + LATER)) == \
        (COMMITTED + LATER, end)


@pytest.mark.timeout(120)
def test_a_broker_crash_keeps_open_and_aborted_transactions(broker_factory, topic_name):
    broker = broker_factory(UNVERIFIED)
    log = write_transactions(broker.bootstrap, topic_name)
    broker.kill()  # SIGKILL: no snapshot, no flush; start-up recovers the segments and rebuilds the .txnindex
    broker.start()
    assert read("confluent-kafka", broker.bootstrap, topic_name, "read_committed", len(COMMITTED)) == \
        (COMMITTED, log.last_stable_offset)
    with WireClient(broker.bootstrap) as client:
        state = fetch_all(client, topic_name, 0, isolation_level=1)
        assert [(t.producer_id, t.first_offset) for t in state.aborted_transactions] == [(B, 4), (D, 9)]
    end = commit_open_transaction(broker.bootstrap, topic_name)
    assert read("kafka-python", broker.bootstrap, topic_name, "read_committed", len(COMMITTED + LATER)) == \
        (COMMITTED + LATER, end)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_new_leader_has_the_markers_and_the_aborted_transactions(cluster_factory, topic_name):
    """RF 3: followers copy markers as they are, their producer state and .txnindex follow, and
    WriteTxnMarkers answers once the ISR has the marker; so after the leader dies the new one
    serves the same read_committed view, and can end the open transaction."""
    cluster = cluster_factory(overrides=UNVERIFIED)
    with ConfluentKafka().admin(cluster.bootstrap(1)) as admin:
        admin.create_topic(topic_name, 1, 3, {"min.insync.replicas": "2", **SMALL_SEGMENTS})
    cluster.wait_in_sync(topic_name, 1)
    leader = cluster.metadata(1, [topic_name]).leaders(topic_name)[0]
    log = write_transactions(cluster.bootstrap(leader), topic_name, create=False)
    cluster.brokers[leader].kill()
    survivor = next(n for n in cluster.alive())
    view, _ = cluster.wait_until(lambda v: v.leaders(topic_name).get(0) not in (leader, -1, None), via=survivor,
                                 topics=[topic_name], timeout=TIMEOUT_S)
    new_leader = view.leaders(topic_name)[0]
    state = wait_for_state(cluster.bootstrap(new_leader), topic_name, log)
    assert (state.last_stable_offset, state.high_watermark) == (log.last_stable_offset, log.high_watermark), state
    assert [(t.producer_id, t.first_offset) for t in state.aborted_transactions] == [(B, 4), (D, 9)]
    survivors = ",".join(cluster.bootstrap(n) for n in cluster.alive())
    assert read("confluent-kafka", survivors, topic_name, "read_committed", len(COMMITTED)) == \
        (COMMITTED, log.last_stable_offset)
    end = commit_open_transaction(cluster.bootstrap(new_leader), topic_name)
    assert read("aiokafka", survivors, topic_name, "read_committed", len(COMMITTED + LATER)) == \
        (COMMITTED + LATER, end)


@pytest.mark.timeout(120)
def test_kafka_python_admin_finds_and_aborts_the_open_transaction(broker, topic_name):
    """KIP-664 as kafka-python's admin does it: DescribeProducers shows where the open transaction
    began; abort_transaction writes its ABORT marker with WriteTxnMarkers (coordinator epoch -1:
    accepted, no coordinator ever wrote a marker for it); its records then never show."""
    from kafka import TopicPartition
    from kafka.admin import AbortTransactionSpec, KafkaAdminClient
    log = write_transactions(broker.bootstrap, topic_name)
    tp = TopicPartition(topic_name, 0)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        producers = {p.producer_id: p for p in admin.describe_producers([tp])[tp].active_producers}
        assert set(producers) == {A, B, C, D, E}
        assert {pid: p.current_transaction_start_offset for pid, p in producers.items()} == \
            {A: -1, B: -1, C: -1, D: -1, E: log.last_stable_offset}
        assert (producers[E].producer_epoch, producers[E].last_sequence, producers[E].coordinator_epoch) == (0, 1, -1)
        admin.abort_transaction(AbortTransactionSpec(topic_partition=tp, producer_id=E, producer_epoch=0))
    finally:
        admin.close()
    assert read("kafka-python", broker.bootstrap, topic_name, "read_committed", len(COMMITTED) + 1) == \
        (COMMITTED + [b"m0"], log.high_watermark + 1)
