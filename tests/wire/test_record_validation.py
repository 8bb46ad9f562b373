"""Produce walks every record as Kafka's LogValidator does: records that don't tile their batch,
payloads that don't decompress and decompression bombs are refused, whatever the codec."""
from __future__ import annotations

import gzip
import struct
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kbroker.errors import ErrorCode, KafkaError
from kbroker.wire.records import (
    ATTRIBUTES_OFFSET,
    CRC_OFFSET,
    HEADER_SIZE,
    LAST_OFFSET_DELTA_OFFSET,
    LENGTH_OFFSET,
    LOG_OVERHEAD,
    MAX_DECOMPRESSION_RATIO,
    RECORDS_COUNT_OFFSET,
    Compression,
    Record,
    _check_records,
    _compress,
    _write_record,
    build_batch,
    compute_crc,
    keyless_record_indexes,
    validate_produce_batch,
)

MAX = 1_048_588
NOW = 1_700_000_000_000


def _records(count: int = 5, value_size: int = 30) -> list[Record]:
    return [Record(i, NOW + i, b"k%d" % i, b"v" * value_size) for i in range(count)]


def _body(records: list[Record]) -> bytearray:
    body = bytearray()
    for record in records:
        _write_record(body, record, 0, NOW)
    return body


def _batch(body: bytes, codec: Compression, count: int) -> memoryview:
    """A signed batch holding `body` (compressed with `codec`) that says it has `count` records."""
    good = build_batch(_records(1), base_offset=0)
    blob = _compress(codec, bytes(body)) if codec else bytes(body)
    batch = bytearray(good[:HEADER_SIZE]) + blob
    struct.pack_into(">i", batch, LENGTH_OFFSET, len(batch) - LOG_OVERHEAD)
    struct.pack_into(">h", batch, ATTRIBUTES_OFFSET, codec)
    struct.pack_into(">i", batch, LAST_OFFSET_DELTA_OFFSET, count - 1)
    struct.pack_into(">i", batch, RECORDS_COUNT_OFFSET, count)
    struct.pack_into(">I", batch, CRC_OFFSET, compute_crc(batch))
    return memoryview(bytes(batch))


def _refusal(batch: memoryview, max_message_bytes: int = MAX) -> KafkaError:
    with pytest.raises(KafkaError) as info:
        validate_produce_batch(batch, max_message_bytes)
    return info.value


CODECS = list(Compression)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
def test_well_formed_records_pass(codec: Compression) -> None:
    validate_produce_batch(_batch(_body(_records()), codec, 5), MAX)


def _first_record_longer(body: bytearray) -> bytearray:
    body[0] += 2 * 40  # the length varint (one byte): 40 bytes more than are there
    return body


MALFORMED = {
    "a record runs past the batch": lambda: (_first_record_longer(_body(_records(1))), 1),
    "a record runs into the next": lambda: (_first_record_longer(_body(_records(3))), 3),
    "more records counted than sent": lambda: (_body(_records(3)), 4),
    "fewer records counted than sent": lambda: (_body(_records(3)), 2),
    "bytes after the last record": lambda: (_body(_records(3)) + b"\x00\x01\x02", 3),
    "a negative record length": lambda: (b"\x01" + _body(_records(1))[1:], 1),
    "a record shorter than its fields": lambda: (b"\x08" + bytes(4), 1),
    "a length varint cut by the end": lambda: (_body(_records(1)) + b"\x80", 2),
}


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name)
@pytest.mark.parametrize("case", MALFORMED)
def test_records_that_do_not_tile_the_batch_are_invalid_record(codec: Compression, case: str) -> None:
    body, count = MALFORMED[case]()
    assert _refusal(_batch(body, codec, count)).code == ErrorCode.INVALID_RECORD


