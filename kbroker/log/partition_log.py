"""A partition's log: its segments in offset order (the last one active) and the offsets around them.

Directory `<data dir>/<topic>-<partition>/`: `<base>.log/.index/.timeindex/.txnindex` segments, producer
snapshots `<offset>.snapshot`, `leader-epoch-checkpoint`, `partition.metadata`.

Offsets, always log_start_offset <= last_stable_offset <= high_watermark <= log_end_offset:
  log start       the first offset a consumer may read; DeleteRecords and retention raise it, and
                  whole segments below it are deleted.
  log end (LEO)   the offset the next batch gets.
  high watermark  what consumers may see. Only the broker moves it (`update_high_watermark`): on a
                  single node to the LEO after an append, or to what an fsync covered when
                  flush.messages asks for it. Set to the LEO on load (a single replica's log, as
                  recovered, is the committed log).
  last stable     the high watermark, or if lower the first offset of the oldest transaction that is
                  open or whose marker the high watermark has not yet passed (Kafka's
                  firstUnstableOffset: read_committed consumers see a transaction's records only
                  once its outcome is as durable as the records).
  recovery point  everything below it is on disk. Only `flush` advances it, and only to what it
                  synced; start-up after a crash CRC-scans the segments above it, and always the
                  active one. So a flush fsyncs the active segment's .log alone (its indexes are
                  rebuilt after a crash anyway; skipping their fsyncs saves a third of the cost
                  of flush.messages=1), and a rolled segment's indexes when it rolls.

I/O errors (ENOSPC, EIO) while appending: the append is undone (segment.py: no partial batch, no
partial index entry, the log end unmoved) and the OSError goes to the caller, which answers
KAFKA_STORAGE_ERROR for that partition; producers retry. Kafka takes the whole log dir offline
after an I/O error, which on a single node stops every partition for good. We stay up instead:
reads are served throughout, and every append tries the disk again, so writes work again as
soon as space is freed (retention, a deleted topic), without a restart. The first failure and
the recovery are each logged once.

A failed fsync is never acknowledged, and its data is not trusted afterwards: Linux may have
dropped the dirty pages while reporting the error once, so a later fsync can succeed without
them. The flush marks the log (`_sync_failed`); until the loop thread has cut the log back to
max(recovery point, high watermark) (`recover_from_failed_sync`, run by the flusher and before
the next append), no flush advances the recovery point. Only data no consumer has seen and no
producer was told about is dropped, and producers resend it (idempotent ones with the same
sequence numbers: the producer state is rewound with the log). Data already visible stays, as
the page cache holds it (Kafka keeps it too). Flushes of one log never overlap (`_flush_lock`),
so no fsync can miss an error another one consumed.

Threads: every method runs on the event-loop thread, except `flush`, which a worker thread may
run while appends continue, and the log cleaner's `commit_cleaned` / `finish_replace` (see
cleaner.py; the loop thread's part of a cleaning is `replace_segments`). `flush` reads the log end and the segment list together (the list is
replaced, never mutated, and a roll publishes the new segment before the log end moves past it),
fsyncs, then advances the recovery point under a lock, unless a truncation happened meanwhile.
Files of deleted segments stay open while a flush or a sendfile still holds them (files.py).
"""
from __future__ import annotations

import errno
import logging
import os
import threading
import uuid
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kbroker.clock import Clock, wall_clock_ms
from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.checkpoints import (
    LEADER_EPOCH_CHECKPOINT,
    read_partition_metadata,
    write_partition_metadata,
)
from kbroker.log.config import LogConfig
from kbroker.log.files import OpenFiles, fsync_dir
from kbroker.log.leader_epochs import LeaderEpochCache
from kbroker.log.producer_state import CompletedTxn, ProducerEntry, ProducerStateManager
from kbroker.log.recovery import load_segments
from kbroker.log.retention import SegmentInfo, deletable_segment_count
from kbroker.log.segment import DELETED_SUFFIX, SWAP_SUFFIX, FileSlice, LogSegment, TimestampAndOffset
from kbroker.log.txn_index import AbortedTxn
from kbroker.wire.records import (
    BatchHeader,
    ControlRecordType,
    EndTxnMarker,
    TimestampType,
    assign_offsets,
    build_control_batch,
    decode_records,
    end_txn_marker,
    set_log_append_time,
)

