"""Kafka's primitive wire types: fixed-width integers, varints, strings, bytes, UUIDs.

Readers take ``(buf, pos)`` and return ``(value, new_pos)``; writers append to a bytearray.
Every reader bounds-checks against the buffer so a hostile length prefix raises
`DecodeError` instead of allocating or reading past the frame.

Classic encodings prefix strings with int16 and bytes/arrays with int32 lengths (-1 = null).
Compact encodings (flexible versions, KIP-482) use an unsigned varint of length + 1 (0 = null).
"""
from __future__ import annotations

import functools
import struct
import uuid
from typing import Callable

from kbroker.errors import ProtocolViolation


class DecodeError(ProtocolViolation):
    """The bytes do not form a valid value of the declared type."""


Reader = Callable[[memoryview, int], tuple[object, int]]

INT8 = struct.Struct(">b")
INT16 = struct.Struct(">h")
INT32 = struct.Struct(">i")
INT64 = struct.Struct(">q")
UINT16 = struct.Struct(">H")
UINT32 = struct.Struct(">I")
FLOAT64 = struct.Struct(">d")

ZERO_UUID = uuid.UUID(int=0)


def read_uvarint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    end = len(buf)
    if pos < end and buf[pos] < 0x80:  # one byte: nearly every length, count and tag
        return buf[pos], pos + 1
    value = shift = 0
    while True:
        if pos >= end:
            raise DecodeError("varint runs past the end of the buffer")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise DecodeError("varint longer than 10 bytes")


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """A zigzag varint (record fields)."""
    raw, pos = read_uvarint(buf, pos)
    return (raw >> 1) ^ -(raw & 1), pos


def write_uvarint(out: bytearray, value: int) -> None:
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def write_varint(out: bytearray, value: int) -> None:
    write_uvarint(out, (value << 1) ^ (value >> 63))


def _take(buf: memoryview, pos: int, length: int) -> int:
    end = pos + length
    if length < 0 or end > len(buf):
        raise DecodeError(f"length {length} at offset {pos} runs past the end of the buffer")
    return end


# -- length prefixes -------------------------------------------------------------------------
# A "length" of -1 means null in both encodings.

def read_int16_length(buf: memoryview, pos: int) -> tuple[int, int]:
    if pos + 2 > len(buf):
        raise DecodeError("truncated int16 length")
    return INT16.unpack_from(buf, pos)[0], pos + 2


def read_int32_length(buf: memoryview, pos: int) -> tuple[int, int]:
    if pos + 4 > len(buf):
        raise DecodeError("truncated int32 length")
    return INT32.unpack_from(buf, pos)[0], pos + 4


def read_compact_length(buf: memoryview, pos: int) -> tuple[int, int]:
    raw, pos = read_uvarint(buf, pos)
    return raw - 1, pos


def write_int16_length(out: bytearray, length: int) -> None:
    out += INT16.pack(length)


def write_int32_length(out: bytearray, length: int) -> None:
    out += INT32.pack(length)


def write_compact_length(out: bytearray, length: int) -> None:
    write_uvarint(out, length + 1)


LengthReader = Callable[[memoryview, int], tuple[int, int]]
LengthWriter = Callable[[bytearray, int], None]


# -- strings, bytes, uuid --------------------------------------------------------------------

def read_str(buf: memoryview, pos: int, length: int) -> tuple[str, int]:
    end = _take(buf, pos, length)
    try:
        return str(buf[pos:end], "utf-8"), end
    except UnicodeDecodeError as exc:
        raise DecodeError(f"string at offset {pos} is not UTF-8") from exc


def read_bytes(buf: memoryview, pos: int, length: int) -> tuple[bytes, int]:
    end = _take(buf, pos, length)
    return bytes(buf[pos:end]), end


def read_view(buf: memoryview, pos: int, length: int) -> tuple[memoryview, int]:
    """Zero-copy slice of the frame (record batches on the produce path)."""
    end = _take(buf, pos, length)
    return buf[pos:end], end


def read_uuid(buf: memoryview, pos: int) -> tuple[uuid.UUID, int]:
    end = _take(buf, pos, 16)
    return _uuid(bytes(buf[pos:end])), end


@functools.lru_cache(maxsize=4096)
def _uuid(raw: bytes) -> uuid.UUID:
    """Topic ids repeat in every Fetch and Metadata request; UUID() itself is slow Python."""
    return uuid.UUID(bytes=raw)


def write_uuid(out: bytearray, value: uuid.UUID) -> None:
    out += value.bytes
