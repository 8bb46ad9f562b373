"""LeaveGroup (key 13): members leave a classic group; one member up to v2, a batch from v3."""
from kbroker.wire.schema import INT16, INT32, STRING, Field, api, array, struct

MemberIdentity = struct("MemberIdentity",
    Field("member_id", STRING, "3+"),
    Field("group_instance_id", STRING, "3+", nullable="3+"),
    Field("reason", STRING, "5+", nullable="5+"),
)
LeaveGroupRequest = struct("LeaveGroupRequest",
    Field("group_id", STRING),
    Field("member_id", STRING, "0-2"),
    Field("members", array(MemberIdentity), "3+"),
)

MemberResponse = struct("MemberResponse",
    Field("member_id", STRING, "3+"),
    Field("group_instance_id", STRING, "3+", nullable="3+", default=""),
    Field("error_code", INT16, "3+"),
)
LeaveGroupResponse = struct("LeaveGroupResponse",
    Field("throttle_time_ms", INT32, "1+"),
    Field("error_code", INT16),
    Field("members", array(MemberResponse), "3+"),
)

LEAVE_GROUP = api(13, "LeaveGroup", request=LeaveGroupRequest, response=LeaveGroupResponse,
                  valid="0-5", flexible="4+")
