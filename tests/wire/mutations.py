"""Mutations of real client frames, shared by the fuzz tests and the live fuzz (stress/live_fuzz.py).

`mutate(frame, rng)` takes a request frame (api_key onward, no size prefix), applies one to a
few of the operations below with `rng` (a `random.Random`, or Hypothesis' `st.randoms()` so
that failures shrink) and returns new bytes. The mix favours what breaks decoders and handlers:
integers at their boundaries written over any aligned or unaligned position (lengths, counts,
partition indexes, offsets, timeouts), varints, truncation, bytes inserted or removed in the
middle of a field, repeated chunks, and the tail of another frame spliced on. The request
header's first 8 bytes (api key, version, correlation id) are usually kept, so the mutation
reaches the decoder and handler of a real (api, version) instead of a closed connection.

`mutate_values(entry, rng)` works a level up: it decodes the frame, gives some fields hostile
values of their declared type and encodes it again (see below).
"""
from __future__ import annotations

import dataclasses
import json
import struct
from collections.abc import Sequence
from pathlib import Path
from random import Random

GOLDEN = Path(__file__).parent / "golden" / "requests.jsonl"

INT8 = [0, 1, -1, 0x7F, -0x80]
INT16 = [0, 1, -1, -2, 0x7FFF, -0x8000, 0x100]
INT32 = [0, 1, -1, -2, 0x7FFFFFFF, -0x80000000, 0xFFFF, 0x10000, 1 << 24]
INT64 = [0, -1, -2, 2**63 - 1, -(2**63), 2**31, 1 << 40]
VARINTS = [b"\x00", b"\x01", b"\x7f", b"\x80\x01", b"\xff\x7f", b"\xff\xff\xff\xff\x0f", b"\xff\xff\xff\xff\x07",
           b"\xff" * 9 + b"\x01", b"\xff" * 11]
HEADER = 8  # api_key, api_version, correlation_id


def golden_frames() -> list[dict]:
    """The captured real-client requests: dicts with api_key, api_version, client, and `frame` bytes."""
    frames = []
    for line in GOLDEN.read_text().splitlines():
        entry = json.loads(line)
        entry["frame"] = bytes.fromhex(entry.pop("hex"))
        frames.append(entry)
    return frames


def _position(data: bytearray, rng: Random, start: int, width: int = 1) -> int | None:
    if len(data) - width < start:
        return None
    return rng.randint(start, len(data) - width)


def _put_int(data: bytearray, rng: Random, start: int, others: Sequence[bytes]) -> str:
    fmt, values = rng.choice([(">b", INT8), (">h", INT16), (">i", INT32), (">q", INT64)])
    width = struct.calcsize(fmt)
    at = _position(data, rng, start, width)
    if at is None:
        return "none"
    value = rng.choice(values) if rng.random() < 0.8 else rng.randint(-(2 ** (8 * width - 1)), 2 ** (8 * width - 1) - 1)
    data[at:at + width] = struct.pack(fmt, value)
    return f"int{8 * width}"


def _put_varint(data: bytearray, rng: Random, start: int, others: Sequence[bytes]) -> str:
    at = _position(data, rng, start)
    if at is None:
        return "none"
    data[at:at + rng.randint(0, 2)] = rng.choice(VARINTS)
    return "varint"


def _flip(data: bytearray, rng: Random, start: int, others: Sequence[bytes]) -> str:
    at = _position(data, rng, start)
    if at is None:
        return "none"
    data[at] ^= 1 << rng.randrange(8)
    return "flip"


def _byte(data: bytearray, rng: Random, start: int, others: Sequence[bytes]) -> str:
    at = _position(data, rng, start)
    if at is None:
        return "none"
    data[at] = rng.choice([0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF, rng.randrange(256)])
    return "byte"


def _insert(data: bytearray, rng: Random, start: int, others: Sequence[bytes]) -> str:
    at = rng.randint(min(start, len(data)), len(data))
    data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return "insert"


def _delete(data: bytearray, rng: Random, start: int, others: Sequence[bytes]) -> str:
    at = _position(data, rng, start)
    if at is None:
        return "none"
    del data[at:at + rng.randint(1, 16)]
    return "delete"


def _truncate(data: bytearray, rng: Random, start: int, others: Sequence[bytes]) -> str:
    del data[rng.randint(min(start, len(data)), len(data)):]
    return "truncate"


def _repeat(data: bytearray, rng: Random, start: int, others: Sequence[bytes]) -> str:
    at = _position(data, rng, start)
    if at is None:
        return "none"
    chunk = data[at:at + rng.randint(1, 32)]
    data[at:at] = chunk * rng.randint(1, 4)
    return "repeat"


def _splice(data: bytearray, rng: Random, start: int, others: Sequence[bytes]) -> str:
    if not others:
        return "none"
    other = rng.choice(others)
    cut = rng.randint(min(start, len(data)), len(data))
    data[cut:] = other[rng.randint(0, len(other)):]
    return "splice"


OPERATIONS = [_put_int, _put_int, _put_int, _put_varint, _flip, _byte, _insert, _delete, _truncate, _repeat, _splice]


