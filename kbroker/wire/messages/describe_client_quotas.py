"""DescribeClientQuotas (key 48): the quotas set for (user, client-id) entities matching a filter."""
from kbroker.wire.schema import BOOL, FLOAT64, INT8, INT16, INT32, STRING, Field, api, array, struct

ComponentData = struct("ComponentData",
    Field("entity_type", STRING),
    Field("match_type", INT8),  # 0: the name in `match`, 1: the default entity, 2: any entity of the type
    Field("match", STRING, nullable="0+"),
)
DescribeClientQuotasRequest = struct("DescribeClientQuotasRequest",
    Field("components", array(ComponentData)),
    Field("strict", BOOL),
)

EntityData = struct("EntityData",
    Field("entity_type", STRING),
    Field("entity_name", STRING, nullable="0+"),  # null: the default entity
)
ValueData = struct("ValueData",
    Field("key", STRING),
    Field("value", FLOAT64),
)
EntryData = struct("EntryData",
    Field("entity", array(EntityData)),
    Field("values", array(ValueData)),
)
DescribeClientQuotasResponse = struct("DescribeClientQuotasResponse",
    Field("throttle_time_ms", INT32),
    Field("error_code", INT16),
    Field("error_message", STRING, nullable="0+", default=None),
    Field("entries", array(EntryData), nullable="0+", default=None),
)

DESCRIBE_CLIENT_QUOTAS = api(48, "DescribeClientQuotas", request=DescribeClientQuotasRequest,
                             response=DescribeClientQuotasResponse, valid="0-1", flexible="1+")
