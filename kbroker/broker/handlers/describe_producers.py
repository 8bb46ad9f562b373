"""DescribeProducers (KIP-664): each partition's active producers, as its producer state has them.

Used by admin tools to find a transaction left open (`kafka-transactions.sh find-hanging`): the
current transaction start offset is the first offset of the producer's open transaction here.
The partition service lists them (PartitionService.active_producers); this module translates.
"""
from __future__ import annotations

from kbroker.broker import authorization
from kbroker.broker.dispatch import RequestContext
from kbroker.errors import ErrorCode
from kbroker.security.acls import Operation
from kbroker.wire.messages.describe_producers import (
    DescribeProducersRequest,
    DescribeProducersResponse,
    PartitionResponse,
    ProducerState,
    TopicResponse,
)


def handle_describe_producers(ctx: RequestContext, request: DescribeProducersRequest) -> DescribeProducersResponse:
    service = ctx.broker.partitions
    topics = []
    for topic in request.topics:
        partitions = []
        permitted = authorization.on_topic(ctx, Operation.READ, topic.name)
        for index in topic.partition_indexes:
            found = (service.active_producers(topic.name, index) if permitted
                     else ErrorCode.TOPIC_AUTHORIZATION_FAILED)
            if isinstance(found, ErrorCode):
                partitions.append(PartitionResponse(partition_index=index, error_code=found))
                continue
            partitions.append(PartitionResponse(partition_index=index, error_code=0, active_producers=[
                ProducerState(producer_id=p.producer_id, producer_epoch=p.producer_epoch,
                              last_sequence=p.last_sequence, last_timestamp=p.last_timestamp,
                              coordinator_epoch=p.coordinator_epoch,
                              current_txn_start_offset=p.current_txn_start_offset) for p in found]))
        topics.append(TopicResponse(name=topic.name, partitions=partitions))
    return DescribeProducersResponse(topics=topics)
