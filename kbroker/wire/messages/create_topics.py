"""CreateTopics (key 19): create topics by partition count and replication factor, or by assignment."""
from kbroker.wire.schema import BOOL, INT8, INT16, INT32, STRING, UUID, Field, api, array, struct

CreatableReplicaAssignment = struct("CreatableReplicaAssignment",
    Field("partition_index", INT32),
    Field("broker_ids", array(INT32)),
)
CreatableTopicConfig = struct("CreatableTopicConfig",
    Field("name", STRING),
    Field("value", STRING, nullable="0+", default=""),
)
CreatableTopic = struct("CreatableTopic",
    Field("name", STRING),
    Field("num_partitions", INT32),  # -1: the broker default (v4+), as is replication_factor -1
    Field("replication_factor", INT16),
    Field("assignments", array(CreatableReplicaAssignment)),
    Field("configs", array(CreatableTopicConfig)),
)
CreateTopicsRequest = struct("CreateTopicsRequest",
    Field("topics", array(CreatableTopic)),
    Field("timeout_ms", INT32, default=60000),
    Field("validate_only", BOOL, "1+"),
)

CreatableTopicConfigs = struct("CreatableTopicConfigs",
    Field("name", STRING, "5+"),
    Field("value", STRING, "5+", nullable="5+", default=""),
    Field("read_only", BOOL, "5+"),
    Field("config_source", INT8, "5+", default=-1),
    Field("is_sensitive", BOOL, "5+"),
)
CreatableTopicResult = struct("CreatableTopicResult",
    Field("name", STRING),
    Field("topic_id", UUID, "7+"),
    Field("error_code", INT16),
    Field("error_message", STRING, "1+", nullable="0+", default=""),
    Field("topic_config_error_code", INT16, "5+", tag=0),
    Field("num_partitions", INT32, "5+", default=-1),
    Field("replication_factor", INT16, "5+", default=-1),
    Field("configs", array(CreatableTopicConfigs), "5+", nullable="5+", default=()),
)
CreateTopicsResponse = struct("CreateTopicsResponse",
    Field("throttle_time_ms", INT32, "2+"),
    Field("topics", array(CreatableTopicResult)),
)

CREATE_TOPICS = api(19, "CreateTopics", request=CreateTopicsRequest, response=CreateTopicsResponse,
                    valid="0-7", flexible="5+")
