"""Record batch v2: header view, produce validation, in-place patches, scanning, record codecs."""
from __future__ import annotations

import struct

import cramjam
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from kbroker.errors import ErrorCode, KafkaError
from kbroker.wire.records import (
    HEADER_SIZE,
    BatchHeader,
    Compression,
    ControlRecordType,
    Record,
    TimestampType,
    assign_offsets,
    build_batch,
    compute_crc,
    control_record_type,
    decode_records,
    scan_batches,
    set_log_append_time,
    validate_produce_batch,
)

MAX = 1_048_588


def records(n: int = 3, *, first: int = 0, base_ts: int = 1_700_000_000_000, value_size: int = 10) -> list[Record]:
    return [Record(first + i, base_ts + i, f"key-{i}".encode(), bytes([65 + i % 26]) * value_size,
                   (("h", b"v"), ("null", None))) for i in range(n)]


def resign(batch: bytearray) -> bytearray:
    struct.pack_into(">I", batch, 17, compute_crc(batch))
    return batch


def patch(batch: bytes, fmt: str, position: int, value: int, *, recrc: bool = True) -> bytearray:
    out = bytearray(batch)
    struct.pack_into(fmt, out, position, value)
    return resign(out) if recrc else out


def code_of(buf: bytes | bytearray) -> ErrorCode:
    with pytest.raises(KafkaError) as info:
        validate_produce_batch(memoryview(bytes(buf)), MAX)
    return info.value.code


# -- header ----------------------------------------------------------------------------------------

def test_header_fields_and_properties() -> None:
    batch = build_batch(records(3, first=100), producer_id=7, producer_epoch=2, base_sequence=40,
                        is_transactional=True, partition_leader_epoch=5, compression=Compression.GZIP)
    header = BatchHeader.parse(batch)
    assert header.size == len(batch) and header.batch_length == len(batch) - 12
    assert (header.base_offset, header.last_offset, header.next_offset) == (100, 102, 103)
    assert header.partition_leader_epoch == 5 and header.magic == 2
    assert header.compression == Compression.GZIP
    assert header.is_transactional and not header.is_control
    assert header.timestamp_type is TimestampType.CREATE_TIME
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (7, 2, 40)
    assert header.last_sequence == 42 and header.record_count == 3
    assert header.base_timestamp == 1_700_000_000_000 and header.max_timestamp == 1_700_000_000_002
    assert header.crc == compute_crc(batch)


def test_last_sequence_wraps_after_int32_max() -> None:
    header = BatchHeader.parse(build_batch(records(3), producer_id=1, producer_epoch=0, base_sequence=2**31 - 2))
    assert header.last_sequence == 0
    assert BatchHeader.parse(build_batch(records(1))).last_sequence == -1


# -- validate_produce_batch ------------------------------------------------------------------------

def test_valid_batch_passes_for_every_codec() -> None:
    for codec in Compression:
        batch = build_batch(records(5, value_size=200), compression=codec)
        header = validate_produce_batch(memoryview(batch), MAX)
        assert header.compression == codec and header.record_count == 5


def test_produce_validation_errors() -> None:
    good = build_batch(records(3))
    assert code_of(b"") == ErrorCode.INVALID_RECORD
    assert code_of(good[:11]) == ErrorCode.INVALID_RECORD
    assert code_of(good[:-1]) == ErrorCode.INVALID_RECORD  # the one batch is incomplete
    assert code_of(patch(good, ">i", 8, 3, recrc=False)) == ErrorCode.CORRUPT_MESSAGE  # length below magic
    assert code_of(patch(good, ">b", 16, 1, recrc=False)) == ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT  # old magic
    assert code_of(patch(good, ">b", 16, 3, recrc=False)) == ErrorCode.CORRUPT_MESSAGE  # unknown magic
    assert code_of(good + good) == ErrorCode.INVALID_RECORD  # two batches
    assert code_of(good + b"\0") == ErrorCode.INVALID_RECORD  # trailing bytes
    assert code_of(patch(good, ">q", 0, 5, recrc=False)) == ErrorCode.INVALID_RECORD  # base offset != 0
    flipped = bytearray(good)
    flipped[-1] ^= 1
    assert code_of(flipped) == ErrorCode.CORRUPT_MESSAGE  # CRC
    assert code_of(patch(good, ">h", 21, 5)) == ErrorCode.UNSUPPORTED_COMPRESSION_TYPE
    assert code_of(patch(good, ">i", 57, 0)) == ErrorCode.INVALID_RECORD  # record count
    assert code_of(patch(good, ">i", 23, 5)) == ErrorCode.INVALID_RECORD  # lastOffsetDelta != count - 1
    assert code_of(patch(good, ">i", 23, -1)) == ErrorCode.INVALID_RECORD
    assert code_of(build_batch(records(1), is_control=True)) == ErrorCode.INVALID_RECORD
    assert code_of(build_batch(records(1), producer_id=9, producer_epoch=0, base_sequence=-1)) == ErrorCode.INVALID_RECORD
    short = bytearray(good[:HEADER_SIZE - 1])
    struct.pack_into(">i", short, 8, len(short) - 12)
    assert code_of(short) == ErrorCode.CORRUPT_MESSAGE  # whole batch smaller than a header


