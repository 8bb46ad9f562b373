"""ListOffsets: earliest, latest, max-timestamp and by-timestamp offsets of partitions.

Latest means the high watermark (read_uncommitted) or last stable offset (read_committed),
not the log end: consumers must not be pointed past what they may read.
"""
from __future__ import annotations

from kbroker.broker import authorization
from kbroker.broker.dispatch import RequestContext
from kbroker.errors import ErrorCode, KafkaError
from kbroker.security.acls import Operation
from kbroker.log.partition_log import PartitionLog
from kbroker.wire.messages.list_offsets import (
    ListOffsetsPartition,
    ListOffsetsPartitionResponse,
    ListOffsetsRequest,
    ListOffsetsResponse,
    ListOffsetsTopicResponse,
)

LATEST = -1
EARLIEST = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL = -4
LATEST_TIERED = -5
READ_COMMITTED = 1


def handle_list_offsets(ctx: RequestContext, request: ListOffsetsRequest) -> ListOffsetsResponse:
    broker = ctx.broker
    topics = []
    for topic in request.topics:
        partitions = []
        permitted = authorization.on_topic(ctx, Operation.DESCRIBE, topic.name)
        for wanted in topic.partitions:
            partition_log = (broker.partitions.leader_log(topic.name, wanted.partition_index) if permitted
                             else ErrorCode.TOPIC_AUTHORIZATION_FAILED)
            if isinstance(partition_log, ErrorCode):
                partitions.append(ListOffsetsPartitionResponse(
                    partition_index=wanted.partition_index, error_code=partition_log))
                continue
            try:
                partitions.append(_lookup(ctx, partition_log, wanted, request.isolation_level))
            except KafkaError as exc:
                partitions.append(ListOffsetsPartitionResponse(
                    partition_index=wanted.partition_index, error_code=exc.code))
        topics.append(ListOffsetsTopicResponse(name=topic.name, partitions=partitions))
    return ListOffsetsResponse(topics=topics)


def _lookup(ctx: RequestContext, partition_log: PartitionLog, wanted: ListOffsetsPartition,
            isolation_level: int) -> ListOffsetsPartitionResponse:
    epoch = partition_log.leader_epoch
    if wanted.current_leader_epoch not in (-1, epoch):
        code = ErrorCode.FENCED_LEADER_EPOCH if wanted.current_leader_epoch < epoch else ErrorCode.UNKNOWN_LEADER_EPOCH
        raise KafkaError(code)
    stamp = wanted.timestamp
    upper = partition_log.last_stable_offset if isolation_level == READ_COMMITTED else partition_log.high_watermark
    timestamp = -1
    if stamp == LATEST:
        offset = upper
    elif stamp in (EARLIEST, EARLIEST_LOCAL):
        offset, _, epoch = partition_log.earliest_offset()
    elif stamp == LATEST_TIERED:  # nothing is tiered: Kafka answers "not found"
        offset, epoch = -1, -1
    else:
        found = partition_log.max_timestamp_offset() if stamp == MAX_TIMESTAMP else partition_log.offset_for_timestamp(stamp)
        if found is None or found.offset >= upper:  # consumers must not see past what they may read
            found = (-1, -1, -1)
        offset, timestamp, epoch = found
    if ctx.version == 0:
        return ListOffsetsPartitionResponse(partition_index=wanted.partition_index, error_code=0,
                                            old_style_offsets=[offset] if offset >= 0 else [])
    return ListOffsetsPartitionResponse(partition_index=wanted.partition_index, error_code=0,
                                        timestamp=timestamp, offset=offset, leader_epoch=epoch)
