"""InitProducerId (key 22): a producer id and epoch for an idempotent or transactional producer."""
from kbroker.wire.schema import INT16, INT32, INT64, STRING, Field, api, struct

InitProducerIdRequest = struct("InitProducerIdRequest",
    Field("transactional_id", STRING, nullable="0+", default=""),
    Field("transaction_timeout_ms", INT32),
    # v3+: the current id and epoch, so a producer can bump its epoch instead of getting a new id.
    Field("producer_id", INT64, "3+", default=-1),
    Field("producer_epoch", INT16, "3+", default=-1),
)

InitProducerIdResponse = struct("InitProducerIdResponse",
    Field("throttle_time_ms", INT32),
    Field("error_code", INT16),
    Field("producer_id", INT64, default=-1),
    Field("producer_epoch", INT16),
)

INIT_PRODUCER_ID = api(22, "InitProducerId", request=InitProducerIdRequest, response=InitProducerIdResponse,
                       valid="0-5", flexible="2+")
