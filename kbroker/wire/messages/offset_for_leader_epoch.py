"""OffsetForLeaderEpoch (key 23): the end offset of a leader epoch, to detect log truncation."""
from kbroker.wire.schema import INT16, INT32, INT64, STRING, Field, api, array, struct

OffsetForLeaderPartition = struct("OffsetForLeaderPartition",
    Field("partition", INT32),
    Field("current_leader_epoch", INT32, "2+", default=-1),
    Field("leader_epoch", INT32),
)
OffsetForLeaderTopic = struct("OffsetForLeaderTopic",
    Field("topic", STRING),
    Field("partitions", array(OffsetForLeaderPartition)),
)
OffsetForLeaderEpochRequest = struct("OffsetForLeaderEpochRequest",
    # -1 for consumers; -2 (the default for v0-2) is a debug replica that may read past the high watermark.
    Field("replica_id", INT32, "3+", default=-2),
    Field("topics", array(OffsetForLeaderTopic)),
)

EpochEndOffset = struct("EpochEndOffset",
    Field("error_code", INT16),
    Field("partition", INT32),
    Field("leader_epoch", INT32, "1+", default=-1),
    Field("end_offset", INT64, default=-1),
)
OffsetForLeaderTopicResult = struct("OffsetForLeaderTopicResult",
    Field("topic", STRING),
    Field("partitions", array(EpochEndOffset)),
)
OffsetForLeaderEpochResponse = struct("OffsetForLeaderEpochResponse",
    Field("throttle_time_ms", INT32, "2+"),
    Field("topics", array(OffsetForLeaderTopicResult)),
)

OFFSET_FOR_LEADER_EPOCH = api(23, "OffsetForLeaderEpoch", request=OffsetForLeaderEpochRequest,
                              response=OffsetForLeaderEpochResponse, valid="0-4", flexible="4+")