def test_message_too_large_counts_the_whole_batch() -> None:
    batch = build_batch(records(1, value_size=1000))
    validate_produce_batch(memoryview(batch), len(batch))
    with pytest.raises(KafkaError) as info:
        validate_produce_batch(memoryview(batch), len(batch) - 1)
    assert info.value.code == ErrorCode.MESSAGE_TOO_LARGE


def test_non_idempotent_client_variants_pass() -> None:
    # aiokafka: pid -1, epoch -1, seq 0; kafkajs: pid -1, epoch 0, seq 0
    for epoch, seq in ((-1, 0), (0, 0), (-1, -1)):
        batch = build_batch(records(2), producer_id=-1, producer_epoch=epoch, base_sequence=seq)
        assert not validate_produce_batch(memoryview(batch), MAX).has_producer_id


# -- in-place patches ------------------------------------------------------------------------------

def test_assign_offsets_leaves_crc_valid() -> None:
    batch = bytearray(build_batch(records(4)))
    assign_offsets(batch, 1234, 7)
    header = BatchHeader.parse(batch)
    assert (header.base_offset, header.partition_leader_epoch, header.last_offset) == (1234, 7, 1237)
    assert compute_crc(batch) == header.crc
    assert [r.offset for r in decode_records(batch)] == [1234, 1235, 1236, 1237]


def test_set_log_append_time_recomputes_crc() -> None:
    batch = bytearray(build_batch(records(3), compression=Compression.LZ4))
    before = BatchHeader.parse(batch).crc
    set_log_append_time(memoryview(batch), 1_800_000_000_000)
    header = BatchHeader.parse(batch)
    assert header.timestamp_type is TimestampType.LOG_APPEND_TIME
    assert header.max_timestamp == 1_800_000_000_000 and header.compression == Compression.LZ4
    assert header.crc != before and header.crc == compute_crc(batch)
    assert {r.timestamp for r in decode_records(batch)} == {1_800_000_000_000}
    # kafka-python agrees the CRC is valid and reads the broker's time
    theirs = DefaultRecordBatch(bytes(batch))
    assert theirs.validate_crc() and theirs.timestamp_type == 1
    assert {r.timestamp for r in theirs} == {1_800_000_000_000}


# -- scanning --------------------------------------------------------------------------------------

def test_scan_reports_torn_and_corrupt_tails() -> None:
    batches = [build_batch(records(i + 1, first=10 * i)) for i in range(3)]
    stream = b"".join(batches)
    scan = scan_batches(stream)
    found = [(pos, h.base_offset) for pos, h in scan]
    assert found == [(0, 0), (len(batches[0]), 10), (len(batches[0]) + len(batches[1]), 20)]
    assert scan.end == len(stream) and scan.error is None

    scan = scan_batches(stream[:-5])
    assert len(list(scan)) == 2 and scan.end == len(batches[0]) + len(batches[1])
    assert "torn batch" in scan.error

    corrupt = bytearray(stream)
    corrupt[len(batches[0]) + 30] ^= 0xFF
    scan = scan_batches(corrupt)
    assert len(list(scan)) == 1 and scan.end == len(batches[0]) and "CRC" in scan.error
    scan = scan_batches(corrupt, verify_crc=False)
    assert len(list(scan)) == 3

    scan = scan_batches(stream + b"\0" * 20)
    assert len(list(scan)) == 3 and "torn batch header" in scan.error

    scan = scan_batches(stream, len(batches[0]))
    assert [h.base_offset for _, h in scan] == [10, 20]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_scan_never_raises_on_random_bytes(data: bytes) -> None:
    scan = scan_batches(data)
    for position, header in scan:
        assert position + header.size <= len(data)
    assert 0 <= scan.end <= len(data)
    assert (scan.error is None) == (scan.end == len(data))


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_scan_of_a_mutated_stream_stops_at_a_boundary(data: st.DataObject) -> None:
    batches = [build_batch(records(2, first=2 * i)) for i in range(4)]
    stream = bytearray(b"".join(batches))
    boundaries = [0]
    for b in batches:
        boundaries.append(boundaries[-1] + len(b))
    position = data.draw(st.integers(0, len(stream) - 1))
    stream[position] ^= data.draw(st.integers(1, 255))
    cut = data.draw(st.integers(0, len(stream)))
    scan = scan_batches(bytes(stream[:cut]))
    good = list(scan)
    assert scan.end in boundaries and len(good) == boundaries.index(scan.end)
    damaged_batch_start = max(b for b in boundaries if b <= position)
    intact_end = max(b for b in boundaries if b <= min(damaged_batch_start, cut))
    assert intact_end <= scan.end <= cut


