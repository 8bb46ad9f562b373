"""DeleteAcls (key 31): remove the ACL bindings matching each filter; answer what each removed."""
from kbroker.wire.schema import INT8, INT16, INT32, STRING, Field, api, array, struct

LITERAL = 3

DeleteAclsFilter = struct("DeleteAclsFilter",
    Field("resource_type_filter", INT8),
    Field("resource_name_filter", STRING, nullable="0+"),
    Field("pattern_type_filter", INT8, "1+", default=LITERAL),
    Field("principal_filter", STRING, nullable="0+"),
    Field("host_filter", STRING, nullable="0+"),
    Field("operation", INT8),
    Field("permission_type", INT8),
)
DeleteAclsRequest = struct("DeleteAclsRequest",
    Field("filters", array(DeleteAclsFilter)),
)

DeleteAclsMatchingAcl = struct("DeleteAclsMatchingAcl",
    Field("error_code", INT16),
    Field("error_message", STRING, nullable="0+", default=None),
    Field("resource_type", INT8),
    Field("resource_name", STRING),
    Field("pattern_type", INT8, "1+", default=LITERAL),
    Field("principal", STRING),
    Field("host", STRING),
    Field("operation", INT8),
    Field("permission_type", INT8),
)
DeleteAclsFilterResult = struct("DeleteAclsFilterResult",
    Field("error_code", INT16),
    Field("error_message", STRING, nullable="0+", default=None),
    Field("matching_acls", array(DeleteAclsMatchingAcl)),
)
DeleteAclsResponse = struct("DeleteAclsResponse",
    Field("throttle_time_ms", INT32),
    Field("filter_results", array(DeleteAclsFilterResult)),
)

DELETE_ACLS = api(31, "DeleteAcls", request=DeleteAclsRequest, response=DeleteAclsResponse,
                  valid="0-3", flexible="2+")
