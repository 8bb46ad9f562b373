"""AlterClientQuotas (key 49): set or remove quotas of (user, client-id) entities."""
from kbroker.wire.schema import BOOL, FLOAT64, INT16, INT32, STRING, Field, api, array, struct

EntityData = struct("EntityData",
    Field("entity_type", STRING),
    Field("entity_name", STRING, nullable="0+"),  # null: the default entity
)
OpData = struct("OpData",
    Field("key", STRING),
    Field("value", FLOAT64),
    Field("remove", BOOL),
)
EntryData = struct("EntryData",
    Field("entity", array(EntityData)),
    Field("ops", array(OpData)),
)
AlterClientQuotasRequest = struct("AlterClientQuotasRequest",
    Field("entries", array(EntryData)),
    Field("validate_only", BOOL),
)

EntryResult = struct("EntryData",  # Kafka names the answer's entries EntryData too
    Field("error_code", INT16),
    Field("error_message", STRING, nullable="0+", default=None),
    Field("entity", array(EntityData)),
)
AlterClientQuotasResponse = struct("AlterClientQuotasResponse",
    Field("throttle_time_ms", INT32),
    Field("entries", array(EntryResult)),
)

ALTER_CLIENT_QUOTAS = api(49, "AlterClientQuotas", request=AlterClientQuotasRequest,
                          response=AlterClientQuotasResponse, valid="0-1", flexible="1+")
