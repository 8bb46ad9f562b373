"""Record batch v2 (magic 2): a zero-copy view of the 61-byte header, one record reader, produce checks.

Layout (big-endian; offsets from the start of the batch, named as Kafka's DefaultRecordBatch names them):

     0  baseOffset            int64    first offset in the batch (the broker assigns it)
     8  batchLength           int32    bytes after this field, so a batch is batchLength + 12 bytes
    12  partitionLeaderEpoch  int32    stamped by the leader on append
    16  magic                 int8     2
    17  crc                   uint32   CRC-32C (Castagnoli) of bytes 21..end
    21  attributes            int16    bits 0-2 codec (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd),
                                       bit 3 timestamp type (1 = LogAppendTime), bit 4 transactional,
                                       bit 5 control batch, bit 6 delete horizon set
    23  lastOffsetDelta       int32    last offset - baseOffset
    27  baseTimestamp         int64    timestamp of the first record
    35  maxTimestamp          int64    greatest record timestamp (or the broker's time for LogAppendTime)
    43  producerId            int64    -1 when the producer is not idempotent
    51  producerEpoch         int16
    53  baseSequence          int32    -1 when the producer is not idempotent
    57  recordCount           int32
    61  records: recordCount records, or one compressed blob holding them (recordCount stays plain)

baseOffset, batchLength, partitionLeaderEpoch and magic lie outside the CRC, so the broker validates
the CRC once, patches baseOffset and partitionLeaderEpoch in place and stores the bytes as they came.
Only LogAppendTime touches covered bytes (attributes, maxTimestamp), and then the CRC is recomputed.

Each record (inside the blob when compressed), with zigzag varints (Kafka's DefaultRecord):
    length varint (bytes after it), attributes int8 (unused), timestampDelta varlong,
    offsetDelta varint, keyLength varint (-1 = null), key, valueLength varint (-1 = null), value,
    headerCount varint, then per header: keyLength varint, key (UTF-8), valueLength varint, value.

`record_spans` is the one record reader (the cleaner, the group loader, the compacted-topic key
check and `decode_records` use it). Produce walks only the record boundaries (`_check_records`),
as a stream.
"""
from __future__ import annotations

import gzip
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

import cramjam
import crc32c
import lz4.frame
import zstandard

from kbroker.errors import ErrorCode, KafkaError
from kbroker.wire.primitives import DecodeError, read_uvarint, read_varint, write_varint

BASE_OFFSET_OFFSET = 0
LENGTH_OFFSET = 8
PARTITION_LEADER_EPOCH_OFFSET = 12
MAGIC_OFFSET = 16
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21
LAST_OFFSET_DELTA_OFFSET = 23
BASE_TIMESTAMP_OFFSET = 27
MAX_TIMESTAMP_OFFSET = 35
PRODUCER_ID_OFFSET = 43
PRODUCER_EPOCH_OFFSET = 51
BASE_SEQUENCE_OFFSET = 53
RECORDS_COUNT_OFFSET = 57
RECORDS_OFFSET = 61

HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = RECORDS_OFFSET  # HEADER.size
LOG_OVERHEAD = LENGTH_OFFSET + 4  # baseOffset + batchLength: the bytes not counted by batchLength
MAGIC = 2

_CODEC_MASK = 0x07
_TIMESTAMP_TYPE_BIT = 0x08
_TRANSACTIONAL_BIT = 0x10
_CONTROL_BIT = 0x20
_DELETE_HORIZON_BIT = 0x40

# The smallest record after its length: attributes, timestampDelta, offsetDelta, keyLength,
# valueLength and headerCount, one byte each.
_MIN_RECORD_LENGTH = 6

# How far the records of a compressed batch may decompress, per byte of max.message.bytes. Kafka
# bounds only the compressed batch ("after compression") and a Java producer fills batch.size with
# compressed bytes, so its batches legitimately hold several times the limit; the ceiling keeps a
# small bomb from costing more than a bounded amount of memory and CPU.
MAX_DECOMPRESSION_RATIO = 16

INT32_MAX = 2**31 - 1
NO_TIMESTAMP = -1


class Compression(IntEnum):
    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4


class TimestampType(IntEnum):
    CREATE_TIME = 0
    LOG_APPEND_TIME = 1


class ControlRecordType(IntEnum):
    """The `type` in a control record's key (key: version int16, type int16)."""
    ABORT = 0
    COMMIT = 1


