"""A partition directory's segments (Kafka's LocalLog): the files under a partition's offsets.

It owns the segment list (in offset order, the last one active), the log end, rolling, reading
file slices, truncation, the cleaner's swap, and durability: the recovery point and `flush`.
It knows nothing of high watermarks, leader epochs or producers — partition_log.py keeps those
around it, as Kafka's UnifiedLog does around LocalLog.

Recovery point: everything below it is on disk. Only `flush` advances it, and only to what it
synced; start-up after a crash CRC-scans the segments above it, and always the active one. So a
flush fsyncs the active segment's .log alone (its indexes are rebuilt after a crash anyway;
skipping their fsyncs saves a third of the cost of flush.messages=1), and a rolled segment's
indexes when it rolls.

I/O errors (ENOSPC, EIO) while appending: the append is undone (segment.py: no partial batch, no
partial index entry, the log end unmoved) and the OSError goes to the caller, which answers
KAFKA_STORAGE_ERROR for that partition; producers retry. Kafka takes the whole log dir offline
after an I/O error, which on a single node stops every partition for good. We stay up instead:
reads are served throughout, and every append tries the disk again, so writes work again as
soon as space is freed (retention, a deleted topic), without a restart. The first failure and
the recovery are each logged once.

A failed fsync is never acknowledged, and its data is not trusted afterwards: Linux may have
dropped the dirty pages while reporting the error once, so a later fsync can succeed without
them. The flush marks the log (`sync_failed`); until the partition has cut the log back to
max(recovery point, high watermark) (PartitionLog.recover_from_failed_sync, run by the flusher
and before the next append) and cleared the mark, no flush advances the recovery point. Flushes
of one log never overlap (`_flush_lock`), so no fsync can miss an error another one consumed.

Threads: every method runs on the event-loop thread, except `flush`, which a worker thread may
run while appends continue, and the log cleaner's `commit_cleaned` / `finish_replace` (see
cleaner.py; the loop thread's part of a cleaning is `replace_segments`). `flush` reads the log
end and the segment list together (the list is replaced, never mutated, and a roll publishes the
new segment before the log end moves past it), fsyncs, then advances the recovery point under a
lock, unless a truncation happened meanwhile. Files of deleted segments stay open while a flush
or a sendfile still holds them (files.py).
"""
from __future__ import annotations

import errno
import logging
import threading
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kbroker.log.config import LogConfig
from kbroker.log.files import OpenFiles, fsync_dir
from kbroker.log.segment import DELETED_SUFFIX, SWAP_SUFFIX, FileSlice, LogSegment
from kbroker.log.txn_index import AbortedTxn
from kbroker.wire.records import BatchHeader

log = logging.getLogger("kbroker.log")


@dataclass(frozen=True, slots=True)
class FetchSlices:
    slices: tuple[FileSlice, ...]
    size: int


NO_SLICES = FetchSlices((), 0)


