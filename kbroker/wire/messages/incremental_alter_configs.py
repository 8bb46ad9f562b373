"""IncrementalAlterConfigs (key 44): set, delete, append to or subtract from single config entries."""
from kbroker.wire.schema import BOOL, INT8, INT16, INT32, STRING, Field, api, array, struct

AlterableConfig = struct("AlterableConfig",
    Field("name", STRING),
    Field("config_operation", INT8),  # 0 set, 1 delete, 2 append, 3 subtract
    Field("value", STRING, nullable="0+", default=""),
)
AlterConfigsResource = struct("AlterConfigsResource",
    Field("resource_type", INT8),
    Field("resource_name", STRING),
    Field("configs", array(AlterableConfig)),
)
IncrementalAlterConfigsRequest = struct("IncrementalAlterConfigsRequest",
    Field("resources", array(AlterConfigsResource)),
    Field("validate_only", BOOL),
)

AlterConfigsResourceResponse = struct("AlterConfigsResourceResponse",
    Field("error_code", INT16),
    Field("error_message", STRING, nullable="0+", default=""),
    Field("resource_type", INT8),
    Field("resource_name", STRING),
)
IncrementalAlterConfigsResponse = struct("IncrementalAlterConfigsResponse",
    Field("throttle_time_ms", INT32),
    Field("responses", array(AlterConfigsResourceResponse)),
)

INCREMENTAL_ALTER_CONFIGS = api(44, "IncrementalAlterConfigs", request=IncrementalAlterConfigsRequest,
                                response=IncrementalAlterConfigsResponse, valid="0-1", flexible="1+")
