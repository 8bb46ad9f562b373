"""Request and response frames: the 4-byte size prefix, headers, and the body codec.

Request header v1: api_key i16, api_version i16, correlation_id i32, client_id (int16-length
nullable string — classic even in header v2). Header v2 (flexible API versions) appends a
tagged-field section. Response header v0 is the correlation id; v1 adds an empty tagged-field
section; ApiVersions answers always use v0 (see `Api.response_header_version`).

Everything here is sans-IO: frames in, values out; values in, byte parts out.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from kbroker.wire import codec
from kbroker.wire import primitives as p
from kbroker.wire.primitives import DecodeError
from kbroker.wire.schema import Api

SIZE_PREFIX = struct.Struct(">i")
_HEADER_START = struct.Struct(">hhi")


@dataclass(frozen=True, slots=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


class FrameReader:
    """Splits a byte stream into frames, received in place.

    Each frame is its 4-byte big-endian size prefix (Kafka's `NetworkReceive`) and that many
    bytes. A negative size, or one above `max_size` (socket.request.max.bytes), raises
    DecodeError as soon as the prefix is in, before any of the body is awaited or buffered.

    The socket reads into `get_buffer()` and reports with `buffer_updated(n)` (asyncio's
    BufferedProtocol), so bytes land where they are used: small frames gather in a staging
    buffer and are copied out whole; a frame of `large_frame` bytes or more (a producer's batch)
    gets a buffer of its own that the rest of it is read straight into — no copy at all, which
    is most of the produce path's bytes. Frames are the caller's: it may keep them while more
    data arrives. `receive_data(bytes)` feeds bytes that were read elsewhere.
    """

    def __init__(self, max_size: int, *, large_frame: int = 64 << 10, staging_bytes: int = 256 << 10) -> None:
        self.max_size = max_size
        self._large_frame = large_frame
        self._staging = bytearray(staging_bytes)
        self._start = 0  # first byte of the staging buffer not yet handed out in a frame
        self._end = 0  # end of the bytes received into the staging buffer
        self._large: bytearray | None = None  # a large frame being read into its own buffer
        self._large_filled = 0

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned in a frame."""
        return self._end - self._start + self._large_filled

    def release(self) -> None:
        """Give the buffers back: the stream has ended, and what holds this reader may outlive it
        until the garbage collector's next full pass."""
        self._staging = bytearray()
        self._start = self._end = 0
        self._large, self._large_filled = None, 0

    def get_buffer(self) -> memoryview:
        """Where the next bytes from the socket go (never empty)."""
        if self._reading_large():
            return memoryview(self._large)[self._large_filled:]  # type: ignore[arg-type]
        if self._end == len(self._staging):
            self._make_room()
        return memoryview(self._staging)[self._end:]

    def buffer_updated(self, count: int) -> None:
        if self._reading_large():
            self._large_filled += count
        else:
            self._end += count

    def _reading_large(self) -> bool:
        """A large frame is still being filled (once full, what follows it goes to staging)."""
        return self._large is not None and self._large_filled < len(self._large)

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        while view:
            target = self.get_buffer()
            count = min(len(target), len(view))
            target[:count] = view[:count]
            target.release()  # the staging buffer may have to grow at the next get_buffer
            self.buffer_updated(count)
            view = view[count:]

    def next_frame(self) -> bytearray | None:
        if self._large is not None:  # it comes before anything in staging
            if self._reading_large():
                return None
            frame, self._large, self._large_filled = self._large, None, 0
            return frame
        start = self._start
        if self._end - start < 4:
            return None
        size = self._frame_size()
        end = start + 4 + size
        if end > self._end:
            self._start_large_frame()
            return None
        frame = self._staging[start + 4:end]
        self._start = end
        if end == self._end:
            self._start = self._end = 0
        return frame

    def _frame_size(self) -> int:
        size = SIZE_PREFIX.unpack_from(self._staging, self._start)[0]
        if size < 0:
            raise DecodeError(f"negative frame size {size}")
        if size > self.max_size:
            raise DecodeError(f"frame size {size} is larger than the limit of {self.max_size} bytes")
        return size

    def _start_large_frame(self) -> None:
        """An incomplete frame at the staging buffer's start: a large one moves to its own buffer."""
        size = self._frame_size()
        if size < self._large_frame or self._end - self._start >= 4 + size:
            return
        received = self._end - self._start - 4
        self._large = bytearray(size)
        self._large[:received] = self._staging[self._start + 4:self._end]
        self._large_filled = received
        self._start = self._end = 0

    def _make_room(self) -> None:
        """The staging buffer is full: move the unread bytes to its front, or grow it (reading
        only goes on while frames are unhandled when asyncio resumed it behind our back)."""
        pending = self._end - self._start
        if self._start == 0:
            self._staging.extend(bytes(len(self._staging)))
            return
        self._staging[:pending] = self._staging[self._start:self._end]
        self._start, self._end = 0, pending


def peek_header(frame: memoryview) -> tuple[int, int, int]:
    """api_key, api_version, correlation_id: readable before we know the API."""
    if len(frame) < _HEADER_START.size:
        raise DecodeError(f"frame of {len(frame)} bytes is too short for a request header")
    return _HEADER_START.unpack_from(frame, 0)


def decode_request_header(frame: memoryview, api: Api, version: int) -> tuple[RequestHeader, int]:
    api_key, api_version, correlation_id = peek_header(frame)
    length, pos = p.read_int16_length(frame, _HEADER_START.size)
    client_id = None
    if length >= 0:
        client_id, pos = p.read_str(frame, pos, length)
    elif length != -1:
        raise DecodeError(f"bad client_id length {length}")
    if api.request_header_version(version) >= 2:
        pos = _skip_tagged_fields(frame, pos)
    return RequestHeader(api_key, api_version, correlation_id, client_id), pos


def decode_request(frame: memoryview, api: Api, version: int) -> tuple[RequestHeader, Any, int]:
    """Header, body and the number of bytes consumed.

    Trailing bytes after the body are tolerated: librdkafka 2.16 writes a null flexible
    Metadata topic array as a 4-byte int, leaving 3 bytes over (librdkafka issue 5049).
    """
    header, pos = decode_request_header(frame, api, version)
    body, pos = codec.decode(api.request, version, api.is_flexible(version), frame, pos)
    return header, body, pos


def encode_request(api: Api, version: int, correlation_id: int, client_id: str | None, body: Any) -> bytes:
    """A whole request frame with its size prefix (used by tests and tools)."""
    writer = codec.Writer()
    out = writer.buf
    out += _HEADER_START.pack(api.key, version, correlation_id)
    if client_id is None:
        p.write_int16_length(out, -1)
    else:
        data = client_id.encode()
        p.write_int16_length(out, len(data))
        out += data
    if api.request_header_version(version) >= 2:
        out.append(0)
    codec.encode(api.request, version, api.is_flexible(version), body, writer)
    parts = writer.finish()
    payload = b"".join(bytes(part) for part in parts)
    return SIZE_PREFIX.pack(len(payload)) + payload


def encode_response(api: Api, version: int, correlation_id: int, body: Any) -> list[Any]:
    """Frame parts: bytearrays and sized payloads, the first starting with the size prefix."""
    writer = codec.Writer()
    writer.buf += SIZE_PREFIX.pack(0)  # patched below, once the size is known
    writer.buf += p.INT32.pack(correlation_id)
    if api.response_header_version(version) >= 1:
        writer.buf.append(0)
    codec.encode(api.response, version, api.is_flexible(version), body, writer)
    parts = writer.finish()
    size = sum(len(part) if isinstance(part, (bytes, bytearray)) else part.size for part in parts) - 4
    SIZE_PREFIX.pack_into(parts[0], 0, size)
    return parts


def decode_response(frame: memoryview, api: Api, version: int) -> tuple[int, Any, int]:
    """correlation_id, body, bytes consumed (used by tests and tools)."""
    if len(frame) < 4:
        raise DecodeError("frame too short for a response header")
    correlation_id = SIZE_PREFIX.unpack_from(frame, 0)[0]
    pos = 4
    if api.response_header_version(version) >= 1:
        pos = _skip_tagged_fields(frame, pos)
    body, pos = codec.decode(api.response, version, api.is_flexible(version), frame, pos)
    return correlation_id, body, pos


def _skip_tagged_fields(buf: memoryview, pos: int) -> int:
    count, pos = p.read_uvarint(buf, pos)
    for _ in range(count):
        _, pos = p.read_uvarint(buf, pos)
        size, pos = p.read_uvarint(buf, pos)
        pos += size
        if pos > len(buf):
            raise DecodeError("header tagged field runs past the end of the frame")
    return pos
