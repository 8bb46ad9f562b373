"""A blocking request/response connection on our own codec, for tools that run outside the broker.

`EmbeddedBroker` uses it to check readiness (ApiVersions) and for its admin calls; a third-party
client would be a runtime dependency for three requests. One request at a time, no pipelining.
"""
from __future__ import annotations

import socket
import struct
from typing import Any

from kbroker.errors import ErrorCode
from kbroker.wire import frames
from kbroker.wire.schema import Api

_SIZE = struct.Struct(">i")


class BrokerRequestError(Exception):
    """The broker answered a request with a Kafka error code."""

    def __init__(self, what: str, code: int, message: str | None = None) -> None:
        name = ErrorCode(code).name if code in ErrorCode._value2member_map_ else f"error code {code}"
        super().__init__(f"{what}: {name}" + (f" ({message})" if message else ""))
        self.code = code


class BlockingClient:
    def __init__(self, host: str, port: int, timeout: float = 10.0, client_id: str = "kbroker-embedded") -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._client_id = client_id
        self._correlation = 0

    def __enter__(self) -> BlockingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._sock.close()

    def request(self, api: Api, version: int, body: Any) -> Any:
        self._correlation += 1
        self._sock.sendall(frames.encode_request(api, version, self._correlation, self._client_id, body))
        size = _SIZE.unpack(self._read_exactly(4))[0]
        correlation_id, response, _ = frames.decode_response(memoryview(self._read_exactly(size)), api, version)
        if correlation_id != self._correlation:
            raise ConnectionError(f"response for request {correlation_id}, expected {self._correlation}")
        return response

    def _read_exactly(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = self._sock.recv(n)
            if not chunk:
                raise ConnectionError("connection closed by the broker")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)