@dataclass(frozen=True, slots=True)
class BatchHeader:
    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @classmethod
    def parse(cls, buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
        """The header at buf[pos:pos + 61]; the caller checks there are 61 bytes."""
        return cls(*HEADER.unpack_from(buf, pos))

    @property
    def size(self) -> int:
        """Bytes of the whole batch, the 12-byte offset/length prefix included."""
        return self.batch_length + LOG_OVERHEAD

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        return self.last_offset + 1

    @property
    def compression(self) -> int:
        """The codec id, 0-4 (a `Compression`); 5-7 are invalid and rejected on produce."""
        return self.attributes & _CODEC_MASK

    @property
    def timestamp_type(self) -> TimestampType:
        return TimestampType(bool(self.attributes & _TIMESTAMP_TYPE_BIT))

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & _TRANSACTIONAL_BIT)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & _CONTROL_BIT)

    @property
    def has_delete_horizon(self) -> bool:
        return bool(self.attributes & _DELETE_HORIZON_BIT)

    @property
    def has_producer_id(self) -> bool:
        return self.producer_id >= 0

    @property
    def last_sequence(self) -> int:
        """The sequence of the last record; sequences wrap from INT32_MAX to 0."""
        if self.base_sequence < 0:
            return -1
        return _increment_sequence(self.base_sequence, self.last_offset_delta)


def _increment_sequence(sequence: int, increment: int) -> int:
    if sequence > INT32_MAX - increment:
        return increment - (INT32_MAX - sequence) - 1
    return sequence + increment


def compute_crc(batch: bytes | bytearray | memoryview) -> int:
    return crc32c.crc32c(memoryview(batch)[ATTRIBUTES_OFFSET:])


# ---------------------------------------------------------------------------------------------
# Produce validation (Kafka: ProduceRequest.validateRecords, UnifiedLog.analyzeAndValidateRecords,
# LogValidator.validateBatch and its record iteration), in Kafka's order.


def validate_produce_batch(buf: memoryview, max_message_bytes: int) -> BatchHeader:
    """Check the records field of one produce partition (Produce v3+) and return its header.

    Every record boundary is walked (decompressing first, up to `decompressed_limit`), so a batch
    whose records do not add up to it is refused before it reaches the log, where a consumer
    would stop at it for good.
    """
    n = len(buf)
    if n < LOG_OVERHEAD:
        raise KafkaError(ErrorCode.INVALID_RECORD,
                         "Produce requests must have at least one record batch per partition")
    (batch_length,) = struct.unpack_from(">i", buf, LENGTH_OFFSET)
    if batch_length < MAGIC_OFFSET + 1 - LOG_OVERHEAD:
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE,
                         f"Record batch length {batch_length} is less than the minimum record overhead")
    size = batch_length + LOG_OVERHEAD
    if size > n:
        raise KafkaError(ErrorCode.INVALID_RECORD,
                         "Produce requests must have at least one record batch per partition "
                         f"(the batch says {size} bytes, {n} were sent)")
    magic = struct.unpack_from(">b", buf, MAGIC_OFFSET)[0]
    if magic < 0 or magic > MAGIC:
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE, f"Invalid magic found in record: {magic}")
    if magic != MAGIC:  # message format v0/v1: rejected, as Kafka 4 does
        raise KafkaError(ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT,
                         "Produce requests are only allowed to contain record batches with magic version 2")
    if size != n:
        raise KafkaError(ErrorCode.INVALID_RECORD,
                         "Produce requests are only allowed to contain exactly one record batch per partition")
    if size < HEADER_SIZE:
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE,
                         f"Record batch size {size} is smaller than the minimum allowed overhead {HEADER_SIZE}")
    header = BatchHeader.parse(buf)
    if header.base_offset != 0:
        raise KafkaError(ErrorCode.INVALID_RECORD,
                         f"The baseOffset of the record batch should be 0, but it is {header.base_offset}")
    if size > max_message_bytes:
        raise KafkaError(ErrorCode.MESSAGE_TOO_LARGE,
                         f"The record batch size is {size} bytes which exceeds the maximum configured "
                         f"value of {max_message_bytes}")
    if compute_crc(buf) != header.crc:
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE, f"Record is corrupt (stored crc = {header.crc})")
    if header.compression > Compression.ZSTD:
        raise KafkaError(ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
                         f"Unknown compression type id: {header.compression}")
    if header.last_offset_delta < 0:
        raise KafkaError(ErrorCode.INVALID_RECORD,
                         f"Batch has an invalid offset range: [0, {header.last_offset_delta}]")
    if header.record_count <= 0:
        raise KafkaError(ErrorCode.INVALID_RECORD,
                         f"Invalid reported count for record batch: {header.record_count}")
    if header.record_count != header.last_offset_delta + 1:
        raise KafkaError(ErrorCode.INVALID_RECORD,
                         f"Inconsistent batch offset range [0, {header.last_offset_delta}] and count of "
                         f"records {header.record_count}")
    if header.is_control:
        raise KafkaError(ErrorCode.INVALID_RECORD, "Clients are not allowed to write control records")
    if header.has_producer_id and header.base_sequence < 0:
        raise KafkaError(ErrorCode.INVALID_RECORD,
                         f"Invalid sequence number {header.base_sequence} in record batch with "
                         f"producerId {header.producer_id}")
    records = buf[RECORDS_OFFSET:]
    if header.compression == Compression.NONE:
        _check_records((bytes(records),), header.record_count)  # indexing bytes beats a memoryview
    else:
        _check_records(_decompressed(header.compression, records, decompressed_limit(max_message_bytes)),
                       header.record_count)
    return header


