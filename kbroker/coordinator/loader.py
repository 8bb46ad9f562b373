"""Reading a `__consumer_offsets` partition back at start-up.

Replay only needs the latest value of each key (what compaction would keep), so the loader
walks the partition's batches once, keeping the raw value bytes per raw key bytes, and decodes
only the survivors. The walk is the hot loop of a restart (a million commits are a million
records): uncompressed batches are read in place in the chunk by the record reader
(`kbroker.wire.records.record_spans`), compressed ones (which we never write, but a copied topic
may hold) after decompressing.

Transactional offset commits (TxnOffsetCommit) count only once their producer's marker says so:
the records of a transactional batch wait in `pending[producer_id]` until a control batch of
that producer commits them (folded into `latest` then, in order) or aborts them (dropped). What
is still pending at the end belongs to a transaction that is still open.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

from kbroker.log.partition_log import PartitionLog
from kbroker.wire.records import (
    RECORDS_OFFSET,
    BatchHeader,
    Compression,
    ControlRecordType,
    batch_body,
    record_spans,
    record_value,
)

READ_CHUNK_BYTES = 8 * 1024 * 1024


Pending = dict[int, dict[bytes, bytes | None]]  # producer id -> its open transaction's latest values


def scan_chunk(data: bytes, latest: dict[bytes, bytes | None], pending: Pending | None = None) -> int:
    """Fold every record of the whole batches in `data` into `latest` (key -> latest value), the
    transactional ones through `pending`; returns the offset after the last batch."""
    pos = 0
    size = len(data)
    next_offset = -1
    while pos < size:
        header = BatchHeader.parse(data, pos)
        batch_end = pos + header.size
        next_offset = header.next_offset
        if header.is_control or header.is_transactional:
            if pending is None:
                pending = {}
            if header.is_control:
                _end_transaction(data, pos, batch_end, header, latest, pending)
                pos = batch_end
                continue
            into = pending.setdefault(header.producer_id, {})
        else:
            into = latest
        if header.compression == Compression.NONE:
            body, start, end = data, pos + RECORDS_OFFSET, batch_end
        else:
            body = bytes(batch_body(memoryview(data)[pos:batch_end]))
            start, end = 0, len(body)
        for span in record_spans(body, header.record_count, start, end):
            if span[5] is not None:
                into[span[5]] = record_value(body, span)
        pos = batch_end
    return next_offset


def _end_transaction(data: bytes, pos: int, batch_end: int, header: BatchHeader, latest: dict[bytes, bytes | None],
                     pending: Pending) -> None:
    """A marker: its producer's pending records join `latest` (COMMIT) or are dropped (ABORT)."""
    staged = pending.pop(header.producer_id, None)
    if not staged:
        return
    spans = record_spans(data, header.record_count, pos + RECORDS_OFFSET, batch_end)
    key = spans[0][5] if spans else None
    if key is not None and len(key) >= 4 and int.from_bytes(key[2:4], "big") == ControlRecordType.COMMIT:
        latest.update(staged)


def latest_values(partition_log: PartitionLog, pending: Pending | None = None) -> Iterator[dict[bytes, bytes | None]]:
    """The partition's latest value per key, built one read chunk at a time: each yield hands
    back the same growing dict, so a caller on an event loop can pause between chunks. Records of
    transactions still open at the end are left in `pending` (when given)."""
    latest: dict[bytes, bytes | None] = {}
    if pending is None:
        pending = {}
    offset, end = partition_log.log_start_offset, partition_log.log_end_offset
    while offset < end:
        found = partition_log.read(offset, READ_CHUNK_BYTES, end, min_one_batch=True)
        if not found.slices:
            break
        for piece in found.slices:
            data = os.pread(piece.file.fileno(), piece.length, piece.position)
            offset = scan_chunk(data, latest, pending)
        yield latest
    yield latest
