"""AlterPartitionReassignments and ListPartitionReassignments (KIP-455): move partitions between brokers.

In a cluster any broker takes the request and queues the reassignments for the controller through
the store (kbroker/cluster/admin.py), answering once the controller has started them; the move
goes on afterwards and ListPartitionReassignments shows it until it is done. On a single node
each partition has its one replica: a target of just this broker changes nothing, any other names
an unknown broker, and there is never a reassignment under way.
"""
from __future__ import annotations

from kbroker.broker import authorization
from kbroker.broker.dispatch import RequestContext
from kbroker.errors import ErrorCode
from kbroker.security.acls import Operation
from kbroker.wire.messages.alter_partition_reassignments import (
    AlterPartitionReassignmentsRequest,
    AlterPartitionReassignmentsResponse,
    ReassignablePartitionResponse,
    ReassignableTopicResponse,
)
from kbroker.wire.messages.list_partition_reassignments import (
    ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse,
    OngoingPartitionReassignment,
    OngoingTopicReassignment,
)


def _single_node_outcome(ctx: RequestContext, topic: str, partition: int,
                         replicas: list[int] | None) -> tuple[ErrorCode, str | None]:
    info = ctx.broker.logs.topic(topic)
    if info is None or not 0 <= partition < info.partition_count:
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The partition {topic}-{partition} does not exist."
    if replicas is None:
        return (ErrorCode.NO_REASSIGNMENT_IN_PROGRESS,
                f"Unable to cancel reassignment of {topic}-{partition}: no reassignment is in progress.")
    if list(replicas) != [ctx.broker.node_id]:
        return ErrorCode.INVALID_REPLICA_ASSIGNMENT, f"Unknown broker(s) in partition reassignment: {list(replicas)}"
    return ErrorCode.NONE, None


async def handle_alter_partition_reassignments(ctx: RequestContext, request: AlterPartitionReassignmentsRequest
                                               ) -> AlterPartitionReassignmentsResponse:
    if not authorization.on_cluster(ctx, Operation.ALTER):
        return AlterPartitionReassignmentsResponse(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, responses=[])
    wanted = {(t.name, p.partition_index): p.replicas for t in request.topics for p in t.partitions}
    cluster = ctx.broker.cluster
    if cluster is not None:
        outcomes = await cluster.admin.alter_reassignments(wanted, request.timeout_ms)
    else:
        outcomes = {(topic, partition): _single_node_outcome(ctx, topic, partition, replicas)
                    for (topic, partition), replicas in wanted.items()}
    by_topic: dict[str, list[ReassignablePartitionResponse]] = {}
    for (topic, partition), (code, message) in outcomes.items():
        by_topic.setdefault(topic, []).append(ReassignablePartitionResponse(
            partition_index=partition, error_code=code, error_message=message))
    return AlterPartitionReassignmentsResponse(error_code=0, responses=[
        ReassignableTopicResponse(name=topic, partitions=partitions) for topic, partitions in by_topic.items()])


async def handle_list_partition_reassignments(ctx: RequestContext, request: ListPartitionReassignmentsRequest
                                              ) -> ListPartitionReassignmentsResponse:
    if not authorization.on_cluster(ctx, Operation.DESCRIBE):
        return ListPartitionReassignmentsResponse(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, topics=[])
    cluster = ctx.broker.cluster
    listed = {}
    if cluster is not None:
        wanted = None if request.topics is None else [
            (t.name, p) for t in request.topics for p in t.partition_indexes]
        listed = cluster.admin.list_reassignments(wanted)
    by_topic: dict[str, list[OngoingPartitionReassignment]] = {}
    for (topic, partition), (replicas, adding, removing) in listed.items():
        by_topic.setdefault(topic, []).append(OngoingPartitionReassignment(
            partition_index=partition, replicas=list(replicas), adding_replicas=list(adding),
            removing_replicas=list(removing)))
    return ListPartitionReassignmentsResponse(error_code=0, topics=[
        OngoingTopicReassignment(name=topic, partitions=partitions) for topic, partitions in by_topic.items()])
