"""EndTxn (key 26): commit or abort a producer's transaction."""
from kbroker.wire.schema import BOOL, INT16, INT32, INT64, STRING, Field, api, struct

EndTxnRequest = struct("EndTxnRequest",
    Field("transactional_id", STRING),
    Field("producer_id", INT64),
    Field("producer_epoch", INT16),
    Field("committed", BOOL),
)
EndTxnResponse = struct("EndTxnResponse",
    Field("throttle_time_ms", INT32),
    Field("error_code", INT16),
    # v5 (KIP-890 part 2): the epoch bumped at the end of every transaction.
    Field("producer_id", INT64, "5+", default=-1),
    Field("producer_epoch", INT16, "5+", default=-1),
)

END_TXN = api(26, "EndTxn", request=EndTxnRequest, response=EndTxnResponse, valid="0-5", flexible="3+")
