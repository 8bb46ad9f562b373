"""OffsetDelete (key 47): delete a group's committed offsets for partitions it no longer consumes."""
from kbroker.wire.schema import INT16, INT32, STRING, Field, api, array, struct

OffsetDeleteRequestPartition = struct("OffsetDeleteRequestPartition",
    Field("partition_index", INT32),
)
OffsetDeleteRequestTopic = struct("OffsetDeleteRequestTopic",
    Field("name", STRING),
    Field("partitions", array(OffsetDeleteRequestPartition)),
)
OffsetDeleteRequest = struct("OffsetDeleteRequest",
    Field("group_id", STRING),
    Field("topics", array(OffsetDeleteRequestTopic)),
)

OffsetDeleteResponsePartition = struct("OffsetDeleteResponsePartition",
    Field("partition_index", INT32),
    Field("error_code", INT16),
)
OffsetDeleteResponseTopic = struct("OffsetDeleteResponseTopic",
    Field("name", STRING),
    Field("partitions", array(OffsetDeleteResponsePartition)),
)
OffsetDeleteResponse = struct("OffsetDeleteResponse",
    Field("error_code", INT16),
    Field("throttle_time_ms", INT32),
    Field("topics", array(OffsetDeleteResponseTopic)),
)

OFFSET_DELETE = api(47, "OffsetDelete", request=OffsetDeleteRequest, response=OffsetDeleteResponse,
                    valid="0", flexible="none")
