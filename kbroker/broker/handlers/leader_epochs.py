"""OffsetForLeaderEpoch: the end offset of a leader epoch, for consumers detecting truncation
(and followers, in a cluster). The partition service answers (PartitionService.end_offset_for_epoch)."""
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
    service = ctx.broker.partitions
    topics = []
    for topic in request.topics:
        results = []
        permitted = (authorization.on_cluster(ctx, Operation.CLUSTER_ACTION) if request.replica_id >= 0
                     else authorization.on_topic(ctx, Operation.DESCRIBE, topic.topic))
        for wanted in topic.partitions:
            if not permitted:
                results.append(EpochEndOffset(error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED,
                                              partition=wanted.partition))
                continue
            found = service.end_offset_for_epoch(topic.topic, wanted.partition, wanted.leader_epoch,
                                                 wanted.current_leader_epoch)
            results.append(EpochEndOffset(error_code=found.error, partition=wanted.partition,
                                          leader_epoch=found.leader_epoch, end_offset=found.end_offset))
        topics.append(OffsetForLeaderTopicResult(topic=topic.topic, partitions=results))
    return OffsetForLeaderEpochResponse(topics=topics)
