"""Log compaction (cleanup.policy=compact, or compact,delete): Kafka's log cleaner.

What one cleaning of a log keeps. The log is split at its first dirty offset (where the previous
cleaning stopped, from `cleaner-offset-checkpoint`; the log start offset at first) into a clean
head and a dirty tail. The cleanable part of the tail ends at the first uncleanable offset, rounded
down to a segment base: the lowest of the active segment's base, the last stable offset, and the
first segment whose largest timestamp is younger than min.compaction.lag.ms. Then:
  1. An offset map (key -> offset of its last record) is built over the cleanable dirty part, as
     far as log.cleaner.dedupe.buffer.size allows; the map's latest offset says how far it got.
  2. Every segment below that point is rewritten, in groups of consecutive segments that fit in one
     segment (segment.bytes, segment.index.bytes, 2^31 offsets). A record is kept if its offset is
     past the map's latest offset, or if it has a key and no later record of that key is in the map,
     and, for a tombstone (null value), while its delete horizon has not passed. Records without a
     key go, as in Kafka (Produce refuses them on compacted topics anyway).
  3. The map's end becomes the first dirty offset, in the checkpoint.
A log is cleaned when its dirty ratio (cleanable bytes / clean + cleanable bytes) exceeds
min.cleanable.dirty.ratio, or when a dirty segment's first batch is older than
max.compaction.lag.ms; the filthiest log goes first, every log.cleaner.backoff.ms.

Tombstones (KIP-534). The first cleaning that keeps a tombstone stamps its batch with a delete
horizon: attribute bit 6, base timestamp = now + delete.retention.ms, record timestamp deltas
re-encoded against it. A cleaning after that time drops the tombstone. So a consumer that reads the
log from the start within delete.retention.ms of a tombstone's first cleaning sees it. As in Kafka,
only new dirty data brings a cleaning: a log nobody writes to any more keeps its last tombstones.

Batches. Offsets never change (gaps are fine). A batch that keeps all of its records and needs no
new horizon is copied byte for byte. One that lost records is rebuilt from the records it keeps,
copied as they were (the base offset and timestamp stay, so their deltas stay valid) and compressed
again with the batch's own codec; its last offset delta, producer id, epoch and base sequence stay.
A batch that loses every record goes, except (Kafka's RETAIN_EMPTY) the last batch of a producer
the producer state knows (its sequence numbers must survive a replay of the log), the batch ending
the cleaning round, and the last batch of each cleaned segment: those become a 61-byte header with
no records. Kafka keeps only the first two; keeping the third means a cleaned segment always ends
where the segments it replaces ended, which lets start-up tell from a `.swap` file alone which
segments it replaces.

Transactions. A transactional batch whose producer's next control batch is an abort neither enters
the map nor survives (found by scanning forward to that marker, once per transaction). A control
batch goes as in Kafka (KIP-534, `_Markers`): the cleaning that still reads records of its
transaction keeps it; the next one, finding none, gives it a delete horizon
(`delete.retention.ms` from then); one after the horizon drops it, and its .txnindex entry with
it (the cleaned segment takes over the entries of the markers it keeps, so read_committed
consumers still learn of aborted transactions whose records a follower or an old slice may
hold). A producer's marker also stays while no later data batch of that producer exists: a
replay after a crash learns from it that the transaction ended. The cleanable range ends at the
last stable offset: an open transaction's records are never cleaned.

Crash-safe replacement of one group (Kafka's replaceSegments); recovery.py finishes or rolls back:
  worker  write `<base>.log.cleaned` (+ .index/.timeindex), fsync the three files
  worker  rename them to `.swap` (the .log last), fsync the directory     <- the commit point
  loop    swap the new segment into the segment list in place of the old ones (`replace_segments`)
  worker  rename the old segments' files to `.deleted`, fsync the directory
  worker  rename the new files to their live names (the .log last), fsync the directory
  worker  unlink the `.deleted` files
A crash before the commit leaves `.cleaned` files (and perhaps index `.swap` files), which start-up
deletes: the old segments are intact. After it, `<base>.log.swap` names its replaced range [base,
its next offset); start-up deletes the live segments left in that range and renames the swap
segment live. No rename is issued before the fsync that must precede it, so any crash leaves one
of these states.

Threads. The choice of a log (`grab_filthiest`) and the swap run on the event loop; reading, the
offset map and writing run in one worker thread (`clean_steps`, a generator the async driver
advances in the worker and answers on the loop). A reader holding file slices of a replaced
segment keeps reading its unlinked files (files.py). If retention, DeleteRecords or a truncation
removes a segment being replaced meanwhile, the swap finds it gone and rolls back; the next round
retries.

The GIL. The worker's work is pure Python: left alone, it would make the loop wait up to the 5 ms
switch interval at every wake-up while a cleaning runs (measured loop lag p50 5.3 ms, p99 11 ms).
So after a batch, once per millisecond of work, the worker sleeps with the GIL released
(`time.sleep(0)`, about 90 us: long enough for a waiting loop to take the GIL, which
`os.sched_yield` is not): lag p50 0.2-0.7 ms and p99 3-5 ms during a cleaning, against 0.15 / 0.5
ms idle (benchmarks/cleaner.py --lag, on a loaded 2-core machine). Loop and worker still share
one GIL, so a broker busy on every core serves less while it cleans; a cleaner process would not
(not done).

Speed (benchmarks/cleaner.py, one core, 64 MiB logs): each record is parsed twice in Python (map,
rewrite), about 1 us each time: 130k-210k records/s, i.e. 16-25 MB/s of uncompressed log with
100-byte values and 85-125 MB/s with 1 KiB values; compressed logs 8-15 MB/s (100 B) and 20-67 MB/s
(1 KiB) depending on the codec.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from kbroker.log.checkpoints import MalformedCheckpoint, read_offsets, write_offsets
from kbroker.log.config import LogConfig
from kbroker.log.partition_log import PartitionLog
from kbroker.log.segment import CLEANED_SUFFIX, LogSegment
from kbroker.wire.records import (
    INT32_MAX,
    LOG_OVERHEAD,
    BatchHeader,
    BatchScan,
    ControlRecordType,
    batch_body,
    control_record_type,
    empty_batch,
    rebuild_batch,
    record_spans,
)

log = logging.getLogger("kbroker.cleaner")

CLEANER_OFFSET_CHECKPOINT = "cleaner-offset-checkpoint"

# Memory of one offset-map entry in CPython (dict slot, key bytes, int), measured with tracemalloc:
# about 130 bytes where Kafka's map needs 24. log.cleaner.dedupe.buffer.size is divided by this.
MAP_ENTRY_BYTES = 136
_DIGEST_FROM = 16  # keys this long or longer are mapped by their 16-byte MD5, shorter ones as they are
_WRITE_CHUNK = 1 << 20
_YIELD_INTERVAL = 0.001  # seconds of work between two sleeps of the worker thread (see The GIL)


class CleaningAborted(Exception):
    """The cleaning of one log stopped early: shutdown, or the log changed under it."""


class CorruptSegment(Exception):
    """A segment being cleaned does not hold whole valid batches where it should."""


@dataclass(frozen=True, slots=True)
class CleanerSettings:
    """The broker's log.cleaner.* settings."""
    enable: bool = True
    backoff_ms: int = 15_000
    dedupe_buffer_size: int = 128 * 1024 * 1024
    io_buffer_size: int = 512 * 1024
    io_buffer_load_factor: float = 0.9

    @property
    def map_capacity(self) -> int:
        return max(1, int(self.dedupe_buffer_size * self.io_buffer_load_factor) // MAP_ENTRY_BYTES)


class OffsetMap:
    """Key -> offset of the key's last record in the dirty part (Kafka's SkimpyOffsetMap).

    Keys of 16 bytes or more are held as their MD5 digest (16 bytes, as Kafka holds every key), so
    an entry's memory is bounded; shorter keys are held as they are, and cannot collide with a
    digest, which is longer. The two loops that use the map do this inline (they are the hot ones).
    """
    __slots__ = ("offsets", "capacity", "latest_offset")

    def __init__(self, capacity: int) -> None:
        self.offsets: dict[bytes, int] = {}
        self.capacity = capacity
        self.latest_offset = -1  # every record up to here was considered

    def __len__(self) -> int:
        return len(self.offsets)


# ---------------------------------------------------------------------------------------------
# Which log, and which part of it (Kafka's LogCleanerManager.cleanableOffsets and LogToClean)


@dataclass(frozen=True, slots=True)
class SegmentSummary:
    base_offset: int
    size: int
    largest_timestamp: int
    first_batch_timestamp: int  # -1: unknown or empty (only needed for dirty segments)


@dataclass(frozen=True, slots=True)
class CleanableRange:
    first_dirty_offset: int
    first_uncleanable_offset: int  # a segment base: cleaning stops before it
    clean_bytes: int
    cleanable_bytes: int
    needs_compaction_now: bool  # max.compaction.lag.ms has passed for some dirty record

    @property
    def total_bytes(self) -> int:
        return self.clean_bytes + self.cleanable_bytes

    @property
    def cleanable_ratio(self) -> float:
        return self.cleanable_bytes / self.total_bytes if self.total_bytes else 0.0

    def worth_cleaning(self, config: LogConfig) -> bool:
        return (self.needs_compaction_now and self.cleanable_bytes > 0) or \
            self.cleanable_ratio > config.min_cleanable_dirty_ratio


def cleanable_range(segments: Sequence[SegmentSummary], config: LogConfig, *, first_dirty: int,
                    log_start_offset: int, log_end_offset: int, last_stable_offset: int,
                    now_ms: int) -> CleanableRange:
    """The part of a log the next cleaning may rewrite (the last segment is the active one)."""
    if not log_start_offset <= first_dirty <= log_end_offset:  # a stale or truncated checkpoint
        first_dirty = log_start_offset
    ends = [s.base_offset for s in segments[1:]] + [log_end_offset]
    active = len(segments) - 1
    dirty = [i for i in range(active) if ends[i] > first_dirty]
    uncleanable = min(last_stable_offset, segments[active].base_offset)
    if config.min_compaction_lag_ms > 0:
        young = next((i for i in dirty if segments[i].largest_timestamp > now_ms - config.min_compaction_lag_ms), None)
        if young is not None:
            uncleanable = min(uncleanable, segments[young].base_offset)
    uncleanable = max(first_dirty, uncleanable)
    containing = next((i for i in range(active) if segments[i].base_offset <= uncleanable < ends[i]), active)
    first_uncleanable = segments[containing].base_offset
    low = min(first_dirty, first_uncleanable)
    clean_bytes = sum(s.size for s in segments if s.base_offset < first_dirty)
    cleanable_bytes = sum(s.size for i, s in enumerate(segments)
                          if s.base_offset < first_uncleanable and ends[i] > low)
    firsts = [segments[i].first_batch_timestamp for i in dirty if segments[i].first_batch_timestamp > 0]
    needs_now = bool(firsts) and min(firsts) < now_ms - max(config.max_compaction_lag_ms, 0)
    return CleanableRange(first_dirty, first_uncleanable, clean_bytes, cleanable_bytes, needs_now)


def group_segments(segments: Sequence[LogSegment], *, max_size: int, max_index_size: int,
                   first_uncleanable: int) -> list[list[LogSegment]]:
    """Consecutive segments that fit together in one cleaned segment (Kafka's groupSegmentsBySize)."""
    groups: list[list[LogSegment]] = []
    i = 0
    while i < len(segments):
        group = [segments[i]]
        log_size = segments[i].size
        index_size, time_index_size = segments[i].index_sizes
        i += 1
        while i < len(segments):
            candidate = segments[i]
            candidate_index, candidate_time_index = candidate.index_sizes
            last_offset = segments[i + 1].base_offset - 1 if i + 1 < len(segments) else first_uncleanable - 1
            if (log_size + candidate.size > max_size
                    or index_size + candidate_index > max_index_size
                    or time_index_size + candidate_time_index > max_index_size
                    or (candidate.size > 0 and last_offset - group[0].base_offset > INT32_MAX)):
                break
            group.append(candidate)
            log_size += candidate.size
            index_size += candidate_index
            time_index_size += candidate_time_index
            i += 1
        groups.append(group)
    return groups


# ---------------------------------------------------------------------------------------------
# One cleaning


@dataclass
class CleanerStats:
    bytes_read: int = 0
    bytes_written: int = 0
    records_read: int = 0
    records_kept: int = 0
    batches_copied: int = 0  # byte for byte
    batches_rebuilt: int = 0
    batches_emptied: int = 0
    markers_dropped: int = 0
    map_records: int = 0
    map_bytes_read: int = 0
    segments_replaced: int = 0
    started: float = dataclasses.field(default_factory=time.monotonic)
    map_done: float = 0.0
    finished: float = 0.0

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def throughput_mb_s(self) -> float:
        """Bytes read (map building and cleaning) per second."""
        return (self.bytes_read + self.map_bytes_read) / 1e6 / max(self.elapsed, 1e-9)


@dataclass
class CleaningJob:
    """One log's cleaning, as chosen on the loop thread (everything the worker needs, snapshotted)."""
    log: PartitionLog
    range: CleanableRange
    now_ms: int
    config: LogConfig
    segments: list[LogSegment]
    truncations: int
    producer_last_offsets: dict[int, int]
    end_offset: int = -1  # the new first dirty offset, once done
    stats: CleanerStats = dataclasses.field(default_factory=CleanerStats)

    @property
    def name(self) -> str:
        return f"{self.log.topic}-{self.log.partition}"


SwapRequest = tuple[LogSegment, list[LogSegment]]


class LogCleaner:
    """Chooses the log to clean next, cleans it, and keeps the cleaner offset checkpoint."""

    def __init__(self, data_dir: Path, logs: Callable[[], list[PartitionLog]],
                 settings: CleanerSettings = CleanerSettings()) -> None:
        self.data_dir = Path(data_dir)
        self.settings = settings
        self._logs = logs
        self._stop = threading.Event()
        self._yield_at = 0.0
        self._checkpoint_lock = threading.Lock()
        self._first_dirty = self._read_checkpoint()
        self._known: dict[tuple[str, int], PartitionLog] = {}
        self._uncleanable: weakref.WeakSet[PartitionLog] = weakref.WeakSet()  # failed; retried after restart
        self.max_dirty_ratio = 0.0  # of the dirtiest compacted log at the last look (Kafka's max-dirty-percent)
        self.last_stats: CleanerStats | None = None

    # -- choosing (loop thread) --------------------------------------------------------------------

    def grab_filthiest(self, now_ms: int) -> CleaningJob | None:
        """The compacted log most worth cleaning now, or None."""
        best: tuple[float, PartitionLog, CleanableRange] | None = None
        self.max_dirty_ratio = 0.0
        current = {}
        for plog in self._logs():
            key = (plog.topic, plog.partition)
            current[key] = plog
            if self._known.get(key, plog) is not plog:  # the topic was deleted and created again
                self._first_dirty.pop(key, None)
            if not plog.config.compact or plog in self._uncleanable:
                continue
            found = self._cleanable(plog, now_ms)
            if found.total_bytes == 0:
                continue
            self.max_dirty_ratio = max(self.max_dirty_ratio, found.cleanable_ratio)
            if found.worth_cleaning(plog.config) and (best is None or found.cleanable_ratio > best[0]):
                best = (found.cleanable_ratio, plog, found)
        self._known = current
        if best is None:
            return None
        _, plog, found = best
        return CleaningJob(plog, found, now_ms, plog.config, plog.segments, plog.truncations,
                           plog.producer_last_offsets())

    def _cleanable(self, plog: PartitionLog, now_ms: int) -> CleanableRange:
        segments = plog.segments
        first_dirty = self._first_dirty.get((plog.topic, plog.partition), plog.log_start_offset)
        ends = [s.base_offset for s in segments[1:]] + [plog.log_end_offset]
        summaries = [SegmentSummary(s.base_offset, s.size, s.largest_timestamp,
                                    s.first_batch_timestamp if end > first_dirty else -1)
                     for s, end in zip(segments, ends)]
        return cleanable_range(summaries, plog.config, first_dirty=first_dirty,
                               log_start_offset=plog.log_start_offset, log_end_offset=plog.log_end_offset,
                               last_stable_offset=plog.last_stable_offset, now_ms=now_ms)

    # -- cleaning (worker thread, with the swap on the loop thread) --------------------------------

    def clean_steps(self, job: CleaningJob) -> Generator[SwapRequest, bool, None]:
        """Clean `job`'s log. Yields (new segment, old segments) for `replace_segments`, to be
        answered with its result; the caller runs that on the loop thread and the rest anywhere."""
        stats = job.stats
        plog = job.log
        log.info("%s: cleaning, dirty offsets %d to %d (dirty ratio %.2f)", job.name, job.range.first_dirty_offset,
                 job.range.first_uncleanable_offset, job.range.cleanable_ratio)
        txns = _Transactions(job.segments)
        offset_map = self._build_offset_map(job, txns)
        stats.map_done = time.monotonic()
        end_offset = offset_map.latest_offset + 1
        if end_offset <= job.range.first_dirty_offset:
            log.warning("%s: the offset map (log.cleaner.dedupe.buffer.size) cannot hold the keys of one "
                        "batch; not cleaning", job.name)
            raise CleaningAborted("offset map too small")
        cleanable = [s for s in job.segments[:-1] if s.base_offset < end_offset]
        groups = group_segments(cleanable, max_size=job.config.segment_bytes,
                                max_index_size=job.config.segment_index_bytes,
                                first_uncleanable=job.range.first_uncleanable_offset)
        markers = _Markers(job.producer_last_offsets)
        for group in groups:
            new = self._clean_group(job, group, offset_map, txns, markers)
            if new is None:
                continue
            committed = False
            try:
                committed = plog.commit_cleaned(new, job.truncations)
            finally:
                if not committed:
                    new.close()
                    new.delete()
            if not committed:
                raise CleaningAborted("the log was truncated")
            swapped = yield new, group
            if not swapped:
                raise CleaningAborted("the segments being replaced are gone")
            plog.finish_replace(new, group)
            stats.segments_replaced += len(group)
        job.end_offset = end_offset
        stats.finished = time.monotonic()

    def done(self, job: CleaningJob) -> None:
        """Record where `job` stopped (its end offset becomes the first dirty offset) and say so."""
        key = (job.log.topic, job.log.partition)
        self._first_dirty[key] = job.end_offset
        self._known[key] = job.log
        self.write_checkpoint()
        self.last_stats = stats = job.stats
        read = stats.bytes_read + stats.map_bytes_read
        log.info("%s cleaned up to offset %d in %.2f s: %.1f MB read (%.1f MB/s), %.1f MB -> %.1f MB "
                 "(%d of %d records kept; %d batches copied, %d rebuilt, %d emptied)",
                 job.name, job.end_offset, stats.elapsed, read / 1e6, stats.throughput_mb_s,
                 stats.bytes_read / 1e6, stats.bytes_written / 1e6, stats.records_kept, stats.records_read,
                 stats.batches_copied, stats.batches_rebuilt, stats.batches_emptied)

    def failed(self, job: CleaningJob, error: BaseException) -> None:
        if isinstance(error, CleaningAborted):
            log.info("%s: cleaning stopped: %s", job.name, error)
            return
        if not any(plog is job.log for plog in self._logs()):
            log.info("%s: cleaning stopped: the topic was deleted", job.name)
            return
        log.error("%s: cleaning failed; the log is left as it was and not cleaned again until restart",
                  job.name, exc_info=error)
        self._uncleanable.add(job.log)

    def first_dirty_offset(self, topic: str, partition: int) -> int | None:
        """Where the last cleaning of that log stopped (None: never cleaned)."""
        return self._first_dirty.get((topic, partition))

    def clean_now(self, now_ms: int) -> CleaningJob | None:
        """Clean the filthiest log on this thread, swap included (tests, tools); None if none."""
        job = self.grab_filthiest(now_ms)
        if job is None:
            return None
        steps = self.clean_steps(job)
        try:
            request = next(steps, None)
            while request is not None:
                request = advance(steps, job.log.replace_segments(*request))
        except CleaningAborted as e:
            self.failed(job, e)
            return None
        except Exception as e:
            self.failed(job, e)
            raise
        self.done(job)
        return job

    def stop(self) -> None:
        """Make a cleaning in progress stop at its next batch (shutdown)."""
        self._stop.set()

    def _check(self) -> None:
        if self._stop.is_set():
            raise CleaningAborted("shutting down")

    # -- the offset map ----------------------------------------------------------------------------

    def _build_offset_map(self, job: CleaningJob, txns: _Transactions) -> OffsetMap:
        start, end = job.range.first_dirty_offset, job.range.first_uncleanable_offset
        offset_map = OffsetMap(self.settings.map_capacity)
        offsets = offset_map.offsets
        capacity = offset_map.capacity
        stats = job.stats
        segments = job.segments
        dirty = [i for i in range(len(segments) - 1) if segments[i].base_offset < end
                 and (i + 1 == len(segments) or segments[i + 1].base_offset > start)]
        md5 = hashlib.md5
        for n, i in enumerate(dirty):
            segment = segments[i]
            upper = segments[dirty[n + 1]].base_offset if n + 1 < len(dirty) else end
            position = 0
            if segment.base_offset < start:  # from the batch holding `start`; none here: nothing to map
                found = segment.find(start)
                position = segment.size if found is None else found[0]
            for position, header, batch in self._batches(segment, position):
                stats.map_bytes_read += header.size
                if header.is_control or txns.aborted(header, i, position):
                    pass
                elif header.last_offset >= start:
                    base = header.base_offset
                    for span in record_spans(batch_body(batch), header.record_count):
                        key = span[5]
                        offset = base + span[4]
                        if key is None or offset < start:
                            continue
                        if len(key) >= _DIGEST_FROM:
                            key = md5(key).digest()
                        if len(offsets) >= capacity and key not in offsets:
                            return offset_map  # full: the map's latest offset says how far it got
                        offsets[key] = offset
                        stats.map_records += 1
                if header.last_offset >= start:
                    offset_map.latest_offset = header.last_offset
            offset_map.latest_offset = max(offset_map.latest_offset, upper - 1)  # a gap at the end
        return offset_map

    # -- rewriting a group of segments -------------------------------------------------------------

    def _clean_group(self, job: CleaningJob, group: list[LogSegment], offset_map: OffsetMap,
                     txns: _Transactions, markers: _Markers) -> LogSegment | None:
        plog = job.log
        new = LogSegment.create(plog.directory, group[0].base_offset, job.config, job.now_ms, plog.files,
                                suffix=CLEANED_SUFFIX)
        dropped: set[int] = set()  # offsets of the markers this group drops
        try:
            out = _Writer(new)
            for n, segment in enumerate(group):
                index = next(i for i, s in enumerate(job.segments) if s is segment)
                last_segment = n + 1 == len(group)
                for position, header, batch in self._batches(segment, 0):
                    keep_empty = ((last_segment and position + header.size == segment.size)
                                  or header.next_offset == job.range.first_uncleanable_offset
                                  or (header.has_producer_id
                                      and job.producer_last_offsets.get(header.producer_id) == header.last_offset))
                    if header.is_control:
                        kept = self._marker(job, header, batch, markers.discardable(header) and not keep_empty)
                        if kept is None:
                            dropped.add(header.base_offset)
                    else:
                        markers.on_data(header)
                        kept = self._filter(job, header, batch, offset_map, txns.aborted(header, index, position),
                                            keep_empty)
                    if kept is not None:
                        out.add(kept, header if kept is batch else BatchHeader.parse(kept))
            out.close()
            if new.size == 0:  # the group held no batches at all
                new.close()
                new.delete()
                return None
            for segment in group:  # an aborted transaction stays indexed as long as its marker stays
                for txn in segment.aborted_txns:
                    if txn.last_offset not in dropped:
                        new.append_aborted_txn(txn)
            new.finish_time_index()
            new.flush()
            new.set_last_modified(group[-1].last_modified_ns)
            job.stats.bytes_written += new.size
            return new
        except BaseException:
            new.close()
            new.delete()
            raise

    @staticmethod
    def _marker(job: CleaningJob, header: BatchHeader, batch: memoryview,
                discardable: bool) -> bytes | memoryview | None:
        """A control batch: kept as it is, given its delete horizon (the first cleaning that finds
        it discardable), or dropped (a later cleaning, once the horizon has passed)."""
        stats = job.stats
        stats.bytes_read += header.size
        if not discardable:
            stats.batches_copied += 1
            return batch
        if not header.has_delete_horizon:
            stats.batches_rebuilt += 1
            body = batch_body(batch)
            return rebuild_batch(header, body, record_spans(body, header.record_count),
                                 delete_horizon_ms=job.now_ms + job.config.delete_retention_ms)
        if job.now_ms < header.base_timestamp:
            stats.batches_copied += 1
            return batch
        stats.markers_dropped += 1
        return None

    def _filter(self, job: CleaningJob, header: BatchHeader, batch: memoryview, offset_map: OffsetMap,
                aborted: bool, keep_empty: bool) -> bytes | memoryview | None:
        """What of data `batch` to keep: itself, a rebuilt batch, an empty batch, or None."""
        stats = job.stats
        stats.bytes_read += header.size
        stats.records_read += header.record_count
        new_horizon = False
        if aborted:
            kept: list = []
            body = b""
        else:
            body = batch_body(batch)
            spans = record_spans(body, header.record_count)
            latest = offset_map.latest_offset
            offsets = offset_map.offsets
            base = header.base_offset
            horizon = header.base_timestamp if header.has_delete_horizon else None
            keep_tombstones = horizon is None or job.now_ms < horizon
            md5 = hashlib.md5
            kept = []
            tombstones = False
            for span in spans:
                has_value = body[span[6]] != 1  # valueLength zigzag(-1) is the byte 0x01: a tombstone
                if base + span[4] <= latest:
                    key = span[5]
                    if key is None:
                        continue  # Kafka counts these as invalid and drops them
                    if len(key) >= _DIGEST_FROM:
                        key = md5(key).digest()
                    if base + span[4] < offsets.get(key, -1) or not (has_value or keep_tombstones):
                        continue
                kept.append(span)
                tombstones = tombstones or not has_value
            new_horizon = tombstones and horizon is None
            if len(kept) == len(spans) and not new_horizon:
                stats.records_kept += len(kept)
                stats.batches_copied += 1
                return batch
        stats.records_kept += len(kept)
        if kept:
            stats.batches_rebuilt += 1
            return rebuild_batch(header, body, kept,
                                 delete_horizon_ms=job.now_ms + job.config.delete_retention_ms if new_horizon else None)
        if keep_empty:
            stats.batches_emptied += 1
            return empty_batch(header)
        return None

    def _batches(self, segment: LogSegment, position: int) -> Iterator[tuple[int, BatchHeader, memoryview]]:
        """Every batch of `segment` from `position`, read in io-buffer-sized chunks, CRC-checked."""
        handle = segment.handle()  # held while the generator lives (files.py)
        fd = handle.fileno()
        end = segment.size
        want = self.settings.io_buffer_size
        while position < end:
            self._check()
            data = os.pread(fd, min(want, end - position), position)
            want = self.settings.io_buffer_size
            scan = BatchScan(data)
            view = memoryview(data)
            for at, header in scan:
                yield position + at, header, view[at:at + header.size]
                now = time.perf_counter()
                if now >= self._yield_at:  # let the event loop take the GIL if it waits (see the header)
                    time.sleep(0)
                    self._yield_at = now + _YIELD_INTERVAL
            at_end = position + len(data) >= end
            if scan.end == 0:
                size = int.from_bytes(data[8:12], "big", signed=True) + LOG_OVERHEAD if len(data) >= LOG_OVERHEAD else 0
                if size > len(data) and not at_end:  # one batch bigger than the buffer: read it whole
                    want = size
                    continue
                raise CorruptSegment(f"segment {segment.base_offset}, position {position}: {scan.error}")
            if scan.error is not None and at_end:
                raise CorruptSegment(f"segment {segment.base_offset}: {scan.error}")
            position += scan.end

    # -- the checkpoint ----------------------------------------------------------------------------

    def _read_checkpoint(self) -> dict[tuple[str, int], int]:
        try:
            return read_offsets(self.data_dir / CLEANER_OFFSET_CHECKPOINT)
        except MalformedCheckpoint as e:
            log.warning("ignoring %s; compacted logs will be cleaned from their start", e)
            return {}

    def write_checkpoint(self) -> None:
        """Write the first dirty offset of every log that still exists (any thread)."""
        with self._checkpoint_lock:
            live = {(plog.topic, plog.partition) for plog in self._logs()}
            write_offsets(self.data_dir / CLEANER_OFFSET_CHECKPOINT,
                          {key: offset for key, offset in self._first_dirty.items() if key in live})


def advance(steps: Generator[SwapRequest, bool, None], value: bool | None) -> SwapRequest | None:
    """Run `clean_steps` to its next swap request (None when it is done); `value` answers the last."""
    try:
        return steps.send(value)
    except StopIteration:
        return None


class _Writer:
    """Batches appended to a cleaned segment, written in chunks of about 1 MiB."""

    def __init__(self, segment: LogSegment) -> None:
        self._segment = segment
        self._data = bytearray()
        self._headers: list[BatchHeader] = []

    def add(self, batch: bytes | memoryview, header: BatchHeader) -> None:
        self._data += batch
        self._headers.append(header)
        if len(self._data) >= _WRITE_CHUNK:
            self.close()

    def close(self) -> None:
        if self._headers:
            self._segment.append_chunk(self._data, self._headers)
            self._data = bytearray()
            self._headers = []


class _Markers:
    """Which control batches a cleaning may drop, as Kafka's cleaner decides (KIP-534): a marker
    whose transaction had no batch left in the log when this cleaning read it (its data went in
    earlier cleanings: all of it for an abort, every record superseded for a commit), once the
    delete horizon the first such cleaning gave it has passed. We also keep a producer's markers
    while it has no later data batch: its state is replayed from the log after a crash."""

    def __init__(self, producer_last_offsets: dict[int, int]) -> None:
        self._last_data = producer_last_offsets  # producer id -> the last offset of its last data batch
        self._in_transaction: set[int] = set()  # producers with a data batch read since their last marker

    def on_data(self, header: BatchHeader) -> None:
        if header.is_transactional:
            self._in_transaction.add(header.producer_id)

    def discardable(self, header: BatchHeader) -> bool:
        had_data = header.producer_id in self._in_transaction
        self._in_transaction.discard(header.producer_id)
        return not had_data and self._last_data.get(header.producer_id, -1) > header.last_offset


class _Transactions:
    """Whether a transactional batch was aborted: its producer's next control batch says so."""

    def __init__(self, segments: list[LogSegment]) -> None:
        self._segments = segments
        self._aborted: dict[int, bool] = {}  # batch base offset -> aborted

    def aborted(self, header: BatchHeader, segment_index: int, position: int) -> bool:
        if not header.is_transactional or header.is_control:
            return False
        known = self._aborted.get(header.base_offset)
        if known is None:
            self._scan(header.producer_id, segment_index, position)
            known = self._aborted.get(header.base_offset, False)  # no marker yet: still open
        return known

    def _scan(self, producer_id: int, segment_index: int, position: int) -> None:
        """Resolve the transactional batches from here up to `producer_id`'s next marker."""
        pending: dict[int, list[int]] = {}
        for segment in self._segments[segment_index:]:
            for at, header in segment.headers(position):
                if not header.is_transactional:
                    continue
                if not header.is_control:
                    pending.setdefault(header.producer_id, []).append(header.base_offset)
                    continue
                bases = pending.pop(header.producer_id, ())
                if bases:
                    aborted = control_record_type(segment.read_batch(at, header.size)) is ControlRecordType.ABORT
                    for base in bases:
                        self._aborted[base] = aborted
                if header.producer_id == producer_id:
                    return
            position = 0
