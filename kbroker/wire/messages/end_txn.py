"""EndTxn (key 26): commit or abort a producer's transaction.

v5 (KIP-890 part 2: the epoch bumped at the end of every transaction) is Kafka 4.0's unstable
latest version, not advertised by Kafka either; we do not implement it."""
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
)

END_TXN = api(26, "EndTxn", request=EndTxnRequest, response=EndTxnResponse, valid="0-4", flexible="3+")
