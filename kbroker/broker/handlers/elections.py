"""ElectLeaders (KIP-460): preferred or unclean leader elections, per partition.

On a single node every partition is led by its only replica: each existing one gets
ELECTION_NOT_NEEDED. In a cluster any broker takes the request and hands the elections to the
controller through the store (kbroker/cluster/admin.py), answering once its image shows the
outcome or the request's timeout passed. A null topic list asks for every partition.
"""
from __future__ import annotations

from kbroker.broker import authorization
from kbroker.broker.dispatch import RequestContext
from kbroker.cluster.admin import ELECTION_MESSAGES
from kbroker.cluster.election import ELECTION_TYPES
from kbroker.errors import ErrorCode
from kbroker.security.acls import Operation
from kbroker.wire.messages.elect_leaders import (
    ElectLeadersRequest,
    ElectLeadersResponse,
    PartitionResult,
    ReplicaElectionResult,
)


async def handle_elect_leaders(ctx: RequestContext, request: ElectLeadersRequest) -> ElectLeadersResponse:
    if not authorization.on_cluster(ctx, Operation.ALTER):
        return ElectLeadersResponse(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, replica_election_results=[])
    if request.election_type not in ELECTION_TYPES:
        return ElectLeadersResponse(error_code=ErrorCode.INVALID_REQUEST, replica_election_results=[])
    broker = ctx.broker
    wanted = None if request.topic_partitions is None else [
        (t.topic, p) for t in request.topic_partitions for p in t.partitions]
    if broker.cluster is not None:
        outcomes = await broker.cluster.admin.elect_leaders(request.election_type, wanted, request.timeout_ms)
    else:
        if wanted is None:
            wanted = [(info.name, p) for info in broker.logs.topics() for p in range(info.partition_count)]
        outcomes = {}
        for topic, partition in wanted:
            info = broker.logs.topic(topic)
            code = (ErrorCode.ELECTION_NOT_NEEDED if info is not None and 0 <= partition < info.partition_count
                    else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
            outcomes[(topic, partition)] = (code, ELECTION_MESSAGES[code])
    by_topic: dict[str, list[PartitionResult]] = {}
    for (topic, partition), (code, message) in outcomes.items():
        by_topic.setdefault(topic, []).append(PartitionResult(partition_id=partition, error_code=code,
                                                              error_message=message))
    return ElectLeadersResponse(error_code=0, replica_election_results=[
        ReplicaElectionResult(topic=topic, partition_result=results) for topic, results in by_topic.items()])