def decompressed_limit(max_message_bytes: int) -> int:
    """The most the records of one batch may decompress to, for a topic's max.message.bytes."""
    return max_message_bytes * MAX_DECOMPRESSION_RATIO


def _check_records(chunks: Iterable[bytes], count: int) -> None:
    """Walk the length prefix of each of the `count` records: they must tile the records exactly.

    Kafka's DefaultRecordBatch iterator refuses the same things (InvalidRecordException): a record
    running past the batch, fewer records than the count says, bytes left after the last one. The
    records come in chunks (decompressed as a stream); a record may continue in later chunks, and a
    length prefix cut by a chunk's end is carried over to the next.
    """
    remaining = count
    pending = b""  # the unwalked end of the last chunk: a length prefix cut in two
    skip = 0  # bytes of the last record started that are still to come
    for chunk in chunks:
        if skip >= len(chunk):
            skip -= len(chunk)
            continue
        if not remaining:
            break  # bytes after the last record: refused below, without decompressing the rest
        body = pending + chunk if pending else chunk[skip:] if skip else chunk
        pos, remaining = _walk_records(body, remaining, len(body) - _MAX_VARINT_BYTES)
        skip = max(pos - len(body), 0)
        pending = body[pos:]
    else:
        pos, remaining = _walk_records(pending, remaining, len(pending))
        if skip or pos > len(pending):
            raise KafkaError(ErrorCode.INVALID_RECORD, "Invalid record size: the last record runs past the records")
        if pos == len(pending) and not remaining:
            return
    if remaining:
        raise KafkaError(ErrorCode.INVALID_RECORD, "Incorrect declared batch size, premature EOF reached")
    raise KafkaError(ErrorCode.INVALID_RECORD, "Incorrect declared batch size, records still remaining in file")


_MAX_VARINT_BYTES = 10


def _walk_records(body: bytes, remaining: int, stop: int) -> tuple[int, int]:
    """Step from record to record by their length prefixes, from the start of `body` while a prefix
    starts before `stop` and records remain; returns where the next record starts (maybe past the
    end of `body`) and how many records remain.

    Records of one size in a row (what producers send: equal values, and deltas whose varints keep
    their width) are checked many at a time by `_same_size_records`; a record of another size costs
    one step of this loop.
    """
    pos = 0
    previous = streak = 0
    patience = 1  # equal sizes in a row before trying a run; doubles while runs turn out short
    try:
        while remaining and pos < stop:
            b = body[pos]
            if b < 0x80:
                width = 1
            elif body[pos + 1] < 0x80:
                width = 2
                b = (b & 0x7F) | (body[pos + 1] << 7)
            else:
                b, width = read_uvarint(body, pos)
                width -= pos
            length = (b >> 1) ^ -(b & 1)
            if length < _MIN_RECORD_LENGTH:
                raise KafkaError(ErrorCode.INVALID_RECORD, f"Invalid record size {length}")
            size = width + length
            if size != previous:
                previous = size
                streak = 0
            else:
                streak += 1
                if streak >= patience:
                    run = _same_size_records(body, pos, size, width, remaining)
                    patience = 1 if run >= 8 else min(patience * 2, 64)
                    if run > 1:
                        pos += (run - 1) * size
                        remaining -= run - 1
            pos += size
            remaining -= 1
    except IndexError:
        raise KafkaError(ErrorCode.INVALID_RECORD, "Incorrect declared batch size, premature EOF reached") from None
    except DecodeError as e:
        raise KafkaError(ErrorCode.INVALID_RECORD, f"Found invalid record structure: {e}") from None
    return pos, remaining


