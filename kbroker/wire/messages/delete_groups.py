"""DeleteGroups (key 42): delete empty consumer groups and their committed offsets."""
from kbroker.wire.schema import INT16, INT32, STRING, Field, api, array, struct

DeleteGroupsRequest = struct("DeleteGroupsRequest",
    Field("groups_names", array(STRING)),
)

DeletableGroupResult = struct("DeletableGroupResult",
    Field("group_id", STRING),
    Field("error_code", INT16),
)
DeleteGroupsResponse = struct("DeleteGroupsResponse",
    Field("throttle_time_ms", INT32),
    Field("results", array(DeletableGroupResult)),
)

DELETE_GROUPS = api(42, "DeleteGroups", request=DeleteGroupsRequest, response=DeleteGroupsResponse,
                    valid="0-2", flexible="2+")
