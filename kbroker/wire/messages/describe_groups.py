"""DescribeGroups (key 15): state, protocol and members of classic groups."""
from kbroker.wire.schema import BOOL, BYTES, INT16, INT32, STRING, Field, api, array, struct

DescribeGroupsRequest = struct("DescribeGroupsRequest",
    Field("groups", array(STRING)),
    Field("include_authorized_operations", BOOL, "3+"),
)

DescribedGroupMember = struct("DescribedGroupMember",
    Field("member_id", STRING),
    Field("group_instance_id", STRING, "4+", nullable="4+"),
    Field("client_id", STRING),
    Field("client_host", STRING),
    Field("member_metadata", BYTES),
    Field("member_assignment", BYTES),
)
DescribedGroup = struct("DescribedGroup",
    Field("error_code", INT16),
    Field("group_id", STRING),
    Field("group_state", STRING),
    Field("protocol_type", STRING),
    Field("protocol_data", STRING),  # the chosen protocol, e.g. the assignor name
    Field("members", array(DescribedGroupMember)),
    Field("authorized_operations", INT32, "3+", default=-2147483648),
)
DescribeGroupsResponse = struct("DescribeGroupsResponse",
    Field("throttle_time_ms", INT32, "1+"),
    Field("groups", array(DescribedGroup)),
)

DESCRIBE_GROUPS = api(15, "DescribeGroups", request=DescribeGroupsRequest, response=DescribeGroupsResponse,
                      valid="0-5", flexible="5+")
