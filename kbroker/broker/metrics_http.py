"""The HTTP endpoint on `metrics.listener`: /metrics (Prometheus), /healthz, /readyz and the console.

A few GET paths on the broker's own event loop, so a scrape reads the broker's state
without locks (the collectors in metrics.py run between requests, never during one). The
console (`/`, read-only) is one page (console_page.py) over two JSON paths (console.py):
/api/overview and /api/records?topic=&partition=&limit=.
HTTP/1.0-style: one request per connection, answered and closed; anything else gets
404 / 405 / 400. It binds 127.0.0.1 unless told otherwise, like the Kafka listener.
"""
from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST

from kbroker.broker.console import latest_records, overview
from kbroker.broker.console_page import PAGE

if TYPE_CHECKING:
    from kbroker.broker.broker import Broker
    from kbroker.broker.metrics import BrokerMetrics

log = logging.getLogger("kbroker.metrics")

MAX_REQUEST_HEAD = 8192
READ_TIMEOUT_S = 10.0
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            503: "Service Unavailable"}


class MetricsServer:
    def __init__(self, broker: Broker, metrics: BrokerMetrics) -> None:
        self._broker = broker
        self._metrics = metrics
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen; return the port (the one the OS chose for port 0)."""
        self._server = await asyncio.start_server(self._serve, host, port)
        return self._server.sockets[0].getsockname()[1]

    def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
            status, content_type, body = self._answer(head)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, ConnectionError):
            status, content_type, body = 400, "text/plain", b"bad request\n"
        except Exception:  # a collector failed: say so, keep serving
            log.exception("answering a metrics request failed")
            status, content_type, body = 503, "text/plain", b"metrics unavailable\n"
        try:
            writer.write(f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {content_type}\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def _answer(self, head: bytes) -> tuple[int, str, bytes]:
        parts = head.split(b"\r\n", 1)[0].split()
        if len(parts) != 3 or len(head) > MAX_REQUEST_HEAD:
            return 400, "text/plain", b"bad request\n"
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if method != b"GET":
            return 405, "text/plain", b"only GET\n"
        path = target.decode("latin-1")
        if path == "/":
            return 200, "text/html; charset=utf-8", PAGE.encode()
        if path == "/api/overview":
            return 200, "application/json", json.dumps(overview(self._broker, self._metrics)).encode()
        if path == "/api/records":
            return self._records(parts[1].decode("latin-1"))
        if target == b"/metrics":
            return 200, CONTENT_TYPE_LATEST, self._metrics.exposition()
        if target == b"/healthz":
            return 200, "text/plain", b"ok\n"
        if target == b"/readyz":
            problems = self._broker.not_ready()
            if problems:
                return 503, "text/plain", "".join(f"{p}\n" for p in problems).encode()
            return 200, "text/plain", b"ready\n"
        return 404, "text/plain", b"not found: /, /metrics, /healthz, /readyz\n"

    def _records(self, target: str) -> tuple[int, str, bytes]:
        query = parse_qs(urlsplit(target).query)
        try:
            topic = query["topic"][0]
            partition = int(query.get("partition", ["0"])[0])
            limit = int(query.get("limit", ["20"])[0])
            found = latest_records(self._broker, topic, partition, limit)
        except (KeyError, ValueError):
            return 400, "application/json", b'{"error": "expected topic=NAME&partition=N&limit=N"}'
        except LookupError as exc:
            return 404, "application/json", json.dumps({"error": str(exc)}).encode()
        return 200, "application/json", json.dumps(found).encode()
