"""AlterPartitionReassignments (key 45, KIP-455): move partitions to new replicas, or cancel a
move under way (null replicas)."""
from kbroker.wire.schema import INT16, INT32, STRING, Field, api, array, struct

ReassignablePartition = struct("ReassignablePartition",
    Field("partition_index", INT32),
    Field("replicas", array(INT32), nullable="0+"),  # null: cancel the partition's reassignment
)
ReassignableTopic = struct("ReassignableTopic",
    Field("name", STRING),
    Field("partitions", array(ReassignablePartition)),
)
AlterPartitionReassignmentsRequest = struct("AlterPartitionReassignmentsRequest",
    Field("timeout_ms", INT32, default=60000),
    Field("topics", array(ReassignableTopic)),
)

ReassignablePartitionResponse = struct("ReassignablePartitionResponse",
    Field("partition_index", INT32),
    Field("error_code", INT16),
    Field("error_message", STRING, nullable="0+"),
)
ReassignableTopicResponse = struct("ReassignableTopicResponse",
    Field("name", STRING),
    Field("partitions", array(ReassignablePartitionResponse)),
)
AlterPartitionReassignmentsResponse = struct("AlterPartitionReassignmentsResponse",
    Field("throttle_time_ms", INT32),
    Field("error_code", INT16),
    Field("error_message", STRING, nullable="0+"),
    Field("responses", array(ReassignableTopicResponse)),
)

ALTER_PARTITION_REASSIGNMENTS = api(45, "AlterPartitionReassignments", request=AlterPartitionReassignmentsRequest,
                                    response=AlterPartitionReassignmentsResponse, valid="0", flexible="0+")
