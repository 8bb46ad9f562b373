"""SaslAuthenticate (key 36): one SASL token each way (KIP-152); v1 adds the session lifetime (KIP-368)."""
from kbroker.wire.schema import BYTES, INT16, INT64, STRING, Field, api, struct

SaslAuthenticateRequest = struct("SaslAuthenticateRequest",
    Field("auth_bytes", BYTES),
)
SaslAuthenticateResponse = struct("SaslAuthenticateResponse",
    Field("error_code", INT16),
    Field("error_message", STRING, nullable="0+"),
    Field("auth_bytes", BYTES),
    Field("session_lifetime_ms", INT64, "1+"),
)

SASL_AUTHENTICATE = api(36, "SaslAuthenticate", request=SaslAuthenticateRequest,
                        response=SaslAuthenticateResponse, valid="0-2", flexible="2+")