def _same_size_records(body: bytes, pos: int, size: int, width: int, most: int) -> int:
    """How many records from `pos` on (at most `most`) start with the same `width`-byte length
    prefix as the one at `pos`, each therefore `size` bytes long, the last one ending inside `body`."""
    lead = [body[i:i + 1] for i in range(pos, pos + width)]
    found = 0
    probe = 8
    while True:
        k = min(probe, most - found, (len(body) - pos) // size)
        if k <= 0:
            return found
        same = k
        for i, byte in enumerate(lead, pos):
            column = body[i:i + k * size:size]  # the same byte of k records in a row
            same = min(same, k - len(column.lstrip(byte)))
        found += same
        pos += same * size
        if same < k or found == most:
            return found
        probe *= 2


# ---------------------------------------------------------------------------------------------
# In-place patches


def assign_offsets(batch: bytearray | memoryview, base_offset: int, leader_epoch: int) -> None:
    """Write baseOffset and partitionLeaderEpoch; both lie outside the CRC."""
    struct.pack_into(">q", batch, BASE_OFFSET_OFFSET, base_offset)
    struct.pack_into(">i", batch, PARTITION_LEADER_EPOCH_OFFSET, leader_epoch)


def set_log_append_time(batch: bytearray | memoryview, timestamp_ms: int) -> None:
    """Mark the batch LogAppendTime with the broker's clock, then recompute the CRC."""
    (attributes,) = struct.unpack_from(">h", batch, ATTRIBUTES_OFFSET)
    struct.pack_into(">h", batch, ATTRIBUTES_OFFSET, attributes | _TIMESTAMP_TYPE_BIT)
    struct.pack_into(">q", batch, MAX_TIMESTAMP_OFFSET, timestamp_ms)
    struct.pack_into(">I", batch, CRC_OFFSET, compute_crc(batch))


# ---------------------------------------------------------------------------------------------
# Scanning consecutive batches (segment recovery, index rebuild, producer-state replay)


class BatchScan:
    """Iterate `(position, header)` over consecutive batches in `buf` from `start_pos`.

    Iteration stops quietly at the first batch that is torn (runs past the end of the buffer) or
    invalid (length below the header size, magic other than 2, CRC mismatch when `verify_crc`).
    Afterwards `end` is the position just after the last good batch and `error` says why the scan
    stopped early, or is None when the buffer ended exactly at a batch boundary. Nothing here raises
    for bad bytes.
    """

    def __init__(self, buf: bytes | bytearray | memoryview, start_pos: int = 0, *,
                 verify_crc: bool = True) -> None:
        self._buf = memoryview(buf)
        self._verify_crc = verify_crc
        self.end = start_pos
        self.error: str | None = None

    def __iter__(self) -> Iterator[tuple[int, BatchHeader]]:
        buf, n, pos = self._buf, len(self._buf), self.end
        while pos < n:
            if n - pos < HEADER_SIZE:
                self.error = f"torn batch header: {n - pos} bytes at position {pos}"
                break
            header = BatchHeader.parse(buf, pos)
            if header.magic != MAGIC:
                self.error = f"magic {header.magic} at position {pos}"
                break
            if header.size < HEADER_SIZE:
                self.error = f"batch length {header.batch_length} below the header size at position {pos}"
                break
            if header.size > n - pos:
                self.error = (f"torn batch at position {pos}: {header.size} bytes declared, "
                              f"{n - pos} present")
                break
            if self._verify_crc and compute_crc(buf[pos:pos + header.size]) != header.crc:
                self.error = f"CRC mismatch in the batch at position {pos} (offset {header.base_offset})"
                break
            yield pos, header
            pos += header.size
            self.end = pos


def scan_batches(buf: bytes | bytearray | memoryview, start_pos: int = 0, *,
                 verify_crc: bool = True) -> BatchScan:
    return BatchScan(buf, start_pos, verify_crc=verify_crc)


# ---------------------------------------------------------------------------------------------
# Records: decoding and building (not on the produce/fetch path)


@dataclass(frozen=True, slots=True)
class Record:
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


def decode_records(batch: bytes | bytearray | memoryview) -> list[Record]:
    """All records of one whole batch (any codec). Malformed content raises INVALID_RECORD."""
    view = memoryview(batch)
    if len(view) < HEADER_SIZE:
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE, "record batch shorter than its header")
    header = BatchHeader.parse(view)
    if header.size > len(view):
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE, "torn record batch")
    body = bytes(batch_body(view))
    log_append_time = header.timestamp_type is TimestampType.LOG_APPEND_TIME
    records: list[Record] = []
    for span in record_spans(body, header.record_count):
        start, end, _, timestamp_delta, offset_delta, key, pos = span
        try:
            value, pos = _read_bytes(body, pos, end)
            header_count, pos = read_varint(body, pos)
            headers = []
            for _ in range(header_count):
                header_key, pos = _read_bytes(body, pos, end)
                header_value, pos = _read_bytes(body, pos, end)
                if header_key is None:
                    raise ValueError("null header key")
                headers.append((header_key.decode(), header_value))
            if pos != end:
                raise ValueError("record length does not match its fields")
        except (ValueError, DecodeError) as e:  # UnicodeDecodeError is a ValueError
            raise KafkaError(ErrorCode.INVALID_RECORD, f"malformed record at byte {start} of the batch at offset "
                                                       f"{header.base_offset}: {e}") from None
        timestamp = header.max_timestamp if log_append_time else header.base_timestamp + timestamp_delta
        records.append(Record(header.base_offset + offset_delta, timestamp, key, value, tuple(headers)))
    return records


