"""Mutations of real client frames, shared by the fuzz tests and the live fuzz (stress/live_fuzz.py).

`mutate(frame, rng)` takes a request frame (api_key onward, no size prefix), applies one to a
few of the operations below with `rng` (a `random.Random`, or Hypothesis' `st.randoms()` so
that failures shrink) and returns new bytes. The mix favours what breaks decoders and handlers:
integers at their boundaries written over any aligned or unaligned position (lengths, counts,
partition indexes, offsets, timeouts), varints, truncation, bytes inserted or removed in the
middle of a field, repeated chunks, and the tail of another frame spliced on. The request
header's first 8 bytes (api key, version, correlation id) are usually kept, so the mutation
reaches the decoder and handler of a real (api, version) instead of a closed connection.
"""
from __future__ import annotations

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
