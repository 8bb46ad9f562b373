"""A minimal blocking Kafka client built on our own codec, for broker-level tests.

It speaks exact bytes, so tests can send what real clients never would (garbage, huge
size prefixes, corrupt batches) and check the broker's answer frame by frame.
"""
from __future__ import annotations

import socket
import struct
from typing import Any

from kbroker.wire import frames
from kbroker.wire.messages import APIS


class WireClient:
    def __init__(self, bootstrap: str, timeout: float = 10.0) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self._correlation = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, api_key: int, version: int, body: Any) -> int:
        self._correlation += 1
        frame = frames.encode_request(APIS[api_key], version, self._correlation, "kbroker-tests", body)
        self.sock.sendall(frame)
        return self._correlation

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive_frame(self) -> bytes:
        size = struct.unpack(">i", self._read_exactly(4))[0]
        return self._read_exactly(size)

    def receive(self, api_key: int, version: int) -> tuple[int, Any]:
        correlation_id, body, _ = frames.decode_response(memoryview(self.receive_frame()), APIS[api_key], version)
        return correlation_id, body

    def request(self, api_key: int, version: int, body: Any) -> Any:
        sent = self.send(api_key, version, body)
        correlation_id, response = self.receive(api_key, version)
        assert correlation_id == sent
        return response

    def is_closed_by_peer(self, wait: float = 5.0) -> bool:
        self.sock.settimeout(wait)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False

    def _read_exactly(self, n: int) -> bytes:
        chunks = []
        while n:
            chunk = self.sock.recv(n)
            if not chunk:
                raise ConnectionError("connection closed by the broker")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)
