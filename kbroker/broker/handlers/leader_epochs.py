"""OffsetForLeaderEpoch: the end offset of a leader epoch, for consumers detecting truncation."""
from __future__ import annotations

from kbroker.broker import authorization
from kbroker.broker.dispatch import RequestContext
from kbroker.errors import ErrorCode
from kbroker.security.acls import Operation
from kbroker.wire.messages.offset_for_leader_epoch import (
    EpochEndOffset,
    OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse,
    OffsetForLeaderTopicResult,
)


def handle_offset_for_leader_epoch(ctx: RequestContext,
                                   request: OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse:
    broker = ctx.broker
    topics = []
    for topic in request.topics:
        results = []
        permitted = (authorization.on_cluster(ctx, Operation.CLUSTER_ACTION) if request.replica_id >= 0
                     else authorization.on_topic(ctx, Operation.DESCRIBE, topic.topic))
        for wanted in topic.partitions:
            partition_log = (broker.partitions.leader_log(topic.topic, wanted.partition) if permitted
                             else ErrorCode.TOPIC_AUTHORIZATION_FAILED)
            if isinstance(partition_log, ErrorCode):
                results.append(EpochEndOffset(error_code=partition_log, partition=wanted.partition))
                continue
            current = partition_log.leader_epoch
            if wanted.current_leader_epoch not in (-1, current):
                code = (ErrorCode.FENCED_LEADER_EPOCH if wanted.current_leader_epoch < current
                        else ErrorCode.UNKNOWN_LEADER_EPOCH)
                results.append(EpochEndOffset(error_code=code, partition=wanted.partition))
                continue
            epoch, end_offset = partition_log.end_offset_for_epoch(wanted.leader_epoch)
            results.append(EpochEndOffset(error_code=0, partition=wanted.partition,
                                          leader_epoch=epoch, end_offset=end_offset))
        topics.append(OffsetForLeaderTopicResult(topic=topic.topic, partitions=results))
    return OffsetForLeaderEpochResponse(topics=topics)
