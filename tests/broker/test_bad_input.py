"""Bad input gets a clear answer, never a crash or lost data.

Each case talks raw bytes to a real broker subprocess, then proves the broker still serves
another client and the log reads back exactly what was acknowledged.
"""
from __future__ import annotations

import gzip
import struct
import time

import psutil
import pytest

from kbroker.errors import ErrorCode
from kbroker.wire.messages.api_versions import ApiVersionsRequest
from kbroker.wire.messages.create_topics import CreatableTopic, CreatableTopicConfig, CreateTopicsRequest
from kbroker.wire.messages.fetch import FetchPartition, FetchRequest, FetchTopic
from kbroker.wire.messages.metadata import MetadataRequest, MetadataRequestTopic
from kbroker.wire.messages.produce import PartitionProduceData, ProduceRequest, TopicProduceData
from kbroker.wire.records import (
    ATTRIBUTES_OFFSET,
    CRC_OFFSET,
    LAST_OFFSET_DELTA_OFFSET,
    LENGTH_OFFSET,
    LOG_OVERHEAD,
    MAGIC_OFFSET,
    RECORDS_COUNT_OFFSET,
    RECORDS_OFFSET,
    Compression,
    Record,
    build_batch,
    compute_crc,
    decode_records,
)
from tests.broker_metrics import METRICS_ON, parked_fetches
from tests.broker_process import BrokerProcess
from tests.waiting import wait_until
from tests.wire_client import WireClient

PRODUCE, FETCH, METADATA, API_VERSIONS, CREATE_TOPICS = 0, 1, 3, 18, 19
MAX_REQUEST = 1_000_000


@pytest.fixture(scope="module")
def small_broker(tmp_path_factory):
    overrides = {"socket.request.max.bytes": str(MAX_REQUEST), "message.max.bytes": "100000", **METRICS_ON}
    process = BrokerProcess(tmp_path_factory.mktemp("bad-input") / "data", overrides).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def topic(small_broker) -> str:
    name = "bad-input"
    with WireClient(small_broker.bootstrap) as client:
        response = client.request(CREATE_TOPICS, 7, CreateTopicsRequest(
            topics=[CreatableTopic(name=name, num_partitions=2, replication_factor=1)], timeout_ms=5000))
    assert response.topics[0].error_code == 0
    return name


def batch(*values: bytes, timestamp: int = 1_700_000_000_000) -> bytearray:
    return bytearray(build_batch([Record(i, timestamp + i, b"k%d" % i, v) for i, v in enumerate(values)]))


def produce(client: WireClient, topic: str, partition: int, records: bytes | None, acks: int = -1, version: int = 9,
            transactional_id: str | None = None):
    request = ProduceRequest(acks=acks, timeout_ms=5000, transactional_id=transactional_id, topic_data=[TopicProduceData(
        name=topic, partition_data=[PartitionProduceData(index=partition, records=records)])])
    if acks == 0:
        client.send(PRODUCE, version, request)
        return None
    return client.request(PRODUCE, version, request).responses[0].partition_responses[0]


def fetch_all(client: WireClient, topic: str, partition: int, offset: int = 0, version: int = 12,
              isolation_level: int = 0):
    response = client.request(FETCH, version, FetchRequest(
        max_wait_ms=0, min_bytes=0, max_bytes=10_000_000, isolation_level=isolation_level,
        topics=[FetchTopic(topic=topic, partitions=[
            FetchPartition(partition=partition, fetch_offset=offset, partition_max_bytes=10_000_000)])]))
    return response.responses[0].partitions[0]


def records_of(partition_data) -> list[bytes]:
    data = bytes(partition_data.records or b"")
    values, pos = [], 0
    while pos < len(data):
        size = struct.unpack_from(">i", data, pos + 8)[0] + 12
        values += [r.value for r in decode_records(data[pos:pos + size])]
        pos += size
    return values


def assert_broker_healthy(broker, topic: str) -> None:
    """Another client can still produce and fetch, and partition 1 holds exactly what was acked."""
    with WireClient(broker.bootstrap) as client:
        marker = b"healthy-%f" % time.time()
        result = produce(client, topic, 1, batch(marker))
        assert result.error_code == 0
        assert marker in records_of(fetch_all(client, topic, 1))
        acked = HEALTH_LOG.setdefault(broker.bootstrap, [])
        acked.append(marker)
        assert records_of(fetch_all(client, topic, 1)) == acked


