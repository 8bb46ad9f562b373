"""SaslHandshake (key 17): the client names a mechanism; the answer lists the enabled ones.
After v0 the client sends raw length-prefixed SASL tokens; after v1 it wraps them in
SaslAuthenticate (KIP-152)."""
from kbroker.wire.schema import INT16, STRING, Field, api, array, struct

SaslHandshakeRequest = struct("SaslHandshakeRequest",
    Field("mechanism", STRING),
)
SaslHandshakeResponse = struct("SaslHandshakeResponse",
    Field("error_code", INT16),
    Field("mechanisms", array(STRING)),
)

SASL_HANDSHAKE = api(17, "SaslHandshake", request=SaslHandshakeRequest, response=SaslHandshakeResponse,
                     valid="0-1", flexible="none")
