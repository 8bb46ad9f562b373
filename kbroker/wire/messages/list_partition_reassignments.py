"""ListPartitionReassignments (key 46, KIP-455): the reassignments under way."""
from kbroker.wire.schema import INT16, INT32, STRING, Field, api, array, struct

ListPartitionReassignmentsTopics = struct("ListPartitionReassignmentsTopics",
    Field("name", STRING),
    Field("partition_indexes", array(INT32)),
)
ListPartitionReassignmentsRequest = struct("ListPartitionReassignmentsRequest",
    Field("timeout_ms", INT32, default=60000),
    Field("topics", array(ListPartitionReassignmentsTopics), nullable="0+"),  # null: every partition
)

OngoingPartitionReassignment = struct("OngoingPartitionReassignment",
    Field("partition_index", INT32),
    Field("replicas", array(INT32)),
    Field("adding_replicas", array(INT32)),
    Field("removing_replicas", array(INT32)),
)
OngoingTopicReassignment = struct("OngoingTopicReassignment",
    Field("name", STRING),
    Field("partitions", array(OngoingPartitionReassignment)),
)
ListPartitionReassignmentsResponse = struct("ListPartitionReassignmentsResponse",
    Field("throttle_time_ms", INT32),
    Field("error_code", INT16),
    Field("error_message", STRING, nullable="0+"),
    Field("topics", array(OngoingTopicReassignment)),
)

LIST_PARTITION_REASSIGNMENTS = api(46, "ListPartitionReassignments", request=ListPartitionReassignmentsRequest,
                                   response=ListPartitionReassignmentsResponse, valid="0", flexible="0+")
