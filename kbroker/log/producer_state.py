"""Idempotent and transactional producers of one partition (Kafka's ProducerStateManager).

State per producer id: its epoch, the metadata of its last 5 appended batches (first and last
sequence, first and last offset, max timestamp), the first offset of its open transaction and the
epoch of the transaction coordinator that wrote its last marker.

Rules for a client's batch (Kafka's UnifiedLog.analyzeAndValidateProducerState and
ProducerAppendInfo), checked in this order before anything is written:
  1. same epoch and the same (first, last) sequence as one of the 5 retained batches: a retry.
     Nothing is appended; the original offsets are returned.
  2. epoch below the producer's: INVALID_PRODUCER_EPOCH.
  3. epoch above the producer's: the sequence must restart at 0, else OUT_OF_ORDER_SEQUENCE_NUMBER.
  4. same epoch: first sequence = last sequence + 1 (after INT32_MAX comes 0), else
     OUT_OF_ORDER_SEQUENCE_NUMBER.
  5. an unknown producer id (never seen, or its batches were deleted) may start at any sequence;
     Kafka >= 2.5 answers this case without UNKNOWN_PRODUCER_ID.
  6. a non-transactional batch while the producer has a transaction open: INVALID_TXN_STATE.
Batches with producerId -1 are not idempotent and skip all of this (aiokafka sends baseSequence 0
and kafkajs epoch 0 with producerId -1). A commit or abort marker (control batch, written by the
broker) ends the producer's transaction; an epoch below the producer's is INVALID_PRODUCER_EPOCH
(Kafka >= 2.7 answers this rather than PRODUCER_FENCED), and a coordinator epoch below the one of
the producer's last marker is TRANSACTION_COORDINATOR_FENCED (a coordinator that lost its
`__transaction_state` partition). A transactional batch opens the producer's transaction on
this partition if none is open (Kafka before KIP-890: the broker trusts AddPartitionsToTxn).

Snapshot `<20-digit offset>.snapshot`: the state built from every batch below that offset.
Big-endian:
    version int16 = 2 | crc uint32 = CRC-32C of all bytes after it | producer count int32
    per producer: producer id int64 | epoch int16 | open transaction first offset int64 (-1: none)
                  | coordinator epoch int32 (-1: none) | batch count int8
                  | per batch: last sequence int32 | last offset int64 | offset delta (last - first) int32
                              | max timestamp int64
Kafka's snapshot keeps only each producer's last batch; we keep all 5, so retries of batches that
were in flight when the broker stopped are still recognised after a restart. Version 1 (without
the coordinator epoch) is still read.

Crash behaviour: a snapshot is written at every segment roll without fsync (a torn one fails its
CRC and is skipped) and at clean shutdown with fsync. A snapshot that cannot be written (disk
full) is skipped with a warning: snapshots only shorten the replay. Loading takes the newest snapshot at or below
the log end that reads back, then replays batch headers from the log after it.
"""
from __future__ import annotations

import logging
import os
import struct
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import crc32c

from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.checkpoints import write_atomically, write_unsynced
from kbroker.wire.records import INT32_MAX, BatchHeader

log = logging.getLogger("kbroker.log")

SNAPSHOT_SUFFIX = ".snapshot"
BATCHES_RETAINED = 5
NO_PRODUCER_EPOCH = -1

_VERSION = 2
_HEAD = struct.Struct(">hI")
_COUNT = struct.Struct(">i")
_PRODUCERS = {1: struct.Struct(">qhqb"), 2: struct.Struct(">qhqib")}
_BATCH = struct.Struct(">iqiq")


@dataclass(frozen=True, slots=True)
class BatchMetadata:
    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class CompletedTxn:
    producer_id: int
    first_offset: int
    last_offset: int  # the offset of the marker
    aborted: bool


class ProducerEntry:
    __slots__ = ("producer_id", "epoch", "batches", "txn_first_offset", "coordinator_epoch")

    def __init__(self, producer_id: int, epoch: int = NO_PRODUCER_EPOCH) -> None:
        self.producer_id = producer_id
        self.epoch = epoch
        self.batches: deque[BatchMetadata] = deque(maxlen=BATCHES_RETAINED)
        self.txn_first_offset = -1
        self.coordinator_epoch = -1

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else -1

    @property
    def last_offset(self) -> int:
        return self.batches[-1].last_offset if self.batches else -1

    def find_duplicate(self, header: BatchHeader) -> BatchMetadata | None:
        if header.producer_epoch != self.epoch:
            return None
        last_seq = header.last_sequence
        for batch in self.batches:
            if batch.first_seq == header.base_sequence and batch.last_seq == last_seq:
                return batch
        return None

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch = epoch
            self.batches.clear()


