"""One client connection: framing, in-order responses, flow control, sendfile.

Kafka clients pipeline requests (librdkafka keeps up to 5 in flight) and match answers by
order, so responses leave strictly in request order even when an earlier request is held
(a long-poll Fetch, a Produce waiting for fsync). Each request gets a slot in `_slots`: a
finished response, or a task that will produce one. A single writer task drains the slots
in order, writing byte parts with `transport.write` and file slices with `loop.sendfile`.

Flow control both ways: reading pauses while too many requests are outstanding (a client
that never reads its answers cannot grow our memory), and the writer waits while the
transport's buffer is above its high-water mark.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

from kbroker.errors import ProtocolViolation
from kbroker.wire.frames import SIZE_PREFIX

if TYPE_CHECKING:
    from kbroker.broker.dispatch import Dispatcher

log = logging.getLogger("kbroker.connection")

# Outstanding requests per connection before we stop reading from it (Kafka's
# queued.max.requests is broker-wide; per connection is what bounds one bad client).
MAX_OUTSTANDING = 64

Parts = list[Any]  # bytearrays and file-slice payloads, in wire order


class Connection(asyncio.Protocol):
    def __init__(self, dispatcher: Dispatcher, max_request_bytes: int, registry: set[Connection]) -> None:
        self._dispatcher = dispatcher
        self._registry = registry
        self._max_request_bytes = max_request_bytes
        self._buffer = bytearray()
        self._slots: deque[Parts | asyncio.Task[Parts | None] | None] = deque()
        self._slot_ready = asyncio.Event()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._transport: asyncio.Transport | None = None
        self._writer: asyncio.Task[None] | None = None
        self._reading_paused = False
        self.peer = "?"

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self._writer = asyncio.get_running_loop().create_task(self._write_responses())
        self._registry.add(self)
        log.debug("connection from %s", self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        log.debug("connection from %s closed%s", self.peer, f": {exc}" if exc else "")
        self._transport = None
        self._registry.discard(self)
        if self._writer is not None:
            self._writer.cancel()
        for slot in self._slots:
            if isinstance(slot, asyncio.Task):
                slot.cancel()
        self._slots.clear()
        self._can_write.set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        try:
            while len(buffer) - start >= 4:
                size = SIZE_PREFIX.unpack_from(buffer, start)[0]
                if size < 0 or size > self._max_request_bytes:
                    raise ProtocolViolation(
                        f"request size {size} exceeds socket.request.max.bytes={self._max_request_bytes}")
                end = start + 4 + size
                if len(buffer) < end:
                    break
                self._on_frame(buffer[start + 4:end])
                start = end
                if self._transport is None:
                    return
        except ProtocolViolation as exc:
            self.close(str(exc))
            return
        if start:
            del buffer[:start]
        self._apply_backpressure()

    # -- requests and responses ------------------------------------------------------------

    def _on_frame(self, frame: bytearray) -> None:
        outcome = self._dispatcher.handle(frame, self)
        if outcome is None:  # e.g. Produce with acks=0: no answer at all
            return
        if isinstance(outcome, list):
            self._slots.append(outcome)
        else:
            self._slots.append(asyncio.ensure_future(outcome))
        self._slot_ready.set()

    def _apply_backpressure(self) -> None:
        if self._transport is None:
            return
        if len(self._slots) >= MAX_OUTSTANDING and not self._reading_paused:
            self._reading_paused = True
            self._transport.pause_reading()
        elif self._reading_paused and len(self._slots) < MAX_OUTSTANDING // 2:
            self._reading_paused = False
            self._transport.resume_reading()

    async def _write_responses(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._slots:
                self._slot_ready.clear()
                await self._slot_ready.wait()
            slot = self._slots[0]
            try:
                parts = await slot if isinstance(slot, asyncio.Task) else slot
            except asyncio.CancelledError:
                raise
            except ProtocolViolation as exc:
                self.close(str(exc))
                return
            except Exception:
                log.exception("request from %s failed; closing the connection", self.peer)
                self.close("internal error")
                return
            self._slots.popleft()
            self._apply_backpressure()
            if parts is None:
                continue
            transport = self._transport
            if transport is None:
                return
            for part in parts:
                await self._can_write.wait()
                if self._transport is None:
                    return
                if isinstance(part, (bytes, bytearray)):
                    if part:
                        transport.write(part)
                else:
                    for file_slice in part.slices:
                        await loop.sendfile(transport, file_slice.file, file_slice.position, file_slice.length)

    def abort(self) -> None:
        """Drop the connection at once (broker shutdown): pending answers are not sent."""
        if self._transport is not None:
            self._transport.abort()

    def close(self, reason: str) -> None:
        if self._transport is not None:
            log.warning("closing connection from %s: %s", self.peer, reason)
            self._transport.close()

