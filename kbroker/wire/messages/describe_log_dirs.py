"""DescribeLogDirs (key 35): the log directories of a broker, with each hosted partition's size and lag."""
from kbroker.wire.schema import BOOL, INT16, INT32, INT64, STRING, Field, api, array, struct

DescribableLogDirTopic = struct("DescribableLogDirTopic",
    Field("topic", STRING),
    Field("partitions", array(INT32)),
)
DescribeLogDirsRequest = struct("DescribeLogDirsRequest",
    Field("topics", array(DescribableLogDirTopic), nullable="0+"),  # null: every topic
)

DescribeLogDirsPartition = struct("DescribeLogDirsPartition",
    Field("partition_index", INT32),
    Field("partition_size", INT64),
    Field("offset_lag", INT64),  # high watermark - log end offset, at least 0
    Field("is_future_key", BOOL),
)
DescribeLogDirsTopic = struct("DescribeLogDirsTopic",
    Field("name", STRING),
    Field("partitions", array(DescribeLogDirsPartition)),
)
DescribeLogDirsResult = struct("DescribeLogDirsResult",
    Field("error_code", INT16),
    Field("log_dir", STRING),
    Field("topics", array(DescribeLogDirsTopic)),
    Field("total_bytes", INT64, "4+", default=-1),
    Field("usable_bytes", INT64, "4+", default=-1),
)
DescribeLogDirsResponse = struct("DescribeLogDirsResponse",
    Field("throttle_time_ms", INT32),
    Field("error_code", INT16, "3+"),
    Field("results", array(DescribeLogDirsResult)),
)

DESCRIBE_LOG_DIRS = api(35, "DescribeLogDirs", request=DescribeLogDirsRequest, response=DescribeLogDirsResponse,
                        valid="0-4", flexible="2+")