HEALTH_LOG: dict[str, list[bytes]] = {}


def test_oversized_size_prefix_closes_before_reading_body(small_broker, topic):
    with WireClient(small_broker.bootstrap) as client:
        client.send_raw(struct.pack(">i", MAX_REQUEST + 1))  # no body follows: it must not wait for one
        assert client.is_closed_by_peer()
    assert_broker_healthy(small_broker, topic)


def test_negative_size_prefix_closes(small_broker, topic):
    with WireClient(small_broker.bootstrap) as client:
        client.send_raw(struct.pack(">i", -5))
        assert client.is_closed_by_peer()
    assert_broker_healthy(small_broker, topic)


def test_truncated_frame_then_disconnect(small_broker, topic):
    with WireClient(small_broker.bootstrap) as client:
        client.send_raw(struct.pack(">i", 500) + b"\x00\x03\x00\x0c" + b"\x00" * 20)
    assert_broker_healthy(small_broker, topic)


@pytest.mark.parametrize("garbage", [b"\x00\x00\x00\x08" + b"\xff" * 8, b"\x00\x00\x00\x02ab",
                                     b"\x00\x00\x00\x20" + bytes(range(32))])
def test_garbage_frame_closes(small_broker, topic, garbage):
    with WireClient(small_broker.bootstrap) as client:
        client.send_raw(garbage)
        assert client.is_closed_by_peer()
    assert_broker_healthy(small_broker, topic)


def test_unknown_api_key_closes(small_broker, topic):
    with WireClient(small_broker.bootstrap) as client:
        client.send_raw(struct.pack(">ihhih", 10, 999, 0, 1, -1))
        assert client.is_closed_by_peer()
    assert_broker_healthy(small_broker, topic)


def test_unsupported_version_closes(small_broker, topic):
    with WireClient(small_broker.bootstrap) as client:
        client.send_raw(struct.pack(">ihhih", 10, METADATA, 99, 1, -1))
        assert client.is_closed_by_peer()
    assert_broker_healthy(small_broker, topic)


def test_too_new_api_versions_gets_error_35_in_v0_layout_and_stays_open(small_broker):
    with WireClient(small_broker.bootstrap) as client:
        client.send_raw(struct.pack(">ihhih", 10, API_VERSIONS, 77, 42, -1))
        frame = client.receive_frame()
        correlation_id, error_code, count = struct.unpack_from(">ihi", frame)
        assert (correlation_id, error_code, count) == (42, ErrorCode.UNSUPPORTED_VERSION, 1)
        assert struct.unpack_from(">hhh", frame, 10) == (API_VERSIONS, 0, 4)
        assert len(frame) == 10 + 6  # nothing after the array: the v0 layout
        response = client.request(API_VERSIONS, 3, ApiVersionsRequest(client_software_name="t",
                                                                         client_software_version="1"))
        assert response.error_code == 0


def test_corrupt_crc_is_rejected_and_nothing_appended(small_broker, topic):
    with WireClient(small_broker.bootstrap) as client:
        before = fetch_all(client, topic, 0).high_watermark
        bad = batch(b"one", b"two")
        bad[-1] ^= 0xFF
        assert produce(client, topic, 0, bad).error_code == ErrorCode.CORRUPT_MESSAGE
        assert fetch_all(client, topic, 0).high_watermark == before
    assert_broker_healthy(small_broker, topic)


@pytest.mark.parametrize("magic", [0, 1])
def test_old_message_format_is_rejected(small_broker, topic, magic):
    with WireClient(small_broker.bootstrap) as client:
        old = batch(b"legacy")
        old[MAGIC_OFFSET] = magic
        assert produce(client, topic, 0, old).error_code == ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT
    assert_broker_healthy(small_broker, topic)


def test_batch_over_max_message_bytes(small_broker, topic):
    with WireClient(small_broker.bootstrap) as client:
        big = batch(b"x" * 200_000)
        assert produce(client, topic, 0, big).error_code == ErrorCode.MESSAGE_TOO_LARGE
    assert_broker_healthy(small_broker, topic)


