"""SyncGroup (key 14): the leader hands in the assignment; every member gets its own share back."""
from kbroker.wire.schema import BYTES, INT16, INT32, STRING, Field, api, array, struct

SyncGroupRequestAssignment = struct("SyncGroupRequestAssignment",
    Field("member_id", STRING),
    Field("assignment", BYTES),
)
SyncGroupRequest = struct("SyncGroupRequest",
    Field("group_id", STRING),
    Field("generation_id", INT32),
    Field("member_id", STRING),
    Field("group_instance_id", STRING, "3+", nullable="3+"),
    Field("protocol_type", STRING, "5+", nullable="5+"),
    Field("protocol_name", STRING, "5+", nullable="5+"),
    Field("assignments", array(SyncGroupRequestAssignment)),  # empty unless sent by the leader
)

SyncGroupResponse = struct("SyncGroupResponse",
    Field("throttle_time_ms", INT32, "1+"),
    Field("error_code", INT16),
    Field("protocol_type", STRING, "5+", nullable="5+"),
    Field("protocol_name", STRING, "5+", nullable="5+"),
    Field("assignment", BYTES),
)

SYNC_GROUP = api(14, "SyncGroup", request=SyncGroupRequest, response=SyncGroupResponse,
                 valid="0-5", flexible="4+")