def control_record_type(batch: bytes | bytearray | memoryview) -> ControlRecordType:
    """Whether a control batch (a transaction marker) commits or aborts."""
    records = decode_records(batch)
    key = records[0].key if records else None
    if key is None or len(key) < 4:
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE, "control batch without a control record key")
    _version, kind = struct.unpack_from(">hh", key)
    try:
        return ControlRecordType(kind)
    except ValueError:
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE, f"unknown control record type {kind}") from None


class EndTxnMarker(NamedTuple):
    """A control batch's record: key version int16 = 0 | type int16 (ControlRecordType); value
    (Kafka's EndTransactionMarker) version int16 = 0 | coordinator epoch int32."""
    kind: ControlRecordType
    coordinator_epoch: int


_MARKER_KEY = struct.Struct(">hh")
_MARKER_VALUE = struct.Struct(">hi")


def end_txn_marker(batch: bytes | bytearray | memoryview) -> EndTxnMarker:
    """The COMMIT / ABORT marker of a control batch (its coordinator epoch -1 if the value lacks it)."""
    kind = control_record_type(batch)
    value = decode_records(batch)[0].value
    epoch = _MARKER_VALUE.unpack_from(value)[1] if value is not None and len(value) >= _MARKER_VALUE.size else -1
    return EndTxnMarker(kind, epoch)


def build_control_batch(marker: EndTxnMarker, *, producer_id: int, producer_epoch: int, timestamp_ms: int) -> bytes:
    """A transaction marker batch as Kafka's coordinator has it written: transactional and control,
    no sequence, one record at offset delta 0."""
    record = Record(0, timestamp_ms, _MARKER_KEY.pack(0, marker.kind), _MARKER_VALUE.pack(0, marker.coordinator_epoch))
    return build_batch([record], producer_id=producer_id, producer_epoch=producer_epoch,
                       is_transactional=True, is_control=True)


def build_batch(records: Sequence[Record], *, base_offset: int | None = None,
                compression: Compression | int = Compression.NONE, producer_id: int = -1,
                producer_epoch: int = -1, base_sequence: int = -1,
                timestamp_type: TimestampType | int = TimestampType.CREATE_TIME,
                is_transactional: bool = False, is_control: bool = False,
                partition_leader_epoch: int = -1, last_offset_delta: int | None = None) -> bytes:
    """One batch holding `records` at their offsets (delta = `record.offset - base_offset`).

    `base_offset` defaults to the first record's offset, and `last_offset_delta` to the last
    record's delta; compaction passes both to keep a batch's original offset range.
    """
    if not records:
        raise ValueError("a record batch needs at least one record")
    if base_offset is None:
        base_offset = records[0].offset
    base_timestamp = records[0].timestamp
    body = bytearray()
    for record in records:
        _write_record(body, record, base_offset, base_timestamp)
    if compression != Compression.NONE:
        body = bytearray(_compress(compression, bytes(body)))
    attributes = (int(compression) | (_TIMESTAMP_TYPE_BIT if timestamp_type else 0)
                  | (_TRANSACTIONAL_BIT if is_transactional else 0) | (_CONTROL_BIT if is_control else 0))
    if last_offset_delta is None:
        last_offset_delta = records[-1].offset - base_offset
    max_timestamp = max(record.timestamp for record in records)
    batch = bytearray(HEADER_SIZE) + body
    HEADER.pack_into(batch, 0, base_offset, len(batch) - LOG_OVERHEAD, partition_leader_epoch, MAGIC, 0,
                     attributes, last_offset_delta, base_timestamp, max_timestamp, producer_id,
                     producer_epoch, base_sequence, len(records))
    struct.pack_into(">I", batch, CRC_OFFSET, compute_crc(batch))
    return bytes(batch)


def _write_record(out: bytearray, record: Record, base_offset: int, base_timestamp: int) -> None:
    body = bytearray(b"\x00")  # attributes
    write_varint(body, record.timestamp - base_timestamp)
    write_varint(body, record.offset - base_offset)
    _write_bytes(body, record.key)
    _write_bytes(body, record.value)
    write_varint(body, len(record.headers))
    for key, value in record.headers:
        _write_bytes(body, key.encode())
        _write_bytes(body, value)
    write_varint(out, len(body))
    out += body


def _write_bytes(out: bytearray, data: bytes | None) -> None:
    if data is None:
        write_varint(out, -1)
    else:
        write_varint(out, len(data))
        out += data


def _read_bytes(buf: bytes, pos: int, end: int) -> tuple[bytes | None, int]:
    """A nullable bytes field (varint length) that must end by `end`."""
    length, pos = read_varint(buf, pos)
    if length < 0:
        return None, pos
    field_end = pos + length
    if field_end > end:
        raise ValueError("field runs past the end of its record")
    return buf[pos:field_end], field_end


