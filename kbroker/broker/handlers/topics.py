"""CreateTopics, DeleteTopics, CreatePartitions, DeleteRecords.

One node means replication factor 1: -1 (the broker default) is accepted, anything else
gets INVALID_REPLICATION_FACTOR with Kafka's explanation. In a cluster the topic changes go
through the metadata store (kbroker/cluster/admin.py) and may take any replication factor up to
the number of live brokers.
"""
from __future__ import annotations

from collections import Counter

from kbroker.broker import authorization
from kbroker.broker.dispatch import RequestContext
from kbroker.broker.partitions import DeletedRecords
from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.config import LogConfig
from kbroker.security.acls import Operation
from kbroker.wire.messages.create_partitions import (
    CreatePartitionsRequest,
    CreatePartitionsResponse,
    CreatePartitionsTopicResult,
)
from kbroker.wire.messages.create_topics import (
    CreatableTopic,
    CreatableTopicConfigs,
    CreatableTopicResult,
    CreateTopicsRequest,
    CreateTopicsResponse,
)
from kbroker.wire.messages.delete_records import (
    DeleteRecordsPartitionResult,
    DeleteRecordsRequest,
    DeleteRecordsResponse,
    DeleteRecordsTopicResult,
)
from kbroker.wire.messages.delete_topics import DeletableTopicResult, DeleteTopicsRequest, DeleteTopicsResponse
from kbroker.wire.primitives import ZERO_UUID

DEFAULT = -1
TOPIC_CONFIG_SOURCE = 1
DEFAULT_CONFIG_SOURCE = 5
# Kafka's controller refuses a request that would create more partitions than this
# (ReplicationControlManager.MAX_PARTITIONS_PER_BATCH): one CreateTopics asking for 2**31 - 1
# partitions must not keep the broker busy creating directories for days.
MAX_PARTITIONS_PER_REQUEST = 10_000
TOO_MANY_PARTITIONS = "Excessively large number of partitions per request."


async def handle_create_topics(ctx: RequestContext, request: CreateTopicsRequest) -> CreateTopicsResponse:
    counts = Counter(t.name for t in request.topics)
    if _requested_partitions(ctx, request) > MAX_PARTITIONS_PER_REQUEST:
        return CreateTopicsResponse(topics=[
            CreatableTopicResult(name=t.name, error_code=ErrorCode.POLICY_VIOLATION, error_message=TOO_MANY_PARTITIONS)
            for t in request.topics])
    results = []
    for topic in request.topics:
        if counts[topic.name] > 1:
            results.append(CreatableTopicResult(name=topic.name, error_code=ErrorCode.INVALID_REQUEST,
                                                error_message=f"Create topic request contains duplicate topic {topic.name}"))
            continue
        if not authorization.may_create_topic(ctx, topic.name):
            results.append(CreatableTopicResult(name=topic.name, error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED))
            continue
        try:
            results.append(await _create(ctx, topic, request.validate_only, request.timeout_ms))
        except KafkaError as exc:
            results.append(CreatableTopicResult(name=topic.name, error_code=exc.code, error_message=exc.message))
    return CreateTopicsResponse(topics=results)


def _requested_partitions(ctx: RequestContext, request: CreateTopicsRequest) -> int:
    """Kafka's upper bound: assignments, else num_partitions (-1: the broker default)."""
    total = 0
    for topic in request.topics:
        if topic.assignments:
            total += len(topic.assignments)
        elif topic.num_partitions == DEFAULT:
            total += ctx.broker.config.num_partitions
        elif topic.num_partitions > 0:
            total += topic.num_partitions
    return total


async def _create(ctx: RequestContext, topic: CreatableTopic, validate_only: bool,
                  timeout_ms: int) -> CreatableTopicResult:
    broker = ctx.broker
    node = broker.node_id
    partitions = topic.num_partitions
    cluster = broker.cluster
    if topic.assignments:
        if partitions != DEFAULT or topic.replication_factor != DEFAULT:
            raise KafkaError(ErrorCode.INVALID_REQUEST,
                             "Both numPartitions or replicationFactor and replicasAssignments were set.")
        indexes = sorted(a.partition_index for a in topic.assignments)
        if indexes != list(range(len(indexes))):
            raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, "partitions must be numbered 0..N-1")
        if cluster is None and any(a.broker_ids != [node] for a in topic.assignments):
            raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, f"this cluster has one broker, id {node}")
        partitions = len(indexes)
    elif partitions == DEFAULT:
        partitions = broker.config.num_partitions
    if partitions < 1:
        raise KafkaError(ErrorCode.INVALID_PARTITIONS, "Number of partitions must be larger than 0.")
    factor = topic.replication_factor
    if cluster is None and factor not in (DEFAULT, 1) and not topic.assignments:
        if factor < 1:
            raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR, "Replication factor must be larger than 0.")
        raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR,
                         f"Unable to replicate the partition {factor} time(s): The target replication factor of "
                         f"{factor} cannot be reached because only 1 broker(s) are registered.")
    configs = {}
    for entry in topic.configs:
        if entry.value is None:
            raise KafkaError(ErrorCode.INVALID_CONFIG, f"Null value not supported for topic config {entry.name}")
        configs[entry.name] = entry.value
    if cluster is not None:
        created = await cluster.admin.create_topic(
            topic.name, partitions, broker.config.default_replication_factor if factor == DEFAULT else factor,
            [a.broker_ids for a in sorted(topic.assignments, key=lambda a: a.partition_index)] or None, configs,
            validate_only=validate_only, timeout_ms=timeout_ms)
        topic_id, factor = created.topic_id, len(created.replicas[0])
    else:
        topic_id, factor = broker.logs.create_topic(topic.name, partitions, configs, validate_only=validate_only).topic_id, 1
    effective = LogConfig.from_topic_configs(configs, broker.logs.defaults).topic_configs()
    described = [CreatableTopicConfigs(name=key, value=configs.get(key, value), read_only=False,
                                       config_source=TOPIC_CONFIG_SOURCE if key in configs else DEFAULT_CONFIG_SOURCE,
                                       is_sensitive=False)
                 for key, value in sorted({**effective, **configs}.items())]
    return CreatableTopicResult(name=topic.name, topic_id=topic_id, error_code=0, error_message=None,
                                num_partitions=partitions, replication_factor=factor, configs=described)


