"""A TCP proxy in front of the broker that loses one Produce response, once.

It forwards Kafka frames both ways on 127.0.0.1. When the N-th Produce request (api key 0)
passes through, it still reaches the broker, but the broker's answer to it (matched by
correlation id) is dropped and that client connection is closed: the request was applied,
the client never heard back. An idempotent producer then retries the same batch (same
producer id, epoch and sequence) on a new connection, and the broker must recognise the
duplicate rather than append it again.

The broker has to advertise the proxy (`advertised.listeners=PLAINTEXT://127.0.0.1:<proxy
port>`) so the clients' follow-up connections come back through it. The proxy listens
before the broker starts (its port goes into the broker's settings) and learns the broker's
port afterwards. It runs on its own event loop in a daemon thread and is stopped by stop().
"""
from __future__ import annotations

import asyncio
import socket
import struct
import threading


class LoseOneProduceResponse:
    """cut_produce_number=None: lose nothing, a plain forwarding proxy (an advertised address
    that differs from the one the broker listens on)."""

    def __init__(self, cut_produce_number: int | None = 1) -> None:
        self.cut_produce_number = cut_produce_number
        self.upstream_port: int | None = None
        self.produce_requests = 0
        self.responses_dropped = 0
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self, upstream_port: int) -> LoseOneProduceResponse:
        self.upstream_port = upstream_port
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    def stop(self) -> None:
        async def close():
            if self._server is not None:
                self._server.close()
            for w in list(self._writers):
                w.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._sock.close()

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._connection, sock=self._sock)

    async def _connection(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            broker_reader, broker_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_writer.close()
            return
        self._writers.update((client_writer, broker_writer))
        cut: dict[str, int | None] = {"correlation_id": None}

        async def requests() -> None:
            while True:
                frame = await _read_frame(client_reader)
                api_key, correlation_id = struct.unpack_from(">h2xi", frame, 4)
                if api_key == 0:
                    self.produce_requests += 1
                    if self.produce_requests == self.cut_produce_number:
                        cut["correlation_id"] = correlation_id
                broker_writer.write(frame)
                await broker_writer.drain()

        async def responses() -> None:
            while True:
                frame = await _read_frame(broker_reader)
                (correlation_id,) = struct.unpack_from(">i", frame, 4)
                if correlation_id == cut["correlation_id"]:
                    self.responses_dropped += 1
                    return  # drop it and close both sides
                client_writer.write(frame)
                await client_writer.drain()

        tasks = [asyncio.ensure_future(requests()), asyncio.ensure_future(responses())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            for w in (client_writer, broker_writer):
                w.close()
                self._writers.discard(w)


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readexactly(4)
    (size,) = struct.unpack(">i", head)
    return head + await reader.readexactly(size)