# ---------------------------------------------------------------------------------------------
# The record reader. A span is a plain tuple, for speed:
#     (start, end, fields, timestamp_delta, offset_delta, key, value_pos)
# where buf[start:end] is the whole record (its length varint included), buf[fields:end] is
# everything after timestampDelta (offsetDelta, key, value, headers) and value_pos is where the
# valueLength varint starts (a null value is the single byte 0x01, zigzag -1). A batch rebuilt from
# spans keeps its base offset, so offset deltas stay valid and records are copied as they are, unless
# the base timestamp changes (the delete horizon), when each timestampDelta is re-encoded.

RecordSpan = tuple[int, int, int, int, int, "bytes | None", int]


def batch_body(batch: bytes | bytearray | memoryview, limit: int | None = None) -> bytes | memoryview:
    """The records of one whole batch, decompressed (INVALID_RECORD if they don't decompress, or
    decompress to more than `limit` bytes)."""
    view = memoryview(batch)
    header = BatchHeader.parse(view)
    records = view[RECORDS_OFFSET:header.size]
    if header.compression == Compression.NONE:
        return records
    return _decompress(header.compression, records, limit)


def record_spans(buf: bytes | memoryview, count: int, pos: int = 0, end: int | None = None) -> list[RecordSpan]:
    """The `count` records in buf[pos:end] (a decompressed body, or the records of an uncompressed
    batch in place); records that do not tile the range exactly raise INVALID_RECORD.

    The hot loop of the log cleaner and of the group loader: varints of one and two bytes (nearly
    all of them) are decoded inline, the rest by `read_uvarint`.
    """
    if not isinstance(buf, bytes):
        buf = bytes(buf)  # indexing and slicing bytes is faster than a memoryview
    if end is None:
        end = len(buf)
    spans = []
    append = spans.append
    try:
        for _ in range(count):
            start = pos
            b = buf[pos]
            if b < 0x80:
                pos += 1
            elif buf[pos + 1] < 0x80:
                b = (b & 0x7F) | (buf[pos + 1] << 7)
                pos += 2
            else:
                b, pos = read_uvarint(buf, pos)
            record_end = pos + ((b >> 1) ^ -(b & 1))
            pos += 1  # attributes
            b = buf[pos]
            if b < 0x80:
                pos += 1
            elif buf[pos + 1] < 0x80:
                b = (b & 0x7F) | (buf[pos + 1] << 7)
                pos += 2
            else:
                b, pos = read_uvarint(buf, pos)
            timestamp_delta = (b >> 1) ^ -(b & 1)
            fields = pos
            b = buf[pos]
            if b < 0x80:
                pos += 1
            elif buf[pos + 1] < 0x80:
                b = (b & 0x7F) | (buf[pos + 1] << 7)
                pos += 2
            else:
                b, pos = read_uvarint(buf, pos)
            offset_delta = (b >> 1) ^ -(b & 1)
            b = buf[pos]
            if b == 1:  # zigzag(-1): a null key
                key = None
                pos += 1
            else:
                if b < 0x80:
                    pos += 1
                elif buf[pos + 1] < 0x80:
                    b = (b & 0x7F) | (buf[pos + 1] << 7)
                    pos += 2
                else:
                    b, pos = read_uvarint(buf, pos)
                if b & 1:
                    raise ValueError("negative key length")
                key_end = pos + (b >> 1)
                key = buf[pos:key_end]
                pos = key_end
            # The valueLength varint comes next, inside the record.
            if not pos < record_end <= end:
                raise ValueError("record fields run past its length")
            append((start, record_end, fields, timestamp_delta, offset_delta, key, pos))
            pos = record_end
    except IndexError:
        raise KafkaError(ErrorCode.INVALID_RECORD, "Incorrect declared batch size, premature EOF reached") from None
    except (ValueError, DecodeError) as e:
        raise KafkaError(ErrorCode.INVALID_RECORD, f"Found invalid record structure: {e}") from None
    if pos != end:
        raise KafkaError(ErrorCode.INVALID_RECORD, "Incorrect declared batch size, records still remaining in file")
    return spans


def record_value(buf: bytes, span: RecordSpan) -> bytes | None:
    """The value of the record `span` reads in `buf` (None for a tombstone); the group loader's
    inner loop, so one- and two-byte lengths are decoded inline here too."""
    pos = span[6]
    b = buf[pos]
    if b == 1:
        return None
    if b < 0x80:
        pos += 1
    elif buf[pos + 1] < 0x80:
        b = (b & 0x7F) | (buf[pos + 1] << 7)
        pos += 2
    else:
        b, pos = read_uvarint(buf, pos)
    end = pos + (b >> 1)
    if b & 1 or end > span[1]:
        raise KafkaError(ErrorCode.INVALID_RECORD, f"Found invalid record structure: a value length of {b >> 1} "
                                                   f"at byte {span[6]}")
    return buf[pos:end]


