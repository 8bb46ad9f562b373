"""DescribeUserScramCredentials (key 50): which SCRAM mechanisms (and iterations) each user has."""
from kbroker.wire.schema import INT8, INT16, INT32, STRING, Field, api, array, struct

UserName = struct("UserName",
    Field("name", STRING),
)
DescribeUserScramCredentialsRequest = struct("DescribeUserScramCredentialsRequest",
    Field("users", array(UserName), nullable="0+"),  # null: every user
)

CredentialInfo = struct("CredentialInfo",
    Field("mechanism", INT8),  # 1 SCRAM-SHA-256, 2 SCRAM-SHA-512
    Field("iterations", INT32),
)
DescribeUserScramCredentialsResult = struct("DescribeUserScramCredentialsResult",
    Field("user", STRING),
    Field("error_code", INT16),
    Field("error_message", STRING, nullable="0+"),
    Field("credential_infos", array(CredentialInfo)),
)
DescribeUserScramCredentialsResponse = struct("DescribeUserScramCredentialsResponse",
    Field("throttle_time_ms", INT32),
    Field("error_code", INT16),
    Field("error_message", STRING, nullable="0+"),
    Field("results", array(DescribeUserScramCredentialsResult)),
)

DESCRIBE_USER_SCRAM_CREDENTIALS = api(50, "DescribeUserScramCredentials",
                                      request=DescribeUserScramCredentialsRequest,
                                      response=DescribeUserScramCredentialsResponse, valid="0", flexible="0+")
