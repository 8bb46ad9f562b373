"""CreateAcls (key 30): add ACL bindings (resource pattern, principal, host, operation, allow/deny)."""
from kbroker.wire.schema import INT8, INT16, INT32, STRING, Field, api, array, struct

LITERAL = 3

AclCreation = struct("AclCreation",
    Field("resource_type", INT8),
    Field("resource_name", STRING),
    Field("resource_pattern_type", INT8, "1+", default=LITERAL),
    Field("principal", STRING),
    Field("host", STRING),
    Field("operation", INT8),
    Field("permission_type", INT8),
)
CreateAclsRequest = struct("CreateAclsRequest",
    Field("creations", array(AclCreation)),
)

AclCreationResult = struct("AclCreationResult",
    Field("error_code", INT16),
    Field("error_message", STRING, nullable="0+", default=None),
)
CreateAclsResponse = struct("CreateAclsResponse",
    Field("throttle_time_ms", INT32),
    Field("results", array(AclCreationResult)),
)

CREATE_ACLS = api(30, "CreateAcls", request=CreateAclsRequest, response=CreateAclsResponse,
                  valid="0-3", flexible="2+")
