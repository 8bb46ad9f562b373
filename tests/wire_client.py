"""The blocking client for broker-level tests: requests by API key, and exact bytes.

It speaks exact bytes, so tests can send what real clients never would (garbage, huge size
prefixes, corrupt batches) and check the broker's answer frame by frame. The connection itself is
the package's (kbroker/blocking_client.py).
"""
from __future__ import annotations

from typing import Any

from kbroker.blocking_client import BlockingClient
from kbroker.wire import frames
from kbroker.wire.messages import APIS


class WireClient(BlockingClient):
    def __init__(self, bootstrap: str, timeout: float = 10.0) -> None:
        host, port = bootstrap.rsplit(":", 1)
        super().__init__(host, int(port), timeout=timeout, client_id="kbroker-tests")

    def send(self, api_key: int, version: int, body: Any) -> int:
        return self._send(APIS[api_key], version, body)

    def request(self, api_key: int, version: int, body: Any) -> Any:  # type: ignore[override]
        return super().request(APIS[api_key], version, body)

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def receive(self, api_key: int, version: int) -> tuple[int, Any]:
        correlation_id, body, _ = frames.decode_response(memoryview(self.receive_frame()), APIS[api_key], version)
        return correlation_id, body

    def is_closed_by_peer(self, wait: float = 5.0) -> bool:
        self.sock.settimeout(wait)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