def keyless_record_indexes(batch: bytes | bytearray | memoryview, limit: int) -> list[int]:
    """Indexes of the records without a key (compacted topics refuse them, as Kafka does); the
    records may decompress to at most `limit` bytes."""
    header = BatchHeader.parse(batch)
    spans = record_spans(batch_body(batch, limit), header.record_count)
    return [i for i, span in enumerate(spans) if span[5] is None]


def timestamps_out_of_range(batch: bytes | bytearray | memoryview, limit: int, low: int,
                            high: int) -> list[tuple[int, int]]:
    """(index, timestamp) of each record whose timestamp lies outside [low, high] (Kafka's
    LogValidator.validateTimestamp, KIP-937); the records may decompress to at most `limit` bytes."""
    header = BatchHeader.parse(batch)
    base = header.base_timestamp
    spans = record_spans(batch_body(batch, limit), header.record_count)
    return [(i, base + span[3]) for i, span in enumerate(spans) if not low <= base + span[3] <= high]


def rebuild_batch(header: BatchHeader, body: bytes | memoryview, spans: Sequence[RecordSpan], *,
                  delete_horizon_ms: int | None = None) -> bytes:
    """The batch `header` heads, holding only `spans` of its `body`, in its original codec.

    Base offset, last offset delta (so the producer's last sequence survives), producer fields,
    attributes and partition leader epoch are kept. `delete_horizon_ms` sets the delete horizon
    (attribute bit 6; the base timestamp then holds the horizon and every record's timestamp
    delta is re-encoded against it). Kafka's MemoryRecords.filterTo does the same.
    """
    if not spans:
        raise ValueError("a rebuilt batch needs at least one record")
    attributes = header.attributes
    base_timestamp = header.base_timestamp
    out = bytearray()
    if delete_horizon_ms is None:
        for span in spans:
            out += body[span[0]:span[1]]
    else:
        attributes |= _DELETE_HORIZON_BIT
        for start, end, fields, timestamp_delta, _, _, _ in spans:
            record = bytearray(b"\x00")  # attributes
            write_varint(record, base_timestamp + timestamp_delta - delete_horizon_ms)
            record += body[fields:end]
            write_varint(out, len(record))
            out += record
        base_timestamp = delete_horizon_ms
    if header.timestamp_type is TimestampType.LOG_APPEND_TIME:
        max_timestamp = header.max_timestamp
    else:
        max_timestamp = header.base_timestamp + max(span[3] for span in spans)
    records = _compress(header.compression, bytes(out)) if header.compression else out
    batch = bytearray(HEADER_SIZE) + records
    HEADER.pack_into(batch, 0, header.base_offset, len(batch) - LOG_OVERHEAD, header.partition_leader_epoch,
                     MAGIC, 0, attributes, header.last_offset_delta, base_timestamp, max_timestamp,
                     header.producer_id, header.producer_epoch, header.base_sequence, len(spans))
    struct.pack_into(">I", batch, CRC_OFFSET, compute_crc(batch))
    return bytes(batch)


def empty_batch(header: BatchHeader) -> bytes:
    """A header-only batch keeping `header`'s offsets and producer fields (Kafka's writeEmptyHeader)."""
    attributes = header.attributes & (_TIMESTAMP_TYPE_BIT | _TRANSACTIONAL_BIT | _CONTROL_BIT)
    batch = bytearray(HEADER_SIZE)
    HEADER.pack_into(batch, 0, header.base_offset, HEADER_SIZE - LOG_OVERHEAD, header.partition_leader_epoch,
                     MAGIC, 0, attributes, header.last_offset_delta, header.max_timestamp, header.max_timestamp,
                     header.producer_id, header.producer_epoch, header.base_sequence, 0)
    struct.pack_into(">I", batch, CRC_OFFSET, compute_crc(batch))
    return bytes(batch)


# ---------------------------------------------------------------------------------------------
# Codecs

_CHUNK = 1024 * 1024  # decompressed bytes per step: the memory a walk holds, and few steps per batch


def _decompress(codec: int, data: memoryview, limit: int | None) -> bytes:
    return b"".join(_decompressed(codec, data, limit))


def _decompressed(codec: int, data: memoryview, limit: int | None) -> Iterator[bytes]:
    """Decompress as a stream, refusing (INVALID_RECORD) once the output passes `limit` bytes."""
    size = 0
    try:
        for chunk in _decompressed_chunks(codec, data, limit):
            size += len(chunk)
            if limit is not None and size > limit:
                raise KafkaError(ErrorCode.INVALID_RECORD,
                                 f"The records of the batch decompress to more than {limit} bytes")
            yield chunk
    except (OSError, EOFError, ValueError, RuntimeError, zlib.error, zstandard.ZstdError,
            cramjam.DecompressionError, DecodeError) as e:
        # Kafka answers a stream that ends early INVALID_RECORD ("premature EOF") and one that
        # does not decompress UNKNOWN_SERVER_ERROR (an unexpected KafkaException); both are the
        # producer's bytes, so both are INVALID_RECORD here.
        raise KafkaError(ErrorCode.INVALID_RECORD, f"cannot decompress records: {e}") from None


