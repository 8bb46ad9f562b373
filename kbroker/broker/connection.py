"""One client connection: framing, in-order responses, backpressure, sendfile, idleness.

Kafka clients pipeline requests (librdkafka keeps up to 5 in flight) and match answers by
order, so responses leave strictly in request order even when an earlier request is held
(a long-poll Fetch, a Produce waiting for fsync). Each request gets a slot in `_slots`: a
finished response, or a task that will produce one. A single writer task drains the slots
in order, writing byte parts with `transport.write` and file slices with `loop.sendfile`.
An answer that is ready at once, with nothing ahead of it and nothing to wait for (most
Produce and Fetch answers of a busy client), is written on the spot instead.

Backpressure, `queued.max.requests`. In Kafka that key bounds the broker-wide queue between
the network threads and the request handler threads (default 500), and each connection is
muted from the moment a request is read until its response is sent. We have one thread and
no such queue: a request goes from the socket straight to its handler, and what can pile up
is per connection: requests read and not yet answered. So the key bounds that, per connection
(as issue 4 asks: one client must not use up a shared budget). At `queued.max.requests`
unanswered requests a connection stops being read until half of them are written. Three
more rules close the gaps a client that sends but never reads would use:
  - reading stops while the transport's write buffer is above its high-water mark
    (`pause_writing`), and the writer waits for it to drain before each part;
  - frames already received are handled only while reading is allowed: one 256 KiB read of
    tiny requests is not answered all at once, the rest waits in the frame buffer;
  - answers encoded and not yet written are bounded in bytes (RESPONSE_BUFFER_BYTES) as well
    as in number: a single Metadata answer can be megabytes.
File slices (Fetch record data) do not enter memory: `loop.sendfile` waits until the write
buffer is empty and sends from the segment file, SENDFILE_CHUNK at a time so progress shows.
Over TLS the kernel cannot send the file (the bytes must be encrypted): the slices are read
and written TLS_COPY_CHUNK at a time instead, each write waiting for the buffer to drain.
Only a Fetch answer's record data of at most SMALL_FILE_PART bytes is read and written as bytes.
`loop.sendfile` pauses reading itself and resumes it afterwards; if we paused reading
meanwhile, we pause it again.

Authentication: on a SASL listener, until the SASL exchange completes only the requests its
state permits reach the dispatcher, and after a v0 SaslHandshake the frames are raw SASL tokens
(kbroker/broker/authentication.py). A refused exchange is answered, then the connection closed.

Idleness, `connections.max.idle.ms`: a connection is idle when no request is being handled
(a long-poll Fetch or a held JoinGroup keeps it busy) and no bytes moved either way for that
long. The server's sweep closes it. An answer the client does not read keeps nothing alive.
"""
from __future__ import annotations

import asyncio
import enum
import logging
import os
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kbroker.broker.authentication import ANONYMOUS
from kbroker.errors import ProtocolViolation
from kbroker.security.mechanism import AuthenticationFailed
from kbroker.wire.frames import SIZE_PREFIX, FrameReader, peek_header

if TYPE_CHECKING:
    from kbroker.broker.authentication import Channel
    from kbroker.broker.dispatch import Dispatcher

log = logging.getLogger("kbroker.connection")

DEFAULT_MAX_IN_FLIGHT = 500  # queued.max.requests
RESPONSE_BUFFER_BYTES = 1 << 20  # encoded answers waiting in the slots before reading stops
SENDFILE_CHUNK = 4 << 20
# Record data up to this size is read and written like any bytes: loop.sendfile costs a dozen
# syscalls and several loop turns per call, more than copying a few pages (a consumer at the
# log end fetches one small batch at a time).
SMALL_FILE_PART = 64 << 10
TLS_COPY_CHUNK = 256 << 10  # record data read per TLS write
# Kafka's sasl.server.max.receive.size: the largest frame a client may send before it has
# authenticated, so that an anonymous peer cannot make the broker buffer socket.request.max.bytes.
SASL_MAX_RECEIVE = 512 << 10

Parts = list[Any]  # bytearrays and file-slice payloads, in wire order