@pytest.mark.parametrize("codec", [c for c in CODECS if c], ids=lambda c: c.name)
def test_payload_that_does_not_decompress_is_invalid_record(codec: Compression) -> None:
    good = bytearray(_batch(_body(_records(20)), codec, 20))
    garbage = bytearray(good[:HEADER_SIZE]) + b"\x00not compressed at all" * 10
    struct.pack_into(">i", garbage, LENGTH_OFFSET, len(garbage) - LOG_OVERHEAD)
    struct.pack_into(">I", garbage, CRC_OFFSET, compute_crc(garbage))
    assert _refusal(memoryview(bytes(garbage))).code == ErrorCode.INVALID_RECORD
    truncated = good[:-6]
    struct.pack_into(">i", truncated, LENGTH_OFFSET, len(truncated) - LOG_OVERHEAD)
    struct.pack_into(">I", truncated, CRC_OFFSET, compute_crc(truncated))
    assert _refusal(memoryview(bytes(truncated))).code == ErrorCode.INVALID_RECORD


@pytest.mark.parametrize("codec", [c for c in CODECS if c], ids=lambda c: c.name)
def test_decompression_stops_at_the_ceiling_with_bounded_memory(codec: Compression) -> None:
    """One 40 MiB record of zeros: compressed it fits max.message.bytes, decompressed it passes the
    ceiling (max.message.bytes x 16), and neither check holds more than a few chunks."""
    bomb = _batch(_body([Record(0, NOW, b"k", bytes(40 << 20))]), codec, 1)
    max_message_bytes = 2 << 20
    assert len(bomb) < max_message_bytes
    tracemalloc.start()
    try:
        assert _refusal(bomb, max_message_bytes).code == ErrorCode.INVALID_RECORD
        _, walk_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with pytest.raises(KafkaError) as info:
            keyless_record_indexes(bomb, max_message_bytes * MAX_DECOMPRESSION_RATIO)
        _, key_check_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.value.code == ErrorCode.INVALID_RECORD
    assert walk_peak < 8 << 20
    assert key_check_peak < max_message_bytes * MAX_DECOMPRESSION_RATIO + (8 << 20)


def test_batch_just_under_the_ceiling_passes() -> None:
    batch = _batch(_body([Record(0, NOW, b"k", bytes(15 << 20))]), Compression.GZIP, 1)
    validate_produce_batch(batch, 1 << 20)


def test_gzip_members_in_a_row_are_one_stream() -> None:
    body = _body(_records(4))
    batch = bytearray(_batch(body, Compression.GZIP, 4))
    two_members = gzip.compress(bytes(body[:len(body) // 2])) + gzip.compress(bytes(body[len(body) // 2:]))
    batch = batch[:HEADER_SIZE] + two_members
    struct.pack_into(">i", batch, LENGTH_OFFSET, len(batch) - LOG_OVERHEAD)
    struct.pack_into(">I", batch, CRC_OFFSET, compute_crc(batch))
    validate_produce_batch(memoryview(bytes(batch)), MAX)


# -- the boundary walk against a plain reference, with the records cut into chunks anywhere ---------

def _tiles(body: bytes, count: int) -> bool:
    """The plain walk: each record's length prefix leads to the next, `count` of them end at the end."""
    pos = 0
    for _ in range(count):
        raw = shift = 0
        while True:
            if pos >= len(body) or shift > 63:
                return False
            byte = body[pos]
            pos += 1
            raw |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        length = (raw >> 1) ^ -(raw & 1)
        if length < 6:
            return False
        pos += length
    return pos == len(body)


def _walk_accepts(chunks: list[bytes], count: int) -> bool:
    try:
        _check_records(chunks, count)
    except KafkaError as e:
        assert e.code == ErrorCode.INVALID_RECORD
        return False
    return True


# Sizes in runs (what producers send, and what the stride check takes many at a time) and not.
_sizes = st.lists(st.tuples(st.integers(0, 300), st.integers(1, 40)), min_size=1, max_size=8)


@given(_sizes, st.data())
def test_walk_agrees_with_the_plain_walk(runs, data) -> None:
    records = [Record(i, NOW, None, b"x" * size) for i, size in enumerate(s for s, n in runs for _ in range(n))]
    body = bytearray(_body(records))
    count = len(records) + data.draw(st.sampled_from([0, 0, 0, -1, 1]))
    for _ in range(data.draw(st.integers(0, 3))):
        body[data.draw(st.integers(0, len(body) - 1))] = data.draw(st.integers(0, 255))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=4)))
    chunks = [bytes(body[a:b]) for a, b in zip([0, *cuts], [*cuts, len(body)])]
    assert _walk_accepts(chunks, count) == _tiles(bytes(body), count)
