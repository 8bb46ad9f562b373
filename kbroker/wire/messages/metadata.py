"""Metadata (key 3): brokers, cluster id, controller, topics with partitions and topic ids."""
from kbroker.wire.schema import BOOL, INT16, INT32, STRING, UUID, Field, api, array, struct

MetadataRequestTopic = struct("MetadataRequestTopic",
    Field("topic_id", UUID, "10+"),
    Field("name", STRING, nullable="10+"),
)
MetadataRequest = struct("MetadataRequest",
    # v0: an empty array means all topics; v1+: null means all topics, [] none.
    Field("topics", array(MetadataRequestTopic), nullable="1+"),
    Field("allow_auto_topic_creation", BOOL, "4+", default=True),
    Field("include_cluster_authorized_operations", BOOL, "8-10"),
    Field("include_topic_authorized_operations", BOOL, "8+"),
)

MetadataResponseBroker = struct("MetadataResponseBroker",
    Field("node_id", INT32),
    Field("host", STRING),
    Field("port", INT32),
    Field("rack", STRING, "1+", nullable="1+"),
)
MetadataResponsePartition = struct("MetadataResponsePartition",
    Field("error_code", INT16),
    Field("partition_index", INT32),
    Field("leader_id", INT32),
    Field("leader_epoch", INT32, "7+", default=-1),
    Field("replica_nodes", array(INT32)),
    Field("isr_nodes", array(INT32)),
    Field("offline_replicas", array(INT32), "5+"),
)
MetadataResponseTopic = struct("MetadataResponseTopic",
    Field("error_code", INT16),
    Field("name", STRING, nullable="12+", default=""),
    Field("topic_id", UUID, "10+"),
    Field("is_internal", BOOL, "1+"),
    Field("partitions", array(MetadataResponsePartition)),
    Field("topic_authorized_operations", INT32, "8+", default=-2147483648),
)
MetadataResponse = struct("MetadataResponse",
    Field("throttle_time_ms", INT32, "3+"),
    Field("brokers", array(MetadataResponseBroker)),
    Field("cluster_id", STRING, "2+", nullable="2+"),
    Field("controller_id", INT32, "1+", default=-1),
    Field("topics", array(MetadataResponseTopic)),
    Field("cluster_authorized_operations", INT32, "8-10", default=-2147483648),
)

METADATA = api(3, "Metadata", request=MetadataRequest, response=MetadataResponse, valid="0-12", flexible="9+")
