"""DescribeAcls (key 29): the ACL bindings that match a filter, grouped by resource pattern."""
from kbroker.wire.schema import INT8, INT16, INT32, STRING, Field, api, array, struct

LITERAL = 3  # v0 knows only literal resource names

DescribeAclsRequest = struct("DescribeAclsRequest",
    Field("resource_type_filter", INT8),
    Field("resource_name_filter", STRING, nullable="0+"),
    Field("pattern_type_filter", INT8, "1+", default=LITERAL),
    Field("principal_filter", STRING, nullable="0+"),
    Field("host_filter", STRING, nullable="0+"),
    Field("operation", INT8),
    Field("permission_type", INT8),
)

AclDescription = struct("AclDescription",
    Field("principal", STRING),
    Field("host", STRING),
    Field("operation", INT8),
    Field("permission_type", INT8),
)
DescribeAclsResource = struct("DescribeAclsResource",
    Field("resource_type", INT8),
    Field("resource_name", STRING),
    Field("pattern_type", INT8, "1+", default=LITERAL),
    Field("acls", array(AclDescription)),
)
DescribeAclsResponse = struct("DescribeAclsResponse",
    Field("throttle_time_ms", INT32),
    Field("error_code", INT16),
    Field("error_message", STRING, nullable="0+", default=None),
    Field("resources", array(DescribeAclsResource)),
)

DESCRIBE_ACLS = api(29, "DescribeAcls", request=DescribeAclsRequest, response=DescribeAclsResponse,
                    valid="0-3", flexible="2+")