def _decompressed_chunks(codec: int, data: memoryview, limit: int | None) -> Iterator[bytes]:
    if codec == Compression.GZIP:
        yield from _gunzip(data)
    elif codec == Compression.SNAPPY:
        yield from _snappy_blocks(data, limit)
    elif codec == Compression.LZ4:
        # One frame, as Kafka's KafkaLZ4BlockInputStream reads (and lz4.frame.decompress did).
        inflater = lz4.frame.LZ4FrameDecompressor()
        chunk = inflater.decompress(data, max_length=_CHUNK)
        while chunk:
            yield chunk
            chunk = b"" if inflater.eof else inflater.decompress(b"", max_length=_CHUNK)
        if not inflater.eof:
            raise EOFError("the lz4 frame ends early")
    elif codec == Compression.ZSTD:
        # Kafka's zstd streams omit the content size, so they are read as a stream anyway.
        with _zstd_decompressor().stream_reader(data, read_across_frames=True) as reader:
            while chunk := reader.read(_CHUNK):
                yield chunk
    else:
        raise KafkaError(ErrorCode.UNSUPPORTED_COMPRESSION_TYPE, f"Unknown compression type id: {codec}")


_zstd = threading.local()


def _zstd_decompressor() -> zstandard.ZstdDecompressor:
    """This thread's decompressor (the cleaner decompresses on a worker thread). Reused, because a
    new one allocates its window buffer (megabytes for librdkafka's frames) and faults it in anew:
    half the broker's time under zstd produce load when it was made per batch."""
    try:
        return _zstd.decompressor
    except AttributeError:
        _zstd.decompressor = zstandard.ZstdDecompressor()
        return _zstd.decompressor


def _gunzip(data: memoryview) -> Iterator[bytes]:
    """Every gzip member in turn; zero padding after the last is ignored, as gzip.decompress does."""
    rest: bytes | memoryview = data
    while rest:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        chunk = inflater.decompress(rest, _CHUNK)
        while chunk:
            yield chunk
            chunk = inflater.decompress(inflater.unconsumed_tail, _CHUNK)
        if not inflater.eof:
            raise EOFError("the gzip stream ends early")
        rest = inflater.unused_data.lstrip(b"\0")


# Snappy comes in two framings: Kafka's Java client and kafka-python send xerial blocks (a 16-byte
# header `\x82SNAPPY\x00`, version, compatible version, then int32-length-prefixed raw snappy
# blocks); librdkafka may send one raw snappy block. A raw block starts with its decompressed
# length (a uvarint), checked against the ceiling before anything is allocated.

_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK = 32 * 1024


def _snappy_blocks(data: memoryview, limit: int | None) -> Iterator[bytes]:
    if bytes(data[:len(_XERIAL_MAGIC)]) != _XERIAL_MAGIC:
        yield _unsnappy(data, limit)
        return
    pos = len(_XERIAL_HEADER)
    while pos < len(data):
        if pos + 4 > len(data):
            raise ValueError("torn xerial snappy block length")
        (length,) = struct.unpack_from(">i", data, pos)
        pos += 4
        if length < 0 or pos + length > len(data):
            raise ValueError("torn xerial snappy block")
        block = _unsnappy(data[pos:pos + length], limit)
        if limit is not None:
            limit -= len(block)
        yield block
        pos += length


def _unsnappy(block: memoryview, limit: int | None) -> bytes:
    declared, _ = read_uvarint(block, 0)
    if limit is not None and declared > limit:
        raise KafkaError(ErrorCode.INVALID_RECORD, f"A snappy block of the batch decompresses to {declared} bytes, "
                                                   f"more than the {limit} left")
    return bytes(cramjam.snappy.decompress_raw(bytes(block)))


def _compress(codec: int, data: bytes) -> bytes:
    if codec == Compression.GZIP:
        return gzip.compress(data, compresslevel=6)  # Kafka's default level (zlib's), 9 is slower
    if codec == Compression.SNAPPY:
        out = bytearray(_XERIAL_HEADER)
        for i in range(0, len(data), _XERIAL_BLOCK):
            block = bytes(cramjam.snappy.compress_raw(data[i:i + _XERIAL_BLOCK]))
            out += struct.pack(">i", len(block)) + block
        return bytes(out)
    if codec == Compression.LZ4:
        # Kafka's Java reader decompresses each 64 KiB block on its own: independent blocks.
        return lz4.frame.compress(data, block_linked=False)
    if codec == Compression.ZSTD:
        return zstandard.ZstdCompressor().compress(data)
    raise ValueError(f"unknown compression codec {codec}")
