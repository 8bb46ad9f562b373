"""A blocking request/response connection on our own codec, for code that runs outside the broker.

The one such connection in the project: `EmbeddedBroker` checks readiness and makes its admin
calls with it, the admin CLI (`kbroker/tools/client.py`) adds version negotiation and routing on
top, and the broker-level tests (`tests/wire_client.py`) add raw bytes. A third-party client would
be a runtime dependency for a handful of requests. One request at a time, no pipelining.
"""
from __future__ import annotations

import socket
import struct
from typing import Any

from kbroker.errors import ErrorCode
from kbroker.wire import frames
from kbroker.wire.schema import Api

_SIZE = struct.Struct(">i")
MAX_FRAME = 1 << 30  # by default, a size prefix beyond this is not a Kafka answer


class BrokerRequestError(Exception):
    """The broker answered a request with a Kafka error code."""

    def __init__(self, what: str, code: int, message: str | None = None) -> None:
        name = ErrorCode(code).name if code in ErrorCode._value2member_map_ else f"error code {code}"
        super().__init__(f"{what}: {name}" + (f" ({message})" if message else ""))
        self.code = code


class BlockingClient:
    def __init__(self, host: str, port: int, timeout: float = 10.0, client_id: str = "kbroker-embedded",
                 max_frame: int = MAX_FRAME) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self._client_id = client_id
        self._max_frame = max_frame
        self._correlation = 0

    def __enter__(self) -> BlockingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    @property
    def closed(self) -> bool:
        return self.sock.fileno() < 0

    def request(self, api: Api, version: int, body: Any) -> Any:
        """Send one request and read its answer. ValueError for an absurd size prefix or the answer to
        another request, DecodeError for bytes that are not the answer's layout, OSError from the socket."""
        sent = self._send(api, version, body)
        correlation_id, response, _ = frames.decode_response(memoryview(self.receive_frame()), api, version)
        if correlation_id != sent:
            raise ValueError(f"answer {correlation_id} to request {sent}")
        return response

    def _send(self, api: Api, version: int, body: Any) -> int:
        """Send a request without waiting; its correlation id."""
        self._correlation += 1
        self.sock.sendall(frames.encode_request(api, version, self._correlation, self._client_id, body))
        return self._correlation

    def receive_frame(self) -> bytes:
        size = _SIZE.unpack(self._read_exactly(4))[0]
        if not 0 <= size <= self._max_frame:
            raise ValueError(f"frame size {size}")
        return self._read_exactly(size)

    def _read_exactly(self, n: int) -> bytes:
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(min(n - len(data), 1 << 20))
            if not chunk:
                raise ConnectionResetError(0, "connection closed by the broker")
            data += chunk
        return bytes(data)
