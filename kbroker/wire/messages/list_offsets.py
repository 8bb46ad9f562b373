"""ListOffsets (key 2): the offset of a partition at a timestamp, or its earliest/latest offset."""
from kbroker.wire.schema import INT8, INT16, INT32, INT64, STRING, Field, api, array, struct

ListOffsetsPartition = struct("ListOffsetsPartition",
    Field("partition_index", INT32),
    Field("current_leader_epoch", INT32, "4+", default=-1),
    # -1 latest, -2 earliest; v7+ -3 max timestamp, v8+ -4 local log start, v9+ -5 last tiered.
    Field("timestamp", INT64),
    Field("max_num_offsets", INT32, "0", default=1),
)
ListOffsetsTopic = struct("ListOffsetsTopic",
    Field("name", STRING),
    Field("partitions", array(ListOffsetsPartition)),
)
ListOffsetsRequest = struct("ListOffsetsRequest",
    Field("replica_id", INT32),
    Field("isolation_level", INT8, "2+"),
    Field("topics", array(ListOffsetsTopic)),
    Field("timeout_ms", INT32, "10+"),
)

ListOffsetsPartitionResponse = struct("ListOffsetsPartitionResponse",
    Field("partition_index", INT32),
    Field("error_code", INT16),
    Field("old_style_offsets", array(INT64), "0"),
    Field("timestamp", INT64, "1+", default=-1),
    Field("offset", INT64, "1+", default=-1),
    Field("leader_epoch", INT32, "4+", default=-1),
)
ListOffsetsTopicResponse = struct("ListOffsetsTopicResponse",
    Field("name", STRING),
    Field("partitions", array(ListOffsetsPartitionResponse)),
)
ListOffsetsResponse = struct("ListOffsetsResponse",
    Field("throttle_time_ms", INT32, "2+"),
    Field("topics", array(ListOffsetsTopicResponse)),
)

LIST_OFFSETS = api(2, "ListOffsets", request=ListOffsetsRequest, response=ListOffsetsResponse,
                   valid="0-10", flexible="6+")
