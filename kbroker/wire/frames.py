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
    """Splits a byte stream into frames: `receive_data(bytes)`, then `next_frame()` until None.

    Each frame is its 4-byte big-endian size prefix (Kafka's `NetworkReceive`) and that many
    bytes. A negative size, or one above `max_size` (socket.request.max.bytes), raises
    DecodeError as soon as the prefix is in, before any of the body is awaited or buffered.
    Frames are copies: the caller may keep them while more data arrives.
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buffer = bytearray()
        self._start = 0  # bytes of `_buffer` already handed out as frames

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned in a frame."""
        return len(self._buffer) - self._start

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        if self._start:
            del self._buffer[:self._start]
            self._start = 0
        self._buffer += data

    def next_frame(self) -> bytearray | None:
        buffer, start = self._buffer, self._start
        if len(buffer) - start < 4:
            return None
        size = SIZE_PREFIX.unpack_from(buffer, start)[0]
        if size < 0:
            raise DecodeError(f"negative frame size {size}")
        if size > self.max_size:
            raise DecodeError(f"frame size {size} is larger than the limit of {self.max_size} bytes")
        end = start + 4 + size
        if len(buffer) < end:
            return None
        self._start = end
        return buffer[start + 4:end]


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
