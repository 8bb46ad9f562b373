"""AddOffsetsToTxn (key 25): a group's offsets join the transaction (its `__consumer_offsets` partition)."""
from kbroker.wire.schema import INT16, INT32, INT64, STRING, Field, api, struct

AddOffsetsToTxnRequest = struct("AddOffsetsToTxnRequest",
    Field("transactional_id", STRING),
    Field("producer_id", INT64),
    Field("producer_epoch", INT16),
    Field("group_id", STRING),
)
AddOffsetsToTxnResponse = struct("AddOffsetsToTxnResponse",
    Field("throttle_time_ms", INT32),
    Field("error_code", INT16),
)

ADD_OFFSETS_TO_TXN = api(25, "AddOffsetsToTxn", request=AddOffsetsToTxnRequest, response=AddOffsetsToTxnResponse,
                         valid="0-4", flexible="3+")
