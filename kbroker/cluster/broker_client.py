"""Connections from this broker to another one (a follower to its leader, a transaction
coordinator to a partition's leader), on our own codec.

As Kafka's inter-broker client: the other broker is reached at the endpoint its registration gives
for `inter.broker.listener.name`, over that listener's security protocol — TLS with this broker's
truststore (and its keystore as the client certificate), then, for SASL_*, SaslHandshake v1 and
SaslAuthenticate with `sasl.mechanism.inter.broker.protocol` and this broker's own login. A refused
login is an `InterBrokerLoginError`, which says why. Sessions are not re-authenticated in place
(KIP-368's client side): when the other broker gives the session a lifetime, the connection is
opened and logged in afresh before it runs out.

One request in flight at a time, which is all a replica fetcher needs: it sends a Fetch, waits
(the leader long-polls it), appends, and sends the next.
"""
from __future__ import annotations

import asyncio
import ssl
import struct
from typing import Any

from kbroker.clock import MonotonicClock, monotonic_ms
from kbroker.cluster.image import BrokerRegistration
from kbroker.errors import ErrorCode
from kbroker.security.mechanism import AuthenticationFailed, MechanismClient
from kbroker.security.plain import PlainClient
from kbroker.security.scram import ScramClient
from kbroker.security.settings import InterBrokerSecurity
from kbroker.security.tls import client_context
from kbroker.wire import frames
from kbroker.wire.messages.sasl_authenticate import SASL_AUTHENTICATE, SaslAuthenticateRequest
from kbroker.wire.messages.sasl_handshake import SASL_HANDSHAKE, SaslHandshakeRequest
from kbroker.wire.schema import Api

_SIZE = struct.Struct(">i")
SASL_AUTHENTICATE_VERSION = 2
REAUTH_MARGIN = 0.9  # reconnect once this share of the session lifetime has passed


class InterBrokerLoginError(OSError):
    """The other broker refused this one: its TLS handshake or SASL login failed."""


class InterBrokerLink:
    """How this broker reaches the others: which of their listeners, with what security."""

    def __init__(self, security: InterBrokerSecurity | None = None, *,
                 monotonic: MonotonicClock = monotonic_ms) -> None:
        """ValueError when the TLS settings cannot be loaded. `monotonic` times the re-authentication."""
        self.monotonic = monotonic
        self.listener = security.listener if security is not None else "PLAINTEXT"
        self.tls = client_context(security.tls) if security is not None and security.tls is not None else None
        self._login = security if security is not None and security.sasl_mechanism is not None else None

    def connection(self, registration: BrokerRegistration, client_id: str) -> BrokerConnection:
        return BrokerConnection(self, registration, client_id)

    def mechanism(self) -> MechanismClient | None:
        """A fresh SASL client for one login; None on a listener without SASL."""
        login = self._login
        if login is None:
            return None
        assert login.username is not None and login.password is not None
        if login.sasl_mechanism == "PLAIN":
            return PlainClient(login.username, login.password)
        return ScramClient(login.sasl_mechanism, login.username, login.password)  # type: ignore[arg-type]


class BrokerConnection:
    def __init__(self, link: InterBrokerLink, registration: BrokerRegistration, client_id: str) -> None:
        self._link = link
        self._registration = registration
        self._client_id = client_id
        self._where = f"broker {registration.broker_id}"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._correlation = 0
        self._session_ends: float | None = None  # link.monotonic ms; None: the session does not expire
        self._answered = False  # the other broker has answered on this connection (TLS: it took our certificate)

    async def request(self, api: Api, version: int, body: Any, timeout_s: float) -> Any:
        """Send one request and read its answer; OSError (or TimeoutError) on any failure,
        InterBrokerLoginError when the other broker refuses this one."""
        if self._session_ends is not None and self._link.monotonic() >= self._session_ends:
            self.close()
        if self._writer is None:
            await self._connect(timeout_s)
        return await self._exchange(api, version, body, timeout_s)

    async def _connect(self, timeout_s: float) -> None:
        endpoint = self._registration.endpoint(self._link.listener)
        if endpoint is None:
            raise OSError(f"{self._where} has no {self._link.listener} listener (inter.broker.listener.name)")
        host, port = endpoint
        self._where = f"broker {self._registration.broker_id} at {self._link.listener}://{host}:{port}"
        tls = self._link.tls
        try:
            self._reader, self._writer = await asyncio.wait_for(asyncio.open_connection(
                host, port, ssl=tls, server_hostname=host if tls is not None else None), timeout_s)
        except ssl.SSLError as exc:
            raise InterBrokerLoginError(f"{self._where}: TLS handshake failed: {exc}") from exc
        self._answered = False
        mechanism = self._link.mechanism()
        if mechanism is not None:
            try:
                await self._log_in(mechanism, timeout_s)
            except BaseException:
                self.close()
                raise

    async def _log_in(self, mechanism: MechanismClient, timeout_s: float) -> None:
        answer = await self._exchange(SASL_HANDSHAKE, 1, SaslHandshakeRequest(mechanism=mechanism.mechanism),
                                      timeout_s)
        if answer.error_code != ErrorCode.NONE:
            raise InterBrokerLoginError(f"{self._where}: SaslHandshake for {mechanism.mechanism}: "
                                        f"{ErrorCode(answer.error_code).name} (it enables "
                                        f"{', '.join(answer.mechanisms) or 'none'})")
        token: bytes | None = mechanism.start()
        while token is not None:
            answer = await self._exchange(SASL_AUTHENTICATE, SASL_AUTHENTICATE_VERSION,
                                          SaslAuthenticateRequest(auth_bytes=token), timeout_s)
            if answer.error_code != ErrorCode.NONE:
                raise InterBrokerLoginError(f"{self._where}: {mechanism.mechanism} login refused: "
                                            f"{ErrorCode(answer.error_code).name}: {answer.error_message}")
            try:
                token = mechanism.evaluate(answer.auth_bytes)
            except AuthenticationFailed as exc:
                raise InterBrokerLoginError(f"{self._where}: {mechanism.mechanism} login: {exc}") from exc
        lifetime_ms = answer.session_lifetime_ms
        self._session_ends = self._link.monotonic() + lifetime_ms * REAUTH_MARGIN if lifetime_ms > 0 else None

    async def _exchange(self, api: Api, version: int, body: Any, timeout_s: float) -> Any:
        assert self._reader is not None and self._writer is not None
        self._correlation += 1
        try:
            self._writer.write(frames.encode_request(api, version, self._correlation, self._client_id, body))
            size = _SIZE.unpack(await asyncio.wait_for(self._reader.readexactly(4), timeout_s))[0]
            frame = await asyncio.wait_for(self._reader.readexactly(size), timeout_s)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
            self.close()
            if self._link.tls is not None and not self._answered and not isinstance(exc, TimeoutError):
                # TLS 1.3 ends the client's handshake before the server has checked the client
                # certificate: a refused one shows as the connection closed before any answer.
                raise InterBrokerLoginError(f"{self._where}: TLS connection refused before any answer ({exc!r}); "
                                            "does it trust this broker's certificate (ssl.keystore.*)?") from exc
            raise OSError(f"{self._where}: {exc!r}") from exc
        self._answered = True
        correlation_id, response, _ = frames.decode_response(memoryview(frame), api, version)
        if correlation_id != self._correlation:
            self.close()
            raise OSError(f"{self._where}: answer {correlation_id} to request {self._correlation}")
        return response

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
        self._session_ends = None
