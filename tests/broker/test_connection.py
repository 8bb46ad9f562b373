"""The connection pipeline in-process, with a fake transport: backpressure, ordering, lifetime.

The dispatcher is a stub that answers each frame with its own bytes (at once, or later from a
future the test controls), so each test states exactly when answers exist and when the
transport may write.
"""
from __future__ import annotations

import asyncio
import gc
import socket
import struct
import weakref
from typing import BinaryIO

import pytest

from kbroker.broker.connection import RESPONSE_BUFFER_BYTES, CloseReason, Connection, RequestRefused
from kbroker.errors import ProtocolViolation
from kbroker.log.local_log import FetchSlices
from kbroker.log.segment import FileSlice
from tests.waiting import wait_until_async


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.reading = True
        self.closing = False
        self.protocol: Connection | None = None

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 5555) if name == "peername" else default

    def write(self, data) -> None:
        self.written += data

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True


class StubDispatcher:
    """Answers a frame b"now:..." at once, b"later:..." when the test resolves its future, and a
    frame found in `answers` with the parts given there."""

    def __init__(self, answers: dict[bytes, list] | None = None) -> None:
        self.pending: list[asyncio.Future] = []
        self.frames = 0
        self.answers = answers or {}  # frame -> answer parts given as they are

    def handle(self, frame: bytearray, connection: Connection):
        self.frames += 1
        if bytes(frame) in self.answers:
            return self.answers[bytes(frame)]
        if frame.startswith(b"bad"):
            raise ProtocolViolation("bad frame")
        if frame.startswith(b"unserved"):
            raise RequestRefused(CloseReason.UNKNOWN_API, "not served")
        if frame.startswith(b"later"):
            future = asyncio.get_running_loop().create_future()
            self.pending.append(future)
            return self._later(future, bytes(frame))
        return [struct.pack(">i", len(frame)) + frame]

    @staticmethod
    async def _later(future: asyncio.Future, frame: bytes):
        await future
        return [struct.pack(">i", len(frame)) + frame]


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def receive(connection: Connection, data: bytes) -> None:
    """What the event loop does with bytes from the socket: recv_into(get_buffer()), buffer_updated."""
    view = memoryview(data)
    while view:
        buffer = connection.get_buffer(-1)
        count = min(len(buffer), len(view))
        buffer[:count] = view[:count]
        del buffer
        connection.buffer_updated(count)
        view = view[count:]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def connect(max_in_flight: int = 4) -> tuple[Connection, FakeTransport, StubDispatcher]:
    dispatcher = StubDispatcher()
    connection = Connection(dispatcher, 1000, set(), max_in_flight=max_in_flight)  # type: ignore[arg-type]
    transport = FakeTransport()
    connection.connection_made(transport)
    return connection, transport, dispatcher


async def test_answers_leave_in_request_order_while_an_earlier_one_is_held():
    connection, transport, dispatcher = await connect()
    receive(connection, frame(b"later:1") + frame(b"now:2"))
    await settle()
    assert transport.written == b""
    dispatcher.pending[0].set_result(None)
    await settle()
    assert transport.written == frame(b"later:1") + frame(b"now:2")


async def test_reading_stops_at_the_bound_and_frames_already_received_wait_their_turn():
    connection, transport, dispatcher = await connect(max_in_flight=4)
    receive(connection, b"".join(frame(b"later:%d" % i) for i in range(10)))
    assert dispatcher.frames == 4 and not transport.reading  # the other 6 stay in the frame buffer
    for future in dispatcher.pending[:2]:
        future.set_result(None)
    await settle()
    assert dispatcher.frames == 6 and not transport.reading  # down to half: the buffered frames come first
    for future in dispatcher.pending[2:]:
        future.set_result(None)
    await settle()
    for future in dispatcher.pending[6:]:
        future.set_result(None)
    await settle()
    assert dispatcher.frames == 10 and transport.reading
    assert transport.written == b"".join(frame(b"later:%d" % i) for i in range(10))


async def test_reading_stops_while_the_client_does_not_read_its_answers():
    connection, transport, dispatcher = await connect(max_in_flight=100)
    connection.pause_writing()  # the transport's buffer is over its high-water mark
    assert not transport.reading
    receive(connection, frame(b"now:1") + frame(b"now:2"))  # arrived with the same read
    assert dispatcher.frames == 0
    connection.resume_writing()
    await settle()
    assert transport.reading and transport.written == frame(b"now:1") + frame(b"now:2")


