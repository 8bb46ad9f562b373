"""AlterConfigs (key 33): replace the whole configuration of topics or brokers."""
from kbroker.wire.schema import BOOL, INT8, INT16, INT32, STRING, Field, api, array, struct

AlterableConfig = struct("AlterableConfig",
    Field("name", STRING),
    Field("value", STRING, nullable="0+", default=""),
)
AlterConfigsResource = struct("AlterConfigsResource",
    Field("resource_type", INT8),
    Field("resource_name", STRING),
    Field("configs", array(AlterableConfig)),
)
AlterConfigsRequest = struct("AlterConfigsRequest",
    Field("resources", array(AlterConfigsResource)),
    Field("validate_only", BOOL),
)

AlterConfigsResourceResponse = struct("AlterConfigsResourceResponse",
    Field("error_code", INT16),
    Field("error_message", STRING, nullable="0+", default=""),
    Field("resource_type", INT8),
    Field("resource_name", STRING),
)
AlterConfigsResponse = struct("AlterConfigsResponse",
    Field("throttle_time_ms", INT32),
    Field("responses", array(AlterConfigsResourceResponse)),
)

ALTER_CONFIGS = api(33, "AlterConfigs", request=AlterConfigsRequest, response=AlterConfigsResponse,
                    valid="0-2", flexible="2+")
