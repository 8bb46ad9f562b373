"""A partition's log (Kafka's UnifiedLog): its segments (local_log.py) and the state around them —
the log start, the high watermark, the leader epochs, the producers and their transactions.

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
  recovery point  everything below it is on disk (local_log.py: what `flush` advances, and I/O errors).

A failed fsync's unsynced tail is cut here (`recover_from_failed_sync`: run by the flusher and
before the next append) back to max(recovery point, high watermark): only data no consumer has
seen and no producer was told about is dropped, and producers resend it (idempotent ones with the
same sequence numbers: the producer state is rewound with the log). Data already visible stays, as
the page cache holds it (Kafka keeps it too).

Threads: every method runs on the event-loop thread, except `flush` and the log cleaner's
`commit_cleaned` / `finish_replace` (local_log.py).
"""
from __future__ import annotations

import logging
import os
import uuid
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
from kbroker.log.files import OpenFiles
from kbroker.log.leader_epochs import LeaderEpochCache
from kbroker.log.local_log import FetchSlices, LocalLog
from kbroker.log.producer_state import CompletedTxn, ProducerEntry, ProducerStateManager
from kbroker.log.recovery import load_segments
from kbroker.log.retention import SegmentInfo, deletable_segment_count
from kbroker.log.segment import FileSlice, LogSegment, TimestampAndOffset
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


