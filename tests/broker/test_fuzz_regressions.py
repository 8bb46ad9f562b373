"""Bugs the fuzzers found, each pinned by the smallest request sequence that showed it."""
from __future__ import annotations

from kbroker.wire.messages.create_topics import CreatableTopic, CreateTopicsRequest
from kbroker.wire.messages.delete_topics import DeleteTopicsRequest
from kbroker.wire.messages.metadata import MetadataRequest
from tests.broker.test_bad_input import batch, fetch_all, produce
from tests.wire_client import WireClient

CREATE_TOPICS, DELETE_TOPICS, METADATA = 19, 20, 3
LONGEST = "a" * 249  # Kafka's longest legal topic name


def test_a_topic_with_the_longest_legal_name_can_be_deleted(broker_factory):
    """`<topic>-<partition>.<id>-delete` went past 255 bytes: the rename failed and the request
    escaped its handler (dispatch fuzz, DeleteTopics v6 of a 249-character name)."""
    broker = broker_factory()
    with WireClient(broker.bootstrap) as client:
        created = client.request(CREATE_TOPICS, 7, CreateTopicsRequest(topics=[
            CreatableTopic(name=LONGEST, num_partitions=2, replication_factor=1)], timeout_ms=5000))
        assert created.topics[0].error_code == 0
        assert produce(client, LONGEST, 1, batch(b"v")).error_code == 0
        deleted = client.request(DELETE_TOPICS, 4, DeleteTopicsRequest(topic_names=[LONGEST], timeout_ms=5000))
        assert deleted.responses[0].error_code == 0
    assert not [p for p in broker.data_dir.iterdir() if p.name.startswith("aaaa")]
    broker.stop()
    broker.start()
    with WireClient(broker.bootstrap) as client:
        topics = client.request(METADATA, 12, MetadataRequest(topics=None)).topics
        assert LONGEST not in [t.name for t in topics]


def test_a_stray_partition_dir_with_the_longest_legal_name_is_set_aside_at_start_up(broker_factory, tmp_path):
    data_dir = tmp_path / "data"
    stray = data_dir / f"{'b' * 249}-12345"
    stray.mkdir(parents=True)
    broker = broker_factory(data_dir=data_dir)
    assert not stray.exists()
    assert [p.name for p in data_dir.iterdir() if p.name.endswith("-stray") and len(p.name) <= 255]
    with WireClient(broker.bootstrap) as client:
        created = client.request(CREATE_TOPICS, 7, CreateTopicsRequest(topics=[
            CreatableTopic(name="after", num_partitions=1, replication_factor=1)], timeout_ms=5000))
        assert created.topics[0].error_code == 0
        assert fetch_all(client, "after", 0).error_code == 0


def test_an_offset_commit_retention_past_the_int64_range_never_expires(broker_factory):
    """now + retention_time_ms overflowed int64 when the commit record was encoded, and the request
    escaped its handler (dispatch fuzz, OffsetCommit v3 with retention_time_ms = 2**63 - 1)."""
    from kbroker.wire.messages.offset_commit import (
        OffsetCommitRequest,
        OffsetCommitRequestPartition,
        OffsetCommitRequestTopic,
    )
    from kbroker.wire.messages.offset_fetch import OffsetFetchRequest, OffsetFetchRequestTopic
    broker = broker_factory()
    with WireClient(broker.bootstrap) as client:
        client.request(CREATE_TOPICS, 7, CreateTopicsRequest(topics=[
            CreatableTopic(name="kept", num_partitions=1, replication_factor=1)], timeout_ms=5000))
        committed = client.request(8, 3, OffsetCommitRequest(
            group_id="forever", generation_id_or_member_epoch=-1, member_id="", retention_time_ms=2**63 - 1,
            topics=[OffsetCommitRequestTopic(name="kept", partitions=[
                OffsetCommitRequestPartition(partition_index=0, committed_offset=42)])]))
        assert committed.topics[0].partitions[0].error_code == 0
        fetched = client.request(9, 3, OffsetFetchRequest(group_id="forever", topics=[
            OffsetFetchRequestTopic(name="kept", partition_indexes=[0])]))
        assert fetched.topics[0].partitions[0].committed_offset == 42
