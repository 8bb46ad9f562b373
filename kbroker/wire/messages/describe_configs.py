"""DescribeConfigs (key 32): the configuration entries of topics and brokers."""
from kbroker.wire.schema import BOOL, INT8, INT16, INT32, STRING, Field, api, array, struct

DescribeConfigsResource = struct("DescribeConfigsResource",
    Field("resource_type", INT8),
    Field("resource_name", STRING),
    Field("configuration_keys", array(STRING), nullable="0+", default=()),  # null: all keys
)
DescribeConfigsRequest = struct("DescribeConfigsRequest",
    Field("resources", array(DescribeConfigsResource)),
    Field("include_synonyms", BOOL, "1+"),
    Field("include_documentation", BOOL, "3+"),
)

DescribeConfigsSynonym = struct("DescribeConfigsSynonym",
    Field("name", STRING, "1+"),
    Field("value", STRING, "1+", nullable="0+", default=""),
    Field("source", INT8, "1+"),
)
DescribeConfigsResourceResult = struct("DescribeConfigsResourceResult",
    Field("name", STRING),
    Field("value", STRING, nullable="0+", default=""),
    Field("read_only", BOOL),
    Field("is_default", BOOL, "0"),
    Field("config_source", INT8, "1+", default=-1),
    Field("is_sensitive", BOOL),
    Field("synonyms", array(DescribeConfigsSynonym), "1+"),
    Field("config_type", INT8, "3+"),
    Field("documentation", STRING, "3+", nullable="0+", default=""),
)
DescribeConfigsResult = struct("DescribeConfigsResult",
    Field("error_code", INT16),
    Field("error_message", STRING, nullable="0+", default=""),
    Field("resource_type", INT8),
    Field("resource_name", STRING),
    Field("configs", array(DescribeConfigsResourceResult)),
)
DescribeConfigsResponse = struct("DescribeConfigsResponse",
    Field("throttle_time_ms", INT32),
    Field("results", array(DescribeConfigsResult)),
)

DESCRIBE_CONFIGS = api(32, "DescribeConfigs", request=DescribeConfigsRequest,
                       response=DescribeConfigsResponse, valid="0-4", flexible="4+")