class LocalLog:
    def __init__(self, directory: Path, name: str, config: LogConfig, segments: list[LogSegment], *,
                 recovery_point: int, before_roll: Callable[[int], None], files: OpenFiles) -> None:
        self.directory = directory
        self.files = files  # the broker's open-file budget, which every segment file here counts against
        self.name = name  # "<topic>-<partition>", for log lines
        self.config = config
        self._before_roll = before_roll  # given the new segment's base offset (the producer snapshot)
        self._segments = segments
        self._bases = [s.base_offset for s in segments]
        self._log_end_offset = segments[-1].next_offset
        self._recovery_point = min(recovery_point, self._log_end_offset)
        self._lock = threading.Lock()  # recovery point, truncation count, dir-needs-fsync flag, pending swap
        self._flush_lock = threading.Lock()  # one flush at a time (see I/O errors above)
        self._indexes_to_sync: list[LogSegment] = []  # rolled since the last flush (see `flush`)
        self._sync_failed = False
        self._write_error: str | None = None  # why appends fail, while they do (logged once)
        self._truncations = 0
        self._dir_dirty = False
        self._pending_swap: LogSegment | None = None  # committed by the cleaner, not yet swapped in
        self._with_aborts: list[LogSegment] | None = None  # segments with .txnindex entries (None: to be listed)

    @property
    def segments(self) -> list[LogSegment]:
        """The segments in offset order, the last one active (replaced, never mutated)."""
        return self._segments

    @property
    def active_segment(self) -> LogSegment:
        return self._segments[-1]

    @property
    def log_end_offset(self) -> int:
        return self._log_end_offset

    @property
    def recovery_point(self) -> int:
        return self._recovery_point

    @property
    def truncations(self) -> int:
        with self._lock:
            return self._truncations

    @property
    def sync_failed(self) -> bool:
        with self._lock:
            return self._sync_failed

    def sync_recovered(self) -> None:
        """The partition cut the tail a failed fsync left unsynced: flushes may advance again."""
        with self._lock:
            self._sync_failed = False

    @property
    def needs_restoring(self) -> bool:
        """An append must first drop an unsynced tail (failed fsync) or a tail a failed append left."""
        return self._sync_failed or self._segments[-1].needs_repair

    # -- append ------------------------------------------------------------------------------------

    def append(self, batch: bytes | bytearray | memoryview, header: BatchHeader, now_ms: int) -> LogSegment:
        """Write an offset-assigned batch to the active segment (rolling first if due); return the
        segment it went to. An OSError leaves nothing written."""
        try:
            segment = self._segments[-1]
            if segment.should_roll(header, self.config, now_ms):
                segment = self.roll(header.base_offset, now_ms)
            segment.append(batch, header)
        except OSError as exc:
            self.append_failed(exc)
            raise
        if self._write_error is not None:
            log.warning("%s: appends work again (%s is over)", self.name, self._write_error)
            self._write_error = None
        self._log_end_offset = header.next_offset
        return segment

    def append_failed(self, exc: OSError) -> None:
        if self._write_error is None:
            self._write_error = exc.strerror or str(exc)
            log.error("%s: append at offset %d failed: %s; nothing was written, appends are answered "
                      "KAFKA_STORAGE_ERROR until they work again", self.name, self._log_end_offset, exc)

    def repair_active(self) -> None:
        """Cut the partial tail a failed append left in the active segment."""
        if self._segments[-1].needs_repair:
            self._segments[-1].repair()

    def append_aborted_txn(self, segment: LogSegment, txn: AbortedTxn) -> None:
        """Index an aborted transaction in the segment holding its marker."""
        created = not segment.aborted_txns
        self._with_aborts = None
        try:
            segment.append_aborted_txn(txn)
        except OSError as exc:  # the entry is in memory; recovery rebuilds the file after a crash
            log.error("%s: writing the aborted transaction at offset %d to the .txnindex of segment %d "
                      "failed: %s", self.name, txn.last_offset, segment.base_offset, exc)
        if created:
            with self._lock:
                self._dir_dirty = True

    def reset_txn_indexes_from(self, index: int) -> None:
        """Empty the .txnindex of the segments from `index` on (to rebuild them by replaying markers)."""
        for segment in self._segments[index:]:
            segment.reset_txn_index()
        self._with_aborts = None

    def roll(self, base_offset: int, now_ms: int) -> LogSegment:
        rolled = self._segments[-1]
        rolled.finish_time_index()
        self._before_roll(base_offset)
        segment = LogSegment.create(self.directory, base_offset, self.config, now_ms, self.files)
        self._set_segments([*self._segments, segment])
        with self._lock:
            self._dir_dirty = True
            self._indexes_to_sync.append(rolled)
        return segment

    def _set_segments(self, segments: list[LogSegment]) -> None:
        self._bases = [s.base_offset for s in segments]
        self._segments = segments
        self._with_aborts = None

    # -- read --------------------------------------------------------------------------------------

    def read(self, fetch_offset: int, max_bytes: int, max_offset: int,
             min_one_batch: bool) -> tuple[FetchSlices, LogSegment | None, int]:
        """Whole batches from the one holding `fetch_offset`, all ending before `max_offset`, at most
        `max_bytes` (with `min_one_batch` the first batch whatever its size); and the segment and
        position where the data returned ends (None: no data)."""
        if fetch_offset >= min(max_offset, self._log_end_offset):
            return NO_SLICES, None, 0
        last: tuple[LogSegment | None, int] = (None, 0)
        slices: list[FileSlice] = []
        total = 0
        offset = fetch_offset
        for segment in self._segments[max(bisect_right(self._bases, fetch_offset) - 1, 0):]:
            # Kafka's maxPosition: where the batches before `max_offset` end (None: the segment's end).
            max_position = None if max_offset >= segment.next_offset else segment.end_position(max_offset)
            found = segment.read(offset, max_bytes - total, max_position, min_one_batch and not total)
            if found is None:
                continue
            piece = found.records
            if piece is None:
                break
            slices.append(piece)
            end = piece.position + piece.length
            last = (segment, end)
            total += piece.length
            if end < segment.size or total >= max_bytes:
                break
            offset = segment.next_offset
        return FetchSlices(tuple(slices), total), *last

    def has_aborts_from(self, offset: int) -> bool:
        return bool(self._indexed_from(offset))

    def _indexed_from(self, offset: int) -> list[LogSegment]:
        """The segments from the one holding `offset` on that have aborted transactions."""
        if self._with_aborts is None:
            self._with_aborts = [s for s in self._segments if s.aborted_txns]
        return [s for s in self._with_aborts if s.next_offset > offset]

    def aborted_transactions(self, fetch_offset: int, upper_bound: int) -> list[AbortedTxn]:
        """Kafka's collectAbortedTransactions: the aborted transactions overlapping [fetch_offset,
        upper_bound), from the segment holding `fetch_offset` on (a marker may lie past the range)."""
        found: list[AbortedTxn] = []
        for segment in self._indexed_from(fetch_offset):
            txns, complete = segment.collect_aborted_txns(fetch_offset, upper_bound)
            found += txns
            if complete:
                break
        return found

    # -- deleting and truncating -------------------------------------------------------------------

    def delete_segments_below(self, offset: int) -> None:
        """Delete the segments wholly below `offset` (the new log start); the active one stays."""
        doomed = 0
        while doomed + 1 < len(self._segments) and self._segments[doomed + 1].base_offset <= offset:
            doomed += 1
        self._drop_segments(self._segments[:doomed])
        self._set_segments(self._segments[doomed:])

    def truncate_to(self, offset: int) -> None:
        """Remove everything from `offset` on (a batch holding `offset` goes whole); `offset` must be
        above the first segment's base (else `truncate_fully_and_start_at`)."""
        keep = bisect_right(self._bases, offset)
        self._drop_segments(self._segments[keep:])
        self._set_segments(self._segments[:keep])
        self._segments[-1].truncate_to(offset)
        self._truncated()

    def truncate_fully_and_start_at(self, offset: int, now_ms: int) -> None:
        """Drop every segment; the log starts again, empty, at `offset`."""
        self._drop_segments(self._segments)
        self._set_segments([LogSegment.create(self.directory, offset, self.config, now_ms, self.files)])
        self._truncated()

    def _truncated(self) -> None:
        end = self._segments[-1].next_offset
        self._log_end_offset = end
        with self._lock:
            self._truncations += 1
            self._recovery_point = min(self._recovery_point, end)
            discarded, self._pending_swap = self._pending_swap, None
        if discarded is not None:  # a cleaned segment may hold offsets the truncation removed
            discarded.close()
            discarded.delete()

    def _drop_segments(self, segments: list[LogSegment]) -> None:
        for segment in segments:
            segment.delete()

    # -- log cleaner (cleaner.py has the protocol) --------------------------------------------------

    def commit_cleaned(self, segment: LogSegment, truncations: int) -> bool:
        """Worker thread: turn the fsynced `.cleaned` segment into a committed `.swap`.

        Refused (False) if the log was truncated since the cleaning began (`truncations`).
        """
        with self._lock:
            if self._truncations != truncations:
                return False
            segment.change_suffix(SWAP_SUFFIX)
            self._pending_swap = segment
        try:
            fsync_dir(self.directory)
        except BaseException:
            with self._lock:
                if self._pending_swap is segment:
                    self._pending_swap = None
            raise
        return True

    def replace_segments(self, new: LogSegment, old: list[LogSegment]) -> bool:
        """Loop thread: put the committed `new` segment in place of `old` in the segment list.

        `old` must still be consecutive non-active segments of this log; if retention, DeleteRecords
        or a truncation removed any of them meanwhile, the swap is rolled back (False).
        """
        with self._lock:
            pending, self._pending_swap = self._pending_swap, None
        segments = self._segments
        start = next((i for i, s in enumerate(segments) if s is old[0]), None)
        end = None if start is None else start + len(old)
        if (pending is not new or end is None or end >= len(segments)
                or any(a is not b for a, b in zip(segments[start:end], old))):
            new.close()
            new.delete()
            return False
        self._set_segments([*segments[:start], new, *segments[end:]])
        return True

    def finish_replace(self, new: LogSegment, old: list[LogSegment]) -> None:
        """Worker thread, after `replace_segments`: retire the old files, give the new ones live names."""
        for segment in old:
            segment.change_suffix(DELETED_SUFFIX)
        fsync_dir(self.directory)
        new.change_suffix("")  # False if retention deleted it meanwhile: nothing to rename
        fsync_dir(self.directory)
        for segment in old:
            segment.delete()

    # -- durability --------------------------------------------------------------------------------

    def flush(self, up_to: int | None = None) -> None:
        """fsync data and indexes below `up_to` (default: the log end); thread-safe, see above.

        Raises OSError if an fsync fails, or failed before and the partition has not yet cut the
        unsynced tail.
        """
        with self._flush_lock:
            with self._lock:
                if self._sync_failed:
                    raise OSError(errno.EIO, f"{self.name}: an earlier fsync failed; "
                                             "its data is dropped before anything more is synced")
                end = self._log_end_offset
                target = end if up_to is None else min(up_to, end)
                start = self._recovery_point
                if target <= start:
                    return
                segments = self._segments
                truncations = self._truncations
                dir_dirty, self._dir_dirty = self._dir_dirty, False
                rolled, self._indexes_to_sync = self._indexes_to_sync, []
            try:
                flushed = set()
                for i, segment in enumerate(segments):
                    if segment.base_offset >= target:
                        break
                    upper = segments[i + 1].base_offset if i + 1 < len(segments) else None
                    if upper is None:
                        segment.flush_log()
                    elif upper > start:
                        segment.flush()
                        flushed.add(segment)
                for segment in rolled:
                    if segment not in flushed:
                        segment.flush_indexes()
                if dir_dirty:
                    try:
                        fsync_dir(self.directory)
                    except FileNotFoundError:  # the topic was deleted meanwhile
                        pass
            except OSError as exc:
                with self._lock:
                    self._sync_failed = True
                    self._dir_dirty = self._dir_dirty or dir_dirty
                    self._indexes_to_sync[:0] = rolled
                log.error("%s: fsync failed: %s", self.name, exc)
                raise
            with self._lock:
                if self._truncations == truncations and target > self._recovery_point:
                    self._recovery_point = target

    def close_files(self) -> None:
        for segment in self._segments:
            segment.close()