async def handle_delete_topics(ctx: RequestContext, request: DeleteTopicsRequest) -> DeleteTopicsResponse:
    logs = ctx.broker.logs
    cluster = ctx.broker.cluster
    if ctx.version >= 6:  # by name or, with a null name, by topic id
        requested = [(t.name, t.topic_id) for t in request.topics]
    else:
        requested = [(name, ZERO_UUID) for name in request.topic_names]
    responses = []
    for name, topic_id in requested:
        info = logs.topic(name) if name is not None else logs.topic_by_id(topic_id)
        named = info.name if info is not None else name
        if named is not None and not authorization.on_topic(ctx, Operation.DELETE, named):
            responses.append(DeletableTopicResult(name=name, topic_id=topic_id,
                                                  error_code=ErrorCode.TOPIC_AUTHORIZATION_FAILED))
        elif info is None:
            code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION if name is not None else ErrorCode.UNKNOWN_TOPIC_ID
            responses.append(DeletableTopicResult(name=name, topic_id=topic_id, error_code=code))
        elif not ctx.broker.config.delete_topic_enable:
            responses.append(DeletableTopicResult(name=info.name, topic_id=info.topic_id,
                                                  error_code=ErrorCode.TOPIC_DELETION_DISABLED))
        else:
            try:
                if cluster is not None:
                    await cluster.admin.delete_topic(info.name, request.timeout_ms)
                else:
                    await ctx.broker.delete_topic(info)
            except KafkaError as exc:  # e.g. KAFKA_STORAGE_ERROR: this topic's answer, not the connection's
                responses.append(DeletableTopicResult(name=info.name, topic_id=info.topic_id, error_code=exc.code,
                                                      error_message=exc.message))
                continue
            responses.append(DeletableTopicResult(name=info.name, topic_id=info.topic_id, error_code=0))
    return DeleteTopicsResponse(responses=responses)


async def handle_create_partitions(ctx: RequestContext, request: CreatePartitionsRequest) -> CreatePartitionsResponse:
    logs = ctx.broker.logs
    node = ctx.broker.node_id
    cluster = ctx.broker.cluster
    results = []
    new_partitions = 0
    for topic in request.topics:
        try:
            if not authorization.on_topic(ctx, Operation.ALTER, topic.name):
                raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
            info = logs.topic(topic.name)
            if info is None:
                raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{topic.name}' does not exist.")
            if topic.count <= info.partition_count:
                raise KafkaError(ErrorCode.INVALID_PARTITIONS,
                                 f"Topic currently has {info.partition_count} partitions, which is higher than or "
                                 f"equal to the requested {topic.count}.")
            new_partitions += topic.count - info.partition_count
            if new_partitions > MAX_PARTITIONS_PER_REQUEST:
                raise KafkaError(ErrorCode.POLICY_VIOLATION, TOO_MANY_PARTITIONS)
            if cluster is not None:
                await cluster.admin.create_partitions(
                    topic.name, topic.count, None if topic.assignments is None else
                    [a.broker_ids for a in topic.assignments], validate_only=request.validate_only,
                    timeout_ms=request.timeout_ms)
                results.append(CreatePartitionsTopicResult(name=topic.name, error_code=0))
                continue
            if topic.assignments is not None:
                if len(topic.assignments) != topic.count - info.partition_count:
                    raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                     "one assignment is needed for each new partition")
                if any(a.broker_ids != [node] for a in topic.assignments):
                    raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, f"this cluster has one broker, id {node}")
            if not request.validate_only:
                logs.create_partitions(topic.name, topic.count)
            results.append(CreatePartitionsTopicResult(name=topic.name, error_code=0))
        except KafkaError as exc:
            results.append(CreatePartitionsTopicResult(name=topic.name, error_code=exc.code, error_message=exc.message))
    return CreatePartitionsResponse(results=results)


def handle_delete_records(ctx: RequestContext, request: DeleteRecordsRequest) -> DeleteRecordsResponse:
    service = ctx.broker.partitions
    topics = []
    for topic in request.topics:
        permitted = authorization.on_topic(ctx, Operation.DELETE, topic.name)
        partitions = []
        for wanted in topic.partitions:
            deleted = (service.delete_records(topic.name, wanted.partition_index, wanted.offset) if permitted
                       else DeletedRecords(ErrorCode.TOPIC_AUTHORIZATION_FAILED))
            partitions.append(DeleteRecordsPartitionResult(partition_index=wanted.partition_index,
                                                           low_watermark=deleted.low_watermark,
                                                           error_code=deleted.error))
        topics.append(DeleteRecordsTopicResult(name=topic.name, partitions=partitions))
    return DeleteRecordsResponse(topics=topics)
