"""Metadata: this broker, the cluster id, and topics with their partitions and topic ids.

Topics a client names but that do not exist are auto-created when both the client allows
it (v4+) and `auto.create.topics.enable` is on. Since v10 a topic can be asked for by id.
"""
from __future__ import annotations

from kbroker.broker.dispatch import RequestContext
from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.topics import INTERNAL_TOPICS, validate_topic_name
from kbroker.wire.messages.metadata import (
    MetadataRequest,
    MetadataResponse,
    MetadataResponseBroker,
    MetadataResponsePartition,
    MetadataResponseTopic,
)

def handle_metadata(ctx: RequestContext, request: MetadataRequest) -> MetadataResponse:
    broker = ctx.broker
    version = ctx.version
    wanted = request.topics
    if wanted is None or (version == 0 and not wanted):
        topics = [_describe(ctx, name) for name in sorted(broker.logs.topic_names())]
    else:
        topics = [_lookup(ctx, t.name, t.topic_id, request.allow_auto_topic_creation) for t in wanted]
    advertised = broker.config.advertised
    return MetadataResponse(
        brokers=[MetadataResponseBroker(node_id=broker.node_id, host=advertised.host, port=advertised.port)],
        cluster_id=broker.cluster_id,
        controller_id=broker.node_id,
        topics=topics,
    )


def _lookup(ctx: RequestContext, name: str | None, topic_id, allow_auto_create: bool) -> MetadataResponseTopic:
    logs = ctx.broker.logs
    if name is None:
        topic = logs.topic_by_id(topic_id)
        if topic is None:
            return MetadataResponseTopic(error_code=ErrorCode.UNKNOWN_TOPIC_ID, name=None, topic_id=topic_id)
        return _describe(ctx, topic.name)
    try:
        validate_topic_name(name)
        if logs.topic(name) is None and not (allow_auto_create and ctx.broker.auto_create_topic(name)):
            return MetadataResponseTopic(error_code=ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name=name)
    except KafkaError as exc:  # an invalid name, or auto-creation refused (a colliding name, a full disk)
        return MetadataResponseTopic(error_code=exc.code, name=name)
    return _describe(ctx, name)


def _describe(ctx: RequestContext, name: str) -> MetadataResponseTopic:
    broker = ctx.broker
    topic = broker.logs.topic(name)
    node = broker.node_id
    partitions = []
    for index in range(topic.partition_count):
        partition_log = broker.logs.get_log(name, index)
        partitions.append(MetadataResponsePartition(
            error_code=0, partition_index=index, leader_id=node,
            leader_epoch=partition_log.leader_epoch if partition_log else 0,
            replica_nodes=[node], isr_nodes=[node]))
    return MetadataResponseTopic(error_code=0, name=name, topic_id=topic.topic_id,
                                 is_internal=name in INTERNAL_TOPICS, partitions=partitions)
