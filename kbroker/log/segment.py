"""One log segment: `<20-digit base offset>.log` and its `.index` / `.timeindex` / `.txnindex`.

The .log file holds whole record batches back to back, byte for byte as produced (only baseOffset,
partitionLeaderEpoch and, for LogAppendTime, the timestamp fields patched). The base offset is the
first offset the segment may hold; index entries store offsets relative to it as int32, so a
segment spans at most 2**31 - 1 offsets. Only the last segment of a log (the active one) is
appended to; a segment never changes after it is rolled, except by truncation.

In memory: `size` (bytes in .log), `next_offset` (one past the last batch, the base offset when
empty), the largest timestamp and the last offset of the batch that first reached it (time index,
ListOffsets -3, retention.ms), the bytes appended since the last index entry, and the headers of
the batches after the last index entry (the tail). Every read at or near the log end — a consumer
keeping up, the next fetch of a long poll — starts its walk from that last entry, so the tail
answers it from memory instead of `pread`-ing and parsing a few KiB of headers per Fetch. The tail
is known from an index entry on (and for a segment observed from position 0); it is forgotten
when it grows past TAIL_HEADERS (a large index interval) or the segment is cut, and reads fall
back to the file until the next index entry.

Outside this module a segment is used only through its methods: `read` (Kafka's LogSegment.read:
file slices for Fetch), `find` / `headers` / `read_batch` to walk batches, `handle` for the
cleaner's own chunked reads, the aborted transactions, `recover`; nothing else opens its files or
looks at its indexes.

Crash behaviour: the log is the truth and the indexes are derived from it. A crash can tear the
last write anywhere; `recover` (which `recovery.py` calls) CRC-scans a segment, cuts it after the
last whole valid batch and rebuilds the indexes, producing the entries appends would have
produced. The `.txnindex` (txn_index.py) needs the producer state to be rebuilt, so the
partition log rebuilds it when `txn_index_stale` says so.

I/O errors (ENOSPC, EIO): an append is all or nothing. A failed write leaves no partial batch
(files.py cuts it off); if an index entry then fails, the batch and any entry already written are
cut off again and the in-memory state restored, so the files, `size` and `next_offset` never run
ahead of each other. If even that cut fails, `needs_repair` is set: memory is right, the files
have a tail beyond it that no read reaches (reads stop at `size`), and `repair` must succeed
before the next append. Creating a segment that fails removes the files it made.

The log cleaner writes a segment under temporary names (`<base>.log.cleaned`, ...) and moves it
with `change_suffix` (`.cleaned` -> `.swap` -> live). Renames and deletion take the segment's own
lock, because the cleaner renames in a worker thread while the event loop may delete the segment
(retention); the .log file always moves last (see cleaner.py for why that order is safe).
"""
from __future__ import annotations

import mmap
import os
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from kbroker.log.config import LogConfig
from kbroker.log.files import FileHandle, OpenFiles, SegmentFile
from kbroker.log.index import OffsetIndex, TimeIndex
from kbroker.log.txn_index import AbortedTxn, TransactionIndex
from kbroker.wire.records import HEADER_SIZE, INT32_MAX, BatchHeader, BatchScan, compute_crc, decode_records

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
TXN_INDEX_SUFFIX = ".txnindex"
CLEANED_SUFFIX = ".cleaned"  # a segment the cleaner is writing
SWAP_SUFFIX = ".swap"  # a cleaned segment committed to replace the segments in its offset range
DELETED_SUFFIX = ".deleted"  # a replaced segment, about to be unlinked

_READ_CHUNK = 8192  # bytes read at a time when walking batch headers
TAIL_HEADERS = 1024  # batch headers kept in memory after the last index entry, at most
_TAIL_CRC_LIMIT = 16 << 20  # a segment's batches after its last index entry are CRC-checked up to this size


class _Mark(NamedTuple):
    """A segment's in-memory state before an append, to undo it."""
    size: int
    next_offset: int
    max_timestamp: int
    offset_of_max_timestamp: int
    bytes_since_index: int
    first_batch_timestamp: int | None
    index_entries: int
    time_entries: int


