"""TxnOffsetCommit (key 28): a consumer group's offsets, committed with the producer's transaction."""
from kbroker.wire.schema import INT16, INT32, INT64, STRING, Field, api, array, struct

TxnOffsetCommitRequestPartition = struct("TxnOffsetCommitRequestPartition",
    Field("partition_index", INT32),
    Field("committed_offset", INT64),
    Field("committed_leader_epoch", INT32, "2+", default=-1),
    Field("committed_metadata", STRING, nullable="0+"),
)
TxnOffsetCommitRequestTopic = struct("TxnOffsetCommitRequestTopic",
    Field("name", STRING),
    Field("partitions", array(TxnOffsetCommitRequestPartition)),
)
TxnOffsetCommitRequest = struct("TxnOffsetCommitRequest",
    Field("transactional_id", STRING),
    Field("group_id", STRING),
    Field("producer_id", INT64),
    Field("producer_epoch", INT16),
    Field("generation_id", INT32, "3+", default=-1),
    Field("member_id", STRING, "3+"),
    Field("group_instance_id", STRING, "3+", nullable="3+"),
    Field("topics", array(TxnOffsetCommitRequestTopic)),
)

TxnOffsetCommitResponsePartition = struct("TxnOffsetCommitResponsePartition",
    Field("partition_index", INT32),
    Field("error_code", INT16),
)
TxnOffsetCommitResponseTopic = struct("TxnOffsetCommitResponseTopic",
    Field("name", STRING),
    Field("partitions", array(TxnOffsetCommitResponsePartition)),
)
TxnOffsetCommitResponse = struct("TxnOffsetCommitResponse",
    Field("throttle_time_ms", INT32),
    Field("topics", array(TxnOffsetCommitResponseTopic)),
)

TXN_OFFSET_COMMIT = api(28, "TxnOffsetCommit", request=TxnOffsetCommitRequest, response=TxnOffsetCommitResponse,
                        valid="0-4", flexible="3+")
