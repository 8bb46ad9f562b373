"""Record batch v2 (magic 2): a zero-copy view of the 61-byte header, and a record codec.

Layout (big-endian; offsets from the start of the batch):

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

Each record (inside the blob when compressed), with zigzag varints:
    length varint (bytes after it), attributes int8 (unused), timestampDelta varlong,
    offsetDelta varint, keyLength varint (-1 = null), key, valueLength varint (-1 = null), value,
    headerCount varint, then per header: keyLength varint, key (UTF-8), valueLength varint, value.

Only tests, ListOffsets-by-timestamp, control batches and internal topics decode records; the
produce and fetch paths never do.
"""
from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum

import cramjam
import crc32c
import lz4.frame
import zstandard

from kbroker.errors import ErrorCode, KafkaError

HEADER = struct.Struct(">qiibIhiqqqhii")
HEADER_SIZE = HEADER.size  # 61
LOG_OVERHEAD = 12  # baseOffset + batchLength: the bytes not counted by batchLength
MAGIC = 2

PARTITION_LEADER_EPOCH_OFFSET = 12
MAGIC_OFFSET = 16
CRC_OFFSET = 17
ATTRIBUTES_OFFSET = 21
MAX_TIMESTAMP_OFFSET = 35

_CODEC_MASK = 0x07
_TIMESTAMP_TYPE_BIT = 0x08
_TRANSACTIONAL_BIT = 0x10
_CONTROL_BIT = 0x20
_DELETE_HORIZON_BIT = 0x40

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
# LogValidator.validateBatch), in Kafka's order. Records are never decoded.


def validate_produce_batch(buf: memoryview, max_message_bytes: int) -> BatchHeader:
    """Check the records field of one produce partition (Produce v3+) and return its header."""
    n = len(buf)
    if n < LOG_OVERHEAD:
        raise KafkaError(ErrorCode.INVALID_RECORD,
                         "Produce requests must have at least one record batch per partition")
    (batch_length,) = struct.unpack_from(">i", buf, 8)
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
    return header


# ---------------------------------------------------------------------------------------------
# In-place patches


def assign_offsets(batch: bytearray | memoryview, base_offset: int, leader_epoch: int) -> None:
    """Write baseOffset and partitionLeaderEpoch; both lie outside the CRC."""
    struct.pack_into(">q", batch, 0, base_offset)
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
    """All records of one whole batch (any codec). Malformed content raises CORRUPT_MESSAGE."""
    view = memoryview(batch)
    if len(view) < HEADER_SIZE:
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE, "record batch shorter than its header")
    header = BatchHeader.parse(view)
    if header.size > len(view):
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE, "torn record batch")
    body = _decompress(header.compression, view[HEADER_SIZE:header.size])
    log_append_time = header.timestamp_type is TimestampType.LOG_APPEND_TIME
    records: list[Record] = []
    pos = 0
    try:
        for _ in range(header.record_count):
            length, pos = _read_varint(body, pos)
            end = pos + length
            pos += 1  # attributes
            timestamp_delta, pos = _read_varint(body, pos)
            offset_delta, pos = _read_varint(body, pos)
            key, pos = _read_bytes(body, pos)
            value, pos = _read_bytes(body, pos)
            header_count, pos = _read_varint(body, pos)
            headers = []
            for _ in range(header_count):
                header_key, pos = _read_bytes(body, pos)
                header_value, pos = _read_bytes(body, pos)
                if header_key is None:
                    raise ValueError("null header key")
                headers.append((header_key.decode(), header_value))
            if pos != end or end > len(body):
                raise ValueError("record length does not match its fields")
            timestamp = header.max_timestamp if log_append_time else header.base_timestamp + timestamp_delta
            records.append(Record(header.base_offset + offset_delta, timestamp, key, value, tuple(headers)))
    except (IndexError, ValueError, UnicodeDecodeError) as e:
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE, f"malformed record in batch at offset "
                                                    f"{header.base_offset}: {e}") from None
    if pos != len(body):
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE, "bytes left over after the last record")
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
    _write_varint(body, record.timestamp - base_timestamp)
    _write_varint(body, record.offset - base_offset)
    _write_bytes(body, record.key)
    _write_bytes(body, record.value)
    _write_varint(body, len(record.headers))
    for key, value in record.headers:
        _write_bytes(body, key.encode())
        _write_bytes(body, value)
    _write_varint(out, len(body))
    out += body


