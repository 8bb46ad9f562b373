"""WriteTxnMarkers: write the COMMIT / ABORT markers that end a transaction on partitions led here.

The transaction coordinator calls `write_txn_markers` directly for the partitions this broker
leads and sends WriteTxnMarkers (API 27) to the leaders of the others, as Kafka's
TransactionMarkerChannelManager does. Each marker is a control batch appended like a produce:
made durable when flush.messages asks, then exposed by the high watermark, which is what
moves the last stable offset past the transaction for read_committed consumers.

Per-partition answers, as Kafka's: UNKNOWN_TOPIC_OR_PARTITION / NOT_LEADER_OR_FOLLOWER for a
partition not led here, INVALID_PRODUCER_EPOCH for a marker older than the producer's epoch,
TRANSACTION_COORDINATOR_FENCED for one from an older coordinator, KAFKA_STORAGE_ERROR when the
disk refuses the append or its fsync (the coordinator retries until every marker is written).

In a cluster a marker is appended as Kafka does, with acks=all: its answer waits until the ISR
has it (replication_wait.py, up to Kafka's request.timeout.ms), so a marker the coordinator
counts as written survives a change of leader.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from kbroker.broker import authorization
from kbroker.broker.dispatch import RequestContext
from kbroker.broker.replication_wait import Appended, wait_replicated
from kbroker.coordinator.records import OFFSETS_TOPIC
from kbroker.errors import ErrorCode, KafkaError
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

log = logging.getLogger("kbroker.txn_markers")

TopicPartition = tuple[str, int]
REPLICATION_TIMEOUT_MS = 30_000  # Kafka's request.timeout.ms, which bounds its marker appends


async def write_txn_markers(broker: Broker, producer_id: int, producer_epoch: int, coordinator_epoch: int,
                            commit: bool, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, ErrorCode]:
    """Append the marker to each partition, make them durable and advance their high watermarks (in a
    cluster: once the ISR has them); each partition's error code."""
    results: dict[TopicPartition, ErrorCode] = {}
    written: dict[TopicPartition, Appended] = {}
    now_ms = broker.now_ms()
    for key in partitions:
        partition_log = broker.leader_log(*key)
        if isinstance(partition_log, ErrorCode):
            results[key] = partition_log
            continue
        truncations = partition_log.truncations
        try:
            partition_log.append_control_batch(producer_id, producer_epoch, coordinator_epoch, commit, now_ms)
        except KafkaError as exc:
            results[key] = exc.code
            continue
        except OSError as exc:
            log.debug("marker for producer %d on %s-%d failed: %s", producer_id, *key, exc)
            results[key] = ErrorCode.KAFKA_STORAGE_ERROR
            continue
        written[key] = Appended(partition_log, partition_log.log_end_offset, truncations)
    outcomes = await asyncio.gather(
        *(broker.make_durable(a.partition_log, a.end) for a in written.values()), return_exceptions=True)
    replicated = {}
    for key, outcome in zip(written, outcomes):
        if isinstance(outcome, OSError):
            results[key] = ErrorCode.KAFKA_STORAGE_ERROR
        elif isinstance(outcome, BaseException):
            raise outcome
        elif broker.cluster is not None and broker.cluster.replicas_of(*key) is not None:
            replicated[key] = written[key]
        else:
            results[key] = ErrorCode.NONE
    if replicated:
        results.update(await wait_replicated(broker, replicated, REPLICATION_TIMEOUT_MS))
    offsets = [partition for topic, partition in written if topic == OFFSETS_TOPIC
               and results[(topic, partition)] == ErrorCode.NONE]
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