class CloseReason(enum.Enum):
    """Why the broker closed a connection: in its log line and in `Connection.closed_for`, so that
    tests (the dispatch and live fuzz) can tell an expected close from a bug."""
    FRAME_SIZE = "frame size out of range"  # a negative size prefix, or one over the limit
    UNDECODABLE = "undecodable request"  # header or body does not parse as the (api, version) it names
    UNKNOWN_API = "unknown api key"
    UNSUPPORTED_VERSION = "unsupported version"  # outside the advertised range (ApiVersions is answered)
    AUTHENTICATION = "authentication"  # SASL refused, out of order or expired; no principal for a certificate
    UNANSWERED_ERROR = "error without an answer"  # e.g. a failed acks=0 Produce: the client refreshes metadata
    UNREADABLE_RECORDS = "fetch records unreadable"  # a segment file ended before the answer's records
    INTERNAL_ERROR = "internal error"  # our bug: logged with its traceback
    IDLE = "idle"  # connections.max.idle.ms


def _drop_finished_sendfile_waiter(transport: asyncio.BaseTransport) -> None:
    """3.11's _SelectorSocketTransport._call_connection_lost, right after calling connection_lost,
    sets an exception on the transport's empty-buffer waiter if it has one; loop.sendfile keeps that
    waiter, already done, while sock_sendfile writes, so a connection closed then (a bad frame read
    meanwhile, idle expiry, shutdown) logged an InvalidStateError. A done waiter has nothing left to
    tell anyone (loop.sendfile drops it itself when sock_sendfile returns): drop it first."""
    waiter = getattr(transport, "_empty_waiter", None)
    if waiter is not None and waiter.done():
        transport._empty_waiter = None  # type: ignore[attr-defined]


