"""WriteTxnMarkers: write the COMMIT / ABORT markers that end a transaction on partitions led here.

The transaction coordinator calls `write_txn_markers` directly for the partitions this broker
leads and sends WriteTxnMarkers (API 27) to the leaders of the others, as Kafka's
TransactionMarkerChannelManager does. Each marker is a control batch appended by the partition
service (partitions.py) like a produce: made durable when flush.messages asks, then exposed by
the high watermark, which is what moves the last stable offset past the transaction for
read_committed consumers.

Per-partition answers, as Kafka's: UNKNOWN_TOPIC_OR_PARTITION / NOT_LEADER_OR_FOLLOWER for a
partition not led here, INVALID_PRODUCER_EPOCH for a marker older than the producer's epoch,
TRANSACTION_COORDINATOR_FENCED for one from an older coordinator, KAFKA_STORAGE_ERROR when the
disk refuses the append or its fsync (the coordinator retries until every marker is written).

In a cluster a marker is appended as Kafka does, with acks=all: its answer waits until the ISR
has it (up to Kafka's request.timeout.ms), so a marker the coordinator counts as written
survives a change of leader.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from kbroker.broker import authorization
from kbroker.broker.dispatch import RequestContext
from kbroker.coordinator.records import OFFSETS_TOPIC
from kbroker.errors import ErrorCode
from kbroker.security.acls import Operation
from kbroker.wire.messages.write_txn_markers import (
    WritableTxnMarkerPartitionResult,
    WritableTxnMarkerResult,
    WritableTxnMarkerTopicResult,
    WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
)

if TYPE_CHECKING:
    from kbroker.broker.broker import Broker

TopicPartition = tuple[str, int]


async def write_txn_markers(broker: Broker, producer_id: int, producer_epoch: int, coordinator_epoch: int,
                            commit: bool, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, ErrorCode]:
    """Append the marker to each partition, made durable and replicated (partitions.py); each
    partition's error code. The group coordinator then settles the offsets the transaction staged."""
    results = await broker.partitions.append_markers(producer_id, producer_epoch, coordinator_epoch, commit,
                                                     partitions, broker.now_ms())
    offsets = [partition for (topic, partition), code in results.items()
               if topic == OFFSETS_TOPIC and code == ErrorCode.NONE]
    if offsets:
        await complete_offset_commits(broker, producer_id, offsets, commit)
    return results


async def complete_offset_commits(broker: Broker, producer_id: int, offsets_partitions: list[int],
                                  commit: bool) -> None:
    """The marker is durable on these `__consumer_offsets` partitions, so the group coordinator
    applies (commit) or drops (abort) the producer's offsets staged by TxnOffsetCommit there
    (Kafka's GroupCoordinator.scheduleHandleTxnCompletion)."""
    for partition in offsets_partitions:
        broker.groups.end_transaction(partition, producer_id, commit)


async def handle_write_txn_markers(ctx: RequestContext, request: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse:
    """Brokers only: CLUSTER_ACTION on the cluster, as in Kafka (a client writing markers could end
    anyone's transactions)."""
    permitted = authorization.on_cluster(ctx, Operation.CLUSTER_ACTION)
    markers = []
    for marker in request.markers:
        wanted = [(topic.name, p) for topic in marker.topics for p in topic.partition_indexes]
        results = (await write_txn_markers(ctx.broker, marker.producer_id, marker.producer_epoch,
                                           marker.coordinator_epoch, marker.transaction_result, wanted)
                   if permitted else dict.fromkeys(wanted, ErrorCode.CLUSTER_AUTHORIZATION_FAILED))
        markers.append(WritableTxnMarkerResult(producer_id=marker.producer_id, topics=[
            WritableTxnMarkerTopicResult(name=topic.name, partitions=[
                WritableTxnMarkerPartitionResult(partition_index=p, error_code=results[(topic.name, p)])
                for p in topic.partition_indexes])
            for topic in marker.topics]))
    return WriteTxnMarkersResponse(markers=markers)
