"""DescribeCluster and FindCoordinator: this single node is the whole cluster.

Every group is coordinated here. Transactions are not implemented yet, so a transactional
coordinator lookup gets a non-retriable error with a message rather than a retry loop.
"""
from __future__ import annotations

from kbroker.broker.dispatch import RequestContext
from kbroker.coordinator.records import OFFSETS_TOPIC
from kbroker.errors import ErrorCode, KafkaError
from kbroker.wire.messages.describe_cluster import DescribeClusterBroker, DescribeClusterRequest, DescribeClusterResponse
from kbroker.wire.messages.find_coordinator import Coordinator, FindCoordinatorRequest, FindCoordinatorResponse

GROUP_KEY = 0
TRANSACTION_KEY = 1
NO_TRANSACTIONS = "kbroker does not support transactions yet"


def handle_describe_cluster(ctx: RequestContext, request: DescribeClusterRequest) -> DescribeClusterResponse:
    broker = ctx.broker
    advertised = broker.config.advertised
    if request.endpoint_type != 1:  # 2 = controllers: a client talking to a broker gets an error
        return DescribeClusterResponse(error_code=ErrorCode.MISMATCHED_ENDPOINT_TYPE,
                                       error_message="this is a broker endpoint", endpoint_type=request.endpoint_type)
    return DescribeClusterResponse(
        error_code=0, cluster_id=broker.cluster_id, controller_id=broker.node_id,
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
        return Coordinator(key=key, node_id=-1, host="", port=-1,
                           error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, error_message=NO_TRANSACTIONS)
    if key_type != GROUP_KEY:
        return Coordinator(key=key, node_id=-1, host="", port=-1, error_code=ErrorCode.INVALID_REQUEST,
                           error_message=f"unknown coordinator key type {key_type}")
    if not key:
        return Coordinator(key=key, node_id=-1, host="", port=-1, error_code=ErrorCode.INVALID_GROUP_ID,
                           error_message="empty group id")
    try:
        broker.groups.ensure_offsets_topic()  # created on first use, as Kafka does
    except KafkaError as exc:  # e.g. a full disk: the client retries the lookup
        return Coordinator(key=key, node_id=-1, host="", port=-1, error_code=ErrorCode.COORDINATOR_NOT_AVAILABLE,
                           error_message=f"cannot create {OFFSETS_TOPIC}: {exc.message or exc.code.name}")
    advertised = broker.config.advertised
    return Coordinator(key=key, node_id=broker.node_id, host=advertised.host, port=advertised.port,
                       error_code=0, error_message=None)
