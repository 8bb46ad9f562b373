"""OffsetCommit (key 8): store a consumer group's committed offsets."""
from kbroker.wire.schema import INT16, INT32, INT64, STRING, Field, api, array, struct

OffsetCommitRequestPartition = struct("OffsetCommitRequestPartition",
    Field("partition_index", INT32),
    Field("committed_offset", INT64),
    Field("committed_leader_epoch", INT32, "6+", default=-1),
    Field("commit_timestamp", INT64, "1", default=-1),
    Field("committed_metadata", STRING, nullable="0+", default=""),
)
OffsetCommitRequestTopic = struct("OffsetCommitRequestTopic",
    Field("name", STRING),
    Field("partitions", array(OffsetCommitRequestPartition)),
)
OffsetCommitRequest = struct("OffsetCommitRequest",
    Field("group_id", STRING),
    # The classic group generation, or the member epoch of a KIP-848 consumer group (v9+).
    Field("generation_id_or_member_epoch", INT32, "1+", default=-1),
    Field("member_id", STRING, "1+"),
    Field("group_instance_id", STRING, "7+", nullable="7+"),
    Field("retention_time_ms", INT64, "2-4", default=-1),  # -1: the broker's retention
    Field("topics", array(OffsetCommitRequestTopic)),
)

OffsetCommitResponsePartition = struct("OffsetCommitResponsePartition",
    Field("partition_index", INT32),
    Field("error_code", INT16),
)
OffsetCommitResponseTopic = struct("OffsetCommitResponseTopic",
    Field("name", STRING),
    Field("partitions", array(OffsetCommitResponsePartition)),
)
OffsetCommitResponse = struct("OffsetCommitResponse",
    Field("throttle_time_ms", INT32, "3+"),
    Field("topics", array(OffsetCommitResponseTopic)),
)

OFFSET_COMMIT = api(8, "OffsetCommit", request=OffsetCommitRequest, response=OffsetCommitResponse,
                    valid="0-9", flexible="8+")
