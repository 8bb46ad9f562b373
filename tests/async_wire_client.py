"""An asyncio Kafka client on our own codec, for tests and stress scripts that hold many connections.

One request at a time per connection; exact bytes in, decoded answers out (like wire_client.py).
"""
from __future__ import annotations

import asyncio
import struct
from typing import Any

from kbroker.wire import frames
from kbroker.wire.messages import APIS


class AsyncWireClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._correlation = 0

    @classmethod
    async def connect(cls, host: str, port: int) -> AsyncWireClient:
        reader, writer = await asyncio.open_connection(host, port, limit=64 << 20)
        return cls(reader, writer)

    async def request(self, api_key: int, version: int, body: Any) -> Any:
        self._correlation += 1
        self.writer.write(frames.encode_request(APIS[api_key], version, self._correlation, "kbroker-async", body))
        frame = await self.receive_frame()
        correlation_id, response, _ = frames.decode_response(memoryview(frame), APIS[api_key], version)
        if correlation_id != self._correlation:
            raise AssertionError(f"answer {correlation_id} to request {self._correlation}")
        return response

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def receive_frame(self) -> bytes:
        size = struct.unpack(">i", await self.reader.readexactly(4))[0]
        return await self.reader.readexactly(size)

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass
