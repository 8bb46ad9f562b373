"""Who is on the other end of a connection: its listener's channel and the SASL exchange.

Kafka's SaslServerAuthenticator, as a per-connection state machine driven by the connection
(which lets through only what the state permits) and the SaslHandshake / SaslAuthenticate handlers:

    handshake     ApiVersions, SaslHandshake        -> v1: authenticate, v0: raw
    authenticate  ApiVersions, SaslAuthenticate      -> complete (or failed)
    raw           one length-prefixed SASL token per frame, no request header (the
                  pre-KIP-152 framing after a v0 handshake), answered the same way
    complete      everything; with connections.max.reauth.ms (KIP-368) until the session
                  expires: then a SaslHandshake (v1) starts a re-authentication (same mechanism,
                  same user) and any other request closes the connection

Anything else before `complete` closes the connection, as Kafka does ("Unexpected Kafka request
of type ... during SASL handshake"). A refused mechanism or failed authentication is answered
with its error, and then the connection is closed.

Every refusal is logged with the client's address, as Kafka's "Failed authentication with ..."
line, but at most FAILURE_LOG_BURST lines per FAILURE_LOG_INTERVAL per listener: a client guessing
passwords in a loop must not flood the log (what was held back is counted in the next line).

The principal is `User:ANONYMOUS` until a SASL login (`User:<name>`) or a TLS client certificate
(`User:<subject after ssl.principal.mapping.rules>`) says otherwise; authorization will hang off it.
"""
from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kbroker.errors import ErrorCode
from kbroker.security.credentials import CredentialStore
from kbroker.security.mechanism import AuthenticationFailed, MechanismServer
from kbroker.security.plain import PlainServer
from kbroker.security.principal import distinguished_name, map_principal
from kbroker.security.scram import HASHES, ScramServer
from kbroker.security.settings import ListenerSecurity, SaslSettings
from kbroker.wire.messages.api_versions import API_VERSIONS
from kbroker.wire.messages.sasl_authenticate import SASL_AUTHENTICATE
from kbroker.wire.messages.sasl_handshake import SASL_HANDSHAKE

log = logging.getLogger("kbroker.authentication")

ANONYMOUS = "User:ANONYMOUS"
FAILURE_LOG_BURST = 10
FAILURE_LOG_INTERVAL = 10.0  # seconds

_PERMITTED = {"handshake": {API_VERSIONS.key, SASL_HANDSHAKE.key},
              "authenticate": {API_VERSIONS.key, SASL_AUTHENTICATE.key}}


class FailureLog:
    """Failed authentications of one listener, logged at most `burst` per `interval` seconds."""

    def __init__(self, listener: str, burst: int = FAILURE_LOG_BURST, interval: float = FAILURE_LOG_INTERVAL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._listener = listener
        self._burst = burst
        self._interval = interval
        self._clock = clock
        self._window_start = -interval
        self._logged = 0
        self._held_back = 0

    def failed(self, peer: str, reason: str) -> None:
        now = self._clock()
        if now - self._window_start >= self._interval:
            self._window_start, self._logged = now, 0
        if self._logged >= self._burst:
            self._held_back += 1
            return
        self._logged += 1
        held_back, self._held_back = self._held_back, 0
        log.info("Failed authentication with %s on listener %s (%s)%s", peer, self._listener, reason,
                 f"; {held_back} more failures not logged" if held_back else "")


@dataclass(frozen=True, slots=True)
class Channel:
    """What a listener gives each of its connections."""
    security: ListenerSecurity
    credentials: CredentialStore
    reauth_ms: int = 0  # connections.max.reauth.ms, reported as the session lifetime
    # connection.failed.authentication.delay.ms: the client reads its error before the close,
    # and a password-guessing loop is slowed down.
    failure_delay_ms: int = 100
    failures: FailureLog = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "failures", FailureLog(self.security.name))

    @property
    def name(self) -> str:
        return self.security.name

    def new_session(self) -> SaslSession | None:
        sasl = self.security.sasl
        return SaslSession(sasl, self.credentials, self.reauth_ms) if sasl is not None else None

    def tls_principal(self, ssl_object: ssl.SSLObject | None) -> str:
        """The client certificate's mapped subject; ANONYMOUS without one. ValueError: no rule applies."""
        tls = self.security.tls
        certificate = ssl_object.getpeercert() if ssl_object is not None else None
        if tls is None or not certificate:
            return ANONYMOUS
        return "User:" + map_principal(tls.principal_mapping_rules, distinguished_name(certificate["subject"]))


class SaslSession:
    def __init__(self, settings: SaslSettings, credentials: CredentialStore, reauth_ms: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = settings
        self._credentials = credentials
        self.session_lifetime_ms = reauth_ms
        self._clock = clock
        self.state = "handshake"
        self.failure: str | None = None  # set once the exchange failed: close after the answer
        self._mechanism: MechanismServer | None = None
        self._authenticated_as: str | None = None  # kept across a re-authentication
        self.expires_at: float | None = None  # clock seconds; None: the session does not expire

    @property
    def mechanisms(self) -> list[str]:
        return list(self._settings.mechanisms)

    @property
    def complete(self) -> bool:
        return self.state == "complete"

    @property
    def principal(self) -> str:
        assert self._mechanism is not None and self._mechanism.username is not None
        return f"User:{self._mechanism.username}"

    def permits(self, api_key: int) -> bool:
        if self.state == "complete":
            return not self.expired() or api_key == SASL_HANDSHAKE.key
        return api_key in _PERMITTED.get(self.state, ())

    def expired(self) -> bool:
        return self.expires_at is not None and self._clock() >= self.expires_at

    def handshake(self, mechanism: str, version: int) -> ErrorCode:
        reauthenticating = self.state == "complete" and self.expires_at is not None and version >= 1
        if self.state != "handshake" and not reauthenticating:
            return ErrorCode.ILLEGAL_SASL_STATE
        if reauthenticating and mechanism != self._mechanism.mechanism:  # type: ignore[union-attr]
            self.failure = f"re-authentication must use the session's mechanism, not {mechanism!r}"
            return ErrorCode.UNSUPPORTED_SASL_MECHANISM
        if mechanism not in self._settings.mechanisms:
            self.failure = f"SASL mechanism {mechanism!r} is not enabled (enabled: {', '.join(self.mechanisms)})"
            return ErrorCode.UNSUPPORTED_SASL_MECHANISM
        if mechanism == "PLAIN":
            self._mechanism = PlainServer(self._settings.plain_users)
        else:
            assert mechanism in HASHES
            self._mechanism = ScramServer(mechanism, self._credentials.get)
        self.state = "authenticate" if version >= 1 else "raw"
        return ErrorCode.NONE

    def authenticate(self, token: bytes) -> bytes:
        """The answer to one client token. Raises AuthenticationFailed (and then `failure` is set)."""
        assert self._mechanism is not None and self.state in ("authenticate", "raw")
        try:
            answer = self._mechanism.evaluate(token)
        except AuthenticationFailed as exc:
            self.failure = f"{exc} (SASL mechanism {self._mechanism.mechanism})"
            self.state = "failed"
            raise
        if self._mechanism.complete:
            principal = f"User:{self._mechanism.username}"
            if self._authenticated_as not in (None, principal):
                self.failure = f"re-authentication as {principal} on a session of {self._authenticated_as}"
                self.state = "failed"
                raise AuthenticationFailed("Cannot change principals during re-authentication")
            self._authenticated_as = principal
            self.state = "complete"
            if self.session_lifetime_ms > 0:
                self.expires_at = self._clock() + self.session_lifetime_ms / 1000
        return answer