def test_topic_name_of_300_characters(small_broker, topic):
    with WireClient(small_broker.bootstrap) as client:
        name = "t" * 300
        response = client.request(METADATA, 12, MetadataRequest(
            topics=[MetadataRequestTopic(name=name)], allow_auto_topic_creation=True))
        assert response.topics[0].error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
        assert produce(client, name, 0, batch(b"v")).error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
        created = client.request(CREATE_TOPICS, 7, CreateTopicsRequest(
            topics=[CreatableTopic(name=name, num_partitions=1, replication_factor=1)], timeout_ms=5000))
        assert created.topics[0].error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
    assert_broker_healthy(small_broker, topic)


def test_negative_partition(small_broker, topic):
    with WireClient(small_broker.bootstrap) as client:
        assert produce(client, topic, -1, batch(b"v")).error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        assert fetch_all(client, topic, -1).error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert_broker_healthy(small_broker, topic)


def test_fetch_past_the_end(small_broker, topic):
    with WireClient(small_broker.bootstrap) as client:
        end = fetch_all(client, topic, 0).high_watermark
        assert fetch_all(client, topic, 0, offset=end + 1000).error_code == ErrorCode.OFFSET_OUT_OF_RANGE
        assert fetch_all(client, topic, 0, offset=end).error_code == 0
    assert_broker_healthy(small_broker, topic)


def test_null_records_are_invalid(small_broker, topic):
    with WireClient(small_broker.bootstrap) as client:
        assert produce(client, topic, 0, None).error_code == ErrorCode.INVALID_RECORD
    assert_broker_healthy(small_broker, topic)


def test_two_batches_in_one_partition_are_invalid(small_broker, topic):
    with WireClient(small_broker.bootstrap) as client:
        assert produce(client, topic, 0, batch(b"a") + batch(b"b")).error_code == ErrorCode.INVALID_RECORD
    assert_broker_healthy(small_broker, topic)


def test_invalid_acks(small_broker, topic):
    with WireClient(small_broker.bootstrap) as client:
        assert produce(client, topic, 0, batch(b"v"), acks=2).error_code == ErrorCode.INVALID_REQUIRED_ACKS
    assert_broker_healthy(small_broker, topic)


def test_acks_zero_gets_no_response(small_broker, topic):
    with WireClient(small_broker.bootstrap) as client:
        produce(client, topic, 0, batch(b"fire-and-forget"), acks=0)
        # The next answer on the connection belongs to the next request.
        sent = client.send(API_VERSIONS, 3, ApiVersionsRequest(client_software_name="t", client_software_version="1"))
        correlation_id, response = client.receive(API_VERSIONS, 3)
        assert correlation_id == sent and response.error_code == 0
        assert b"fire-and-forget" in records_of(fetch_all(client, topic, 0))


def test_responses_stay_in_request_order_while_a_fetch_is_held(small_broker, topic):
    with WireClient(small_broker.bootstrap) as client:
        end = fetch_all(client, topic, 0).high_watermark
        held = client.send(FETCH, 12, FetchRequest(max_wait_ms=700, min_bytes=1, topics=[FetchTopic(
            topic=topic, partitions=[FetchPartition(partition=0, fetch_offset=end, partition_max_bytes=1000)])]))
        quick = client.send(METADATA, 12, MetadataRequest(topics=[]))
        started = time.monotonic()
        first, _ = client.receive(FETCH, 12)
        assert first == held and time.monotonic() - started >= 0.5
        second, _ = client.receive(METADATA, 12)
        assert second == quick


def test_produce_wakes_a_waiting_fetch(small_broker, topic):
    with WireClient(small_broker.bootstrap) as consumer, WireClient(small_broker.bootstrap) as producer:
        end = fetch_all(consumer, topic, 0).high_watermark
        parked = parked_fetches(small_broker)
        consumer.send(FETCH, 12, FetchRequest(max_wait_ms=10_000, min_bytes=1, topics=[FetchTopic(
            topic=topic, partitions=[FetchPartition(partition=0, fetch_offset=end, partition_max_bytes=100000)])]))
        wait_until(lambda: parked_fetches(small_broker) == parked + 1, "the Fetch to be parked")
        started = time.monotonic()
        assert produce(producer, topic, 0, batch(b"wake")).error_code == 0
        _, response = consumer.receive(FETCH, 12)
        assert time.monotonic() - started < 2.0
        assert records_of(response.responses[0].partitions[0]) == [b"wake"]