class RequestRefused(ProtocolViolation):
    """A well-framed request that closes its connection for `reason` (an API or version we do not serve)."""

    def __init__(self, reason: CloseReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def close_reason_of(exc: ProtocolViolation) -> CloseReason:
    """A request's ProtocolViolation: refused for a stated reason, or else bytes that did not parse."""
    return exc.reason if isinstance(exc, RequestRefused) else CloseReason.UNDECODABLE


def _read_slice(piece: Any, start: int = 0, length: int | None = None) -> bytes:
    """`length` bytes of a file slice from `start` within it (default: all of it)."""
    length = piece.length - start if length is None else length
    data = os.pread(piece.file.fileno(), length, piece.position + start)
    if len(data) != length:  # the answer's size prefix promised piece.length bytes
        raise OSError(f"segment file ended {length - len(data)} bytes early")
    return data


def _is_inline(part: Any) -> bool:
    """Written as bytes: encoded bytes, and record data of at most SMALL_FILE_PART bytes."""
    return isinstance(part, (bytes, bytearray)) or part.size <= SMALL_FILE_PART


def _inline(part: Any) -> bytes | bytearray:
    return part if isinstance(part, (bytes, bytearray)) else b"".join(map(_read_slice, part.slices))


def _memory_size(parts: Parts) -> int:
    return sum(len(part) for part in parts if isinstance(part, (bytes, bytearray)))


class Connection(asyncio.BufferedProtocol):
    def __init__(self, dispatcher: Dispatcher, max_request_bytes: int, registry: set[Connection], *,
                 max_in_flight: int = DEFAULT_MAX_IN_FLIGHT, on_lost: Callable[[], None] | None = None,
                 channel: Channel | None = None) -> None:
        self._dispatcher = dispatcher
        self._channel = channel
        self._max_request_bytes = max_request_bytes
        self.listener_name = channel.name if channel is not None else None  # None: the first listener
        self.principal = ANONYMOUS
        self.sasl = channel.new_session() if channel is not None else None  # None: no SASL on this listener
        self._tls = False
        self._close_reason: str | None = None  # close once the answers so far are written
        self.closed_for: CloseReason | None = None  # set when the broker closes the connection
        self._registry = registry
        self._frames = FrameReader(min(max_request_bytes, SASL_MAX_RECEIVE) if self.sasl is not None
                                   else max_request_bytes)
        self._max_in_flight = max_in_flight
        self._on_lost = on_lost
        self._slots: deque[Parts | asyncio.Future[Parts | None] | None] = deque()
        self._slot_ready = asyncio.Event()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._transport: asyncio.Transport | None = None
        self._writer: asyncio.Task[None] | None = None
        self._writer_busy = False  # the writer task holds an answer it has not finished writing
        self._reading_paused = False
        self._writing_paused = False
        self._throttle: asyncio.TimerHandle | None = None  # muted for a quota until this fires
        self._handling = 0  # requests whose handler has not finished
        self._buffered = 0  # bytes of encoded answers waiting in the slots
        self._loop = asyncio.get_running_loop()
        self.last_activity = self._loop.time()
        self.peer = "?"
        self.peer_host = "?"  # the client's address, as ACL bindings name hosts

    # -- asyncio.BufferedProtocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = f"{peer[0]}:{peer[1]}"
            self.peer_host = peer[0]
        self.last_activity = self._loop.time()
        self._writer = self._loop.create_task(self._write_responses())
        self._registry.add(self)
        ssl_object = transport.get_extra_info("ssl_object")
        self._tls = ssl_object is not None
        if self._channel is not None:
            try:
                self.principal = self._channel.tls_principal(ssl_object)
            except ValueError as exc:  # ssl.principal.mapping.rules has no rule for this certificate
                self.close(CloseReason.AUTHENTICATION, str(exc))
        log.debug("connection from %s (%s)", self.peer, self.principal)

    def connection_lost(self, exc: Exception | None) -> None:
        log.debug("connection from %s closed%s", self.peer, f": {exc}" if exc else "")
        if self._transport is not None:
            _drop_finished_sendfile_waiter(self._transport)
        self._transport = None
        self._frames.release()
        self._registry.discard(self)
        if self._on_lost is not None:
            self._on_lost()
            self._on_lost = None
        if self._throttle is not None:
            self._throttle.cancel()
        if self._writer is not None:
            # Not at once: a writer inside loop.sendfile waits on the transport's empty-buffer
            # waiter, and 3.11's _call_connection_lost sets an exception on that waiter right
            # after this returns; cancelling it first makes that an InvalidStateError.
            self._loop.call_soon(self._writer.cancel)
            # The cancelled task keeps its CancelledError, whose traceback holds this connection:
            # not referencing the task lets reference counting free both (no wait for a full GC).
            self._writer = None
        for slot in self._slots:
            if isinstance(slot, asyncio.Future):
                slot.cancel()
        self._slots.clear()
        self._can_write.set()

    def pause_writing(self) -> None:
        self._can_write.clear()
        self._writing_paused = True
        if not self._reading_paused and self._transport is not None:
            self._pause_reading()

    def resume_writing(self) -> None:
        self._can_write.set()
        self._writing_paused = False
        self.last_activity = self._loop.time()
        # Not from inside the transport's _write_ready: a frame handled there may close the
        # transport, and 3.11's _write_ready would then report the connection lost twice.
        self._loop.call_soon(self._resume_reading_if_drained)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._frames.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        self.last_activity = self._loop.time()
        self._frames.buffer_updated(nbytes)
        if self._reading_paused:  # only after loop.sendfile resumed reading behind our back
            self._transport.pause_reading()  # type: ignore[union-attr]
            return
        self._read_frames()

    # -- requests and backpressure ---------------------------------------------------------

    def idle_for(self, now: float) -> float:
        """Seconds since anything moved, or 0 while a request is being handled."""
        return 0.0 if self._handling else now - self.last_activity

    def _must_stop(self) -> bool:
        return (self._writing_paused or self._throttle is not None or len(self._slots) >= self._max_in_flight
                or self._buffered >= RESPONSE_BUFFER_BYTES)

    def _may_resume(self) -> bool:
        return (not self._writing_paused and self._throttle is None and len(self._slots) <= self._max_in_flight // 2
                and self._buffered < RESPONSE_BUFFER_BYTES // 2)

    def throttle(self, delay_ms: int) -> None:
        """Over a quota: read nothing more from this client for `delay_ms` (its answers still go out)."""
        until = self._loop.time() + delay_ms / 1000
        if self._throttle is not None:
            if self._throttle.when() >= until:
                return
            self._throttle.cancel()
        self._throttle = self._loop.call_at(until, self._end_throttle)
        if not self._reading_paused and self._transport is not None:
            self._pause_reading()

    def _end_throttle(self) -> None:
        self._throttle = None
        self._resume_reading_if_drained()

    def _read_frames(self) -> None:
        """Handle the frames received so far, while this connection may take more requests."""
        try:
            while not self._reading_paused and self._transport is not None and self._close_reason is None:
                if self._must_stop():
                    self._pause_reading()
                    return
                try:
                    frame = self._frames.next_frame()
                except ProtocolViolation as exc:  # the size prefix: the byte stream cannot be framed
                    self.close(CloseReason.FRAME_SIZE, str(exc))
                    return
                if frame is None:
                    return
                self._on_frame(frame)
        except ProtocolViolation as exc:
            self.close(close_reason_of(exc), str(exc))
        except Exception:
            log.exception("request from %s failed; closing the connection", self.peer)
            self.close(CloseReason.INTERNAL_ERROR, "see the traceback above")

    def _pause_reading(self) -> None:
        self._reading_paused = True
        self._transport.pause_reading()  # type: ignore[union-attr]

    def _resume_reading_if_drained(self) -> None:
        if self._reading_paused and self._transport is not None and self._may_resume():
            self._reading_paused = False
            self._transport.resume_reading()
            self._read_frames()  # what was received before the pause comes first

    def _on_frame(self, frame: bytearray) -> None:
        sasl = self.sasl
        if sasl is not None and (not sasl.complete or sasl.expires_at is not None):
            outcome = self._authentication_frame(frame)
        else:
            outcome = self._dispatcher.handle(frame, self)
        if outcome is None:  # e.g. Produce with acks=0: no answer at all
            return
        if isinstance(outcome, list):
            if not self._slots and not self._writer_busy and self._write_now(outcome):
                return
            self._buffered += _memory_size(outcome)
            self._slots.append(outcome)
        else:
            task = asyncio.ensure_future(outcome)
            self._handling += 1
            task.add_done_callback(self._handled)
            self._slots.append(task)
        self._slot_ready.set()

    def _authentication_frame(self, frame: bytearray) -> Parts | Any:
        """A frame before the SASL exchange completed, or of a session that expires: a raw token,
        or a request the state permits."""
        sasl = self.sasl
        assert sasl is not None
        if sasl.state == "raw":
            try:
                token = sasl.authenticate(bytes(frame))
            except AuthenticationFailed:  # no frame to carry an error in: just close
                self._refuse(sasl.failure or "authentication failed")
                return None
            if sasl.complete:
                self.authenticated(sasl.principal)
            return [SIZE_PREFIX.pack(len(token)) + token]
        api_key = peek_header(memoryview(frame))[0]
        if not sasl.permits(api_key):
            self._refuse("the SASL session expired without re-authentication (connections.max.reauth.ms)"
                         if sasl.complete else
                         f"unexpected request (api key {api_key}) during SASL {sasl.state}: authenticate first")
            return None
        return self._dispatcher.handle(frame, self)

    def authenticated(self, principal: str) -> None:
        self.principal = principal
        self._frames.max_size = self._max_request_bytes
        log.debug("%s authenticated as %s", self.peer, principal)

    def close_after_answer(self, reason: str) -> None:
        """Read nothing more; close once the answers so far (this request's included) are written."""
        self._close_reason = reason

    def _close_after_delay(self) -> None:
        delay = self._channel.failure_delay_ms / 1000 if self._channel is not None else 0
        self._loop.call_later(delay, self._refuse, self._close_reason)

    def _refuse(self, reason: str) -> None:
        """Close a connection that failed to authenticate; logged with the others (rate-limited)."""
        self._close_reason = reason
        self.closed_for = CloseReason.AUTHENTICATION
        if self._channel is not None:
            self._channel.failures.failed(self.peer, reason)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def _handled(self, task: asyncio.Future[Parts | None]) -> None:
        self._handling -= 1
        self.last_activity = self._loop.time()
        if not task.cancelled() and task.exception() is None and task.result() is not None:
            self._buffered += _memory_size(task.result())  # type: ignore[arg-type]

    # -- responses -------------------------------------------------------------------------

    def _write_now(self, parts: Parts) -> bool:
        """Write an answer that is next in line and needs no waiting, without the writer task
        (one loop turn and two wakeups less per request). False: the writer must take it."""
        transport = self._transport
        if (not self._can_write.is_set() or transport is None or transport.is_closing()
                or not all(map(_is_inline, parts))):
            return False
        try:
            data = [_inline(part) for part in parts]
        except OSError as exc:  # the frame cannot be completed: the client must not wait
            self.close(CloseReason.UNREADABLE_RECORDS, str(exc))
            return True
        self._write_joined(transport, data)
        if self._close_reason is not None:
            self._close_after_delay()
        return True

    def _write_joined(self, transport: asyncio.Transport, data: list[bytes | bytearray]) -> None:
        transport.write(data[0] if len(data) == 1 else b"".join(data))
        self.last_activity = self._loop.time()

    async def _write_responses(self) -> None:
        while True:
            while not self._slots:
                self._writer_busy = False
                self._slot_ready.clear()
                await self._slot_ready.wait()
            self._writer_busy = True
            slot = self._slots[0]
            try:
                parts = await slot if isinstance(slot, asyncio.Future) else slot
            except asyncio.CancelledError:
                raise
            except ProtocolViolation as exc:
                self.close(close_reason_of(exc), str(exc))
                return
            except Exception:
                log.exception("request from %s failed; closing the connection", self.peer)
                self.close(CloseReason.INTERNAL_ERROR, "see the traceback above")
                return
            if self._transport is None or not self._slots or self._slots[0] is not slot:
                return  # the connection was lost meanwhile (a handler may finish despite being cancelled)
            self._slots.popleft()
            if parts is not None:
                self._buffered -= _memory_size(parts)
            self._resume_reading_if_drained()
            if parts is None:
                continue
            if not await self._write_answer(parts):
                return
            if self._close_reason is not None and not self._slots:
                self._close_after_delay()
                return

    async def _write_answer(self, parts: Parts) -> bool:
        """Byte parts (and small record data) go out joined, one write each run; big record data by sendfile."""
        pending: list[bytes | bytearray] = []
        for part in parts:
            if _is_inline(part):
                try:
                    pending.append(_inline(part))
                except OSError as exc:  # the frame cannot be completed: the client must not wait
                    self.close(CloseReason.UNREADABLE_RECORDS, str(exc))
                    return False
                continue
            if pending and not await self._write_bytes(pending):
                return False
            pending = []
            for file_slice in part.slices:
                await self._can_write.wait()
                transport = self._transport
                if transport is None:
                    return False
                if not await (self._copy_file(file_slice) if self._tls else self._send_file(transport, file_slice)):
                    return False
        return not pending or await self._write_bytes(pending)

    async def _write_bytes(self, pending: list[bytes | bytearray]) -> bool:
        await self._can_write.wait()
        transport = self._transport
        if transport is None or transport.is_closing():
            return False
        self._write_joined(transport, pending)
        return True

    async def _copy_file(self, piece: Any) -> bool:
        """A file slice over TLS: read and written a chunk at a time, waiting for the buffer to drain."""
        for start in range(0, piece.length, TLS_COPY_CHUNK):
            try:
                data = _read_slice(piece, start, min(TLS_COPY_CHUNK, piece.length - start))
            except OSError as exc:
                self.close(CloseReason.UNREADABLE_RECORDS, str(exc))
                return False
            if not await self._write_bytes([data]):
                return False
        return True

    async def _send_file(self, transport: asyncio.Transport, piece: Any) -> bool:
        position, end = piece.position, piece.position + piece.length
        while position < end:
            if transport.is_closing():
                return False
            count = min(end - position, SENDFILE_CHUNK)
            try:
                sent = await self._loop.sendfile(transport, piece.file, position, count)
            except (OSError, RuntimeError) as exc:  # the peer went away, or we closed meanwhile
                self.abort()
                log.debug("sendfile to %s failed: %s", self.peer, exc)
                return False
            if self._reading_paused and not transport.is_closing():
                transport.pause_reading()  # loop.sendfile resumed the reading it had paused
            self.last_activity = self._loop.time()
            if sent < count:  # the file is shorter than the slice: the frame cannot be completed
                self.close(CloseReason.UNREADABLE_RECORDS, f"segment file ended {end - position - sent} bytes early")
                return False
            position += sent
        return True

    def abort(self) -> None:
        """Drop the connection at once (broker shutdown): pending answers are not sent."""
        if self._transport is not None:
            self._transport.abort()

    def close(self, reason: CloseReason, detail: str) -> None:
        """A bad frame: stop reading and close. Answers not yet handed to the transport are dropped
        (Kafka closes the channel at once too); what the transport holds is still flushed."""
        if self._transport is not None and not self._transport.is_closing():
            self.closed_for = reason
            log.warning("closing connection from %s (%s): %s", self.peer, reason.value, detail)
            self._transport.close()

    def expire(self, detail: str) -> None:
        """Drop an idle connection, unwritten answers and all: nothing moved, so the peer is not reading."""
        if self._transport is not None:
            self.closed_for = CloseReason.IDLE
            log.info("closing connection from %s (%s): %s", self.peer, CloseReason.IDLE.value, detail)
            self._transport.abort()