def _write_varint(out: bytearray, value: int) -> None:
    v = (value << 1) ^ (value >> 63)  # zigzag, 64-bit
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def _write_bytes(out: bytearray, data: bytes | None) -> None:
    if data is None:
        _write_varint(out, -1)
    else:
        _write_varint(out, len(data))
        out += data


def _read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _read_unsigned_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """A varint without the zigzag step (the caller applies it)."""
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


def _read_bytes(buf: bytes | memoryview, pos: int) -> tuple[bytes | None, int]:
    length, pos = _read_varint(buf, pos)
    if length < 0:
        return None, pos
    end = pos + length
    if end > len(buf):
        raise ValueError("field runs past the end of the records")
    return bytes(buf[pos:end]), end


# ---------------------------------------------------------------------------------------------
# Record spans: walking the records of a batch without building them (log cleaner, the key check
# for compacted topics). A span is a plain tuple, for speed:
#     (start, end, fields, timestamp_delta, offset_delta, key, has_value)
# where body[start:end] is the whole record (its length varint included) and body[fields:end] is
# everything after timestampDelta (offsetDelta, key, value, headers). A batch rebuilt from spans
# keeps its base offset, so offset deltas stay valid and records are copied as they are, unless
# the base timestamp changes (the delete horizon), when each timestampDelta is re-encoded.

RecordSpan = tuple[int, int, int, int, int, "bytes | None", bool]


def batch_body(batch: bytes | bytearray | memoryview) -> bytes | memoryview:
    """The records of one whole batch, decompressed (CORRUPT_MESSAGE if they don't decompress)."""
    view = memoryview(batch)
    header = BatchHeader.parse(view)
    return _decompress(header.compression, view[HEADER_SIZE:header.size])


def record_spans(body: bytes | memoryview, count: int) -> list[RecordSpan]:
    """The `count` records of a decompressed body; malformed records raise CORRUPT_MESSAGE.

    The hot loop of the log cleaner: varints of one and two bytes (nearly all of them) are
    decoded inline.
    """
    if not isinstance(body, bytes):
        body = bytes(body)  # indexing and slicing bytes is faster than a memoryview
    spans = []
    append = spans.append
    pos = 0
    try:
        for _ in range(count):
            start = pos
            b = body[pos]
            if b < 0x80:
                pos += 1
            elif body[pos + 1] < 0x80:
                b = (b & 0x7F) | (body[pos + 1] << 7)
                pos += 2
            else:
                b, pos = _read_unsigned_varint(body, pos)
            end = pos + ((b >> 1) ^ -(b & 1))
            pos += 1  # attributes
            b = body[pos]
            if b < 0x80:
                pos += 1
            elif body[pos + 1] < 0x80:
                b = (b & 0x7F) | (body[pos + 1] << 7)
                pos += 2
            else:
                b, pos = _read_unsigned_varint(body, pos)
            timestamp_delta = (b >> 1) ^ -(b & 1)
            fields = pos
            b = body[pos]
            if b < 0x80:
                pos += 1
            elif body[pos + 1] < 0x80:
                b = (b & 0x7F) | (body[pos + 1] << 7)
                pos += 2
            else:
                b, pos = _read_unsigned_varint(body, pos)
            offset_delta = (b >> 1) ^ -(b & 1)
            b = body[pos]
            if b == 1:  # zigzag(-1): a null key
                key = None
                pos += 1
            else:
                if b < 0x80:
                    pos += 1
                elif body[pos + 1] < 0x80:
                    b = (b & 0x7F) | (body[pos + 1] << 7)
                    pos += 2
                else:
                    b, pos = _read_unsigned_varint(body, pos)
                key_end = pos + (b >> 1)
                key = body[pos:key_end]
                pos = key_end
            # The value length comes next; zigzag(-1) is the single byte 0x01: a null value.
            if pos >= end or end > len(body):
                raise ValueError("record fields run past its length")
            append((start, end, fields, timestamp_delta, offset_delta, key, body[pos] != 1))
            pos = end
    except (IndexError, ValueError) as e:
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE, f"malformed record: {e}") from None
    if pos != len(body):
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE, "bytes left over after the last record")
    return spans


