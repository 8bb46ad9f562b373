"""AlterUserScramCredentials (key 51): add or remove SCRAM credentials. The client salts and hashes
(salted_password = PBKDF2 of the password); the broker derives and keeps StoredKey and ServerKey."""
from kbroker.wire.schema import BYTES, INT8, INT16, INT32, STRING, Field, api, array, struct

ScramCredentialDeletion = struct("ScramCredentialDeletion",
    Field("name", STRING),
    Field("mechanism", INT8),
)
ScramCredentialUpsertion = struct("ScramCredentialUpsertion",
    Field("name", STRING),
    Field("mechanism", INT8),
    Field("iterations", INT32),
    Field("salt", BYTES),
    Field("salted_password", BYTES),
)
AlterUserScramCredentialsRequest = struct("AlterUserScramCredentialsRequest",
    Field("deletions", array(ScramCredentialDeletion)),
    Field("upsertions", array(ScramCredentialUpsertion)),
)

AlterUserScramCredentialsResult = struct("AlterUserScramCredentialsResult",
    Field("user", STRING),
    Field("error_code", INT16),
    Field("error_message", STRING, nullable="0+"),
)
AlterUserScramCredentialsResponse = struct("AlterUserScramCredentialsResponse",
    Field("throttle_time_ms", INT32),
    Field("results", array(AlterUserScramCredentialsResult)),
)

ALTER_USER_SCRAM_CREDENTIALS = api(51, "AlterUserScramCredentials", request=AlterUserScramCredentialsRequest,
                                   response=AlterUserScramCredentialsResponse, valid="0", flexible="0+")
