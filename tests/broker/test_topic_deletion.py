"""Deleting a topic ends what waits on it and what was committed for it (Kafka's DelayedFetch and
GroupMetadataManager.cleanupGroupMetadata): a Fetch parked on the topic is answered at once with
the topic unknown and no records, never later from a new topic of the same name; the groups'
committed offsets of the topic are tombstoned, so a topic created again under the name starts
uncommitted, also after a restart.

Each case talks to a real broker subprocess over sockets.
"""
from __future__ import annotations

import time

import pytest

from kbroker.errors import ErrorCode
from kbroker.wire.messages.create_topics import CreatableTopic, CreateTopicsRequest
from kbroker.wire.messages.delete_topics import DeleteTopicsRequest
from kbroker.wire.messages.fetch import FetchPartition, FetchRequest, FetchTopic
from kbroker.wire.messages.list_groups import ListGroupsRequest
from kbroker.wire.messages.metadata import MetadataRequest, MetadataRequestTopic
from kbroker.wire.messages.offset_commit import OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic
from kbroker.wire.messages.offset_fetch import OffsetFetchRequest, OffsetFetchRequestTopic
from kbroker.wire.messages.produce import PartitionProduceData, ProduceRequest, TopicProduceData
from kbroker.wire.records import Record, build_batch
from tests.broker_metrics import METRICS_ON, parked_fetches
from tests.broker_process import BrokerProcess
from tests.waiting import wait_until
from tests.wire_client import WireClient

PRODUCE, FETCH, METADATA, OFFSET_COMMIT, OFFSET_FETCH, LIST_GROUPS, CREATE_TOPICS, DELETE_TOPICS = 0, 1, 3, 8, 9, 16, 19, 20
LONG_POLL_MS = 8000


def create(client: WireClient, topic: str) -> None:
    response = client.request(CREATE_TOPICS, 7, CreateTopicsRequest(
        topics=[CreatableTopic(name=topic, num_partitions=1, replication_factor=1)], timeout_ms=5000))
    assert response.topics[0].error_code == 0


def delete(client: WireClient, topic: str) -> None:
    response = client.request(DELETE_TOPICS, 5, DeleteTopicsRequest(topic_names=[topic], timeout_ms=5000))
    assert response.responses[0].error_code == 0


def produce(client: WireClient, topic: str, count: int) -> None:
    batch = build_batch([Record(i, 1_700_000_000_000 + i, b"k%d" % i, b"v%d" % i) for i in range(count)])
    response = client.request(PRODUCE, 9, ProduceRequest(acks=-1, timeout_ms=5000, topic_data=[TopicProduceData(
        name=topic, partition_data=[PartitionProduceData(index=0, records=batch)])]))
    assert response.responses[0].partition_responses[0].error_code == 0


def topic_id(client: WireClient, topic: str):
    return client.request(METADATA, 12, MetadataRequest(
        topics=[MetadataRequestTopic(name=topic)], allow_auto_topic_creation=False)).topics[0].topic_id


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """With metrics on: a test knows from the purgatory gauge when its Fetch is parked."""
    process = BrokerProcess(tmp_path_factory.mktemp("broker") / "data", METRICS_ON).start()
    yield process
    process.stop()


def park_fetch(broker: BrokerProcess, client: WireClient, topic: str, offset: int, version: int,
               topic_id=None) -> None:
    """Send a Fetch that waits (min_bytes unreachable); return once the broker has parked it."""
    before = parked_fetches(broker)
    client.send(FETCH, version, FetchRequest(
        max_wait_ms=LONG_POLL_MS, min_bytes=1 << 20, max_bytes=1 << 20, topics=[FetchTopic(
            topic=topic, topic_id=topic_id, partitions=[
                FetchPartition(partition=0, fetch_offset=offset, partition_max_bytes=1 << 20)])]))
    wait_until(lambda: parked_fetches(broker) == before + 1, "the Fetch to be parked")


@pytest.mark.parametrize("version", [12, 16], ids=["by-name", "by-topic-id"])
def test_a_parked_fetch_is_answered_at_once_when_its_topic_is_deleted(broker, topic_name, version):
    unknown = ErrorCode.UNKNOWN_TOPIC_ID if version >= 13 else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    with WireClient(broker.bootstrap) as admin, WireClient(broker.bootstrap) as consumer:
        create(admin, topic_name)
        produce(admin, topic_name, 3)
        park_fetch(broker, consumer, topic_name, 3, version, topic_id(admin, topic_name))
        started = time.monotonic()
        delete(admin, topic_name)
        _, response = consumer.receive(FETCH, version)
        waited = time.monotonic() - started
    partition = response.responses[0].partitions[0]
    assert (partition.error_code, bytes(partition.records or b"")) == (unknown, b"")
    assert waited < LONG_POLL_MS / 1000 / 2


def test_a_parked_fetch_never_reads_a_new_topic_of_the_same_name(broker, topic_name):
    with WireClient(broker.bootstrap) as admin, WireClient(broker.bootstrap) as consumer:
        create(admin, topic_name)
        produce(admin, topic_name, 3)
        park_fetch(broker, consumer, topic_name, 3, 12)
        delete(admin, topic_name)
        create(admin, topic_name)
        produce(admin, topic_name, 10)
        _, response = consumer.receive(FETCH, 12)
    partition = response.responses[0].partitions[0]
    assert (partition.error_code, bytes(partition.records or b"")) == (ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, b"")


def commit(client: WireClient, group: str, topic: str, offset: int) -> int:
    response = client.request(OFFSET_COMMIT, 7, OffsetCommitRequest(
        group_id=group, generation_id_or_member_epoch=-1, topics=[OffsetCommitRequestTopic(
            name=topic, partitions=[OffsetCommitRequestPartition(partition_index=0, committed_offset=offset)])]))
    return response.topics[0].partitions[0].error_code


def committed(client: WireClient, group: str, topic: str) -> int:
    """The committed offset, once the coordinator has loaded the group (after a restart it may not have)."""
    deadline = time.monotonic() + 30
    while True:
        response = client.request(OFFSET_FETCH, 7, OffsetFetchRequest(
            group_id=group, topics=[OffsetFetchRequestTopic(name=topic, partition_indexes=[0])]))
        if response.error_code != ErrorCode.COORDINATOR_LOAD_IN_PROGRESS or time.monotonic() > deadline:
            return response.topics[0].partitions[0].committed_offset
        time.sleep(0.05)


def groups(client: WireClient) -> set[str]:
    return {g.group_id for g in client.request(LIST_GROUPS, 4, ListGroupsRequest()).groups}


def test_committed_offsets_of_a_deleted_topic_are_dropped_for_good(tmp_path):
    """g1 keeps its offset of another topic; g2, left Empty without offsets, is gone too."""
    broker = BrokerProcess(tmp_path / "data").start()
    try:
        with WireClient(broker.bootstrap) as client:
            create(client, "orders")
            create(client, "kept")
            for group in ("g1", "g2"):
                assert commit(client, group, "orders", 100) == 0
            assert commit(client, "g1", "kept", 7) == 0
            delete(client, "orders")
            create(client, "orders")
            assert [committed(client, g, "orders") for g in ("g1", "g2")] == [-1, -1]
            assert committed(client, "g1", "kept") == 7
            assert groups(client) == {"g1"}
        broker.restart()  # the tombstones are in __consumer_offsets
        with WireClient(broker.bootstrap) as client:
            assert [committed(client, g, "orders") for g in ("g1", "g2")] == [-1, -1]
            assert committed(client, "g1", "kept") == 7
            assert groups(client) == {"g1"}
    finally:
        broker.stop()