def test_producing_to_an_internal_topic_is_refused(small_broker, topic):
    with WireClient(small_broker.bootstrap) as client:
        result = produce(client, "__consumer_offsets", 0, batch(b"forged commit"))
        assert result.error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
    assert_broker_healthy(small_broker, topic)


# -- records that do not hold together (Kafka's LogValidator walk) ---------------------------------

def resigned(batch: bytearray) -> bytearray:
    struct.pack_into(">i", batch, LENGTH_OFFSET, len(batch) - LOG_OVERHEAD)
    struct.pack_into(">I", batch, CRC_OFFSET, compute_crc(batch))
    return batch


def record_runs_past_the_batch() -> bytearray:
    bad = batch(b"one", b"two")
    bad[RECORDS_OFFSET] += 2 * 50  # the first record's one-byte length: 50 bytes more
    return resigned(bad)


def count_says_more() -> bytearray:
    bad = batch(b"one", b"two")
    struct.pack_into(">i", bad, RECORDS_COUNT_OFFSET, 3)
    struct.pack_into(">i", bad, LAST_OFFSET_DELTA_OFFSET, 2)
    return resigned(bad)


def trailing_bytes() -> bytearray:
    return resigned(batch(b"one", b"two") + b"\x00\x00\x00")


def does_not_decompress() -> bytearray:
    good = bytearray(build_batch([Record(0, 1_700_000_000_000, b"k", b"v" * 300)], compression=Compression.LZ4))
    return resigned(good[:RECORDS_OFFSET] + b"\x04\x22\x4d\x18 this is no lz4 frame")


def control() -> bytearray:
    return bytearray(build_batch([Record(0, 1_700_000_000_000, b"\x00\x00\x00\x01", b"")], is_control=True))


@pytest.mark.parametrize("bad, code", [
    (record_runs_past_the_batch, ErrorCode.INVALID_RECORD),
    (count_says_more, ErrorCode.INVALID_RECORD),
    (trailing_bytes, ErrorCode.INVALID_RECORD),
    (does_not_decompress, ErrorCode.INVALID_RECORD),
    (control, ErrorCode.INVALID_RECORD),
], ids=lambda case: getattr(case, "__name__", ""))
def test_malformed_records_are_refused_and_the_next_batch_appended(small_broker, topic, bad, code):
    with WireClient(small_broker.bootstrap) as client:
        before = fetch_all(client, topic, 0)
        result = produce(client, topic, 0, bad())
        assert result.error_code == code and result.base_offset == -1
        after = fetch_all(client, topic, 0)
        assert (after.high_watermark, records_of(after)) == (before.high_watermark, records_of(before))
        good = produce(client, topic, 0, batch(b"after the refused one"))
        assert good.error_code == 0 and good.base_offset == before.high_watermark
        assert records_of(fetch_all(client, topic, 0))[-1] == b"after the refused one"
    assert_broker_healthy(small_broker, topic)


def test_gzip_bomb_to_a_compacted_topic_is_refused_in_bounded_memory(small_broker, topic):
    """About 90 KiB of gzip (under message.max.bytes, 100000 here) that inflates to 96 MiB of keyed
    records: the broker stops at its ceiling (16 x message.max.bytes) instead of inflating it all."""
    name = "compacted-bomb"
    with WireClient(small_broker.bootstrap) as client:
        created = client.request(CREATE_TOPICS, 7, CreateTopicsRequest(timeout_ms=5000, topics=[CreatableTopic(
            name=name, num_partitions=1, replication_factor=1,
            configs=[CreatableTopicConfig(name="cleanup.policy", value="compact")])]))
        assert created.topics[0].error_code == 0
        bomb = bytearray(build_batch([Record(0, 1_700_000_000_000, b"k", bytes(96 << 20))]))
        bomb = resigned(bomb[:RECORDS_OFFSET] + gzip.compress(bytes(bomb[RECORDS_OFFSET:]), 9))
        struct.pack_into(">h", bomb, ATTRIBUTES_OFFSET, Compression.GZIP)
        bomb = resigned(bomb)
        assert len(bomb) < 100_000
        broker = psutil.Process(small_broker.process.pid)
        rss_before = broker.memory_info().rss
        result = produce(client, name, 0, bomb)
        assert result.error_code == ErrorCode.INVALID_RECORD
        assert broker.memory_info().rss - rss_before < 24 << 20
        assert produce(client, name, 0, batch(b"keyed")).error_code == 0
    assert_broker_healthy(small_broker, topic)
