"""FindCoordinator (key 10): the broker coordinating a consumer group or a transactional id."""
from kbroker.wire.schema import INT8, INT16, INT32, STRING, Field, api, array, struct

FindCoordinatorRequest = struct("FindCoordinatorRequest",
    Field("key", STRING, "0-3"),
    Field("key_type", INT8, "1+"),  # 0 group, 1 transaction
    Field("coordinator_keys", array(STRING), "4+"),  # v4+ looks up several keys at once
)

Coordinator = struct("Coordinator",
    Field("key", STRING, "4+"),
    Field("node_id", INT32, "4+"),
    Field("host", STRING, "4+"),
    Field("port", INT32, "4+"),
    Field("error_code", INT16, "4+"),
    Field("error_message", STRING, "4+", nullable="4+", default=""),
)
FindCoordinatorResponse = struct("FindCoordinatorResponse",
    Field("throttle_time_ms", INT32, "1+"),
    Field("error_code", INT16, "0-3"),
    Field("error_message", STRING, "1-3", nullable="1-3", default=""),
    Field("node_id", INT32, "0-3"),
    Field("host", STRING, "0-3"),
    Field("port", INT32, "0-3"),
    Field("coordinators", array(Coordinator), "4+"),
)

FIND_COORDINATOR = api(10, "FindCoordinator", request=FindCoordinatorRequest,
                       response=FindCoordinatorResponse, valid="0-6", flexible="3+")
