"""From a request frame to a response: version check, decode, handler, encode.

`ROUTES` (built in `kbroker.broker.routes`) says which APIs we serve; each API's wire
declaration (`Api.valid`) says over which versions, and nothing else does. We advertise every
API from version 0 (librdkafka before 2.11.1 turns compression, consumer groups and
idempotence off when a range does not reach v0) even where a handler then answers the lowest versions with an error,
as Kafka 4 does for Produce v0-2.

Handlers take `(ctx, request)` and return a response body, an awaitable of one, or
`NO_RESPONSE` (Produce with acks=0). A request outside its advertised range closes the
connection with a log line — except ApiVersions, answered with UNSUPPORTED_VERSION in the
v0 layout on an open connection so the client can retry lower (KIP-511).

A handler that raises anything but ProtocolViolation (a bug, or a KafkaError it should have
turned into its answer) is logged once with its request and answered: UNKNOWN_SERVER_ERROR (or the
KafkaError's code) on every topic, partition, group or resource the request named, as Kafka's
KafkaApis.handleError does. The connection stays open, except for a Produce with acks=0, which
has no answer to carry the error: its connection is closed, as Kafka does.
"""
from __future__ import annotations

import dataclasses
import inspect
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from kbroker.broker.connection import CloseReason, RequestRefused
from kbroker.broker.error_responses import error_response
from kbroker.broker.throttling import charge
from kbroker.errors import ErrorCode, KafkaError, ProtocolViolation
from kbroker.wire import frames
from kbroker.wire.messages.api_versions import API_VERSIONS, ApiVersion, ApiVersionsResponse
from kbroker.wire.schema import Api

if TYPE_CHECKING:
    from kbroker.broker.broker import Broker
    from kbroker.broker.connection import Connection

log = logging.getLogger("kbroker.dispatch")

NO_RESPONSE = object()
# Not charged to request quotas, as in Kafka: a client must always be able to learn versions and log in.
QUOTA_EXEMPT = frozenset({API_VERSIONS.key, 17, 36})  # ApiVersions, SaslHandshake, SaslAuthenticate
MAX_LOGGED_REQUEST = 2000  # characters of a failed request's repr in the log


@dataclass(frozen=True, slots=True)
class RequestContext:
    broker: Broker
    connection: Connection
    header: frames.RequestHeader

    @property
    def version(self) -> int:
        return self.header.api_version


Handler = Callable[[RequestContext, Any], Any]


@dataclass(frozen=True, slots=True)
class Route:
    api: Api
    handler: Handler

    @property
    def max_version(self) -> int:
        return self.api.valid.high


class Dispatcher:
    def __init__(self, broker: Broker, routes: list[Route]) -> None:
        self._broker = broker
        for route in routes:
            # Advertised from 0 (see above) up to a highest version ApiVersions can name.
            if route.api.valid.low != 0 or route.api.valid.high is None:
                raise ValueError(f"{route.api.name} is declared for {route.api.valid}: a served API needs 0-N")
        self._routes = {route.api.key: route for route in routes}
        self._advertised = [ApiVersion(api_key=key, min_version=0, max_version=route.max_version)
                            for key, route in sorted(self._routes.items())]

    def advertised(self) -> list[ApiVersion]:
        return self._advertised

    def handle(self, frame: bytearray, connection: Connection) -> list[Any] | Awaitable[list[Any] | None] | None:
        view = memoryview(frame)
        api_key, version, correlation_id = frames.peek_header(view)
        route = self._routes.get(api_key)
        if route is None:
            raise RequestRefused(CloseReason.UNKNOWN_API, f"api key {api_key} (version {version}) is not served")
        if not 0 <= version <= route.max_version:
            if api_key == API_VERSIONS.key:
                return self._unsupported_api_versions(correlation_id)
            raise RequestRefused(CloseReason.UNSUPPORTED_VERSION,
                                 f"{route.api.name} v{version} is not supported (0-{route.max_version})")
        started = time.perf_counter()
        header, body, _ = frames.decode_request(view, route.api, version)
        ctx = RequestContext(self._broker, connection, header)
        try:
            result = route.handler(ctx, body)
            throttle = self._charge_request_time(ctx, api_key, started)
            if inspect.isawaitable(result):
                return self._encode_later(ctx, route.api, body, result, started, throttle)
            return self._encode(ctx, route.api, body, result, started, throttle)
        except ProtocolViolation:
            raise
        except Exception as exc:
            return self._failed(ctx, route.api, body, exc, started)

    def _charge_request_time(self, ctx: RequestContext, api_key: int, started: float) -> int:
        """request_percentage quotas: the time this request held the event loop, in percent-seconds
        of one thread (Kafka counts handler thread time; time spent waiting is not counted here
        either). The throttle time in ms; 0 when no such quota is set."""
        quota = self._broker.request_quota
        if not quota.enforced or api_key in QUOTA_EXEMPT:
            return 0
        return charge(ctx, quota, (time.perf_counter() - started) * 100)

    async def _encode_later(self, ctx: RequestContext, api: Api, body: Any,
                            pending: Awaitable[Any], started: float, throttle: int) -> list[Any] | None:
        try:
            return self._encode(ctx, api, body, await pending, started, throttle)
        except ProtocolViolation:
            raise
        except Exception as exc:
            return self._failed(ctx, api, body, exc, started)

    def _encode(self, ctx: RequestContext, api: Api, body: Any, result: Any, started: float,
                throttle: int = 0) -> list[Any] | None:
        metrics = self._broker.metrics
        if result is NO_RESPONSE:
            if metrics is not None:
                metrics.request_done(api, ctx.version, body, None, started)
            return None
        if throttle and throttle > getattr(result, "throttle_time_ms", throttle):
            result = dataclasses.replace(result, throttle_time_ms=throttle)
        encoded = frames.encode_response(api, ctx.version, ctx.header.correlation_id, result)
        if metrics is not None:
            metrics.request_done(api, ctx.version, body, result, started)
        return encoded

    def _failed(self, ctx: RequestContext, api: Api, body: Any, exc: Exception, started: float) -> list[Any] | None:
        """A handler raised: a bug, or a KafkaError it should have answered itself. Log it once, with
        the request, and answer the error everywhere the request named something (error_responses.py)."""
        code = exc.code if isinstance(exc, KafkaError) else ErrorCode.UNKNOWN_SERVER_ERROR
        shown = repr(body)
        log.error("%s v%d from %s (client %s) failed, answering %s: %s", api.name, ctx.version,
                  ctx.connection.peer, ctx.header.client_id, code.name,
                  shown if len(shown) <= MAX_LOGGED_REQUEST else shown[:MAX_LOGGED_REQUEST] + "...", exc_info=exc)
        response = error_response(api, body, ctx.version, code)
        if response is None:
            ctx.connection.close(CloseReason.UNANSWERED_ERROR, f"{api.name} failed")
            response = NO_RESPONSE
        return self._encode(ctx, api, body, response, started)

    def _unsupported_api_versions(self, correlation_id: int) -> list[Any]:
        route = self._routes[API_VERSIONS.key]
        body = ApiVersionsResponse(
            error_code=ErrorCode.UNSUPPORTED_VERSION,
            api_keys=[ApiVersion(api_key=API_VERSIONS.key, min_version=0, max_version=route.max_version)])
        return frames.encode_response(API_VERSIONS, 0, correlation_id, body)