def _in_sequence(last_seq: int, next_seq: int) -> bool:
    return next_seq == last_seq + 1 or (next_seq == 0 and last_seq == INT32_MAX)


def _decrement_sequence(sequence: int, decrement: int) -> int:
    if sequence < decrement:
        return INT32_MAX - (decrement - sequence) + 1
    return sequence - decrement


def snapshot_path(directory: Path, offset: int) -> Path:
    return directory / f"{offset:020d}{SNAPSHOT_SUFFIX}"


class ProducerStateManager:
    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self.producers: dict[int, ProducerEntry] = {}
        self._open_txns: dict[int, int] = {}  # producer id -> first offset of its open transaction
        self.markers_recorded = 0  # moves with every COMMIT / ABORT marker (a transaction verification guard)

    # -- client appends ----------------------------------------------------------------------------

    def check(self, header: BatchHeader) -> BatchMetadata | None:
        """Validate a client's data batch before it is written; a retry returns the original."""
        entry = self.producers.get(header.producer_id)
        if entry is None:  # rule 5
            return None
        duplicate = entry.find_duplicate(header)
        if duplicate is not None:
            return duplicate
        pid, epoch, seq = header.producer_id, header.producer_epoch, header.base_sequence
        if epoch < entry.epoch:
            raise KafkaError(ErrorCode.INVALID_PRODUCER_EPOCH,
                             f"Epoch of producer {pid} is {epoch}, which is smaller than the last seen epoch {entry.epoch}")
        if epoch != entry.epoch:
            if seq != 0 and entry.epoch != NO_PRODUCER_EPOCH:
                raise KafkaError(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                                 f"Invalid sequence number for new epoch of producer {pid}: {epoch} (request "
                                 f"epoch), {seq} (seq. number), {entry.epoch} (current producer epoch)")
        elif entry.epoch != NO_PRODUCER_EPOCH and not _in_sequence(entry.last_seq, seq):
            raise KafkaError(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                             f"Out of order sequence number for producer {pid}: {seq} (incoming seq. "
                             f"number), {entry.last_seq} (current end sequence number)")
        if entry.txn_first_offset >= 0 and not header.is_transactional:
            raise KafkaError(ErrorCode.INVALID_TXN_STATE,
                             f"Expected transactional write from producer {pid}")
        return None

    def check_marker(self, producer_id: int, epoch: int, coordinator_epoch: int) -> None:
        entry = self.producers.get(producer_id)
        if entry is None:
            return
        if epoch < entry.epoch:
            raise KafkaError(ErrorCode.INVALID_PRODUCER_EPOCH,
                             f"Epoch of producer {producer_id} is {epoch}, which is smaller than the last "
                             f"seen epoch {entry.epoch}")
        if coordinator_epoch < entry.coordinator_epoch:
            raise KafkaError(ErrorCode.TRANSACTION_COORDINATOR_FENCED,
                             f"Invalid coordinator epoch for producer {producer_id}: {coordinator_epoch} "
                             f"(zombie), {entry.coordinator_epoch} (current)")

    def verification_guard(self, producer_id: int) -> int | None:
        """None while `producer_id` has a transaction open here; otherwise a value that changes
        once a marker is written (Kafka's VerificationGuard, KIP-890): a transactional batch
        verified with the coordinator may be appended only while the guard it was verified
        under still holds, so a transaction that ended meanwhile is not opened again."""
        entry = self.producers.get(producer_id)
        if entry is not None and entry.txn_first_offset >= 0:
            return None
        return self.markers_recorded

    # -- state updates (appends and replay) --------------------------------------------------------

    def record_batch(self, header: BatchHeader) -> None:
        """A data batch with a producer id is in the log (offsets and timestamps final)."""
        entry = self.producers.get(header.producer_id)
        if entry is None:
            entry = self.producers[header.producer_id] = ProducerEntry(header.producer_id)
        entry.set_epoch(header.producer_epoch)
        entry.batches.append(BatchMetadata(header.base_sequence, header.last_sequence, header.base_offset,
                                           header.last_offset, header.max_timestamp))
        if header.is_transactional and entry.txn_first_offset < 0:
            entry.txn_first_offset = self._open_txns[entry.producer_id] = header.base_offset

    def record_marker(self, header: BatchHeader, aborted: bool, coordinator_epoch: int) -> CompletedTxn | None:
        """A commit/abort marker is in the log: the producer's transaction is over."""
        entry = self.producers.get(header.producer_id)
        if entry is None:
            entry = self.producers[header.producer_id] = ProducerEntry(header.producer_id)
        entry.set_epoch(header.producer_epoch)
        entry.coordinator_epoch = coordinator_epoch
        self.markers_recorded += 1
        first, entry.txn_first_offset = entry.txn_first_offset, -1
        self._open_txns.pop(entry.producer_id, None)
        if first < 0:
            return None
        return CompletedTxn(header.producer_id, first, header.base_offset, aborted)

    def first_unstable_offset(self) -> int | None:
        """The first offset of the oldest open transaction (the last stable offset's bound)."""
        return min(self._open_txns.values()) if self._open_txns else None

    def evict_before(self, log_start_offset: int) -> None:
        """Forget producers whose batches all lie below the new log start."""
        for pid in [pid for pid, e in self.producers.items()
                    if e.last_offset < log_start_offset and e.txn_first_offset < 0]:
            del self.producers[pid]
        for offset in self.snapshot_offsets():
            if offset < log_start_offset:
                snapshot_path(self._dir, offset).unlink(missing_ok=True)

    # -- snapshots ---------------------------------------------------------------------------------

    def snapshot_offsets(self) -> list[int]:
        offsets = []
        for name in os.listdir(self._dir):
            stem, _, suffix = name.partition(".")
            if "." + suffix == SNAPSHOT_SUFFIX and stem.isdigit():
                offsets.append(int(stem))
        return sorted(offsets)

    def take_snapshot(self, offset: int, *, fsync: bool) -> None:
        body = bytearray(_COUNT.pack(len(self.producers)))
        for entry in self.producers.values():
            body += _PRODUCERS[_VERSION].pack(entry.producer_id, entry.epoch, entry.txn_first_offset,
                                              entry.coordinator_epoch, len(entry.batches))
            for b in entry.batches:
                body += _BATCH.pack(b.last_seq, b.last_offset, b.last_offset - b.first_offset, b.timestamp)
        data = _HEAD.pack(_VERSION, crc32c.crc32c(body)) + body
        path = snapshot_path(self._dir, offset)
        try:
            (write_atomically if fsync else write_unsynced)(path, data)
        except OSError as e:  # a disk full: the log replays from an older snapshot instead
            log.warning("could not write producer snapshot %s: %s", path, e)
            return
        # Two snapshots are enough: the newest, and the one before it in case the newest is torn.
        for old in self.snapshot_offsets()[:-2]:
            snapshot_path(self._dir, old).unlink(missing_ok=True)

    def load(self, replay_from: int, log_end_offset: int, *, at_most: int | None = None) -> int:
        """Restore the newest readable snapshot at or below the log end (and `at_most`); return where
        replay starts."""
        self._set_producers({})
        for offset in reversed(self.snapshot_offsets()):
            path = snapshot_path(self._dir, offset)
            if offset > log_end_offset:
                path.unlink()
                continue
            if at_most is not None and offset > at_most:
                continue
            try:
                self._set_producers(_read_snapshot(path.read_bytes()))
            except (ValueError, struct.error) as e:
                log.warning("producer snapshot %s is unreadable (%s); trying an older one", path, e)
                path.unlink()
                continue
            return max(offset, replay_from)
        return replay_from

    def _set_producers(self, producers: dict[int, ProducerEntry]) -> None:
        self.producers = producers
        self._open_txns = {pid: e.txn_first_offset for pid, e in producers.items() if e.txn_first_offset >= 0}

    def delete_snapshots_after(self, offset: int) -> None:
        for snapshot in self.snapshot_offsets():
            if snapshot > offset:
                snapshot_path(self._dir, snapshot).unlink(missing_ok=True)


