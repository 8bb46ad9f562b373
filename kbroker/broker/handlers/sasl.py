"""SaslHandshake and SaslAuthenticate: one step each of the connection's SASL exchange
(kbroker/broker/authentication.py). On a listener without SASL both answer ILLEGAL_SASL_STATE,
as Kafka's KafkaApis does; so does a second handshake once authenticated, unless sessions expire
(connections.max.reauth.ms > 0, the lifetime SaslAuthenticate v1+ reports): then it starts a
KIP-368 re-authentication.
"""
from __future__ import annotations

import logging

from kbroker.broker.dispatch import RequestContext
from kbroker.errors import ErrorCode
from kbroker.security.mechanism import AuthenticationFailed
from kbroker.wire.messages.sasl_authenticate import SaslAuthenticateRequest, SaslAuthenticateResponse
from kbroker.wire.messages.sasl_handshake import SaslHandshakeRequest, SaslHandshakeResponse

log = logging.getLogger("kbroker.authentication")


def handle_sasl_handshake(ctx: RequestContext, request: SaslHandshakeRequest) -> SaslHandshakeResponse:
    session = ctx.connection.sasl
    if session is None:
        return SaslHandshakeResponse(error_code=ErrorCode.ILLEGAL_SASL_STATE, mechanisms=[])
    code = session.handshake(request.mechanism, ctx.version)
    if session.failure is not None:
        ctx.connection.close_after_answer(session.failure)
    return SaslHandshakeResponse(error_code=code, mechanisms=session.mechanisms)


def handle_sasl_authenticate(ctx: RequestContext, request: SaslAuthenticateRequest) -> SaslAuthenticateResponse:
    connection = ctx.connection
    session = connection.sasl
    if session is None or session.complete:
        return SaslAuthenticateResponse(error_code=ErrorCode.ILLEGAL_SASL_STATE,
                                        error_message="SaslAuthenticate outside a SASL exchange")
    try:
        answer = session.authenticate(bytes(request.auth_bytes))
    except AuthenticationFailed as exc:
        connection.close_after_answer(session.failure or str(exc))
        return SaslAuthenticateResponse(error_code=ErrorCode.SASL_AUTHENTICATION_FAILED, error_message=str(exc))
    if session.complete:
        connection.authenticated(session.principal)
    return SaslAuthenticateResponse(error_code=0, auth_bytes=answer,
                                    session_lifetime_ms=session.session_lifetime_ms if session.complete else 0)
