"""JoinGroup (key 11): join a classic consumer group; the coordinator picks a protocol and a leader."""
from kbroker.wire.schema import BOOL, BYTES, INT16, INT32, STRING, Field, api, array, struct

JoinGroupRequestProtocol = struct("JoinGroupRequestProtocol",
    Field("name", STRING),
    Field("metadata", BYTES),
)
JoinGroupRequest = struct("JoinGroupRequest",
    Field("group_id", STRING),
    Field("session_timeout_ms", INT32),
    Field("rebalance_timeout_ms", INT32, "1+", default=-1),
    Field("member_id", STRING),  # "" on the first join; v4+ answers MEMBER_ID_REQUIRED with one
    Field("group_instance_id", STRING, "5+", nullable="5+"),
    Field("protocol_type", STRING),
    Field("protocols", array(JoinGroupRequestProtocol)),
    Field("reason", STRING, "8+", nullable="8+"),
)

JoinGroupResponseMember = struct("JoinGroupResponseMember",
    Field("member_id", STRING),
    Field("group_instance_id", STRING, "5+", nullable="5+"),
    Field("metadata", BYTES),
)
JoinGroupResponse = struct("JoinGroupResponse",
    Field("throttle_time_ms", INT32, "2+"),
    Field("error_code", INT16),
    Field("generation_id", INT32, default=-1),
    Field("protocol_type", STRING, "7+", nullable="7+"),
    Field("protocol_name", STRING, nullable="7+", default=""),
    Field("leader", STRING),
    Field("skip_assignment", BOOL, "9+"),
    Field("member_id", STRING),
    Field("members", array(JoinGroupResponseMember)),  # filled for the leader only
)

JOIN_GROUP = api(11, "JoinGroup", request=JoinGroupRequest, response=JoinGroupResponse,
                 valid="0-9", flexible="6+")
