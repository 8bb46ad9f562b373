"""ConsumerGroupDescribe (key 69): state, members and assignments of KIP-848 consumer groups."""
from kbroker.wire.schema import BOOL, INT16, INT32, STRING, UUID, Field, api, array, struct

ConsumerGroupDescribeRequest = struct("ConsumerGroupDescribeRequest",
    Field("group_ids", array(STRING)),
    Field("include_authorized_operations", BOOL),
)

TopicPartitions = struct("TopicPartitions",
    Field("topic_id", UUID),
    Field("topic_name", STRING),
    Field("partitions", array(INT32)),
)
Assignment = struct("Assignment",
    Field("topic_partitions", array(TopicPartitions)),
)
Member = struct("Member",
    Field("member_id", STRING),
    Field("instance_id", STRING, nullable="0+"),
    Field("rack_id", STRING, nullable="0+"),
    Field("member_epoch", INT32),
    Field("client_id", STRING),
    Field("client_host", STRING),
    Field("subscribed_topic_names", array(STRING)),
    Field("subscribed_topic_regex", STRING, nullable="0+"),
    Field("assignment", Assignment),
    Field("target_assignment", Assignment),
)
DescribedGroup = struct("DescribedGroup",
    Field("error_code", INT16),
    Field("error_message", STRING, nullable="0+"),
    Field("group_id", STRING),
    Field("group_state", STRING),
    Field("group_epoch", INT32),
    Field("assignment_epoch", INT32),
    Field("assignor_name", STRING),
    Field("members", array(Member)),
    Field("authorized_operations", INT32, default=-2147483648),
)
ConsumerGroupDescribeResponse = struct("ConsumerGroupDescribeResponse",
    Field("throttle_time_ms", INT32),
    Field("groups", array(DescribedGroup)),
)

CONSUMER_GROUP_DESCRIBE = api(69, "ConsumerGroupDescribe", request=ConsumerGroupDescribeRequest,
                              response=ConsumerGroupDescribeResponse, valid="0", flexible="0+")
