"""Transactions with real clients: exactly-once consume-transform-produce, fencing, timeouts,
a broker crash between EndTxn and the markers, bad requests, and the admin views.

Each client runs the same loop: a read_committed consumer of a group feeds a transactional
producer; every batch of records is transformed into the output topic and the consumed
positions go into the same transaction (`send_offsets_to_transaction`); one batch is aborted on
purpose and processed again. The output must then hold each transformed record exactly once,
and the group's committed offsets must be the input's end.
"""
from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from compat_tests.clients import ConfluentKafka, create_topic
from kbroker.config import build_config
from kbroker.coordinator import txn_records
from kbroker.coordinator.internal_log import append_durably
from kbroker.coordinator.loader import latest_values
from kbroker.coordinator.records import partition_for
from kbroker.coordinator.transactions import TxnState
from kbroker.errors import ErrorCode
from kbroker.log.log_manager import LogManager
from kbroker.wire.messages.add_partitions_to_txn import (
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnTopic,
    AddPartitionsToTxnTransaction,
)
from kbroker.wire.messages.describe_transactions import DescribeTransactionsRequest
from kbroker.wire.messages.end_txn import EndTxnRequest
from kbroker.wire.messages.init_producer_id import InitProducerIdRequest
from kbroker.wire.messages.txn_offset_commit import (
    TxnOffsetCommitRequest,
    TxnOffsetCommitRequestPartition,
    TxnOffsetCommitRequestTopic,
)
from tests.broker.test_bad_input import fetch_all, produce
from tests.broker.test_txn_markers import txn_batch
from tests.coordinator.appending import append_at_once
from tests.broker_process import BrokerProcess
from tests.wire_client import WireClient

RECORDS = 10_000  # the 10,000 input records
BATCH = 500
ABORTED_BATCH = 2
TIMEOUT = 30.0
# Quick groups, and the timed-out transaction check often enough for the timeout test.
SETTINGS = {"group.initial.rebalance.delay.ms": "0",
            "transaction.abort.timed.out.transaction.cleanup.interval.ms": "200"}


@pytest.fixture(scope="module")
def txn_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path_factory.mktemp("txn") / "data", SETTINGS).start()
    yield process
    process.stop()