# -- records ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("codec", list(Compression))
def test_build_decode_round_trip(codec: Compression) -> None:
    original = records(20, value_size=100) + [Record(20, 1_700_000_000_050, None, None)]
    batch = build_batch(original, compression=codec)
    assert decode_records(batch) == original


def test_decode_handles_both_snappy_framings_and_zstd_without_content_size() -> None:
    original = records(5, value_size=300)
    body = bytearray()
    from kbroker.wire.records import _write_record  # the plain record bytes, to compress by hand
    for r in original:
        _write_record(body, r, 0, original[0].timestamp)
    header = bytearray(build_batch(original)[:HEADER_SIZE])

    def with_body(codec: int, blob: bytes) -> bytes:
        batch = header + blob
        struct.pack_into(">i", batch, 8, len(batch) - 12)
        struct.pack_into(">h", batch, 21, codec)
        return bytes(resign(batch))

    raw_snappy = bytes(cramjam.snappy.compress_raw(bytes(body)))
    assert decode_records(with_body(2, raw_snappy)) == original
    streamed = zstandard.ZstdCompressor(write_content_size=False).compress(bytes(body))
    assert decode_records(with_body(4, streamed)) == original


def test_decode_of_garbage_is_invalid_record() -> None:
    """Kafka's DefaultRecord reader throws InvalidRecordException for records that don't parse."""
    batch = bytearray(build_batch(records(3)))
    batch[HEADER_SIZE] = 0x7E  # the first record claims 63 bytes: it runs into the next one
    with pytest.raises(KafkaError) as info:
        decode_records(batch)
    assert info.value.code == ErrorCode.INVALID_RECORD
    compressed = bytearray(build_batch(records(3, value_size=300), compression=Compression.ZSTD))
    compressed[HEADER_SIZE + 5] ^= 0xFF
    with pytest.raises(KafkaError) as info:
        decode_records(compressed)
    assert info.value.code == ErrorCode.INVALID_RECORD


@pytest.mark.parametrize("codec", list(Compression))
def test_kafka_python_builder_decodes_with_ours(codec: Compression) -> None:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=int(codec), is_transactional=False,
                                        producer_id=5, producer_epoch=1, base_sequence=10, batch_size=1 << 20)
    for r in records(10, value_size=200):
        builder.append(r.offset, r.timestamp, r.key, r.value, list(r.headers))
    batch = bytes(builder.build())
    header = validate_produce_batch(memoryview(batch), MAX)
    assert header.compression == codec  # compressible values, so kafka-python kept the codec
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (5, 1, 10)
    assert decode_records(batch) == records(10, value_size=200)


@pytest.mark.parametrize("codec", list(Compression))
def test_our_batches_decode_with_kafka_python(codec: Compression) -> None:
    original = records(10, first=500, value_size=200)
    batch = build_batch(original, compression=codec)
    theirs = DefaultRecordBatch(batch)
    assert theirs.validate_crc() and theirs.compression_type == codec and theirs.base_offset == 500
    assert [(r.offset, r.timestamp, r.key, r.value, [tuple(h) for h in r.headers]) for r in theirs] == \
        [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in original]


def test_control_record_type() -> None:
    marker = Record(0, 1_700_000_000_000, struct.pack(">hh", 0, 1), struct.pack(">hi", 0, 3))
    batch = build_batch([marker], producer_id=4, producer_epoch=0, is_control=True, is_transactional=True)
    assert BatchHeader.parse(batch).is_control
    assert control_record_type(batch) is ControlRecordType.COMMIT
    abort = build_batch([Record(0, 0, struct.pack(">hh", 0, 0), None)], is_control=True)
    assert control_record_type(abort) is ControlRecordType.ABORT
