"""DescribeCluster and FindCoordinator.

A single node is the whole cluster and coordinates every group. In a cluster a group's
coordinator is the leader of its `__consumer_offsets` partition, which the controller creates on
the first lookup with `offsets.topic.num.partitions` and `offsets.topic.replication.factor` (as
Kafka, COORDINATOR_NOT_AVAILABLE while fewer brokers are alive than that factor asks). A
transactional id's coordinator is, in the same way, the leader of its `__transaction_state`
partition (`transaction.state.log.num.partitions`, `transaction.state.log.replication.factor`).
"""
from __future__ import annotations

from collections.abc import Callable

from kbroker.broker import authorization

from kbroker.broker.dispatch import RequestContext
from kbroker.coordinator.records import OFFSETS_TOPIC
from kbroker.coordinator.txn_records import TRANSACTION_STATE_TOPIC
from kbroker.errors import ErrorCode, KafkaError
from kbroker.security.acls import CLUSTER_NAME, Operation, ResourceType
from kbroker.wire.messages.describe_cluster import DescribeClusterBroker, DescribeClusterRequest, DescribeClusterResponse
from kbroker.wire.messages.find_coordinator import Coordinator, FindCoordinatorRequest, FindCoordinatorResponse

GROUP_KEY = 0
TRANSACTION_KEY = 1
_KAFKA_NAMES = {OFFSETS_TOPIC: "offsets", TRANSACTION_STATE_TOPIC: "transactions state"}  # in Kafka's messages


def handle_describe_cluster(ctx: RequestContext, request: DescribeClusterRequest) -> DescribeClusterResponse:
    broker = ctx.broker
    advertised = broker.config.advertised_for(ctx.connection.listener_name)
    if request.endpoint_type != 1:  # 2 = controllers: a client talking to a broker gets an error
        return DescribeClusterResponse(error_code=ErrorCode.MISMATCHED_ENDPOINT_TYPE,
                                       error_message="this is a broker endpoint", endpoint_type=request.endpoint_type)
    operations = authorization.authorized_operations(ctx, ResourceType.CLUSTER, CLUSTER_NAME,
                                                     request.include_cluster_authorized_operations)
    if broker.cluster is not None:
        image = broker.cluster.image
        return DescribeClusterResponse(
            error_code=0, cluster_id=broker.cluster_id, controller_id=image.controller_id,
            cluster_authorized_operations=operations,
            brokers=[DescribeClusterBroker(broker_id=b.broker_id, host=endpoint[0], port=endpoint[1], rack=b.rack)
                     for b in sorted(image.brokers.values(), key=lambda b: b.broker_id)
                     if (endpoint := b.endpoint(ctx.connection.listener_name)) is not None])
    return DescribeClusterResponse(
        error_code=0, cluster_id=broker.cluster_id, controller_id=broker.node_id, cluster_authorized_operations=operations,
        brokers=[DescribeClusterBroker(broker_id=broker.node_id, host=advertised.host, port=advertised.port)])


def handle_find_coordinator(ctx: RequestContext, request: FindCoordinatorRequest) -> FindCoordinatorResponse:
    keys = request.coordinator_keys if ctx.version >= 4 else [request.key]
    found = [_coordinator(ctx, key, request.key_type) for key in keys]
    if ctx.version >= 4:
        return FindCoordinatorResponse(coordinators=found)
    one = found[0]
    return FindCoordinatorResponse(error_code=one.error_code, error_message=one.error_message,
                                   node_id=one.node_id, host=one.host, port=one.port)


def _coordinator(ctx: RequestContext, key: str, key_type: int) -> Coordinator:
    broker = ctx.broker
    if key_type == TRANSACTION_KEY:
        return _transaction_coordinator(ctx, key)
    if key_type != GROUP_KEY:
        return Coordinator(key=key, node_id=-1, host="", port=-1, error_code=ErrorCode.INVALID_REQUEST,
                           error_message=f"unknown coordinator key type {key_type}")
    if not key:
        return Coordinator(key=key, node_id=-1, host="", port=-1, error_code=ErrorCode.INVALID_GROUP_ID,
                           error_message="empty group id")
    if not authorization.on_group(ctx, Operation.DESCRIBE, key):
        return Coordinator(key=key, node_id=-1, host="", port=-1, error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED,
                           error_message=None)
    if broker.cluster is not None:
        config = broker.config
        return _coordinator_in_cluster(ctx, key, OFFSETS_TOPIC, broker.groups.partition_for(key),
                                       config.offsets_topic_replication_factor, "offsets.topic.replication.factor",
                                       lambda: broker.cluster.admin.create_offsets_topic(config))
    try:
        broker.groups.ensure_offsets_topic()  # created on first use, as Kafka does
    except KafkaError as exc:  # e.g. a full disk: the client retries the lookup
        return Coordinator(key=key, node_id=-1, host="", port=-1, error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE,
                           error_message=f"cannot create {OFFSETS_TOPIC}: {exc.message or exc.code.name}")
    advertised = broker.config.advertised_for(ctx.connection.listener_name)
    return Coordinator(key=key, node_id=broker.node_id, host=advertised.host, port=advertised.port,
                       error_code=0, error_message=None)


def _transaction_coordinator(ctx: RequestContext, key: str) -> Coordinator:
    broker = ctx.broker
    if not key:
        return Coordinator(key=key, node_id=-1, host="", port=-1, error_code=ErrorCode.INVALID_REQUEST,
                           error_message="empty transactional id")
    if broker.cluster is not None:
        config = broker.config
        return _coordinator_in_cluster(ctx, key, TRANSACTION_STATE_TOPIC, broker.transactions.partition_for(key),
                                       config.transaction_state_log_replication_factor,
                                       "transaction.state.log.replication.factor",
                                       lambda: broker.cluster.admin.create_transaction_state_topic(config))
    try:
        broker.transactions.ensure_topic()  # created on first use, as Kafka does
    except KafkaError as exc:
        return Coordinator(key=key, node_id=-1, host="", port=-1, error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE,
                           error_message=f"cannot create {TRANSACTION_STATE_TOPIC}: {exc.message or exc.code.name}")
    advertised = broker.config.advertised_for(ctx.connection.listener_name)
    return Coordinator(key=key, node_id=broker.node_id, host=advertised.host, port=advertised.port,
                       error_code=0, error_message=None)


def _coordinator_in_cluster(ctx: RequestContext, key: str, topic: str, partition: int, replication_factor: int,
                            replication_config: str, create: Callable[[], None]) -> Coordinator:
    """The leader of the coordinator's partition of `topic`; the controller creates the topic on
    the first lookup."""
    broker = ctx.broker
    image = broker.cluster.image
    if topic not in image.topics:
        if len(image.brokers) < replication_factor:
            message = (f"Number of alive brokers '{len(image.brokers)}' does not meet the required replication "
                       f"factor '{replication_factor}' for the {_KAFKA_NAMES[topic]} topic (configured via "
                       f"'{replication_config}').")
        else:
            create()
            message = f"{topic} is being created"
        return Coordinator(key=key, node_id=-1, host="", port=-1, error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE,
                           error_message=message)
    leader = image.leader_of(topic, partition)
    registration = image.brokers.get(leader)
    endpoint = registration.endpoint(ctx.connection.listener_name) if registration is not None else None
    if endpoint is None:
        return Coordinator(key=key, node_id=-1, host="", port=-1, error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE,
                           error_message=f"the coordinator's partition of {topic} has no leader with this listener")
    return Coordinator(key=key, node_id=leader, host=endpoint[0], port=endpoint[1], error_code=0, error_message=None)
