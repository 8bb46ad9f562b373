"""DeleteRecords (key 21): advance the log start offset of partitions (delete records before an offset)."""
from kbroker.wire.schema import INT16, INT32, INT64, STRING, Field, api, array, struct

DeleteRecordsPartition = struct("DeleteRecordsPartition",
    Field("partition_index", INT32),
    Field("offset", INT64),  # -1: the high watermark
)
DeleteRecordsTopic = struct("DeleteRecordsTopic",
    Field("name", STRING),
    Field("partitions", array(DeleteRecordsPartition)),
)
DeleteRecordsRequest = struct("DeleteRecordsRequest",
    Field("topics", array(DeleteRecordsTopic)),
    Field("timeout_ms", INT32),
)

DeleteRecordsPartitionResult = struct("DeleteRecordsPartitionResult",
    Field("partition_index", INT32),
    Field("low_watermark", INT64),
    Field("error_code", INT16),
)
DeleteRecordsTopicResult = struct("DeleteRecordsTopicResult",
    Field("name", STRING),
    Field("partitions", array(DeleteRecordsPartitionResult)),
)
DeleteRecordsResponse = struct("DeleteRecordsResponse",
    Field("throttle_time_ms", INT32),
    Field("topics", array(DeleteRecordsTopicResult)),
)

DELETE_RECORDS = api(21, "DeleteRecords", request=DeleteRecordsRequest, response=DeleteRecordsResponse,
                     valid="0-2", flexible="2+")
