"""A connection from this broker to another one (a follower to its leader), on our own codec.

One request in flight at a time, which is all a replica fetcher needs: it sends a Fetch, waits
(the leader long-polls it), appends, and sends the next.
"""
from __future__ import annotations

import asyncio
import struct
from typing import Any

from kbroker.wire import frames
from kbroker.wire.schema import Api

_SIZE = struct.Struct(">i")


class BrokerConnection:
    def __init__(self, host: str, port: int, client_id: str) -> None:
        self._host = host
        self._port = port
        self._client_id = client_id
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._correlation = 0

    async def request(self, api: Api, version: int, body: Any, timeout_s: float) -> Any:
        """Send one request and read its answer; OSError (or TimeoutError) on any failure."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self._host, self._port), timeout_s)
        self._correlation += 1
        try:
            self._writer.write(frames.encode_request(api, version, self._correlation, self._client_id, body))
            size = _SIZE.unpack(await asyncio.wait_for(self._reader.readexactly(4), timeout_s))[0]
            frame = await asyncio.wait_for(self._reader.readexactly(size), timeout_s)
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
            self.close()
            raise OSError(f"{self._host}:{self._port}: {exc!r}") from exc
        correlation_id, response, _ = frames.decode_response(memoryview(frame), api, version)
        if correlation_id != self._correlation:
            self.close()
            raise OSError(f"{self._host}:{self._port}: answer {correlation_id} to request {self._correlation}")
        return response

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