def mutate(frame: bytes, rng: Random, others: Sequence[bytes] = (), applied: list[str] | None = None) -> bytes:
    """One to a few mutations of `frame` (see the module docstring); `others` feed splices.

    The kinds applied are appended to `applied` if given.
    """
    data = bytearray(frame)
    start = HEADER if rng.random() < 0.9 else 0
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 4, 8])):
        kind = rng.choice(OPERATIONS)(data, rng, start, others)
        if applied is not None:
            applied.append(kind)
    return bytes(data)


# -- values: decode, change fields, encode again -----------------------------------------------
# Byte mutations mostly stop in the decoder. These keep the encoding valid and put hostile values
# in the fields, so they reach the handlers: negative or huge partitions, offsets, timeouts and
# sizes, odd topic names, duplicated or emptied arrays, corrupt or crafted record batches.

STRINGS = ["", ".", "..", "a" * 249, "b" * 300, "__consumer_offsets", "ünïcödé", "with space", "x/../y", "-", "t"]
BATCH_FIELDS = [(0, ">q", INT64), (12, ">i", INT32), (16, ">b", [0, 1, 2, 3, -1]), (21, ">h", [0, 1, 7, 8, 16, 32, -1]),
                (23, ">i", INT32), (27, ">q", INT64), (35, ">q", INT64), (43, ">q", INT64), (51, ">h", INT16),
                (53, ">i", INT32), (57, ">i", INT32)]  # offsets in a v2 batch header: see kbroker/wire/records.py


def _records(current: object, rng: Random) -> object:
    from kbroker.wire.records import Record, build_batch, compute_crc
    roll = rng.random()
    if roll < 0.15:
        return None
    if roll < 0.25:
        return b""
    if roll < 0.6 and current:  # the real batch, a header field changed, CRC fixed (or not)
        data = bytearray(current)
        if len(data) >= 61:
            at, fmt, values = rng.choice(BATCH_FIELDS)
            data[at:at + struct.calcsize(fmt)] = struct.pack(fmt, rng.choice(values))
            if rng.random() < 0.7 and at >= 21:
                struct.pack_into(">I", data, 17, compute_crc(data))
        return bytes(data)
    records = [Record(rng.choice([0, 1, 5, -1]), rng.choice(INT64[:5]), rng.choice([None, b"", b"k"]),
                      rng.choice([None, b"", b"v" * rng.randint(1, 100)])) for _ in range(rng.randint(1, 5))]
    try:
        return bytes(build_batch(records, producer_id=rng.choice([-1, 0, 1, 2**63 - 1]),
                                 producer_epoch=rng.choice([-1, 0, 1, 32767]),
                                 base_sequence=rng.choice([-1, 0, 1, 2**31 - 1])))
    except (ValueError, OverflowError, struct.error):
        return current


def _value_for(kind: object, nullable: bool, current: object, rng: Random) -> object:
    from kbroker.wire import schema
    if nullable and rng.random() < 0.15:
        return None
    if kind is schema.BOOL:
        return not current
    for primitive, values in ((schema.INT8, INT8), (schema.INT16, INT16), (schema.INT32, INT32), (schema.INT64, INT64)):
        if kind is primitive:
            return rng.choice(values)
    if kind is schema.STRING:
        return rng.choice(STRINGS + ([current] if isinstance(current, str) else []))
    if kind is schema.BYTES:
        return rng.choice([b"", b"\x00" * 8, bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))])
    if kind is schema.UUID:
        import uuid
        return rng.choice([uuid.UUID(int=0), uuid.UUID(int=rng.getrandbits(128))] + ([current] if current else []))
    if kind is schema.RECORDS:
        return _records(current, rng)
    return current


def _mutate_struct(value: object, version: int, rng: Random, rate: float) -> object:
    from kbroker.wire import schema
    changes = {}
    for field in schema.fields_of(type(value)):
        if not (field.present_in(version) or field.tagged_in(version)):
            continue
        current = getattr(value, field.name)
        nullable = version in field.nullable
        kind = field.type
        if isinstance(kind, schema.Array):
            if current is None:
                continue
            items = list(current)
            roll = rng.random()
            if roll < rate / 2:
                items = [] if rng.random() < 0.5 else items * rng.randint(2, 50)
            elif roll < rate and items:
                items.append(rng.choice(items))
            if isinstance(kind.element, type):
                items = [_mutate_struct(item, version, rng, rate) for item in items]
            elif rng.random() < rate:
                items = [_value_for(kind.element, False, item, rng) for item in items]
            changes[field.name] = items
        elif isinstance(kind, type):
            if current is not None:
                changes[field.name] = _mutate_struct(current, version, rng, rate)
        elif rng.random() < rate:
            changes[field.name] = _value_for(kind, nullable, current, rng)
    return dataclasses.replace(value, **changes)


def mutate_values(entry: dict, rng: Random) -> bytes | None:
    """A golden `entry` decoded, some fields given hostile values, encoded again (None if it won't)."""
    from kbroker.errors import ProtocolViolation
    from kbroker.wire import frames
    from kbroker.wire.messages import APIS
    api = APIS.get(entry["api_key"])
    if api is None:
        return None
    version = entry["api_version"]
    try:
        header, body, _ = frames.decode_request(memoryview(entry["frame"]), api, version)
        mutated = _mutate_struct(body, version, rng, rate=rng.choice([0.05, 0.2, 0.5]))
        return frames.encode_request(api, version, header.correlation_id, header.client_id, mutated)[4:]
    except (ProtocolViolation, ValueError, TypeError, OverflowError, struct.error, UnicodeError, AttributeError):
        return None
