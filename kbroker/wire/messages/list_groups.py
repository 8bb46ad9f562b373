"""ListGroups (key 16): the groups a coordinator knows, optionally filtered by state and type."""
from kbroker.wire.schema import INT16, INT32, STRING, Field, api, array, struct

ListGroupsRequest = struct("ListGroupsRequest",
    Field("states_filter", array(STRING), "4+"),
    Field("types_filter", array(STRING), "5+"),
)

ListedGroup = struct("ListedGroup",
    Field("group_id", STRING),
    Field("protocol_type", STRING),
    Field("group_state", STRING, "4+"),
    Field("group_type", STRING, "5+"),
)
ListGroupsResponse = struct("ListGroupsResponse",
    Field("throttle_time_ms", INT32, "1+"),
    Field("error_code", INT16),
    Field("groups", array(ListedGroup)),
)

LIST_GROUPS = api(16, "ListGroups", request=ListGroupsRequest, response=ListGroupsResponse,
                  valid="0-5", flexible="3+")
