"""Reading a `__consumer_offsets` partition back at start-up.

Replay only needs the latest value of each key (what compaction would keep), so the loader
walks the partition's batches once, keeping the raw value bytes per raw key bytes, and decodes
only the survivors. The walk is the hot loop of a restart (a million commits are a million
records), so it reads the record layout of `kbroker.wire.records` directly for uncompressed
batches, skipping timestamps and headers, instead of building `Record` objects; compressed
batches (which we never write, but a copied topic may hold) go through `decode_records`.
Control batches (transaction markers) carry no group state and are skipped.
"""
from __future__ import annotations

import os
import struct
from collections.abc import Iterator

from kbroker.log.partition_log import PartitionLog
from kbroker.wire.records import HEADER_SIZE, BatchHeader, Compression, decode_records

READ_CHUNK_BYTES = 8 * 1024 * 1024


def batch_keys_values(batch: bytes | memoryview) -> Iterator[tuple[bytes, bytes | None]]:
    """(key, value) of every record in one whole batch; value None for a tombstone."""
    header = BatchHeader.parse(batch)
    if header.compression != Compression.NONE:
        for record in decode_records(batch):
            if record.key is not None:
                yield record.key, record.value
        return
    buf = bytes(batch) if not isinstance(batch, bytes) else batch
    pos = HEADER_SIZE
    end_of_batch = header.size
    for _ in range(header.record_count):
        # length (zigzag varint)
        b = buf[pos]
        pos += 1
        if b < 0x80:
            length = b
        else:
            length, shift = b & 0x7F, 7
            while True:
                b = buf[pos]
                pos += 1
                length |= (b & 0x7F) << shift
                if b < 0x80:
                    break
                shift += 7
        length = (length >> 1) ^ -(length & 1)
        record_end = pos + length
        pos += 1  # attributes
        for _skip in range(2):  # timestamp delta, offset delta
            while buf[pos] >= 0x80:
                pos += 1
            pos += 1
        key_len, pos = _zigzag(buf, pos)
        if key_len < 0:
            key = None
        else:
            key = buf[pos:pos + key_len]
            pos += key_len
        value_len, pos = _zigzag(buf, pos)
        value = None if value_len < 0 else buf[pos:pos + value_len]
        pos = record_end
        if key is not None:
            yield key, value
    if pos != end_of_batch:
        raise ValueError(f"record batch at offset {header.base_offset} does not end where its records do")


def _zigzag(buf: bytes, pos: int) -> tuple[int, int]:
    b = buf[pos]
    pos += 1
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos
    value, shift = b & 0x7F, 7
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return (value >> 1) ^ -(value & 1), pos
        shift += 7


_BATCH_FIELDS = struct.Struct(">qi")  # base offset, batch length
_ATTRIBUTES = struct.Struct(">h")
_LAST_OFFSET_DELTA = struct.Struct(">i")
_CONTROL_BIT = 0x20
_CODEC_MASK = 0x07


def scan_chunk(data: bytes, latest: dict[bytes, bytes | None]) -> int:
    """Fold every record of the whole batches in `data` into `latest` (key -> latest value);
    returns the offset after the last batch. The inner loop of a restart, written flat."""
    pos = 0
    size = len(data)
    next_offset = -1
    while pos < size:
        base_offset, batch_length = _BATCH_FIELDS.unpack_from(data, pos)
        batch_end = pos + 12 + batch_length
        (attributes,) = _ATTRIBUTES.unpack_from(data, pos + 21)
        next_offset = base_offset + _LAST_OFFSET_DELTA.unpack_from(data, pos + 23)[0] + 1
        if attributes & _CONTROL_BIT:
            pass
        elif attributes & _CODEC_MASK:
            for key, value in batch_keys_values(data[pos:batch_end]):
                latest[key] = value
        else:
            (count,) = _LAST_OFFSET_DELTA.unpack_from(data, pos + 57)
            p = pos + HEADER_SIZE
            for _ in range(count):
                b = data[p]
                p += 1
                if b < 0x80:
                    length = b
                else:
                    length, shift = b & 0x7F, 7
                    while True:
                        b = data[p]
                        p += 1
                        length |= (b & 0x7F) << shift
                        if b < 0x80:
                            break
                        shift += 7
                record_end = p + ((length >> 1) ^ -(length & 1))
                p += 1  # attributes
                while data[p] >= 0x80:  # timestamp delta
                    p += 1
                p += 1
                while data[p] >= 0x80:  # offset delta
                    p += 1
                p += 1
                b = data[p]
                if b == 1:  # key length -1 (zigzag 1): a record without a key, nothing to keep
                    p = record_end
                    continue
                if b < 0x80:
                    key_len = b >> 1
                    p += 1
                else:
                    key_len, p = _zigzag(data, p)
                key = data[p:p + key_len]
                p += key_len
                b = data[p]
                if b == 1:
                    latest[key] = None
                else:
                    if b < 0x80:
                        value_len = b >> 1
                        p += 1
                    else:
                        value_len, p = _zigzag(data, p)
                    latest[key] = data[p:p + value_len]
                p = record_end
            if p != batch_end:
                raise ValueError(f"record batch at offset {base_offset} does not end where its records do")
        pos = batch_end
    return next_offset


def latest_values(partition_log: PartitionLog) -> Iterator[dict[bytes, bytes | None]]:
    """The partition's latest value per key, built one read chunk at a time: each yield hands
    back the same growing dict, so a caller on an event loop can pause between chunks."""
    latest: dict[bytes, bytes | None] = {}
    offset, end = partition_log.log_start_offset, partition_log.log_end_offset
    while offset < end:
        found = partition_log.read(offset, READ_CHUNK_BYTES, end, min_one_batch=True)
        if not found.slices:
            break
        for piece in found.slices:
            data = os.pread(piece.file.fileno(), piece.length, piece.position)
            offset = scan_chunk(data, latest)
        yield latest
    yield latest
