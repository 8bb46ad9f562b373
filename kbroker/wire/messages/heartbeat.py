"""Heartbeat (key 12): a classic group member is alive; the answer says whether to rejoin."""
from kbroker.wire.schema import INT16, INT32, STRING, Field, api, struct

HeartbeatRequest = struct("HeartbeatRequest",
    Field("group_id", STRING),
    Field("generation_id", INT32),
    Field("member_id", STRING),
    Field("group_instance_id", STRING, "3+", nullable="3+"),
)

HeartbeatResponse = struct("HeartbeatResponse",
    Field("throttle_time_ms", INT32, "1+"),
    Field("error_code", INT16),
)

HEARTBEAT = api(12, "Heartbeat", request=HeartbeatRequest, response=HeartbeatResponse,
                valid="0-4", flexible="4+")