log = logging.getLogger("kbroker.log")


@dataclass(frozen=True, slots=True)
class AppendResult:
    base_offset: int
    last_offset: int
    log_append_time: int  # -1 for CreateTime topics
    log_start_offset: int
    duplicate: bool = False  # a producer retry: nothing written, the original offsets returned


@dataclass(frozen=True, slots=True)
class FetchSlices:
    slices: tuple[FileSlice, ...]
    size: int


_NO_SLICES = FetchSlices((), 0)


class PartitionLog:
    def __init__(self, directory: Path, topic: str, partition: int, topic_id: uuid.UUID,
                 config: LogConfig, segments: list[LogSegment], *, log_start_offset: int,
                 recovery_point: int, on_log_start_change: Callable[[], None] | None, files: OpenFiles,
                 clock: Clock = wall_clock_ms) -> None:
        self.directory = directory
        self.files = files  # the broker's open-file budget, which every segment file of this log counts against
        self._clock = clock  # for what no caller gives a time: the segment a truncation starts
        self.topic = topic
        self.partition = partition
        self.topic_id = topic_id
        self.config = config
        self._segments = segments
        self._bases = [s.base_offset for s in segments]
        self.log_start_offset = log_start_offset
        self._log_end_offset = segments[-1].next_offset
        self._high_watermark = self._log_end_offset
        self._recovery_point = min(recovery_point, self._log_end_offset)
        self._lock = threading.Lock()  # recovery point, truncation count, dir-needs-fsync flag, pending swap
        self._flush_lock = threading.Lock()  # one flush at a time (see I/O errors above)
        self._indexes_to_sync: list[LogSegment] = []  # rolled since the last flush (see `flush`)
        self._sync_failed = False
        self._write_error: str | None = None  # why appends fail, while they do (logged once)
        self._truncations = 0
        self._dir_dirty = False
        self._on_log_start_change = on_log_start_change
        self._pending_swap: LogSegment | None = None  # committed by the cleaner, not yet swapped in
        self._producers = ProducerStateManager(directory)
        self._unreplicated: list[CompletedTxn] = []  # ended, but the high watermark is not past the marker yet
        self._with_aborts: list[LogSegment] | None = None  # segments with .txnindex entries (None: to be listed)
        self._epochs = LeaderEpochCache(directory / LEADER_EPOCH_CHECKPOINT)

    @classmethod
    def open(cls, directory: Path, topic: str, partition: int, topic_id: uuid.UUID, config: LogConfig, *,
             now_ms: int, log_start_offset: int = 0, recovery_point: int = 0, clean_shutdown: bool = False,
             on_log_start_change: Callable[[], None] | None = None, files: OpenFiles,
             clock: Clock = wall_clock_ms) -> PartitionLog:
        """Open (or create) the partition directory, recovering what a crash may have torn."""
        directory.mkdir(parents=True, exist_ok=True)
        recorded = read_partition_metadata(directory)
        if recorded is None:
            write_partition_metadata(directory, topic_id)
        elif recorded != topic_id:
            raise KafkaError(ErrorCode.INCONSISTENT_TOPIC_ID,
                             f"{directory} belongs to topic id {recorded}, not {topic_id}")
        name = f"{topic}-{partition}"
        segments = load_segments(directory, config, files, recovery_point=recovery_point,
                                 clean_shutdown=clean_shutdown, now_ms=now_ms, name=name)
        if segments and log_start_offset > segments[-1].next_offset:
            log.warning("%s: log start offset %d is past the log end %d; starting empty there", name,
                        log_start_offset, segments[-1].next_offset)
            for segment in segments:
                segment.close()
                segment.delete()
            segments = []
        if not segments:
            segments = [LogSegment.create(directory, log_start_offset, config, now_ms, files)]
        log_start_offset = max(log_start_offset, segments[0].base_offset)
        partition_log = cls(directory, topic, partition, topic_id, config, segments,
                            log_start_offset=log_start_offset,
                            recovery_point=segments[-1].next_offset if clean_shutdown else recovery_point,
                            on_log_start_change=on_log_start_change, files=files, clock=clock)
        partition_log._load_producer_state(rebuild_txn_indexes=True)
        partition_log._epochs.truncate_from_end(partition_log.log_end_offset)
        partition_log._epochs.truncate_from_start(log_start_offset)
        return partition_log

    # -- offsets -----------------------------------------------------------------------------------

    @property
    def log_end_offset(self) -> int:
        return self._log_end_offset

    @property
    def high_watermark(self) -> int:
        return self._high_watermark

    def update_high_watermark(self, offset: int) -> None:
        if not self.log_start_offset <= offset <= self._log_end_offset:
            raise ValueError(f"high watermark {offset} outside [{self.log_start_offset}, {self._log_end_offset}]")
        self._high_watermark = offset
        if self._unreplicated:
            self._unreplicated = [txn for txn in self._unreplicated if txn.last_offset >= offset]

    @property
    def last_stable_offset(self) -> int:
        """Kafka's UnifiedLog.lastStableOffset: what read_committed consumers may read up to."""
        first_unstable = self._producers.first_unstable_offset()
        for txn in self._unreplicated:
            if first_unstable is None or txn.first_offset < first_unstable:
                first_unstable = txn.first_offset
        if first_unstable is None:
            return self._high_watermark
        return max(self.log_start_offset, min(first_unstable, self._high_watermark))

    @property
    def recovery_point(self) -> int:
        return self._recovery_point

    @property
    def unflushed_messages(self) -> int:
        return self._log_end_offset - self._recovery_point

    @property
    def leader_epoch(self) -> int:
        """The latest leader epoch written to this log (0 for a log never written)."""
        return max(self._epochs.latest_epoch, 0)

    @property
    def latest_epoch(self) -> int:
        """The latest leader epoch in the epoch cache, -1 when it is empty (a follower asks the
        leader where that epoch ends before it fetches)."""
        return self._epochs.latest_epoch

    def become_leader(self, leader_epoch: int) -> None:
        """Lead from the log end in `leader_epoch`: appends carry it, and the epoch cache says where it began."""
        if leader_epoch > self._epochs.latest_epoch:
            self._epochs.assign(leader_epoch, self._log_end_offset)

    # -- append ------------------------------------------------------------------------------------

    def append(self, batch: bytearray | memoryview, header: BatchHeader, *, leader_epoch: int,
               now_ms: int) -> AppendResult:
        """Append one batch that passed `validate_produce_batch` (or a broker-built control batch).

        The batch is patched in place (a read-only buffer is copied first).
        """
        if isinstance(batch, bytes) or (isinstance(batch, memoryview) and batch.readonly):
            batch = bytearray(batch)
        if self._sync_failed or self._segments[-1].needs_repair:
            self._restore_writable()
        config = self.config
        if header.size > config.segment_bytes:
            raise KafkaError(ErrorCode.RECORD_LIST_TOO_LARGE,
                             f"Message batch size is {header.size} bytes which exceeds the maximum "
                             f"configured segment size of {config.segment_bytes}.")
        if config.log_append_time and header.timestamp_type is TimestampType.LOG_APPEND_TIME:
            raise KafkaError(ErrorCode.INVALID_TIMESTAMP,
                             "Producer should not set timestamp type to LogAppendTime.")
        producers = self._producers
        marker = None
        if header.has_producer_id:
            if header.is_control:
                marker = end_txn_marker(batch)
                producers.check_marker(header.producer_id, header.producer_epoch, marker.coordinator_epoch)
            else:
                duplicate = producers.check(header)
                if duplicate is not None:
                    return AppendResult(duplicate.first_offset, duplicate.last_offset,
                                        duplicate.timestamp if config.log_append_time else -1,
                                        self.log_start_offset, duplicate=True)
        base_offset = self._log_end_offset
        assign_offsets(batch, base_offset, leader_epoch)
        if config.log_append_time:
            set_log_append_time(batch, now_ms)
        header = BatchHeader.parse(batch)
        if leader_epoch >= 0 and leader_epoch != self._epochs.latest_epoch:
            self._epochs.assign(leader_epoch, base_offset)
        self._write(batch, header, now_ms, marker)
        return AppendResult(base_offset, header.last_offset, now_ms if config.log_append_time else -1,
                            self.log_start_offset)

    def append_control_batch(self, producer_id: int, producer_epoch: int, coordinator_epoch: int, commit: bool,
                             timestamp_ms: int) -> int:
        """Write a COMMIT or ABORT marker ending the producer's transaction; return its offset.

        A producer epoch below the producer's is INVALID_PRODUCER_EPOCH, a coordinator epoch below
        that of its last marker TRANSACTION_COORDINATOR_FENCED (KafkaError); an OSError as `append`.
        """
        marker = EndTxnMarker(ControlRecordType.COMMIT if commit else ControlRecordType.ABORT, coordinator_epoch)
        batch = bytearray(build_control_batch(marker, producer_id=producer_id, producer_epoch=producer_epoch,
                                              timestamp_ms=timestamp_ms))
        return self.append(batch, BatchHeader.parse(batch), leader_epoch=self.leader_epoch,
                           now_ms=timestamp_ms).base_offset

    def append_as_follower(self, batch: bytes | memoryview, header: BatchHeader, now_ms: int) -> None:
        """Append a batch fetched from the leader as it is: its offsets, leader epoch, producer
        state and timestamps are the leader's, so this log stays byte-identical to the leader's."""
        if header.base_offset != self._log_end_offset:
            raise KafkaError(ErrorCode.CORRUPT_MESSAGE, f"{self.topic}-{self.partition}: the leader sent offset "
                                                        f"{header.base_offset}, the log ends at {self._log_end_offset}")
        if self._sync_failed or self._segments[-1].needs_repair:
            self._restore_writable()
        epoch = header.partition_leader_epoch
        if epoch >= 0 and epoch > self._epochs.latest_epoch:
            self._epochs.assign(epoch, header.base_offset)
        self._write(batch, header, now_ms)

    def _write(self, batch: bytes | bytearray | memoryview, header: BatchHeader, now_ms: int,
               marker: EndTxnMarker | None = None) -> None:
        """Write an offset-assigned batch to the active segment (rolling first if due); then the
        producer state and the log end follow it."""
        producers = self._producers
        try:
            segment = self._segments[-1]
            if segment.should_roll(header, self.config, now_ms):
                segment = self._roll(header.base_offset, now_ms)
            segment.append(batch, header)
        except OSError as exc:
            self._append_failed(exc)
            raise
        if self._write_error is not None:
            log.warning("%s-%d: appends work again (%s is over)", self.topic, self.partition, self._write_error)
            self._write_error = None
        if header.has_producer_id:
            if header.is_control:
                marker = marker or end_txn_marker(batch)
                completed = producers.record_marker(header, marker.kind is ControlRecordType.ABORT,
                                                    marker.coordinator_epoch)
                if completed is not None:
                    self._unreplicated.append(completed)
                    self._index_if_aborted(completed, segment)
            else:
                producers.record_batch(header)
        self._log_end_offset = header.next_offset

    def _index_if_aborted(self, txn: CompletedTxn, segment: LogSegment) -> None:
        """An aborted transaction goes in the .txnindex of the segment holding its marker, with the
        last stable offset right after it (Kafka's ProducerStateManager.lastStableOffset)."""
        if not txn.aborted:
            return
        first_unstable = self._producers.first_unstable_offset()
        stable = txn.last_offset + 1 if first_unstable is None else first_unstable
        created = not segment.aborted_txns
        self._with_aborts = None
        try:
            segment.append_aborted_txn(AbortedTxn(txn.producer_id, txn.first_offset, txn.last_offset, stable))
        except OSError as exc:  # the entry is in memory; recovery rebuilds the file after a crash
            log.error("%s-%d: writing the aborted transaction at offset %d to the .txnindex of segment %d "
                      "failed: %s", self.topic, self.partition, txn.last_offset, segment.base_offset, exc)
        if created:
            with self._lock:
                self._dir_dirty = True

    def roll_if_idle(self, now_ms: int) -> bool:
        """segment.ms without appends: roll an active segment holding data once it is that old.

        Kafka checks segment.ms only when appending; rolling an idle segment too lets retention and
        the cleaner reach the last records written to a quiet partition. The age counts from the
        first batch's timestamp, as Kafka's, but never from before the segment was created here:
        records stamped long ago must not roll a segment at every check.
        """
        active = self._segments[-1]
        if active.size == 0:
            return False
        if now_ms - max(active.first_batch_timestamp, active.created_ms) <= self.config.segment_ms:
            return False
        self._roll(self._log_end_offset, now_ms)
        return True

    def _append_failed(self, exc: OSError) -> None:
        if self._write_error is None:
            self._write_error = exc.strerror or str(exc)
            log.error("%s-%d: append at offset %d failed: %s; nothing was written, appends are answered "
                      "KAFKA_STORAGE_ERROR until they work again", self.topic, self.partition,
                      self._log_end_offset, exc)

    def _restore_writable(self) -> None:
        """Before appending: drop an unsynced tail after a failed fsync, cut a tail a failed append left."""
        try:
            self.recover_from_failed_sync()
            if self._segments[-1].needs_repair:
                self._segments[-1].repair()
        except OSError as exc:
            self._append_failed(exc)
            raise

    def recover_from_failed_sync(self) -> None:
        """Loop thread: after a failed fsync, cut the log back to what was synced or seen (see the header)."""
        with self._lock:
            if not self._sync_failed:
                return
        keep = max(self._recovery_point, self._high_watermark)
        if keep < self._log_end_offset:
            log.error("%s-%d: fsync failed; dropping offsets %d..%d, which no consumer saw and no producer was "
                      "told about (producers resend them)", self.topic, self.partition, keep,
                      self._log_end_offset - 1)
            self.truncate_to(keep)
        with self._lock:
            self._sync_failed = False

    def _roll(self, base_offset: int, now_ms: int) -> LogSegment:
        rolled = self._segments[-1]
        rolled.finish_time_index()
        self._producers.take_snapshot(base_offset, fsync=False)
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

    def read(self, fetch_offset: int, max_bytes: int, max_offset: int, min_one_batch: bool) -> FetchSlices:
        """Whole batches from the one holding `fetch_offset`, all ending before `max_offset`.

        At most `max_bytes`, except that with `min_one_batch` the first batch comes whatever its size.
        """
        return self._read(fetch_offset, max_bytes, max_offset, min_one_batch)[0]

    def read_committed(self, fetch_offset: int, max_bytes: int, max_offset: int,
                       min_one_batch: bool) -> tuple[FetchSlices, list[AbortedTxn]]:
        """`read`, with the aborted transactions overlapping the offsets returned (for read_committed
        fetches, whose `max_offset` is the last stable offset)."""
        data, segment, end = self._read(fetch_offset, max_bytes, max_offset, min_one_batch)
        if segment is None or not self._indexed_from(fetch_offset):  # the common case: no aborts here
            return data, []
        return data, self.aborted_transactions(fetch_offset, segment.offset_at(end))

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

    def _read(self, fetch_offset: int, max_bytes: int, max_offset: int,
              min_one_batch: bool) -> tuple[FetchSlices, LogSegment | None, int]:
        """`read`, and the segment and position where the data returned ends (None: no data)."""
        if not self.log_start_offset <= fetch_offset <= self._log_end_offset:
            raise KafkaError(ErrorCode.OFFSET_OUT_OF_RANGE,
                             f"Received request for offset {fetch_offset}, but we only have log segments "
                             f"in the range {self.log_start_offset} to {self._log_end_offset}.")
        if fetch_offset >= min(max_offset, self._log_end_offset):
            return _NO_SLICES, None, 0
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

    def read_batches(self, fetch_offset: int, max_offset: int) -> list[bytes]:
        """The batches read() would return, as bytes: for internal topics, compaction and tests."""
        found = self.read(fetch_offset, 2**31 - 1, max_offset, min_one_batch=True)
        out = []
        for piece in found.slices:
            data = _pread(piece)
            position = 0
            while position < len(data):
                size = BatchHeader.parse(data, position).size
                out.append(data[position:position + size])
                position += size
        return out

    # -- offsets by time and epoch -----------------------------------------------------------------

    def offset_for_timestamp(self, timestamp: int) -> TimestampAndOffset | None:
        """The first record with a timestamp >= `timestamp` (Kafka's fetchOffsetByTimestamp)."""
        start = self.log_start_offset
        for segment in self._segments:
            if segment.next_offset > start:
                found = segment.find_offset_by_timestamp(timestamp, start)
                if found is not None:
                    return found
        return None

    def max_timestamp_offset(self) -> TimestampAndOffset | None:
        """The first record carrying the largest timestamp in the log (ListOffsets -3)."""
        best = None
        for segment in self._segments:
            if segment.next_offset > self.log_start_offset and segment.max_timestamp >= 0 and (
                    best is None or segment.max_timestamp > best.max_timestamp):
                best = segment
        if best is None:
            return None
        found = best.find(best.offset_of_max_timestamp)
        if found is None:
            return None
        position, header = found
        for record in decode_records(best.read_batch(position, header.size)):
            if record.timestamp == best.max_timestamp:
                return TimestampAndOffset(record.offset, record.timestamp, header.partition_leader_epoch)
        return TimestampAndOffset(header.last_offset, best.max_timestamp, header.partition_leader_epoch)

    def earliest_offset(self) -> TimestampAndOffset:
        return TimestampAndOffset(self.log_start_offset, -1, self._epochs.epoch_for_offset(self.log_start_offset))

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """(epoch, end offset) for OffsetForLeaderEpoch; (-1, -1) when unknown."""
        return self._epochs.end_offset_for(epoch, self._log_end_offset)

    # -- deleting and truncating -------------------------------------------------------------------

    def delete_records_before(self, offset: int) -> int:
        """DeleteRecords: raise the log start to `offset` (at most the high watermark); return it."""
        if offset > self._high_watermark or offset < 0:
            raise KafkaError(ErrorCode.OFFSET_OUT_OF_RANGE,
                             f"Cannot increment the log start offset to {offset}: the high watermark is "
                             f"{self._high_watermark}")
        if offset > self.log_start_offset:
            self._advance_log_start(offset)
        return self.log_start_offset

    def delete_old_segments(self, now_ms: int) -> int:
        """Apply retention.ms / retention.bytes; return the number of segments deleted."""
        if not self.config.deletes_old_segments:
            return 0
        infos = [SegmentInfo(s.base_offset, s.size, s.largest_timestamp) for s in self._segments]
        count = deletable_segment_count(infos, self.config, now_ms=now_ms, log_start_offset=self.log_start_offset,
                                        high_watermark=self._high_watermark, log_end_offset=self._log_end_offset)
        if count == 0:
            return 0
        if count == len(self._segments):
            self._roll(self._log_end_offset, now_ms)
        self._advance_log_start(self._segments[count].base_offset)
        return count

    def _advance_log_start(self, offset: int) -> None:
        self.log_start_offset = offset
        doomed = 0
        while doomed + 1 < len(self._segments) and self._segments[doomed + 1].base_offset <= offset:
            doomed += 1
        self._drop_segments(self._segments[:doomed])
        self._set_segments(self._segments[doomed:])
        self._producers.evict_before(offset)
        self._epochs.truncate_from_start(offset)
        if self._on_log_start_change is not None:
            self._on_log_start_change()

    def truncate_to(self, offset: int) -> None:
        """Remove everything from `offset` on (a batch holding `offset` goes whole)."""
        if offset >= self._log_end_offset:
            return
        if offset <= self._segments[0].base_offset or offset < self.log_start_offset:
            self._drop_segments(self._segments)
            self._set_segments([LogSegment.create(self.directory, offset, self.config, self._clock(), self.files)])
            self.log_start_offset = offset
        else:
            keep = bisect_right(self._bases, offset)
            self._drop_segments(self._segments[keep:])
            self._set_segments(self._segments[:keep])
            self._segments[-1].truncate_to(offset)
            self._with_aborts = None  # its .txnindex lost the transactions aborted from `offset` on
        end = self._segments[-1].next_offset
        self._log_end_offset = end
        self._high_watermark = min(self._high_watermark, end)
        with self._lock:
            self._truncations += 1
            self._recovery_point = min(self._recovery_point, end)
            discarded, self._pending_swap = self._pending_swap, None
        if discarded is not None:  # a cleaned segment may hold offsets the truncation removed
            discarded.close()
            discarded.delete()
        self._producers.delete_snapshots_after(end)
        self._unreplicated = [txn for txn in self._unreplicated if txn.last_offset < end]
        self._load_producer_state()
        self._epochs.truncate_from_end(end)

    def _drop_segments(self, segments: list[LogSegment]) -> None:
        for segment in segments:
            segment.delete()

    # -- log cleaner (cleaner.py has the protocol) --------------------------------------------------

    @property
    def segments(self) -> list[LogSegment]:
        """The segments in offset order, the last one active (the log replaces this list, never mutates it)."""
        return self._segments

    @property
    def truncations(self) -> int:
        with self._lock:
            return self._truncations

    def verification_guard(self, producer_id: int) -> int | None:
        """ProducerStateManager.verification_guard: None while the producer's transaction is open here."""
        return self._producers.verification_guard(producer_id)

    def active_producers(self) -> list[ProducerEntry]:
        """The producers this partition knows (DescribeProducers): read them, never change them."""
        return list(self._producers.producers.values())

    def producer_last_offsets(self) -> dict[int, int]:
        """Producer id -> the last offset of its last data batch (-1: only markers), for the cleaner."""
        return {pid: entry.last_offset for pid, entry in self._producers.producers.items()}

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

        Raises OSError if an fsync fails, or failed before and the loop thread has not yet cut the
        unsynced tail (`recover_from_failed_sync`).
        """
        with self._flush_lock:
            with self._lock:
                if self._sync_failed:
                    raise OSError(errno.EIO, f"{self.topic}-{self.partition}: an earlier fsync failed; "
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
                log.error("%s-%d: fsync failed: %s", self.topic, self.partition, exc)
                raise
            with self._lock:
                if self._truncations == truncations and target > self._recovery_point:
                    self._recovery_point = target

    @property
    def active_segment_base(self) -> int:
        return self._segments[-1].base_offset

    def close(self) -> None:
        """Clean close: final time-index entry, producer snapshot, fsync everything, close files.

        Raises OSError when something could not be written or synced (the files close all the same):
        the shutdown is then not clean, and the next start-up recovers this log.
        """
        try:
            active = self._segments[-1]
            active.finish_time_index()
            self._producers.take_snapshot(self._log_end_offset, fsync=True)
            self.flush()
            active.flush()  # its final index entries, which a flush up to the log end may have skipped
        finally:
            for segment in self._segments:
                segment.close()

    # -- producer state ----------------------------------------------------------------------------

    def _load_producer_state(self, *, rebuild_txn_indexes: bool = False) -> None:
        """Restore the producer state from a snapshot and the log after it. With
        `rebuild_txn_indexes` (opening), the .txnindex of every segment from the first stale one on
        (recovered, or unreadable) is rebuilt from the markers the replay meets, which needs the
        state from before that segment: the replay starts at a snapshot at or below it."""
        rebuild_from = None
        stale = next((i for i, s in enumerate(self._segments) if s.txn_index_stale), None) \
            if rebuild_txn_indexes else None
        if stale is not None:
            rebuild_from = self._segments[stale].base_offset
            for segment in self._segments[stale:]:
                segment.reset_txn_index()
            self._with_aborts = None
        start = self._producers.load(self.log_start_offset, self._log_end_offset, at_most=rebuild_from)
        for segment in self._segments:
            if segment.next_offset <= start:
                continue
            found = segment.find(start)
            if found is None:
                continue
            for position, header in segment.headers(found[0]):
                if not header.has_producer_id:
                    continue
                if header.is_control:
                    marker = end_txn_marker(segment.read_batch(position, header.size))
                    completed = self._producers.record_marker(header, marker.kind is ControlRecordType.ABORT,
                                                              marker.coordinator_epoch)
                    if completed is not None and rebuild_from is not None and header.base_offset >= rebuild_from:
                        self._index_if_aborted(completed, segment)
                else:
                    self._producers.record_batch(header)


def _pread(piece: FileSlice) -> bytes:
    return os.pread(piece.file.fileno(), piece.length, piece.position)
