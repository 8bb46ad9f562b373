"""ListOffsets: earliest, latest, max-timestamp and by-timestamp offsets of partitions.

Latest means the high watermark (read_uncommitted) or last stable offset (read_committed),
not the log end: consumers must not be pointed past what they may read. The partition service
looks them up (PartitionService.offset_for_timestamp); this module translates.
"""
from __future__ import annotations

from kbroker.broker import authorization
from kbroker.broker.dispatch import RequestContext
from kbroker.broker.partitions import OffsetLookup
from kbroker.errors import ErrorCode
from kbroker.security.acls import Operation
from kbroker.wire.messages.list_offsets import (
    ListOffsetsPartitionResponse,
    ListOffsetsRequest,
    ListOffsetsResponse,
    ListOffsetsTopicResponse,
)

READ_COMMITTED = 1


def handle_list_offsets(ctx: RequestContext, request: ListOffsetsRequest) -> ListOffsetsResponse:
    service = ctx.broker.partitions
    read_committed = request.isolation_level == READ_COMMITTED
    old_style = ctx.version == 0
    topics = []
    for topic in request.topics:
        partitions = []
        permitted = authorization.on_topic(ctx, Operation.DESCRIBE, topic.name)
        for wanted in topic.partitions:
            found = (service.offset_for_timestamp(topic.name, wanted.partition_index, wanted.timestamp,
                                                  read_committed, wanted.current_leader_epoch) if permitted
                     else OffsetLookup(ErrorCode.TOPIC_AUTHORIZATION_FAILED))
            if found.error:
                partitions.append(ListOffsetsPartitionResponse(partition_index=wanted.partition_index,
                                                               error_code=found.error))
            elif old_style:
                partitions.append(ListOffsetsPartitionResponse(
                    partition_index=wanted.partition_index, error_code=0,
                    old_style_offsets=[found.offset] if found.offset >= 0 else []))
            else:
                partitions.append(ListOffsetsPartitionResponse(
                    partition_index=wanted.partition_index, error_code=0, timestamp=found.timestamp,
                    offset=found.offset, leader_epoch=found.leader_epoch))
        topics.append(ListOffsetsTopicResponse(name=topic.name, partitions=partitions))
    return ListOffsetsResponse(topics=topics)
