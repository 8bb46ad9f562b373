"""ElectLeaders (key 43): move partition leadership to the preferred replica, or elect any live
replica of a partition that has no live in-sync one (KIP-460, v1+)."""
from kbroker.wire.schema import INT8, INT16, INT32, STRING, Field, api, array, struct

TopicPartitions = struct("TopicPartitions",
    Field("topic", STRING),
    Field("partitions", array(INT32)),
)
ElectLeadersRequest = struct("ElectLeadersRequest",
    Field("election_type", INT8, "1+"),  # 0 preferred, 1 unclean; v0: preferred
    Field("topic_partitions", array(TopicPartitions), nullable="0+"),  # null: every partition
    Field("timeout_ms", INT32, default=60000),
)

PartitionResult = struct("PartitionResult",
    Field("partition_id", INT32),
    Field("error_code", INT16),
    Field("error_message", STRING, nullable="0+"),
)
ReplicaElectionResult = struct("ReplicaElectionResult",
    Field("topic", STRING),
    Field("partition_result", array(PartitionResult)),
)
ElectLeadersResponse = struct("ElectLeadersResponse",
    Field("throttle_time_ms", INT32),
    Field("error_code", INT16, "1+"),
    Field("replica_election_results", array(ReplicaElectionResult)),
)

ELECT_LEADERS = api(43, "ElectLeaders", request=ElectLeadersRequest, response=ElectLeadersResponse,
                    valid="0-2", flexible="2+")