async def test_reading_stops_when_answers_waiting_to_be_written_reach_the_byte_bound():
    connection, transport, dispatcher = await connect(max_in_flight=1000)
    big = b"now:" + b"x" * 900
    connection.pause_writing()
    connection.resume_writing()
    connection._can_write.clear()  # the writer cannot write, reading is still allowed
    receive(connection, b"".join(frame(big) for i in range(RESPONSE_BUFFER_BYTES // 900 + 50)))
    assert not transport.reading
    assert dispatcher.frames <= RESPONSE_BUFFER_BYTES // 900 + 2


async def test_a_bad_frame_closes_at_once_and_nothing_after_it_is_handled():
    connection, transport, dispatcher = await connect()
    receive(connection, frame(b"now:1") + frame(b"bad") + frame(b"now:3"))
    await settle()
    assert transport.closing and dispatcher.frames == 2
    # the answer finished before the bad frame was read is on its way, as in Kafka (which reads a
    # connection's next request only after answering the previous one); nothing after it is
    assert transport.written == frame(b"now:1")


@pytest.mark.parametrize("data, reason", [
    (frame(b"bad"), CloseReason.UNDECODABLE),
    (frame(b"unserved"), CloseReason.UNKNOWN_API),
    (frame(b"x" * 1001), CloseReason.FRAME_SIZE),  # the limit in connect() is 1000 bytes
    (struct.pack(">i", -1), CloseReason.FRAME_SIZE),
], ids=["undecodable", "refused", "too large", "negative size"])
async def test_a_close_records_its_reason(data, reason):
    connection, transport, _ = await connect()
    receive(connection, data)
    assert transport.closing and connection.closed_for is reason


async def test_an_answer_finished_after_the_connection_is_lost_is_dropped_quietly():
    """A handler may complete despite being cancelled (asyncio.wait_for in 3.11 can swallow it)."""
    connection, transport, dispatcher = await connect()

    async def stubborn():
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return [frame(b"too late")]

    dispatcher.handle = lambda frame, conn: stubborn()  # type: ignore[method-assign]
    receive(connection, frame(b"anything"))
    await settle()
    writer = connection._writer
    connection.connection_lost(None)
    await settle()
    assert writer is not None and writer.done()
    assert writer.cancelled() or writer.exception() is None


async def test_idle_time_counts_only_without_a_request_being_handled():
    connection, transport, dispatcher = await connect()
    loop = asyncio.get_running_loop()
    receive(connection, frame(b"later:1"))
    assert connection.idle_for(loop.time() + 100) == 0  # a held request keeps the connection busy
    dispatcher.pending[0].set_result(None)
    await settle()
    assert connection.idle_for(loop.time() + 100) >= 99



def loop_errors() -> list[dict]:
    """What the running loop's exception handler is given from now on (3.11's transport bugs land there)."""
    errors: list[dict] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
    return errors


async def on_socketpair(dispatcher: StubDispatcher, **options: int) -> tuple[Connection, asyncio.Transport,
                                                                             socket.socket]:
    """A Connection on a real socket with a 4 KiB kernel send buffer, and the client's end of it."""
    ours, theirs = socket.socketpair()
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    connection = Connection(dispatcher, 1 << 20, set(), **options)  # type: ignore[arg-type]
    transport, _ = await asyncio.get_running_loop().connect_accepted_socket(lambda: connection, ours)
    return connection, transport, theirs


def fetch_answer(segment: BinaryIO, header_bytes: int, record_bytes: int) -> list:
    """A Fetch-like answer: header bytes, then the segment's first `record_bytes` as a file slice (sendfile'd)."""
    return [b"h" * header_bytes, FetchSlices((FileSlice(segment, 0, record_bytes),), record_bytes)]


async def test_a_bad_frame_met_when_writing_resumes_closes_the_real_transport_once():
    """Frames left unhandled while the client was not reading are handled when its socket drains.
    One of them closing the connection must not do so from inside the transport's own write
    callback: 3.11's _write_ready then reports the connection lost a second time (a traceback
    in the broker log, found by the live fuzz)."""
    errors = loop_errors()
    dispatcher = StubDispatcher()
    connection, transport, theirs = await on_socketpair(dispatcher, max_in_flight=100)
    transport.set_write_buffer_limits(high=64 << 10, low=0)  # resume only once the buffer is empty
    answer = b"now:" + b"x" * (30 << 10)
    theirs.sendall(b"".join(frame(answer) for _ in range(3)) + frame(b"bad"))
    await wait_until_async(lambda: dispatcher.frames >= 3, "the answers to fill the buffer and stop reading")
    assert dispatcher.frames == 3 and not transport.is_reading()
    theirs.setblocking(False)
    received = 0
    while not transport.is_closing() or received < 3 * (len(answer) + 4):
        await asyncio.sleep(0.005)
        try:
            received += len(theirs.recv(1 << 20))
        except BlockingIOError:
            pass
    await settle()
    theirs.close()
    assert dispatcher.frames == 4 and received == 3 * (len(answer) + 4)
    assert errors == []


async def test_a_connection_lost_while_a_fetch_answer_waits_to_sendfile_ends_quietly(tmp_path):
    """loop.sendfile waits for the transport's buffer to empty before it sends the file. Losing
    the connection then must not cancel that wait under the transport: 3.11's
    _call_connection_lost next sets an exception on the cancelled waiter, and the InvalidStateError
    lands in the broker log (found by the live fuzz)."""
    errors = loop_errors()
    records = tmp_path / "segment.log"
    records.write_bytes(b"r" * (256 << 10))
    with records.open("rb") as segment:
        dispatcher = StubDispatcher(answers={b"fetch": fetch_answer(segment, 512 << 10, 256 << 10)})
        connection, transport, theirs = await on_socketpair(dispatcher)
        transport.set_write_buffer_limits(high=4 << 20)  # the bytes stay buffered without pausing writes
        theirs.sendall(frame(b"fetch"))
        await wait_until_async(transport.get_write_buffer_size, "the answer's bytes in the transport's buffer")
        assert transport.get_write_buffer_size() > 0
        await settle()  # the writer now waits inside loop.sendfile for the buffer to empty
        connection.expire("test: the client went away")
        await settle()
    theirs.close()
    assert transport.is_closing()
    assert errors == []


@pytest.mark.parametrize("stop", ["close", "expire"])
async def test_a_connection_closed_while_sendfile_writes_ends_quietly(tmp_path, stop):
    """Inside loop.sendfile's sock_sendfile the transport's empty-buffer waiter is already done; 3.11's
    _call_connection_lost sets an exception on it all the same, an InvalidStateError in the broker
    log, whenever the connection closes then (a bad frame read meanwhile, idle expiry; found by the
    live fuzz)."""
    errors = loop_errors()
    records = tmp_path / "segment.log"
    records.write_bytes(b"r" * (8 << 20))
    with records.open("rb") as segment:
        dispatcher = StubDispatcher(answers={b"fetch": fetch_answer(segment, 8, 8 << 20)})
        connection, transport, theirs = await on_socketpair(dispatcher)
        theirs.sendall(frame(b"fetch"))
        # The client reads nothing: sock_sendfile fills the socket and waits for it to drain.
        await wait_until_async(lambda: not transport.is_reading(), "loop.sendfile to pause reading")
        await settle()
        if stop == "close":
            connection.close(CloseReason.UNDECODABLE, "test: a bad frame")
        else:
            connection.expire("test: idle")
        await wait_until_async(lambda: connection.closed_for is not None and transport.is_closing(), "the close")
        await settle()
    theirs.close()
    assert errors == []


async def test_a_lost_connection_gives_its_read_buffers_back():
    """A connection object can outlive its socket until the collector's next full pass (a refused
    login waits connection.failed.authentication.delay.ms, long enough to reach the old generation):
    it must not hold its 256 KiB frame buffer meanwhile."""
    connection, transport, _ = await connect()
    receive(connection, frame(b"now:1")[:3])  # a partial frame waiting in the buffer
    assert connection.get_buffer(-1).nbytes > 100_000
    connection.connection_lost(None)
    assert connection.get_buffer(-1).nbytes < 100_000


async def test_a_lost_connection_is_freed_by_reference_counting():
    """No cycle keeps a closed connection (and its buffers) until a full collection: the cancelled
    writer task holds its CancelledError, whose traceback holds the connection."""
    connection, transport, _ = await connect()
    await settle()  # the writer task waits for answers
    alive = weakref.ref(connection)
    gc.disable()
    try:
        connection.connection_lost(None)
        del connection
        await settle()
        assert alive() is None
    finally:
        gc.enable()
