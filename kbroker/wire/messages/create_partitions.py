"""CreatePartitions (key 37): raise the partition count of existing topics."""
from kbroker.wire.schema import BOOL, INT16, INT32, STRING, Field, api, array, struct

CreatePartitionsAssignment = struct("CreatePartitionsAssignment",
    Field("broker_ids", array(INT32)),
)
CreatePartitionsTopic = struct("CreatePartitionsTopic",
    Field("name", STRING),
    Field("count", INT32),  # the new total partition count
    Field("assignments", array(CreatePartitionsAssignment), nullable="0+", default=()),
)
CreatePartitionsRequest = struct("CreatePartitionsRequest",
    Field("topics", array(CreatePartitionsTopic)),
    Field("timeout_ms", INT32),
    Field("validate_only", BOOL),
)

CreatePartitionsTopicResult = struct("CreatePartitionsTopicResult",
    Field("name", STRING),
    Field("error_code", INT16),
    Field("error_message", STRING, nullable="0+"),
)
CreatePartitionsResponse = struct("CreatePartitionsResponse",
    Field("throttle_time_ms", INT32),
    Field("results", array(CreatePartitionsTopicResult)),
)

CREATE_PARTITIONS = api(37, "CreatePartitions", request=CreatePartitionsRequest,
                        response=CreatePartitionsResponse, valid="0-3", flexible="2+")