class PartitionLog:
    def __init__(self, directory: Path, topic: str, partition: int, topic_id: uuid.UUID,
                 config: LogConfig, segments: list[LogSegment], *, log_start_offset: int,
                 recovery_point: int, on_log_start_change: Callable[[], None] | None, files: OpenFiles,
                 clock: Clock = wall_clock_ms) -> None:
        self.directory = directory
        self._clock = clock  # for what no caller gives a time: the segment a truncation starts
        self.topic = topic
        self.partition = partition
        self.topic_id = topic_id
        self._producers = ProducerStateManager(directory)
        self._local = LocalLog(directory, f"{topic}-{partition}", config, segments, recovery_point=recovery_point,
                               before_roll=lambda base: self._producers.take_snapshot(base, fsync=False),
                               files=files)
        self.files = files
        self.log_start_offset = log_start_offset
        self._high_watermark = self._local.log_end_offset
        self._on_log_start_change = on_log_start_change
        self._unreplicated: list[CompletedTxn] = []  # ended, but the high watermark is not past the marker yet
        self._epochs = LeaderEpochCache(directory / LEADER_EPOCH_CHECKPOINT)

    @property
    def config(self) -> LogConfig:
        return self._local.config

    @config.setter
    def config(self, config: LogConfig) -> None:
        """One config for the partition and its local log, which rolls and sizes segments by it
        (an altered topic config or a changed broker default)."""
        self._local.config = config

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
        return self._local.log_end_offset

    @property
    def high_watermark(self) -> int:
        return self._high_watermark

    def update_high_watermark(self, offset: int) -> None:
        if not self.log_start_offset <= offset <= self._local.log_end_offset:
            raise ValueError(f"high watermark {offset} outside [{self.log_start_offset}, "
                             f"{self._local.log_end_offset}]")
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
        return self._local.recovery_point

    @property
    def unflushed_messages(self) -> int:
        return self._local.log_end_offset - self._local.recovery_point

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
            self._epochs.assign(leader_epoch, self._local.log_end_offset)

    # -- append ------------------------------------------------------------------------------------

    def append(self, batch: bytearray | memoryview, header: BatchHeader, *, leader_epoch: int,
               now_ms: int) -> AppendResult:
        """Append one batch that passed `validate_produce_batch` (or a broker-built control batch).

        The batch is patched in place (a read-only buffer is copied first).
        """
        if isinstance(batch, bytes) or (isinstance(batch, memoryview) and batch.readonly):
            batch = bytearray(batch)
        if self._local.needs_restoring:
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
        base_offset = self._local.log_end_offset
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
        end = self._local.log_end_offset
        if header.base_offset != end:
            raise KafkaError(ErrorCode.CORRUPT_MESSAGE, f"{self.topic}-{self.partition}: the leader sent offset "
                                                        f"{header.base_offset}, the log ends at {end}")
        if self._local.needs_restoring:
            self._restore_writable()
        epoch = header.partition_leader_epoch
        if epoch >= 0 and epoch > self._epochs.latest_epoch:
            self._epochs.assign(epoch, header.base_offset)
        self._write(batch, header, now_ms)

    def _write(self, batch: bytes | bytearray | memoryview, header: BatchHeader, now_ms: int,
               marker: EndTxnMarker | None = None) -> None:
        """Write an offset-assigned batch; then the producer state follows it."""
        segment = self._local.append(batch, header, now_ms)
        if header.has_producer_id:
            producers = self._producers
            if header.is_control:
                marker = marker or end_txn_marker(batch)
                completed = producers.record_marker(header, marker.kind is ControlRecordType.ABORT,
                                                    marker.coordinator_epoch)
                if completed is not None:
                    self._unreplicated.append(completed)
                    self._index_if_aborted(completed, segment)
            else:
                producers.record_batch(header)

    def _index_if_aborted(self, txn: CompletedTxn, segment: LogSegment) -> None:
        """An aborted transaction goes in the .txnindex of the segment holding its marker, with the
        last stable offset right after it (Kafka's ProducerStateManager.lastStableOffset)."""
        if not txn.aborted:
            return
        first_unstable = self._producers.first_unstable_offset()
        stable = txn.last_offset + 1 if first_unstable is None else first_unstable
        self._local.append_aborted_txn(segment, AbortedTxn(txn.producer_id, txn.first_offset, txn.last_offset,
                                                           stable))

    def roll_if_idle(self, now_ms: int) -> bool:
        """segment.ms without appends: roll an active segment holding data once it is that old.

        Kafka checks segment.ms only when appending; rolling an idle segment too lets retention and
        the cleaner reach the last records written to a quiet partition. The age counts from the
        first batch's timestamp, as Kafka's, but never from before the segment was created here:
        records stamped long ago must not roll a segment at every check.
        """
        active = self._local.active_segment
        if active.size == 0:
            return False
        if now_ms - max(active.first_batch_timestamp, active.created_ms) <= self.config.segment_ms:
            return False
        self._local.roll(self._local.log_end_offset, now_ms)
        return True

    def _restore_writable(self) -> None:
        """Before appending: drop an unsynced tail after a failed fsync, cut a tail a failed append left."""
        try:
            self.recover_from_failed_sync()
            self._local.repair_active()
        except OSError as exc:
            self._local.append_failed(exc)
            raise

    def recover_from_failed_sync(self) -> None:
        """Loop thread: after a failed fsync, cut the log back to what was synced or seen (see the header)."""
        if not self._local.sync_failed:
            return
        keep = max(self._local.recovery_point, self._high_watermark)
        end = self._local.log_end_offset
        if keep < end:
            log.error("%s-%d: fsync failed; dropping offsets %d..%d, which no consumer saw and no producer was "
                      "told about (producers resend them)", self.topic, self.partition, keep, end - 1)
            self.truncate_to(keep)
        self._local.sync_recovered()

    # -- read --------------------------------------------------------------------------------------

    def read(self, fetch_offset: int, max_bytes: int, max_offset: int, min_one_batch: bool) -> FetchSlices:
        """Whole batches from the one holding `fetch_offset`, all ending before `max_offset`.

        At most `max_bytes`, except that with `min_one_batch` the first batch comes whatever its size.
        OFFSET_OUT_OF_RANGE outside [log start, log end].
        """
        self._check_in_range(fetch_offset)
        return self._local.read(fetch_offset, max_bytes, max_offset, min_one_batch)[0]

    def read_committed(self, fetch_offset: int, max_bytes: int, max_offset: int,
                       min_one_batch: bool) -> tuple[FetchSlices, list[AbortedTxn]]:
        """`read`, with the aborted transactions overlapping the offsets returned (for read_committed
        fetches, whose `max_offset` is the last stable offset)."""
        self._check_in_range(fetch_offset)
        local = self._local
        data, segment, end = local.read(fetch_offset, max_bytes, max_offset, min_one_batch)
        if segment is None or not local.has_aborts_from(fetch_offset):  # the common case: no aborts here
            return data, []
        return data, local.aborted_transactions(fetch_offset, segment.offset_at(end))

    def aborted_transactions(self, fetch_offset: int, upper_bound: int) -> list[AbortedTxn]:
        return self._local.aborted_transactions(fetch_offset, upper_bound)

    def _check_in_range(self, fetch_offset: int) -> None:
        end = self._local.log_end_offset
        if not self.log_start_offset <= fetch_offset <= end:
            raise KafkaError(ErrorCode.OFFSET_OUT_OF_RANGE,
                             f"Received request for offset {fetch_offset}, but we only have log segments "
                             f"in the range {self.log_start_offset} to {end}.")

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
        for segment in self._local.segments:
            if segment.next_offset > start:
                found = segment.find_offset_by_timestamp(timestamp, start)
                if found is not None:
                    return found
        return None

    def max_timestamp_offset(self) -> TimestampAndOffset | None:
        """The first record carrying the largest timestamp in the log (ListOffsets -3)."""
        best = None
        for segment in self._local.segments:
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
        return self._epochs.end_offset_for(epoch, self._local.log_end_offset)

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
        local = self._local
        segments = local.segments
        infos = [SegmentInfo(s.base_offset, s.size, s.largest_timestamp) for s in segments]
        count = deletable_segment_count(infos, self.config, now_ms=now_ms, log_start_offset=self.log_start_offset,
                                        high_watermark=self._high_watermark, log_end_offset=local.log_end_offset)
        if count == 0:
            return 0
        if count == len(segments):
            local.roll(local.log_end_offset, now_ms)
        self._advance_log_start(local.segments[count].base_offset)
        return count

    def _advance_log_start(self, offset: int) -> None:
        self.log_start_offset = offset
        self._local.delete_segments_below(offset)
        self._producers.evict_before(offset)
        self._epochs.truncate_from_start(offset)
        if self._on_log_start_change is not None:
            self._on_log_start_change()

    def truncate_to(self, offset: int) -> None:
        """Remove everything from `offset` on (a batch holding `offset` goes whole)."""
        local = self._local
        if offset >= local.log_end_offset:
            return
        if offset <= local.segments[0].base_offset or offset < self.log_start_offset:
            local.truncate_fully_and_start_at(offset, self._clock())
            self.log_start_offset = offset
        else:
            local.truncate_to(offset)
        end = local.log_end_offset
        self._high_watermark = min(self._high_watermark, end)
        self._producers.delete_snapshots_after(end)
        self._unreplicated = [txn for txn in self._unreplicated if txn.last_offset < end]
        self._load_producer_state()
        self._epochs.truncate_from_end(end)

    # -- log cleaner (cleaner.py has the protocol) --------------------------------------------------

    @property
    def segments(self) -> list[LogSegment]:
        """The segments in offset order, the last one active (the log replaces this list, never mutates it)."""
        return self._local.segments

    @property
    def truncations(self) -> int:
        return self._local.truncations

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
        return self._local.commit_cleaned(segment, truncations)

    def replace_segments(self, new: LogSegment, old: list[LogSegment]) -> bool:
        return self._local.replace_segments(new, old)

    def finish_replace(self, new: LogSegment, old: list[LogSegment]) -> None:
        self._local.finish_replace(new, old)

    # -- durability --------------------------------------------------------------------------------

    def flush(self, up_to: int | None = None) -> None:
        """fsync what is below `up_to` (default: the log end); thread-safe (local_log.py)."""
        self._local.flush(up_to)

    @property
    def active_segment_base(self) -> int:
        return self._local.active_segment.base_offset

    def close(self) -> None:
        """Clean close: final time-index entry, producer snapshot, fsync everything, close files.

        Raises OSError when something could not be written or synced (the files close all the same):
        the shutdown is then not clean, and the next start-up recovers this log.
        """
        try:
            active = self._local.active_segment
            active.finish_time_index()
            self._producers.take_snapshot(self._local.log_end_offset, fsync=True)
            self._local.flush()
            active.flush()  # its final index entries, which a flush up to the log end may have skipped
        finally:
            self._local.close_files()

    # -- producer state ----------------------------------------------------------------------------

    def _load_producer_state(self, *, rebuild_txn_indexes: bool = False) -> None:
        """Restore the producer state from a snapshot and the log after it. With
        `rebuild_txn_indexes` (opening), the .txnindex of every segment from the first stale one on
        (recovered, or unreadable) is rebuilt from the markers the replay meets, which needs the
        state from before that segment: the replay starts at a snapshot at or below it."""
        segments = self._local.segments
        rebuild_from = None
        stale = next((i for i, s in enumerate(segments) if s.txn_index_stale), None) \
            if rebuild_txn_indexes else None
        if stale is not None:
            rebuild_from = segments[stale].base_offset
            self._local.reset_txn_indexes_from(stale)
        start = self._producers.load(self.log_start_offset, self._local.log_end_offset, at_most=rebuild_from)
        for segment in segments:
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
