"""Metadata: the brokers, the cluster id, the controller, and topics with their partitions.

Topics a client names but that do not exist are auto-created when both the client allows
it (v4+) and `auto.create.topics.enable` is on. Since v10 a topic can be asked for by id.
A single node is every partition's leader; in a cluster the answer is this broker's image of
ZooKeeper: the live brokers, each partition's leader, replicas and ISR (LEADER_NOT_AVAILABLE
for a partition whose leader is gone, and for a topic still being auto-created).
"""
from __future__ import annotations

import dataclasses

from kbroker.broker import authorization
from kbroker.broker.dispatch import RequestContext
from kbroker.cluster.image import NO_LEADER
from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.topics import INTERNAL_TOPICS, validate_topic_name
from kbroker.security.acls import CLUSTER_NAME, Operation, ResourceType
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
        names = broker.cluster.image.topics if broker.cluster is not None else broker.logs.topic_names()
        # All topics: those the principal may not describe are left out, as in Kafka.
        topics = [_describe(ctx, name) for name in sorted(names)
                  if authorization.on_topic(ctx, Operation.DESCRIBE, name)]
    else:
        topics = [_lookup(ctx, t.name, t.topic_id, request.allow_auto_topic_creation) for t in wanted]
    if broker.cluster is not None:
        image = broker.cluster.image
        listener = ctx.connection.listener_name
        brokers = [MetadataResponseBroker(node_id=b.broker_id, host=endpoint[0], port=endpoint[1], rack=b.rack)
                   for b in sorted(image.brokers.values(), key=lambda b: b.broker_id)
                   if (endpoint := b.endpoint(listener)) is not None]
        controller = image.controller_id
    else:
        advertised = broker.config.advertised_for(ctx.connection.listener_name)
        brokers = [MetadataResponseBroker(node_id=broker.node_id, host=advertised.host, port=advertised.port)]
        controller = broker.node_id
    if version >= 8 and request.include_topic_authorized_operations:
        topics = [dataclasses.replace(t, topic_authorized_operations=authorization.authorized_operations(
            ctx, ResourceType.TOPIC, t.name)) if t.error_code == 0 and t.name else t for t in topics]
    cluster_operations = authorization.authorized_operations(
        ctx, ResourceType.CLUSTER, CLUSTER_NAME, 8 <= version <= 10 and request.include_cluster_authorized_operations)
    return MetadataResponse(brokers=brokers, cluster_id=broker.cluster_id, controller_id=controller, topics=topics,
                            cluster_authorized_operations=cluster_operations)


def _lookup(ctx: RequestContext, name: str | None, topic_id, allow_auto_create: bool) -> MetadataResponseTopic:
    broker = ctx.broker
    logs = broker.logs
    if name is None:
        topic = logs.topic_by_id(topic_id)
        if topic is None:
            return MetadataResponseTopic(error_code=ErrorCode.UNKNOWN_TOPIC_ID, name=None, topic_id=topic_id)
        if not authorization.on_topic(ctx, Operation.DESCRIBE, topic.name):
            return MetadataResponseTopic(error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED, name=None, topic_id=topic_id)
        return _describe(ctx, topic.name)
    if not authorization.on_topic(ctx, Operation.DESCRIBE, name):
        return MetadataResponseTopic(error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED, name=name)
    try:
        validate_topic_name(name)
        allow_auto_create = allow_auto_create and authorization.may_create_topic(ctx, name)
        if not broker.topic_exists(name) and not (allow_auto_create and broker.auto_create_topic(name)):
            creating = broker.cluster is not None and broker.cluster.admin.creating(name)
            return MetadataResponseTopic(error_code=ErrorCode.LEADER_NOT_AVAILABLE if creating
                                         else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, name=name)
    except KafkaError as exc:  # an invalid name, or auto-creation refused (a colliding name, a full disk)
        return MetadataResponseTopic(error_code=exc.code, name=name)
    return _describe(ctx, name)


def _describe(ctx: RequestContext, name: str) -> MetadataResponseTopic:
    broker = ctx.broker
    if broker.cluster is not None:
        return _describe_in_cluster(ctx, name)
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


def _describe_in_cluster(ctx: RequestContext, name: str) -> MetadataResponseTopic:
    image = ctx.broker.cluster.image
    assignment = image.topics[name]
    partitions = []
    for index, replicas in enumerate(assignment.replicas):
        state = image.states.get((name, index))
        leader = image.leader_of(name, index)
        partitions.append(MetadataResponsePartition(
            error_code=ErrorCode.LEADER_NOT_AVAILABLE if leader == NO_LEADER else 0, partition_index=index,
            leader_id=leader, leader_epoch=state.leader_epoch if state else -1, replica_nodes=list(replicas),
            isr_nodes=list(state.isr) if state else [],
            offline_replicas=[r for r in replicas if r not in image.brokers]))
    return MetadataResponseTopic(error_code=0, name=name, topic_id=assignment.topic_id,
                                 is_internal=name in INTERNAL_TOPICS, partitions=partitions)
