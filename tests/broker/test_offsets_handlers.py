"""ListOffsets, OffsetForLeaderEpoch, DeleteRecords and DescribeProducers translate: each partition
of a request into one partition-service call, its result into the answer, in the request's order.
In-process, on the service's in-memory twin (partition_twin.py); the lookups themselves are tested
on the real service in test_partition_contract.py."""
from __future__ import annotations

import pytest

from kbroker.broker.handlers.describe_producers import handle_describe_producers
from kbroker.broker.handlers.leader_epochs import handle_offset_for_leader_epoch
from kbroker.broker.handlers.list_offsets import handle_list_offsets
from kbroker.broker.handlers.topics import handle_delete_records
from kbroker.errors import ErrorCode
from kbroker.wire.messages.delete_records import DeleteRecordsPartition, DeleteRecordsRequest, DeleteRecordsTopic
from kbroker.wire.messages.describe_producers import DescribeProducersRequest, ProducerState, TopicRequest
from kbroker.wire.messages.list_offsets import ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic
from kbroker.wire.messages.offset_for_leader_epoch import (
    OffsetForLeaderEpochRequest,
    OffsetForLeaderPartition,
    OffsetForLeaderTopic,
)
from tests.broker.partition_twin import context, twin_broker
from tests.broker.test_dispatch_fuzz import FakeConnection
from tests.log.conftest import NOW, batch

LIST_OFFSETS, DELETE_RECORDS, OFFSET_FOR_LEADER_EPOCH, DESCRIBE_PRODUCERS = 2, 21, 23, 61
LATEST, EARLIEST = -1, -2


@pytest.fixture
async def on_twin(tmp_path):
    async with twin_broker(tmp_path, {"t": 2}) as pair:
        yield pair


def _produce(twin, data: bytearray | None = None, partition: int = 0) -> None:
    appends = twin.appends(1)
    appends.produce("t", partition, memoryview(batch() if data is None else data), 9, None, NOW)
    assert appends.complete(5000) is None


def _list_offsets(broker, version: int, *wanted: tuple[int, int, int], isolation_level: int = 0) -> list:
    """The answers to (partition, timestamp, current leader epoch)s of `t`, as tuples of their fields."""
    request = ListOffsetsRequest(replica_id=-1, isolation_level=isolation_level, timeout_ms=0, topics=[
        ListOffsetsTopic(name="t", partitions=[
            ListOffsetsPartition(partition_index=p, timestamp=stamp, current_leader_epoch=epoch, max_num_offsets=1)
            for p, stamp, epoch in wanted])])
    response = handle_list_offsets(context(broker, LIST_OFFSETS, version, FakeConnection()), request)
    [topic] = response.topics
    if version == 0:
        return [(p.partition_index, p.error_code, p.old_style_offsets) for p in topic.partitions]
    return [(p.partition_index, p.error_code, p.offset, p.timestamp, p.leader_epoch) for p in topic.partitions]


async def test_list_offsets_answers_each_partition_with_its_lookup(on_twin):
    broker, twin = on_twin
    _produce(twin)
    twin.partitions[("t", 1)].become_leader(3)
    assert _list_offsets(broker, 7, (0, LATEST, -1), (1, EARLIEST, 2), (0, NOW + 1, 0), (5, LATEST, -1)) == [
        (0, 0, 3, -1, 0), (1, ErrorCode.FENCED_LEADER_EPOCH, -1, -1, -1), (0, 0, 1, NOW + 1, 0),
        (5, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1, -1, -1)]


async def test_list_offsets_v0_answers_old_style_offsets_and_none_when_not_found(on_twin):
    broker, twin = on_twin
    _produce(twin)
    assert _list_offsets(broker, 0, (0, LATEST, -1), (0, NOW + 9, -1), (1, EARLIEST, -1)) == [
        (0, 0, [3]), (0, 0, []), (1, 0, [0])]


async def test_list_offsets_read_committed_answers_the_last_stable_offset(on_twin):
    broker, twin = on_twin
    _produce(twin)
    _produce(twin, batch(producer_id=7, producer_epoch=0, sequence=0, transactional=True))
    assert _list_offsets(broker, 2, (0, LATEST, -1), isolation_level=1) == [(0, 0, 3, -1, 0)]
    assert _list_offsets(broker, 2, (0, LATEST, -1), isolation_level=0) == [(0, 0, 6, -1, 0)]


async def test_offset_for_leader_epoch_answers_each_partition(on_twin):
    broker, twin = on_twin
    _produce(twin)
    twin.partitions[("t", 0)].become_leader(2)
    _produce(twin)
    request = OffsetForLeaderEpochRequest(replica_id=-1, topics=[OffsetForLeaderTopic(topic="t", partitions=[
        OffsetForLeaderPartition(partition=0, current_leader_epoch=-1, leader_epoch=1),
        OffsetForLeaderPartition(partition=0, current_leader_epoch=1, leader_epoch=0),
        OffsetForLeaderPartition(partition=9, current_leader_epoch=-1, leader_epoch=0)])])
    response = handle_offset_for_leader_epoch(context(broker, OFFSET_FOR_LEADER_EPOCH, 4, FakeConnection()), request)
    assert [(p.partition, p.error_code, p.leader_epoch, p.end_offset) for p in response.topics[0].partitions] == [
        (0, 0, 0, 3), (0, ErrorCode.FENCED_LEADER_EPOCH, -1, -1), (9, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, -1, -1)]


async def test_delete_records_answers_the_low_watermark_or_the_error(on_twin):
    broker, twin = on_twin
    _produce(twin)
    request = DeleteRecordsRequest(timeout_ms=1000, topics=[
        DeleteRecordsTopic(name="t", partitions=[DeleteRecordsPartition(partition_index=0, offset=2),
                                                 DeleteRecordsPartition(partition_index=1, offset=1)]),
        DeleteRecordsTopic(name="__consumer_offsets", partitions=[DeleteRecordsPartition(partition_index=0, offset=0)])])
    response = handle_delete_records(context(broker, DELETE_RECORDS, 2, FakeConnection()), request)
    assert [[(p.partition_index, p.low_watermark, p.error_code) for p in t.partitions] for t in response.topics] == [
        [(0, 2, 0), (1, -1, ErrorCode.OFFSET_OUT_OF_RANGE)], [(0, -1, ErrorCode.INVALID_TOPIC_EXCEPTION)]]
    assert twin.partitions[("t", 0)].log_start_offset == 2


async def test_describe_producers_lists_each_partitions_producers(on_twin):
    broker, twin = on_twin
    _produce(twin, batch(producer_id=7, producer_epoch=1, sequence=0, transactional=True))
    twin.led_elsewhere.add(("t", 1))
    request = DescribeProducersRequest(topics=[TopicRequest(name="t", partition_indexes=[0, 1])])
    response = handle_describe_producers(context(broker, DESCRIBE_PRODUCERS, 0, FakeConnection()), request)
    first, second = response.topics[0].partitions
    assert (first.error_code, first.active_producers) == (0, [ProducerState(
        producer_id=7, producer_epoch=1, last_sequence=2, last_timestamp=NOW + 2, coordinator_epoch=-1,
        current_txn_start_offset=0)])
    assert (second.error_code, second.active_producers) == (ErrorCode.NOT_LEADER_OR_FOLLOWER, [])