def _deadline_loop(what: str, timeout: float = TIMEOUT) -> Iterator[None]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        yield
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def produce_plain(bootstrap: str, topic: str, count: int, partitions: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(count):
        producer.produce(topic, value=b"%d" % i, partition=i % partitions)
    assert producer.flush(TIMEOUT) == 0


def read_committed(bootstrap: str, topic: str, partitions: int, *, isolation: str = "read_committed",
                   until: Callable[[list[bytes]], bool] | None = None, timeout: float = TIMEOUT) -> list[bytes]:
    """Every value a consumer with `isolation` reads from the topic, polling until each partition's
    position reaches its high watermark (or `until` says enough)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{time.monotonic_ns()}",
                         "isolation.level": isolation, "enable.auto.commit": False})
    assigned = [TopicPartition(topic, p, 0) for p in range(partitions)]
    consumer.assign(assigned)
    values: list[bytes] = []
    try:
        for _ in _deadline_loop(f"{topic} to be read", timeout):
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                values.append(message.value())
                continue
            if until is not None:
                if until(values):
                    return values
                continue
            ends = [consumer.get_watermark_offsets(tp, cached=False)[1] for tp in assigned]
            positions = [tp.offset for tp in consumer.position(assigned)]
            if all(pos >= end for pos, end in zip(positions, ends)):
                return values
    finally:
        consumer.close()
    return values


def committed_offsets(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], TIMEOUT)
        return [tp.offset for tp in found]
    finally:
        consumer.close()


# -- consume-transform-produce, one loop per client ----------------------------------------------

def transform(value: bytes) -> bytes:
    return b"t-" + value


def ctp_confluent(bootstrap: str, src: str, dst: str, group: str, tid: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    consumer.subscribe([src])
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid})
    producer.init_transactions(TIMEOUT)
    done = aborted = batch_no = 0
    try:
        for _ in _deadline_loop("the confluent-kafka loop", 90):
            if done >= RECORDS:
                return aborted
            messages = [m for m in consumer.consume(BATCH, 0.5) if not m.error()]
            if not messages:
                continue
            producer.begin_transaction()
            for m in messages:
                producer.produce(dst, key=m.value(), value=transform(m.value()), partition=m.partition())
            producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                                 consumer.consumer_group_metadata(), TIMEOUT)
            batch_no += 1
            if batch_no == ABORTED_BATCH:
                assert producer.flush(TIMEOUT) == 0  # written, then aborted (not merely purged)
                producer.abort_transaction(TIMEOUT)
                aborted += len(messages)
                firsts: dict[int, int] = {}
                for m in messages:
                    firsts.setdefault(m.partition(), m.offset())
                for partition, offset in firsts.items():
                    consumer.seek(TopicPartition(src, partition, offset))
                continue
            producer.commit_transaction(TIMEOUT)
            done += len(messages)
    finally:
        consumer.close()
    return aborted


def ctp_kafka_python(bootstrap: str, src: str, dst: str, group: str, tid: str) -> int:
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.structs import OffsetAndMetadata

    consumer = KafkaConsumer(src, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                             enable_auto_commit=False, isolation_level="read_committed")
    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id=tid)
    producer.init_transactions()
    done = aborted = batch_no = 0
    try:
        for _ in _deadline_loop("the kafka-python loop", 90):
            if done >= RECORDS:
                return aborted
            batch = consumer.poll(timeout_ms=500, max_records=BATCH)
            if not batch:
                continue
            producer.begin_transaction()
            for tp, messages in batch.items():
                for m in messages:
                    producer.send(dst, key=m.value, value=transform(m.value), partition=tp.partition)
            producer.send_offsets_to_transaction(
                {tp: OffsetAndMetadata(messages[-1].offset + 1, "", -1) for tp, messages in batch.items()},
                consumer.group_metadata())
            batch_no += 1
            count = sum(len(messages) for messages in batch.values())
            if batch_no == ABORTED_BATCH:
                producer.flush()  # written, then aborted
                producer.abort_transaction()
                aborted += count
                for tp, messages in batch.items():
                    consumer.seek(tp, messages[0].offset)
                continue
            producer.commit_transaction()
            done += count
    finally:
        consumer.close()
        producer.close()
    return aborted


def ctp_aiokafka(bootstrap: str, src: str, dst: str, group: str, tid: str) -> int:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async def run() -> int:
        consumer = AIOKafkaConsumer(src, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest",
                                    enable_auto_commit=False, isolation_level="read_committed")
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=tid)
        await consumer.start()
        await producer.start()
        done = aborted = batch_no = 0
        try:
            for _ in _deadline_loop("the aiokafka loop", 90):
                if done >= RECORDS:
                    return aborted
                batch = await consumer.getmany(timeout_ms=500, max_records=BATCH)
                if not batch:
                    continue
                await producer.begin_transaction()
                sent = [await producer.send(dst, key=m.value, value=transform(m.value), partition=tp.partition)
                        for tp, messages in batch.items() for m in messages]
                await producer.send_offsets_to_transaction(
                    {tp: messages[-1].offset + 1 for tp, messages in batch.items()}, group)
                batch_no += 1
                count = sum(len(messages) for messages in batch.values())
                if batch_no == ABORTED_BATCH:
                    await asyncio.gather(*sent)  # written, then aborted
                    await producer.abort_transaction()
                    aborted += count
                    for tp, messages in batch.items():
                        consumer.seek(tp, messages[0].offset)
                    continue
                await producer.commit_transaction()
                done += count
        finally:
            await consumer.stop()
            await producer.stop()
        return aborted

    return asyncio.run(run())


LOOPS = {"confluent-kafka": ctp_confluent, "kafka-python": ctp_kafka_python, "aiokafka": ctp_aiokafka}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("client", list(LOOPS))
def test_consume_transform_produce_is_exactly_once_across_an_abort(txn_broker, topic_name, client):
    src, dst = f"{topic_name}-in", f"{topic_name}-out"
    for name in (src, dst):
        create_topic(ConfluentKafka(), txn_broker.bootstrap, name, partitions=2)
    produce_plain(txn_broker.bootstrap, src, RECORDS, 2)

    aborted = LOOPS[client](txn_broker.bootstrap, src, dst, f"{topic_name}-g", f"{topic_name}-tx")

    assert aborted > 0  # the abort really happened, and its records were processed again
    output = read_committed(txn_broker.bootstrap, dst, 2)
    assert sorted(output) == sorted(transform(b"%d" % i) for i in range(RECORDS))
    # read_uncommitted also sees the aborted batch: it was written, then aborted.
    assert len(read_committed(txn_broker.bootstrap, dst, 2, isolation="read_uncommitted")) == RECORDS + aborted
    assert committed_offsets(txn_broker.bootstrap, f"{topic_name}-g", src, 2) == [RECORDS // 2, RECORDS // 2]


# -- fencing -----------------------------------------------------------------------------------

ZOMBIE = """
import sys, time
from confluent_kafka import Producer
producer = Producer({"bootstrap.servers": sys.argv[1], "transactional.id": sys.argv[2]})
producer.init_transactions(30)
producer.begin_transaction()
for i in range(5):
    producer.produce(sys.argv[3], value=b"zombie-%d" % i, partition=0)
assert producer.flush(30) == 0
print("ready", flush=True)
time.sleep(120)
"""


def _transactional_producer(bootstrap: str, tid: str, **extra: object) -> Producer:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid, **extra})
    producer.init_transactions(TIMEOUT)
    return producer


@pytest.mark.timeout(120)
def test_a_producer_killed_mid_transaction_is_aborted_by_its_next_incarnation(txn_broker, topic_name):
    create_topic(ConfluentKafka(), txn_broker.bootstrap, topic_name, partitions=1)
    tid = f"{topic_name}-tx"
    zombie = subprocess.Popen([sys.executable, "-c", ZOMBIE, txn_broker.bootstrap, tid, topic_name],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert zombie.stdout.readline().strip() == "ready"
    finally:
        zombie.send_signal(signal.SIGKILL)
        zombie.wait()

    producer = _transactional_producer(txn_broker.bootstrap, tid)  # aborts the zombie's transaction first
    producer.begin_transaction()
    for i in range(3):
        producer.produce(topic_name, value=b"new-%d" % i, partition=0)
    producer.commit_transaction(TIMEOUT)

    assert read_committed(txn_broker.bootstrap, topic_name, 1) == [b"new-0", b"new-1", b"new-2"]
    assert len(read_committed(txn_broker.bootstrap, topic_name, 1, isolation="read_uncommitted")) == 8


@pytest.mark.timeout(120)
def test_the_previous_incarnation_is_fenced(txn_broker, topic_name):
    create_topic(ConfluentKafka(), txn_broker.bootstrap, topic_name, partitions=1)
    tid = f"{topic_name}-tx"
    old = _transactional_producer(txn_broker.bootstrap, tid)
    old.begin_transaction()
    old.produce(topic_name, value=b"old", partition=0)
    assert old.flush(TIMEOUT) == 0

    new = _transactional_producer(txn_broker.bootstrap, tid)
    with pytest.raises(KafkaException) as raised:
        old.commit_transaction(TIMEOUT)
    error = raised.value.args[0]
    assert error.fatal(), error
    assert "fenced" in error.str().lower(), error

    new.begin_transaction()
    new.produce(topic_name, value=b"new", partition=0)
    new.commit_transaction(TIMEOUT)
    assert read_committed(txn_broker.bootstrap, topic_name, 1) == [b"new"]


# -- the transaction timeout ---------------------------------------------------------------------

@pytest.mark.timeout(120)
def test_an_open_transaction_is_aborted_after_its_timeout(txn_broker, topic_name):
    from kafka import KafkaAdminClient

    create_topic(ConfluentKafka(), txn_broker.bootstrap, topic_name, partitions=1)
    tid = f"{topic_name}-tx"
    timeout_ms = 2000
    producer = _transactional_producer(txn_broker.bootstrap, tid, **{"transaction.timeout.ms": timeout_ms})
    producer.begin_transaction()
    producer.produce(topic_name, value=b"open", partition=0)
    assert producer.flush(TIMEOUT) == 0
    opened = time.monotonic()
    produce_plain(txn_broker.bootstrap, topic_name, 1, 1)  # behind the open transaction: held at the LSO

    admin = KafkaAdminClient(bootstrap_servers=txn_broker.bootstrap)
    try:
        [listings] = admin.list_transactions().values()  # per broker
        listed = {t.transactional_id: t for t in listings}
        assert listed[tid].state.value == "Ongoing"
        assert tid in {t.transactional_id for t in admin.list_transactions(state_filters=["Ongoing"])[1]}
        assert tid not in {t.transactional_id for t in admin.list_transactions(state_filters=["Empty"])[1]}
        # A read_committed consumer gets the record after the open transaction only once the broker
        # has aborted it, a timeout later; the aborted record never.
        values = read_committed(txn_broker.bootstrap, topic_name, 1, until=lambda v: b"0" in v)
        assert values == [b"0"]
        assert time.monotonic() - opened >= timeout_ms / 1000 - 0.5
        described = admin.describe_transactions([tid])[tid]
        assert described.state.value in ("PrepareAbort", "CompleteAbort")
        assert described.producer_epoch == 1  # the abort fenced the producer's epoch 0
    finally:
        admin.close()


# -- a broker crash between EndTxn and the markers ------------------------------------------------

def _rewrite_as_prepare_commit(data_dir: Path, tid: str) -> None:
    """Offline, with the broker down: log PrepareCommit for `tid`'s open transaction, which is what
    the coordinator writes when EndTxn(commit) arrives, just before it writes the markers."""
    config = build_config({"log.dirs": str(data_dir)})
    logs = LogManager(data_dir, config.log_defaults()).load()
    try:
        partition_log = logs.get_log(txn_records.TRANSACTION_STATE_TOPIC, partition_for(tid, 50))
        latest: dict = {}
        for latest in latest_values(partition_log):
            pass
        entry = txn_records.decode_value(latest[txn_records.encode_key(tid)])
        assert entry.state == TxnState.ONGOING and entry.partitions
        prepared = txn_records.TxnLogEntry(entry.producer_id, entry.producer_epoch, entry.timeout_ms,
                                           TxnState.PREPARE_COMMIT, entry.partitions, entry.last_update_ms,
                                           entry.start_ms)
        asyncio.run(append_durably(partition_log, [(txn_records.encode_key(tid), txn_records.encode_value(prepared))],
                                   int(time.time() * 1000), append_at_once))
    finally:
        logs.shutdown()


@pytest.mark.timeout(120)
def test_a_transaction_prepared_before_a_crash_is_completed_on_restart(broker_factory, topic_name):
    broker = broker_factory(SETTINGS)
    create_topic(ConfluentKafka(), broker.bootstrap, topic_name, partitions=2)
    tid = f"{topic_name}-tx"
    producer = _transactional_producer(broker.bootstrap, tid)
    producer.begin_transaction()
    for i in range(6):
        producer.produce(topic_name, value=b"%d" % i, partition=i % 2)
    assert producer.flush(TIMEOUT) == 0
    broker.kill()  # the coordinator had logged Ongoing; the crash came "between EndTxn and the markers"
    del producer
    _rewrite_as_prepare_commit(broker.data_dir, tid)

    broker.start()
    assert sorted(read_committed(broker.bootstrap, topic_name, 2)) == [b"%d" % i for i in range(6)]
    with WireClient(broker.bootstrap) as client:
        described = client.request(65, 0, _describe(tid))
    assert described.transaction_states[0].transaction_state == "CompleteCommit"


@pytest.mark.timeout(120)
def test_a_committed_transaction_survives_a_broker_kill_right_after_end_txn(broker_factory, topic_name):
    broker = broker_factory(SETTINGS)
    create_topic(ConfluentKafka(), broker.bootstrap, topic_name, partitions=2)
    producer = _transactional_producer(broker.bootstrap, f"{topic_name}-tx")
    producer.begin_transaction()
    for i in range(6):
        producer.produce(topic_name, value=b"%d" % i, partition=i % 2)
    producer.commit_transaction(TIMEOUT)
    broker.kill()
    del producer
    broker.start()
    assert sorted(read_committed(broker.bootstrap, topic_name, 2)) == [b"%d" % i for i in range(6)]


# -- bad requests ------------------------------------------------------------------------------

def _describe(tid: str) -> DescribeTransactionsRequest:
    return DescribeTransactionsRequest(transactional_ids=[tid])


def _init(client: WireClient, tid: str, timeout_ms: int = 60_000, version: int = 4):
    return client.request(22, version, InitProducerIdRequest(transactional_id=tid, transaction_timeout_ms=timeout_ms))


def _add_partitions(client: WireClient, version: int, tid: str, pid: int, epoch: int, topic: str) -> int:
    answer = client.request(24, version, AddPartitionsToTxnRequest(
        v3_and_below_transactional_id=tid, v3_and_below_producer_id=pid, v3_and_below_producer_epoch=epoch,
        v3_and_below_topics=[AddPartitionsToTxnTopic(name=topic, partitions=[0])]))
    return answer.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code


def test_bad_transactional_requests_get_kafkas_error_codes(txn_broker, topic_name):
    create_topic(ConfluentKafka(), txn_broker.bootstrap, topic_name, partitions=1)
    tid = f"{topic_name}-tx"
    with WireClient(txn_broker.bootstrap) as client:
        assert _init(client, tid, timeout_ms=900_001).error_code == ErrorCode.INVALID_TRANSACTION_TIMEOUT
        assert _init(client, "").error_code == ErrorCode.INVALID_REQUEST
        first = _init(client, tid)
        assert (first.error_code, first.producer_epoch) == (0, 0)
        # EndTxn without a transaction; for an id the coordinator never saw.
        assert client.request(26, 3, EndTxnRequest(transactional_id=tid, producer_id=first.producer_id,
                                                    producer_epoch=0, committed=True)).error_code \
            == ErrorCode.INVALID_TXN_STATE
        assert client.request(26, 3, EndTxnRequest(transactional_id=f"{tid}-unknown", producer_id=first.producer_id,
                                                    producer_epoch=0, committed=True)).error_code \
            == ErrorCode.INVALID_PRODUCER_ID_MAPPING
        # A new incarnation: epoch 0 is fenced (the error name depends on the request version).
        second = _init(client, tid)
        assert (second.producer_id, second.producer_epoch) == (first.producer_id, 1)
        assert _add_partitions(client, 3, tid, first.producer_id, 0, topic_name) == ErrorCode.PRODUCER_FENCED
        assert _add_partitions(client, 1, tid, first.producer_id, 0, topic_name) == ErrorCode.INVALID_PRODUCER_EPOCH
        assert _add_partitions(client, 3, tid, first.producer_id, 1, "no-such-topic") \
            == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        assert _add_partitions(client, 3, tid, first.producer_id, 1, topic_name) == ErrorCode.NONE
        # v4+ (KIP-890, brokers' form): verify_only says whether partitions are in the transaction.
        verified = client.request(24, 4, AddPartitionsToTxnRequest(transactions=[AddPartitionsToTxnTransaction(
            transactional_id=tid, producer_id=first.producer_id, producer_epoch=1, verify_only=True,
            topics=[AddPartitionsToTxnTopic(name=topic_name, partitions=[0])])]))
        assert verified.results_by_transaction[0].topic_results[0].results_by_partition[0].partition_error_code == 0
        # The longest id a Kafka string holds (32767 bytes) is a transactional id like any other.
        longest = _init(client, "x" * 32767)
        assert (longest.error_code, longest.producer_epoch) == (0, 0)
        # Unknown transactional ids in the admin view.
        assert client.request(65, 0, _describe(f"{tid}-unknown")).transaction_states[0].error_code \
            == ErrorCode.TRANSACTIONAL_ID_NOT_FOUND


def test_transactional_batches_outside_a_transaction_are_refused(txn_broker, topic_name):
    """Kafka's checks (KafkaApis, KIP-890 part 1): a transactional batch needs a transactional id and,
    as its transaction's first on the partition, the coordinator's word that the partition is in
    it. Otherwise it would open a transaction nothing ends, and read_committed would stop there."""
    create_topic(ConfluentKafka(), txn_broker.bootstrap, topic_name, partitions=1)
    tid = f"{topic_name}-tx"
    with WireClient(txn_broker.bootstrap) as client:
        producer = _init(client, tid)
        pid = producer.producer_id

        def send(sequence: int, transactional_id: str | None = tid) -> int:
            return produce(client, topic_name, 0, txn_batch(sequence, b"v", producer_id=pid),
                           transactional_id=transactional_id).error_code

        assert send(0, transactional_id=None) == ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED
        assert send(0) == ErrorCode.INVALID_TXN_STATE  # the partition was never added
        assert _add_partitions(client, 3, tid, pid, 0, topic_name) == ErrorCode.NONE
        assert send(0) == ErrorCode.NONE
        assert send(1) == ErrorCode.NONE  # the open transaction vouches for the next batches
        assert client.request(26, 3, EndTxnRequest(transactional_id=tid, producer_id=pid, producer_epoch=0,
                                                    committed=False)).error_code == ErrorCode.NONE
        for _ in _deadline_loop("the abort marker"):
            answer = fetch_all(client, topic_name, 0, isolation_level=1)
            if answer.high_watermark == 3:
                break
        assert send(2) == ErrorCode.INVALID_TXN_STATE  # the transaction is over
        answer = fetch_all(client, topic_name, 0, isolation_level=1)
        assert answer.last_stable_offset == answer.high_watermark == 3  # nothing left open


@pytest.mark.timeout(120)
def test_txn_offset_commit_from_a_stale_generation_or_unknown_member_is_refused(txn_broker, topic_name):
    create_topic(ConfluentKafka(), txn_broker.bootstrap, topic_name, partitions=1)
    group, tid = f"{topic_name}-g", f"{topic_name}-tx"
    consumer = Consumer({"bootstrap.servers": txn_broker.bootstrap, "group.id": group})
    consumer.subscribe([topic_name])
    try:
        for _ in _deadline_loop("the consumer to join its group"):
            consumer.poll(0.2)
            if consumer.assignment():
                break
        member_id = consumer.memberid()
        with WireClient(txn_broker.bootstrap) as client:
            init = _init(client, tid)

            def commit(member: str, generation: int) -> int:
                answer = client.request(28, 3, TxnOffsetCommitRequest(
                    transactional_id=tid, group_id=group, producer_id=init.producer_id,
                    producer_epoch=init.producer_epoch, generation_id=generation, member_id=member,
                    topics=[TxnOffsetCommitRequestTopic(name=topic_name, partitions=[
                        TxnOffsetCommitRequestPartition(partition_index=0, committed_offset=1)])]))
                return answer.topics[0].partitions[0].error_code

            assert commit("ghost", 1) == ErrorCode.UNKNOWN_MEMBER_ID
            assert commit(member_id, 999) == ErrorCode.ILLEGAL_GENERATION
    finally:
        consumer.close()
