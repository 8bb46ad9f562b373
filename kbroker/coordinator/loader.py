"""Reading a `__consumer_offsets` partition back at start-up.

Replay only needs the latest value of each key (what compaction would keep), so the loader
walks the partition's batches once, keeping the raw value bytes per raw key bytes, and decodes
only the survivors. The walk is the hot loop of a restart (a million commits are a million
records): uncompressed batches are read in place in the chunk by the record reader
(`kbroker.wire.records.record_spans`), compressed ones (which we never write, but a copied topic
may hold) after decompressing. Control batches (transaction markers) carry no group state and
are skipped.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

from kbroker.log.partition_log import PartitionLog
from kbroker.wire.records import RECORDS_OFFSET, BatchHeader, Compression, batch_body, record_spans, record_value

READ_CHUNK_BYTES = 8 * 1024 * 1024


def scan_chunk(data: bytes, latest: dict[bytes, bytes | None]) -> int:
    """Fold every record of the whole batches in `data` into `latest` (key -> latest value);
    returns the offset after the last batch."""
    pos = 0
    size = len(data)
    next_offset = -1
    while pos < size:
        header = BatchHeader.parse(data, pos)
        batch_end = pos + header.size
        next_offset = header.next_offset
        if not header.is_control:
            if header.compression == Compression.NONE:
                body, start, end = data, pos + RECORDS_OFFSET, batch_end
            else:
                body = bytes(batch_body(memoryview(data)[pos:batch_end]))
                start, end = 0, len(body)
            for span in record_spans(body, header.record_count, start, end):
                if span[5] is not None:
                    latest[span[5]] = record_value(body, span)
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
