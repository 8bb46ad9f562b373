"""WriteTxnMarkers and DescribeProducers against a broker subprocess, over our own wire client;
transactional produce and read_committed Fetch / ListOffsets at the protocol level."""
from __future__ import annotations

from kbroker.errors import ErrorCode
from kbroker.wire.messages.describe_producers import DescribeProducersRequest, TopicRequest
from kbroker.wire.messages.list_offsets import ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic
from kbroker.wire.messages.write_txn_markers import WritableTxnMarker, WritableTxnMarkerTopic, WriteTxnMarkersRequest
from kbroker.wire.records import Record, build_batch
from tests.broker.test_bad_input import fetch_all, produce, records_of
from tests.broker.test_internal_topics import create_topic
from tests.wire_client import WireClient

LIST_OFFSETS, WRITE_TXN_MARKERS, DESCRIBE_PRODUCERS = 2, 27, 61
PID = 4242
MARKER_VALUE = b"\x00\x00\x00\x00\x00\x00"  # EndTransactionMarker version 0, coordinator epoch 0


def write_marker(client: WireClient, topic: str, *, commit: bool, producer_id: int = PID, epoch: int = 0,
                 coordinator_epoch: int = 0, partitions: tuple[int, ...] = (0,),
                 version: int = 1) -> dict[tuple[str, int], int]:
    """WriteTxnMarkers for one producer's transaction: the error code of each partition."""
    response = client.request(WRITE_TXN_MARKERS, version, WriteTxnMarkersRequest(markers=[WritableTxnMarker(
        producer_id=producer_id, producer_epoch=epoch, transaction_result=commit, coordinator_epoch=coordinator_epoch,
        topics=[WritableTxnMarkerTopic(name=topic, partition_indexes=list(partitions))])]))
    (marker,) = response.markers
    assert marker.producer_id == producer_id
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


def txn_batch(sequence: int, *values: bytes, producer_id: int = PID, epoch: int = 0,
              transactional: bool = True) -> bytes:
    """A batch of a producer's records (keyless, value only) from `sequence` on."""
    return build_batch([Record(i, 1_700_000_000_000, None, v) for i, v in enumerate(values)], producer_id=producer_id,
                       producer_epoch=epoch, base_sequence=sequence, is_transactional=transactional)


def latest(client: WireClient, topic: str, isolation_level: int) -> int:
    response = client.request(LIST_OFFSETS, 7, ListOffsetsRequest(replica_id=-1, isolation_level=isolation_level,
        topics=[ListOffsetsTopic(name=topic, partitions=[ListOffsetsPartition(partition_index=0, timestamp=-1)])]))
    return response.topics[0].partitions[0].offset


# The log's side of transactions without a coordinator: the markers are written by hand here, so the
# leader must not ask a coordinator before a transaction's first batch (KIP-890 part 1).
UNVERIFIED = {"transaction.partition.verification.enable": "false"}
TXN_ID = "hand-written"


def test_read_committed_fetch_stops_at_the_open_transaction_and_lists_aborted_ones(broker_factory, topic_name):
    transactions_end_to_end(broker_factory(UNVERIFIED), topic_name)


def test_the_same_when_every_append_waits_for_its_fsync(broker_factory, topic_name):
    """flush.messages=1: a marker counts (moves the high watermark, so the LSO) only once fsynced."""
    transactions_end_to_end(broker_factory({**UNVERIFIED, "log.flush.interval.messages": "1"}), topic_name)


def transactions_end_to_end(broker, topic_name):
    with WireClient(broker.bootstrap) as client:
        create_topic(client, topic_name)
        assert produce(client, topic_name, 0, txn_batch(0, b"a1", b"a2"),
                       transactional_id=TXN_ID).error_code == 0  # 0-1, to be aborted
        assert write_marker(client, topic_name, commit=False) == {(topic_name, 0): 0}  # 2
        assert produce(client, topic_name, 0, txn_batch(2, b"c1"),
                       transactional_id=TXN_ID).error_code == 0  # 3, to be committed
        assert produce(client, topic_name, 0, txn_batch(3, b"x", transactional=False)).error_code == \
            ErrorCode.INVALID_TXN_STATE  # a plain batch inside the producer's transaction
        assert producers(client, topic_name).active_producers[0].current_txn_start_offset == 3
        committed = fetch_all(client, topic_name, 0, isolation_level=1)
        assert (committed.high_watermark, committed.last_stable_offset) == (4, 3)
        assert records_of(committed) == [b"a1", b"a2", MARKER_VALUE]  # not the open transaction
        assert [(t.producer_id, t.first_offset) for t in committed.aborted_transactions] == [(PID, 0)]
        assert records_of(fetch_all(client, topic_name, 0)) == [b"a1", b"a2", MARKER_VALUE, b"c1"]
        assert (latest(client, topic_name, 1), latest(client, topic_name, 0)) == (3, 4)
        assert write_marker(client, topic_name, commit=True) == {(topic_name, 0): 0}  # 4
        committed = fetch_all(client, topic_name, 0, 3, isolation_level=1)
        assert committed.last_stable_offset == 5 and committed.aborted_transactions == []
        assert records_of(committed) == [b"c1", MARKER_VALUE]
        assert latest(client, topic_name, 1) == 5