def _read_snapshot(data: bytes) -> dict[int, ProducerEntry]:
    version, crc = _HEAD.unpack_from(data)
    producer = _PRODUCERS.get(version)
    if producer is None:
        raise ValueError(f"unknown snapshot version {version}")
    body = memoryview(data)[_HEAD.size:]
    if crc32c.crc32c(body) != crc:
        raise ValueError("CRC mismatch")
    (count,) = _COUNT.unpack_from(body)
    pos = _COUNT.size
    entries = {}
    for _ in range(count):
        pid, epoch, txn_first_offset, *rest = producer.unpack_from(body, pos)
        pos += producer.size
        coordinator_epoch, batches = rest if len(rest) == 2 else (-1, rest[0])
        entry = ProducerEntry(pid, epoch)
        entry.txn_first_offset = txn_first_offset
        entry.coordinator_epoch = coordinator_epoch
        for _ in range(batches):
            last_seq, last_offset, delta, timestamp = _BATCH.unpack_from(body, pos)
            pos += _BATCH.size
            entry.batches.append(BatchMetadata(_decrement_sequence(last_seq, delta), last_seq,
                                               last_offset - delta, last_offset, timestamp))
        entries[pid] = entry
    if pos != len(body):
        raise ValueError("trailing bytes")
    return entries
