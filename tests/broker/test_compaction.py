"""Compaction inside a running broker (a subprocess): the cleaner task cleans a compacted topic
while it is served, records without a key are refused on it, and a crash after cleaning loses
nothing. Raw requests from our own codec; compat_tests/test_compaction.py does it with real clients.
"""
from __future__ import annotations

import random
import time

import pytest

from kbroker.errors import ErrorCode
from kbroker.wire.messages.create_topics import CreatableTopic, CreatableTopicConfig, CreateTopicsRequest
from kbroker.wire.messages.fetch import FetchPartition, FetchRequest, FetchTopic
from kbroker.wire.messages.produce import PartitionProduceData, ProduceRequest, TopicProduceData
from kbroker.wire.records import BatchHeader, Compression, Record, build_batch, decode_records
from tests.broker_process import BrokerProcess
from tests.waiting import wait_until
from tests.wire_client import WireClient

PRODUCE, FETCH, CREATE_TOPICS = 0, 1, 19
TOPIC = "compacted"
SETTINGS = {"log.cleaner.backoff.ms": "50", "log.retention.check.interval.ms": "100"}
CONFIGS = {"cleanup.policy": "compact", "segment.bytes": "4096", "segment.ms": "300",
           "min.cleanable.dirty.ratio": "0.01"}


def create(client: WireClient, name: str) -> None:
    response = client.request(CREATE_TOPICS, 7, CreateTopicsRequest(timeout_ms=5000, topics=[CreatableTopic(
        name=name, num_partitions=1, replication_factor=1,
        configs=[CreatableTopicConfig(name=k, value=v) for k, v in CONFIGS.items()])]))
    assert response.topics[0].error_code == 0


def produce(client: WireClient, records: list[Record], compression: Compression = Compression.NONE):
    request = ProduceRequest(acks=-1, timeout_ms=5000, topic_data=[TopicProduceData(name=TOPIC, partition_data=[
        PartitionProduceData(index=0, records=build_batch(records, compression=compression))])])
    return client.request(PRODUCE, 9, request).responses[0].partition_responses[0]


def fetch_records(client: WireClient) -> tuple[list[Record], int]:
    response = client.request(FETCH, 12, FetchRequest(max_wait_ms=0, min_bytes=0, max_bytes=10_000_000, topics=[
        FetchTopic(topic=TOPIC, partitions=[FetchPartition(partition=0, fetch_offset=0,
                                                           partition_max_bytes=10_000_000)])]))
    partition = response.responses[0].partitions[0]
    data, records, pos = bytes(partition.records or b""), [], 0
    while pos < len(data):
        size = BatchHeader.parse(data, pos).size
        records += decode_records(data[pos:pos + size])
        pos += size
    return records, partition.high_watermark


def first_dirty_offset(broker: BrokerProcess) -> int:
    path = broker.data_dir / "cleaner-offset-checkpoint"
    for line in path.read_text().splitlines()[2:] if path.exists() else ():
        topic, _, offset = line.split()
        if topic == TOPIC:
            return int(offset)
    return -1


@pytest.mark.timeout(60)
def test_cleaned_while_served_and_after_a_crash(tmp_path):
    broker = BrokerProcess(tmp_path / "data", SETTINGS).start()
    try:
        with WireClient(broker.bootstrap) as client:
            create(client, TOPIC)
            refused = produce(client, [Record(0, 0, b"k", b"v"), Record(1, 0, None, b"no key"),
                                       Record(2, 0, None, b"no key either")], Compression.LZ4)
            assert refused.error_code == ErrorCode.INVALID_RECORD
            assert [e.batch_index for e in refused.record_errors] == [1, 2]
            assert refused.record_errors[0].batch_index_error_message == \
                f"Compacted topic cannot accept message without key in topic partition {TOPIC}-0"
            assert refused.error_message.startswith("One or more records have been rejected due to 2 record errors")

            latest = {}
            for n in range(60):
                records = [Record(i, int(time.time() * 1000), b"key-%d" % ((n * 7 + i) % 25), b"value-%d-%d" % (n, i))
                           for i in range(8)]
                assert produce(client, records, Compression.GZIP if n % 2 else Compression.NONE).error_code == 0
                latest.update((r.key, r.value) for r in records)
            # the idle segment rolls, and is cleaned
            wait_until(lambda: first_dirty_offset(broker) >= 60 * 8, lambda: f"the cleaning:\n{broker.log()}", 30)
            records, high_watermark = fetch_records(client)
            assert high_watermark == 480 and {r.key: r.value for r in records} == latest and len(records) == 25
        broker.kill()
        broker.start()
        with WireClient(broker.bootstrap) as client:
            assert fetch_records(client) == (records, 480)
    finally:
        broker.stop()


@pytest.mark.timeout(120)
def test_killed_while_cleaning_then_restarted_loses_nothing(tmp_path):
    """SIGKILL at a random moment of a cleaning, five times (each restart dirties the log again and
    the cleaning begins anew), then one cleaning finishes: the latest value of every key is there."""
    broker = BrokerProcess(tmp_path / "data", {**SETTINGS, "log.cleaner.io.buffer.size": "4096"}).start()
    rng = random.Random(7)
    latest: dict[bytes, bytes] = {}

    def write(batches: int) -> None:
        with WireClient(broker.bootstrap) as client:
            for n in range(batches):
                records = [Record(i, int(time.time() * 1000), b"key-%d" % rng.randrange(3000),
                                  b"v%d-%d" % (len(latest), i) * 4) for i in range(50)]
                assert produce(client, records, Compression.LZ4 if n % 3 else Compression.NONE).error_code == 0
                latest.update((r.key, r.value) for r in records)

    def cleanings_started() -> int:
        return broker.log().count(f"{TOPIC}-0: cleaning")

    try:
        with WireClient(broker.bootstrap) as client:
            create(client, TOPIC)
        write(200)
        for cycle in range(5):
            started = cleanings_started()
            write(20)
            wait_until(lambda: cleanings_started() > started, lambda: f"a cleaning to start:\n{broker.log()}", 30)
            time.sleep(rng.uniform(0, 0.4))  # a cleaning of this log takes about 0.4 s
            broker.kill()
            broker.start()
            with WireClient(broker.bootstrap) as client:
                records, _ = fetch_records(client)
            assert {r.key: r.value for r in records} == latest, cycle
        end = 200 * 50 + 5 * 20 * 50
        wait_until(lambda: first_dirty_offset(broker) >= end, lambda: f"the cleaning:\n{broker.log()}", 60)
        with WireClient(broker.bootstrap) as client:
            records, high_watermark = fetch_records(client)
        assert high_watermark == end and {r.key: r.value for r in records} == latest
        assert len(records) == len(latest)
    finally:
        broker.stop()
