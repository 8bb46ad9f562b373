"""WriteTxnMarkers and DescribeProducers against a broker subprocess, over our own wire client;
transactional produce and read_committed Fetch / ListOffsets at the protocol level."""
from __future__ import annotations

from kbroker.errors import ErrorCode
from kbroker.wire.messages.describe_producers import DescribeProducersRequest, TopicRequest
from kbroker.wire.messages.write_txn_markers import WritableTxnMarker, WritableTxnMarkerTopic, WriteTxnMarkersRequest
from tests.broker.test_internal_topics import create_topic
from tests.wire_client import WireClient

WRITE_TXN_MARKERS, DESCRIBE_PRODUCERS = 27, 61
PID = 4242


def write_marker(client: WireClient, topic: str, *, commit: bool, epoch: int = 0, coordinator_epoch: int = 0,
                 partitions: tuple[int, ...] = (0,), version: int = 1) -> dict[tuple[str, int], int]:
    response = client.request(WRITE_TXN_MARKERS, version, WriteTxnMarkersRequest(markers=[WritableTxnMarker(
        producer_id=PID, producer_epoch=epoch, transaction_result=commit, coordinator_epoch=coordinator_epoch,
        topics=[WritableTxnMarkerTopic(name=topic, partition_indexes=list(partitions))])]))
    (marker,) = response.markers
    assert marker.producer_id == PID
    return {(t.name, p.partition_index): p.error_code for t in marker.topics for p in t.partitions}


def producers(client: WireClient, topic: str, partition: int = 0):
    response = client.request(DESCRIBE_PRODUCERS, 0, DescribeProducersRequest(
        topics=[TopicRequest(name=topic, partition_indexes=[partition])]))
    (result,) = response.topics[0].partitions
    return result


def test_markers_are_written_per_partition_with_kafkas_errors(broker, topic_name):
    with WireClient(broker.bootstrap) as client:
        create_topic(client, topic_name)
        assert write_marker(client, topic_name, commit=True, epoch=3, coordinator_epoch=2, partitions=(0, 7),
                            version=0) == {(topic_name, 0): 0, (topic_name, 7): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
        assert write_marker(client, "no-such-topic", commit=False) == {
            ("no-such-topic", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
        assert write_marker(client, topic_name, commit=False, epoch=2, coordinator_epoch=2) == {
            (topic_name, 0): ErrorCode.INVALID_PRODUCER_EPOCH}
        assert write_marker(client, topic_name, commit=False, epoch=3, coordinator_epoch=1) == {
            (topic_name, 0): ErrorCode.TRANSACTION_COORDINATOR_FENCED}
        result = producers(client, topic_name)
        assert result.error_code == 0
        (state,) = result.active_producers
        assert (state.producer_id, state.producer_epoch, state.coordinator_epoch, state.current_txn_start_offset,
                state.last_sequence) == (PID, 3, 2, -1, -1)
        assert producers(client, topic_name, 9).error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
