"""ConsumerGroupHeartbeat (key 68): join, stay in and leave a KIP-848 consumer group."""
from kbroker.wire.schema import INT16, INT32, STRING, UUID, Field, api, array, struct

TopicPartitions = struct("TopicPartitions",
    Field("topic_id", UUID),
    Field("partitions", array(INT32)),
)
# Nullable fields are null when unchanged since the member's last heartbeat.
ConsumerGroupHeartbeatRequest = struct("ConsumerGroupHeartbeatRequest",
    Field("group_id", STRING),
    Field("member_id", STRING),
    Field("member_epoch", INT32),  # 0 joins, -1 leaves, -2 a static member leaves to rejoin
    Field("instance_id", STRING, nullable="0+"),
    Field("rack_id", STRING, nullable="0+"),
    Field("rebalance_timeout_ms", INT32, default=-1),
    Field("subscribed_topic_names", array(STRING), nullable="0+"),
    Field("subscribed_topic_regex", STRING, "1+", nullable="1+"),
    Field("server_assignor", STRING, nullable="0+"),
    Field("topic_partitions", array(TopicPartitions), nullable="0+"),
)

Assignment = struct("Assignment",
    Field("topic_partitions", array(TopicPartitions)),
)
ConsumerGroupHeartbeatResponse = struct("ConsumerGroupHeartbeatResponse",
    Field("throttle_time_ms", INT32),
    Field("error_code", INT16),
    Field("error_message", STRING, nullable="0+"),
    Field("member_id", STRING, nullable="0+"),
    Field("member_epoch", INT32),
    Field("heartbeat_interval_ms", INT32),
    Field("assignment", Assignment, nullable="0+"),
)

CONSUMER_GROUP_HEARTBEAT = api(68, "ConsumerGroupHeartbeat", request=ConsumerGroupHeartbeatRequest,
                               response=ConsumerGroupHeartbeatResponse, valid="0-1", flexible="0+")