def keyless_record_indexes(batch: bytes | bytearray | memoryview) -> list[int]:
    """Indexes of the records without a key (compacted topics refuse them, as Kafka does).

    Produce calls this for every batch of a compacted topic, so it only skips varints up to each
    key length (about 0.7 us a record, several times cheaper than `record_spans`).
    """
    header = BatchHeader.parse(batch)
    body = batch_body(batch)
    if not isinstance(body, bytes):
        body = bytes(body)  # indexing bytes is faster than indexing a memoryview
    keyless = []
    pos = 0
    try:
        for i in range(header.record_count):
            b = body[pos]
            if b < 0x80:
                end = pos + 1 + ((b >> 1) ^ -(b & 1))
                p = pos + 2
            else:
                length, p = _read_varint(body, pos)
                end = p + length
                p += 1
            while body[p] & 0x80:  # timestampDelta
                p += 1
            p += 1
            while body[p] & 0x80:  # offsetDelta
                p += 1
            if body[p + 1] == 1:  # keyLength -1 (zigzag 0x01): no key
                keyless.append(i)
            if p + 1 >= end:
                raise ValueError("record fields run past its length")
            pos = end
    except (IndexError, ValueError) as e:
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE, f"malformed record: {e}") from None
    if pos != len(body):
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE, "record lengths do not add up to the batch")
    return keyless


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
            _write_varint(record, base_timestamp + timestamp_delta - delete_horizon_ms)
            record += body[fields:end]
            _write_varint(out, len(record))
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
# Codecs. Snappy comes in two framings: Kafka's Java client and kafka-python send xerial blocks
# (a 16-byte header `\x82SNAPPY\x00`, version, compatible version, then int32-length-prefixed raw
# snappy blocks); librdkafka may send one raw snappy block.

_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = _XERIAL_MAGIC + struct.pack(">ii", 1, 1)
_XERIAL_BLOCK = 32 * 1024


def _decompress(codec: int, data: memoryview) -> bytes | memoryview:
    try:
        if codec == Compression.NONE:
            return data
        if codec == Compression.GZIP:
            return gzip.decompress(data)
        if codec == Compression.SNAPPY:
            return _snappy_decompress(data)
        if codec == Compression.LZ4:
            return lz4.frame.decompress(data)
        if codec == Compression.ZSTD:
            # Kafka's zstd streams omit the content size, which ZstdDecompressor.decompress needs.
            with zstandard.ZstdDecompressor().stream_reader(bytes(data), read_across_frames=True) as reader:
                return reader.read()
    except (OSError, EOFError, ValueError, RuntimeError, zlib.error, zstandard.ZstdError,
            cramjam.DecompressionError) as e:
        raise KafkaError(ErrorCode.CORRUPT_MESSAGE, f"cannot decompress records: {e}") from None
    raise KafkaError(ErrorCode.UNSUPPORTED_COMPRESSION_TYPE, f"Unknown compression type id: {codec}")


def _snappy_decompress(data: memoryview) -> bytes:
    if bytes(data[:len(_XERIAL_MAGIC)]) != _XERIAL_MAGIC:
        return bytes(cramjam.snappy.decompress_raw(bytes(data)))
    out = bytearray()
    pos = len(_XERIAL_HEADER)
    while pos < len(data):
        if pos + 4 > len(data):
            raise ValueError("torn xerial snappy block length")
        (length,) = struct.unpack_from(">i", data, pos)
        pos += 4
        if length < 0 or pos + length > len(data):
            raise ValueError("torn xerial snappy block")
        out += cramjam.snappy.decompress_raw(bytes(data[pos:pos + length]))
        pos += length
    return bytes(out)


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