@dataclass(frozen=True, slots=True)
class FileSlice:
    file: FileHandle  # the segment's open handle, held by the slice: use its fileno() with explicit offsets
    position: int
    length: int


class FetchDataInfo(NamedTuple):  # a tuple: built on every Fetch of every partition
    """What `LogSegment.read` found (Kafka's FetchDataInfo): the base offset of the batch holding
    the offset asked for, and whole batches from it as one slice of the .log; `records` is None
    when that first batch does not fit (max_bytes without min_one_batch, or max_position)."""
    first_offset: int
    records: FileSlice | None


class TimestampAndOffset(NamedTuple):
    offset: int
    timestamp: int
    leader_epoch: int  # -1 when unknown


def _position(entry: tuple[int, BatchHeader]) -> int:
    return entry[0]


def _last_offset(entry: tuple[int, BatchHeader]) -> int:
    return entry[1].last_offset


def file_name(base_offset: int, suffix: str) -> str:
    return f"{base_offset:020d}{suffix}"


class LogSegment:
    def __init__(self, directory: Path, base_offset: int, config: LogConfig, now_ms: int, files: OpenFiles, *,
                 create: bool, suffix: str = "") -> None:
        self.base_offset = base_offset
        self.index_interval_bytes = config.index_interval_bytes
        self.suffix = suffix
        self.log_path = directory / (file_name(base_offset, LOG_SUFFIX) + suffix)
        self._log = SegmentFile(self.log_path, files, truncate=create)
        self._offset_index = OffsetIndex(directory / (file_name(base_offset, INDEX_SUFFIX) + suffix), base_offset,
                                         config.segment_index_bytes, files, create=create)
        self._time_index = TimeIndex(directory / (file_name(base_offset, TIME_INDEX_SUFFIX) + suffix), base_offset,
                                     config.segment_index_bytes, files, create=create)
        txn_path = directory / (file_name(base_offset, TXN_INDEX_SUFFIX) + suffix)
        if create:
            txn_path.unlink(missing_ok=True)
        self._txn_index = TransactionIndex(txn_path, files)
        self.txn_index_stale = False  # its entries must be rebuilt from the log (partition_log.py)
        self._files_lock = threading.Lock()
        self._deleted = False
        self.size = self._log.stat().st_size
        self.next_offset = base_offset
        self.max_timestamp = -1
        self.offset_of_max_timestamp = base_offset
        self.created_ms = now_ms
        self._bytes_since_index = 0
        self._first_batch_timestamp: int | None = None
        self._tail: list[tuple[int, BatchHeader]] | None = [] if self.size == 0 else None  # None: unknown
        self.needs_repair = False  # the files hold more than memory says (a failed append's undo failed)

    @classmethod
    def create(cls, directory: Path, base_offset: int, config: LogConfig, now_ms: int, files: OpenFiles, *,
               suffix: str = "") -> LogSegment:
        try:
            return cls(directory, base_offset, config, now_ms, files, create=True, suffix=suffix)
        except OSError:
            for kind in (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX):
                try:
                    (directory / (file_name(base_offset, kind) + suffix)).unlink(missing_ok=True)
                except OSError:
                    pass  # an empty file at worst, which start-up takes as an empty segment
            raise

    @classmethod
    def open(cls, directory: Path, base_offset: int, config: LogConfig, now_ms: int, files: OpenFiles, *,
             suffix: str = "") -> tuple[LogSegment, str | None]:
        """Open an existing segment trusting its indexes, and say why they can't be (None: fine)."""
        missing = [kind for kind in (INDEX_SUFFIX, TIME_INDEX_SUFFIX)
                   if not (directory / (file_name(base_offset, kind) + suffix)).exists()]
        segment = cls(directory, base_offset, config, now_ms, files, create=False, suffix=suffix)
        if missing:
            problem = f"missing {' and '.join(missing)} file"
        else:
            problem = (segment._offset_index.load(segment.size) or segment._time_index.load()
                       or segment._load_tail())
        if problem is not None:
            segment._reset_indexes()
        txn_problem = segment._txn_index.load()
        if txn_problem is not None:
            segment.txn_index_stale = True
            problem = problem or f".txnindex: {txn_problem}"
        return segment, problem

    # -- appending ---------------------------------------------------------------------------------

    def should_roll(self, header: BatchHeader, config: LogConfig, now_ms: int) -> bool:
        """Kafka's LogSegment.shouldRoll for appending `header` (offsets already assigned)."""
        if self.size == 0:
            return False
        if (self.size + header.size > config.segment_bytes or self._offset_index.is_full
                or self._time_index.is_full or header.last_offset - self.base_offset > INT32_MAX):
            return True
        first = self._first_timestamp()
        waited = header.max_timestamp - first if first >= 0 else now_ms - self.created_ms
        return waited > config.segment_ms

    def append(self, batch: bytes | bytearray | memoryview, header: BatchHeader) -> None:
        """Write one batch whose header (offsets, timestamps) is final: all of it or, on OSError, nothing."""
        mark = self._mark()
        position = self.size
        self._log.write_all(batch)
        try:
            self.size += header.size
            if position == 0:
                self._first_batch_timestamp = header.max_timestamp
            self._observe(position, header)
        except OSError:
            self._undo(mark)
            raise

    def append_chunk(self, data: bytes | bytearray, headers: list[BatchHeader]) -> None:
        """Write consecutive whole batches at once (the cleaner); `headers` are theirs, in order."""
        position = self.size
        self._log.write_all(data)
        for header in headers:
            if position == 0:
                self._first_batch_timestamp = header.max_timestamp
            self._observe(position, header)
            position += header.size
        self.size = position

    def _observe(self, position: int, header: BatchHeader) -> None:
        """Account for the batch at `position`: timestamps, next offset, index entries."""
        if header.max_timestamp > self.max_timestamp:
            self.max_timestamp = header.max_timestamp
            self.offset_of_max_timestamp = header.last_offset
        if self._bytes_since_index > self.index_interval_bytes:
            self._offset_index.append(header.last_offset, position)
            self._time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
            self._bytes_since_index = 0
            self._tail = []
        self._bytes_since_index += header.size
        self.next_offset = header.next_offset
        if self._tail is not None:
            if len(self._tail) < TAIL_HEADERS:
                self._tail.append((position, header))
            else:
                self._tail = None

    def finish_time_index(self) -> None:
        """The segment stops being active: record its final largest timestamp (as Kafka does)."""
        self._time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)

    def _mark(self) -> _Mark:
        return _Mark(self.size, self.next_offset, self.max_timestamp, self.offset_of_max_timestamp,
                     self._bytes_since_index, self._first_batch_timestamp, len(self._offset_index),
                     len(self._time_index))

    def _undo(self, mark: _Mark) -> None:
        """Forget a failed append: memory first (cannot fail), then the files (see the header)."""
        (self.size, self.next_offset, self.max_timestamp, self.offset_of_max_timestamp, self._bytes_since_index,
         self._first_batch_timestamp) = mark[:6]
        self._offset_index.forget_after(mark.index_entries)
        self._time_index.forget_after(mark.time_entries)
        self._tail = None
        self.needs_repair = True
        try:
            self.repair()
        except OSError:
            pass  # the append's own error is the one to report; the next append repairs first

    def repair(self) -> None:
        """Cut the files back to what memory holds."""
        self._log.truncate(self.size)
        self._offset_index.trim_file()
        self._time_index.trim_file()
        self.needs_repair = False

    # -- reading -----------------------------------------------------------------------------------

    def headers(self, position: int, end: int | None = None) -> Iterator[tuple[int, BatchHeader]]:
        """Batch headers from `position` (a batch start) while whole batches fit before `end`."""
        end = self.size if end is None else end
        tail = self._tail
        if tail and position >= tail[0][0]:
            i = bisect_left(tail, position, key=_position)
            if i < len(tail) and tail[i][0] == position:
                for entry in tail[i:]:
                    if entry[0] + entry[1].size > end:
                        return
                    yield entry
                return
        handle = self._log.handle()  # held while the generator lives (files.py)
        fd = handle.fileno()
        chunk, chunk_start = b"", position
        while position + HEADER_SIZE <= end:
            at = position - chunk_start
            if at + HEADER_SIZE > len(chunk):
                chunk, chunk_start, at = os.pread(fd, _READ_CHUNK, position), position, 0
                if len(chunk) < HEADER_SIZE:
                    return
            header = BatchHeader.parse(chunk, at)
            if header.size < HEADER_SIZE or position + header.size > end:
                return
            yield position, header
            position += header.size

    def find(self, offset: int) -> tuple[int, BatchHeader] | None:
        """The first batch whose last offset is >= `offset`, with its position."""
        _, position = self._offset_index.lookup(offset)
        tail = self._tail
        if tail and position >= tail[0][0]:  # the batch is in the tail, or there is none
            i = bisect_left(tail, offset, key=_last_offset)
            return tail[i] if i < len(tail) else None
        for position, header in self.headers(position):
            if header.last_offset >= offset:
                return position, header
        return None

    def offset_at(self, position: int) -> int:
        """The base offset of the batch starting at `position`; the next offset at the end."""
        for _, header in self.headers(position):
            return header.base_offset
        return self.next_offset

    def end_position(self, max_offset: int) -> int:
        """Where the batches that end before `max_offset` stop."""
        if max_offset >= self.next_offset:
            return self.size
        found = self.find(max_offset)
        return found[0] if found else self.size

    def read(self, start_offset: int, max_bytes: int, max_position: int | None = None,
             min_one_batch: bool = False) -> FetchDataInfo | None:
        """Kafka's LogSegment.read: whole batches from the one holding `start_offset`, ending at or
        before `max_position` (a batch boundary, say the high watermark's; default the end), at
        most `max_bytes` of them, except that with `min_one_batch` the first batch comes whatever
        its size. None when no batch here holds `start_offset` or a later offset."""
        found = self.find(start_offset)
        if found is None:
            return None
        start, header = found
        limit = self.size if max_position is None else max_position
        end = start + header.size
        if end > limit or (header.size > max_bytes and not min_one_batch):
            return FetchDataInfo(header.base_offset, None)
        if header.size < max_bytes:  # room for more batches
            end = self._boundary_before(start, min(limit, start + max_bytes))
        return FetchDataInfo(header.base_offset, FileSlice(self._log.handle(), start, end - start))

    def _boundary_before(self, start: int, limit: int) -> int:
        """The last batch boundary <= `limit`, scanning from the batch start `start`."""
        if limit >= self.size:
            return self.size
        tail = self._tail
        if tail and tail[0][0] <= limit:  # batch starts are the boundaries
            return max(start, tail[bisect_right(tail, limit, key=_position) - 1][0])
        boundary = max(start, self._offset_index.floor_position(limit))
        for position, header in self.headers(boundary, limit):
            boundary = position + header.size
        return boundary

    def read_batch(self, position: int, size: int) -> bytes:
        return self._log.pread(size, position)

    def handle(self) -> FileHandle:
        """The .log's open file, for a reader that walks it itself (the cleaner): hold the
        reference for as long as its descriptor is used (files.py)."""
        return self._log.handle()

    def find_offset_by_timestamp(self, timestamp: int, starting_offset: int) -> TimestampAndOffset | None:
        """Kafka's LogSegment.findOffsetByTimestamp: the first record at or after `starting_offset`
        with a timestamp >= `timestamp`."""
        if self.max_timestamp < timestamp:
            return None
        _, indexed_offset = self._time_index.lookup(timestamp)
        _, position = self._offset_index.lookup(max(indexed_offset, starting_offset))
        for position, header in self.headers(position):
            if header.max_timestamp < timestamp or header.last_offset < starting_offset:
                continue
            for record in decode_records(self.read_batch(position, header.size)):
                if record.timestamp >= timestamp and record.offset >= starting_offset:
                    return TimestampAndOffset(record.offset, record.timestamp, header.partition_leader_epoch)
        return None

    # -- aborted transactions (.txnindex) ----------------------------------------------------------

    @property
    def aborted_txns(self) -> list[AbortedTxn]:
        """The aborted transactions whose markers this segment holds, in offset order (read only)."""
        return self._txn_index.entries

    def append_aborted_txn(self, txn: AbortedTxn) -> None:
        """Index an aborted transaction; on OSError it stays in memory (recovery rebuilds the file)."""
        self._txn_index.append(txn)

    def collect_aborted_txns(self, fetch_offset: int, upper_bound: int) -> tuple[list[AbortedTxn], bool]:
        """The aborted transactions overlapping [fetch_offset, upper_bound), and whether a later
        segment can hold none (txn_index.py)."""
        return self._txn_index.collect(fetch_offset, upper_bound)

    def reset_txn_index(self) -> None:
        """Forget the .txnindex entries before the producer-state replay indexes them again."""
        self._txn_index.reset()
        self.txn_index_stale = False

    @property
    def first_batch_timestamp(self) -> int:
        """The first batch's largest timestamp, -1 when empty (max.compaction.lag.ms, rolling)."""
        return self._first_timestamp()

    @property
    def largest_timestamp(self) -> int:
        """The largest record timestamp, or the file's mtime when no batch has one (retention.ms)."""
        if self.max_timestamp >= 0:
            return self.max_timestamp
        return int(self._log.stat().st_mtime * 1000)

    @property
    def index_sizes(self) -> tuple[int, int]:
        """Bytes of entries in the offset and time indexes (the cleaner's grouping: Kafka's sizeInBytes)."""
        return len(self._offset_index) * OffsetIndex.ENTRY.size, len(self._time_index) * TimeIndex.ENTRY.size

    # -- recovery and truncation -------------------------------------------------------------------

    def recover(self) -> str | None:
        """Kafka's LogSegment.recover: CRC-check every batch from position 0 (and that offsets only
        go forward), rebuild both indexes from the good ones and cut the .log after the last of
        them. Returns why it cut, None when every byte was a good batch. The .txnindex is marked
        stale: the partition log's producer-state replay rebuilds it."""
        self._reset_indexes()
        self.txn_index_stale = True
        indexes = (self._offset_index, self._time_index)
        for index in indexes:
            index.hold_writes()
        try:
            end, reason = self._observe_file()
        finally:
            for index in indexes:
                index.write_held()
        if end < self.size:
            self._truncate_bytes(end)
        return reason

    def _observe_file(self) -> tuple[int, str | None]:
        """`_observe` every good batch of the .log; where the good batches end, and why (None: the end)."""
        if self.size == 0:
            return 0, None
        handle = self._log.handle()  # the map keeps its own descriptor once made
        with mmap.mmap(handle.fileno(), self.size, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                return self._observe_batches(BatchScan(view))  # the scan's views go with its frame
            finally:
                view.release()

    def _observe_batches(self, scan: BatchScan) -> tuple[int, str | None]:
        expected = self.base_offset
        for position, header in scan:
            if (header.base_offset < expected or header.last_offset_delta < 0
                    or header.last_offset - self.base_offset > INT32_MAX):
                return position, (f"batch at position {position} has offsets {header.base_offset}.."
                                  f"{header.last_offset}, expected {expected} or above")
            self._observe(position, header)
            expected = header.next_offset
        return scan.end, scan.error

    def _reset_indexes(self) -> None:
        """Forget everything derived from the log, before `_observe`-ing it again from position 0."""
        self._offset_index.reset()
        self._time_index.reset()
        self.next_offset = self.base_offset
        self.max_timestamp = -1
        self.offset_of_max_timestamp = self.base_offset
        self._bytes_since_index = 0
        self._first_batch_timestamp = None
        self._tail = []  # observed again from position 0

    def _truncate_bytes(self, size: int) -> None:
        """Cut the .log file to `size` bytes."""
        self._log.truncate(size)
        self.size = size
        self._tail = None

    def truncate_to(self, offset: int) -> int:
        """Remove the batches from the one holding `offset` on; return the bytes removed."""
        found = self.find(offset)
        if found is None:
            return 0
        position = found[0]
        removed = self.size - position
        self._truncate_bytes(position)
        self._offset_index.truncate_to(offset)
        self._time_index.truncate_to(offset)
        self._txn_index.truncate_to(offset)
        self.max_timestamp, self.offset_of_max_timestamp = self._time_index.last_entry
        self._first_batch_timestamp = None
        self._load_tail()
        return removed

    def _load_tail(self) -> str | None:
        """Rebuild the in-memory state past the last index entry by walking the last few headers.

        Those last batches (about index.interval.bytes) are CRC-checked too: the end of a segment
        is where damage is likeliest, and a clean shutdown does not scan the rest.
        """
        indexed_offset, start = self._offset_index.last_entry
        timestamp, offset = self._time_index.last_entry
        if timestamp > self.max_timestamp:
            self.max_timestamp, self.offset_of_max_timestamp = timestamp, offset
        self.next_offset = self.base_offset
        end = start
        tail = []
        self._tail = None
        for position, header in self.headers(start):
            if position == start and position > 0 and header.last_offset != indexed_offset:
                return f"index entry for offset {indexed_offset} points at a batch ending at {header.last_offset}"
            if header.max_timestamp > self.max_timestamp:
                self.max_timestamp, self.offset_of_max_timestamp = header.max_timestamp, header.last_offset
            self.next_offset = header.next_offset
            end = position + header.size
            tail.append((position, header))
        self._bytes_since_index = self.size - start
        if end != self.size:
            return f"no whole batch at position {end} of {self.size}"
        if len(self._time_index) and self._time_index.last_entry[1] >= self.next_offset:
            return f"time index entry for offset {self._time_index.last_entry[1]} beyond the log end"
        if tail and end - start <= _TAIL_CRC_LIMIT:
            data = memoryview(self._log.pread(end - start, start))
            for position, header in tail:
                at = position - start
                if compute_crc(data[at:at + header.size]) != header.crc:
                    return f"CRC mismatch in the batch at position {position} (offset {header.base_offset})"
        if len(tail) <= TAIL_HEADERS:
            self._tail = tail
        return None

    def _first_timestamp(self) -> int:
        if self._first_batch_timestamp is None:
            first = next(self.headers(0), None)
            self._first_batch_timestamp = first[1].max_timestamp if first else -1
        return self._first_batch_timestamp

    # -- durability and lifetime -------------------------------------------------------------------

    def flush(self) -> None:
        self._log.sync()
        self.flush_indexes()

    def flush_log(self) -> None:
        """fsync the .log only: enough for the active segment, whose indexes recovery rebuilds after a crash."""
        self._log.sync()

    def flush_indexes(self) -> None:
        self._offset_index.flush()
        self._time_index.flush()
        self._txn_index.flush()

    def close(self) -> None:
        self._log.close()
        self._offset_index.close()
        self._time_index.close()
        self._txn_index.close()

    def delete(self) -> None:
        """Unlink the files (the .log first: without it the rest is debris). See files.py on closing."""
        with self._files_lock:
            self._deleted = True
            self._log.delete()
            self._offset_index.delete()
            self._time_index.delete()
            self._txn_index.delete()

    def change_suffix(self, suffix: str) -> bool:
        """Rename the files to end in `suffix` ("" for live names), the .log last; False if deleted."""
        with self._files_lock:
            if self._deleted:
                return False
            for index in (self._offset_index, self._time_index):
                target = _with_suffix(index.path, self.suffix, suffix)
                index.file.rename(target)
                index.path = target
            self._txn_index.rename(_with_suffix(self._txn_index.path, self.suffix, suffix))
            target = _with_suffix(self.log_path, self.suffix, suffix)
            self._log.rename(target)
            self.log_path = target
            self.suffix = suffix
            return True

    def set_last_modified(self, mtime_ns: int) -> None:
        """Keep the replaced segments' modification time (retention falls back on it)."""
        self._log.set_times(mtime_ns)

    @property
    def last_modified_ns(self) -> int:
        return self._log.stat().st_mtime_ns


def _with_suffix(path: Path, old: str, new: str) -> Path:
    name = path.name[:len(path.name) - len(old)] if old else path.name
    return path.with_name(name + new)
