"""DescribeProducers (key 61): the active producers of partitions, from their producer state (KIP-664)."""
from kbroker.wire.schema import INT16, INT32, INT64, STRING, Field, api, array, struct

TopicRequest = struct("TopicRequest",
    Field("name", STRING),
    Field("partition_indexes", array(INT32)),
)
DescribeProducersRequest = struct("DescribeProducersRequest",
    Field("topics", array(TopicRequest)),
)

ProducerState = struct("ProducerState",
    Field("producer_id", INT64),
    Field("producer_epoch", INT32),
    Field("last_sequence", INT32, default=-1),
    Field("last_timestamp", INT64, default=-1),
    Field("coordinator_epoch", INT32),
    Field("current_txn_start_offset", INT64, default=-1),
)
PartitionResponse = struct("PartitionResponse",
    Field("partition_index", INT32),
    Field("error_code", INT16),
    Field("error_message", STRING, nullable="0+"),
    Field("active_producers", array(ProducerState)),
)
TopicResponse = struct("TopicResponse",
    Field("name", STRING),
    Field("partitions", array(PartitionResponse)),
)
DescribeProducersResponse = struct("DescribeProducersResponse",
    Field("throttle_time_ms", INT32),
    Field("topics", array(TopicResponse)),
)

DESCRIBE_PRODUCERS = api(61, "DescribeProducers", request=DescribeProducersRequest,
                         response=DescribeProducersResponse, valid="0", flexible="0+")
