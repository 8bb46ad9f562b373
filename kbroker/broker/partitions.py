"""The partition service: the one path from "a batch arrived" to "its answer may go out"
(Kafka's ReplicaManager.appendRecords over Partition.appendRecordsToLeader).

Every write to a partition led here goes through it — Produce, the transaction markers
(WriteTxnMarkers, or the transaction coordinator in place) and the coordinators' own records —
and takes the same steps:

1. validate (Produce: leadership, min.insync.replicas before an acks=all append, the batch's
   framing and CRC, zstd on old requests, the transaction still open, keys on a compacted topic,
   CreateTime stamps inside message.timestamp.before/after.max.ms, KIP-937);
2. append the batch whole to the leader's log (opaque: the log patches the header's offsets);
3. flush policy: once flush.messages is reached the answer waits for an fsync of the partition
   (flusher.py shares each fsync with the other requests waiting for it); a failed fsync is
   KAFKA_STORAGE_ERROR for what it should have covered, which producers retry;
4. high watermark: alone it follows the log end (or the fsynced end); with followers it is the
   smallest log end in the ISR, and the followers' long polls wake to fetch the new records;
5. the fetch purgatory wakes whoever waits on the partition;
6. acks=all with followers: the answer waits until the high watermark passes the append
   (REQUEST_TIMED_OUT after the timeout; NOT_ENOUGH_REPLICAS_AFTER_APPEND once the ISR is below
   min.insync.replicas; NOT_LEADER_OR_FOLLOWER once leadership moved or the log was cut back).

A request's appends are collected in one `Appends`, synchronously, and `complete` runs steps 3-6
for all its partitions at once. It returns None when nothing has to wait — the common case,
answered without a coroutine — or an awaitable of the partitions that failed after appending.
acks=0 has no answer to hold: its fsyncs run as tasks the service keeps and cancels on close.

Fetch reads through it too (Kafka's ReplicaManager.readFromLog over Partition.fetchRecords):
`read` checks leadership, a follower's leader epoch, notes the follower's log end for the high
watermark and the ISR, bounds the read by the high watermark (a consumer), the last stable offset
(read_committed) or the log end (a follower), and returns the log's file slices untouched with the
partition's offsets, in one `PartitionRead` per partition. The Fetch handler keeps the request's
byte budget, sessions, the long poll and the quota.

The other reads of a led partition are its calls too, each a plain result (an error code, or the
values), never the log itself: `offset_for_timestamp` (ListOffsets, Kafka's
Partition.fetchOffsetForTimestamp), `end_offset_for_epoch` (OffsetForLeaderEpoch,
lastOffsetForLeaderEpoch), `delete_records` (DeleteRecords, deleteRecordsOnLeader),
`active_producers` (DescribeProducers, activeProducerState) and `verification_guard` (a
transactional batch's check before Produce, Partition.maybeStartTransactionVerification). The ones
that name a leader epoch are fenced as Kafka's localLogWithEpochOrThrow fences them.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING, NamedTuple

from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.topics import INTERNAL_TOPICS
from kbroker.wire.records import (
    Compression,
    decompressed_limit,
    keyless_record_indexes,
    timestamps_out_of_range,
    validate_produce_batch,
)

if TYPE_CHECKING:
    from kbroker.broker.flusher import Flusher
    from kbroker.broker.purgatory import FetchPurgatory
    from kbroker.broker.txn_verification import Verified
    from kbroker.cluster.member import ClusterMember
    from kbroker.log.log_manager import LogManager
    from kbroker.log.partition_log import AppendResult, FetchSlices, PartitionLog
    from kbroker.log.txn_index import AbortedTxn
    from kbroker.wire.records import BatchHeader

log = logging.getLogger("kbroker.partitions")

TopicPartition = tuple[str, int]
PURGATORY = "Produce"  # the metrics' name for acks=all waits; Kafka's marker appends wait in its produce purgatory too
ZSTD_MIN_PRODUCE_VERSION = 7  # KIP-110
COORDINATOR_APPEND_TIMEOUT_MS = 5000  # Kafka's offsets.commit.timeout.ms
MARKER_APPEND_TIMEOUT_MS = 30_000  # Kafka's request.timeout.ms, which bounds its marker appends


class AppendError(NamedTuple):
    """A partition's answer when its batch was not (or is not yet safely) written."""
    code: ErrorCode
    message: str | None = None
    log_start_offset: int = -1  # -1: no log to tell of
    record_errors: tuple[tuple[int, str], ...] = ()  # (batch index, message) of records refused one by one


class PartitionRead(NamedTuple):  # a tuple: one per partition of every Fetch
    """A partition's part of a Fetch answer (Kafka's LogReadResult). Without a log to read (not
    led here, unknown, a fenced follower) only `error` is set."""
    error: int
    records: FetchSlices | bytes = b""  # b"": nothing read; the log's file slices, never copied
    size: int = 0  # bytes in `records`
    high_watermark: int = -1
    last_stable_offset: int = -1
    log_start_offset: int = -1
    aborted: list[AbortedTxn] | None = None  # read_committed: the aborted transactions overlapping `records`


class OffsetLookup(NamedTuple):
    """A partition's ListOffsets answer (Kafka's TimestampAndOffset, or the error)."""
    error: int
    offset: int = -1  # -1: no such offset (a timestamp past every record, nothing readable yet)
    timestamp: int = -1
    leader_epoch: int = -1


class EpochEndOffset(NamedTuple):
    """A partition's OffsetForLeaderEpoch answer."""
    error: int
    leader_epoch: int = -1  # the largest epoch <= the one asked about; -1 when unknown
    end_offset: int = -1


class DeletedRecords(NamedTuple):
    """A partition's DeleteRecords answer."""
    error: int
    low_watermark: int = -1  # the log start offset after the deletion


class ActiveProducer(NamedTuple):
    """A producer a partition knows, as DescribeProducers lists it."""
    producer_id: int
    producer_epoch: int
    last_sequence: int
    last_timestamp: int
    coordinator_epoch: int
    current_txn_start_offset: int  # -1: no transaction open here


# ListOffsets' timestamps that name an offset rather than a time (KIP-734, KIP-405).
LATEST_TIMESTAMP = -1
EARLIEST_TIMESTAMP = -2
MAX_TIMESTAMP = -3
EARLIEST_LOCAL_TIMESTAMP = -4
LATEST_TIERED_TIMESTAMP = -5

_new_read = tuple.__new__  # PartitionRead's fields all given, without NamedTuple's Python-level __new__


class Written(NamedTuple):
    """A partition a request appended to, as the flush and the acks=all wait need it."""
    partition_log: PartitionLog
    end: int  # the log end after the request's appends
    truncations: int  # the log's truncation count then (a later cut means the records are gone)


class PartitionService:
    def __init__(self, logs: LogManager, flusher: Flusher, purgatory: FetchPurgatory) -> None:
        self.logs = logs
        self.flusher = flusher
        self.purgatory = purgatory
        self.cluster: ClusterMember | None = None  # cluster mode: this broker's membership
        self._tasks: set[asyncio.Task[None]] = set()  # acks=0 flushes, which nobody awaits

    def leader_log(self, topic: str, partition: int) -> PartitionLog | ErrorCode:
        """The log of a partition this broker leads, or the error for a client that thinks it does."""
        partition_log = self.logs.get_log(topic, partition)
        cluster = self.cluster
        if cluster is None:
            return partition_log if partition_log is not None else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        if partition_log is not None and cluster.leads(topic, partition):
            return partition_log
        assignment = cluster.image.topics.get(topic)
        if assignment is None or not 0 <= partition < assignment.partition_count:
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        return ErrorCode.NOT_LEADER_OR_FOLLOWER

    def read(self, topic: str, partition: int, fetch_offset: int, max_bytes: int, min_one_batch: bool,
             read_committed: bool, replica_id: int = -1, follower_epoch: int = -1) -> PartitionRead:
        """Whole batches from `fetch_offset`, at most `max_bytes` of them unless `min_one_batch`
        (then the first whatever its size; neither: nothing is read). A follower (`replica_id` >= 0
        in a cluster) reads up to the log end and moves the high watermark and the ISR with it."""
        partition_log = self.logs.get_log(topic, partition)
        if partition_log is None or self.cluster is not None:  # alone, a broker leads every log it has
            partition_log = self.leader_log(topic, partition)
            if isinstance(partition_log, ErrorCode):
                return PartitionRead(partition_log)
        if replica_id >= 0 and self.cluster is not None:
            epoch_error = leader_epoch_error(max(follower_epoch, -1), partition_log.leader_epoch)
            if epoch_error:
                return PartitionRead(epoch_error)
            self.cluster.on_follower_fetch(topic, partition, replica_id, fetch_offset)
            upper = partition_log.log_end_offset
            read_committed = False  # a follower copies the log whole; its answer still has the (empty) list
            aborted: list[AbortedTxn] | None = []
        elif read_committed:
            upper = partition_log.last_stable_offset
            aborted = []
        else:
            upper = partition_log.high_watermark
            aborted = None
        error = 0
        records: FetchSlices | bytes = b""
        size = 0
        if not partition_log.log_start_offset <= fetch_offset <= partition_log.log_end_offset:
            error = ErrorCode.OFFSET_OUT_OF_RANGE
        elif fetch_offset < upper and (max_bytes > 0 or min_one_batch):
            try:
                if read_committed:
                    data, aborted = partition_log.read_committed(fetch_offset, max_bytes, upper, min_one_batch)
                else:
                    data = partition_log.read(fetch_offset, max_bytes, upper, min_one_batch)
            except KafkaError as exc:
                error = exc.code
            else:
                if data.size:
                    records = data
                    size = data.size
        return _new_read(PartitionRead, (error, records, size, partition_log.high_watermark,
                                         partition_log.last_stable_offset, partition_log.log_start_offset, aborted))

    def offset_for_timestamp(self, topic: str, partition: int, timestamp: int, read_committed: bool,
                             current_leader_epoch: int = -1) -> OffsetLookup:
        """ListOffsets: the latest offset a consumer may read (the high watermark, or the last stable
        offset read_committed), the earliest, or the first record at `timestamp` or with the largest
        one, never at or past that bound."""
        partition_log = self._led_in_epoch(topic, partition, current_leader_epoch)
        if isinstance(partition_log, int):
            return OffsetLookup(partition_log)
        try:
            return _offset_for_timestamp(partition_log, timestamp, read_committed)
        except KafkaError as exc:  # a batch the search reads is unreadable
            return OffsetLookup(exc.code)

    def end_offset_for_epoch(self, topic: str, partition: int, leader_epoch: int,
                             current_leader_epoch: int = -1) -> EpochEndOffset:
        """OffsetForLeaderEpoch: the largest epoch <= `leader_epoch` and the offset it ended at."""
        partition_log = self._led_in_epoch(topic, partition, current_leader_epoch)
        if isinstance(partition_log, int):
            return EpochEndOffset(partition_log)
        epoch, end_offset = partition_log.end_offset_for_epoch(leader_epoch)
        return EpochEndOffset(0, epoch, end_offset)

    def delete_records(self, topic: str, partition: int, offset: int) -> DeletedRecords:
        """DeleteRecords: raise the log start to `offset` (-1: the high watermark), in Kafka's order of
        checks (ReplicaManager.deleteRecordsOnLocalLog, Partition.deleteRecordsOnLeader)."""
        if topic in INTERNAL_TOPICS:
            return DeletedRecords(ErrorCode.INVALID_TOPIC_EXCEPTION)
        partition_log = self.leader_log(topic, partition)
        if isinstance(partition_log, ErrorCode):
            return DeletedRecords(partition_log)
        if not partition_log.config.deletes_old_segments:
            return DeletedRecords(ErrorCode.POLICY_VIOLATION)
        try:
            return DeletedRecords(0, partition_log.delete_records_before(
                partition_log.high_watermark if offset == -1 else offset))
        except KafkaError as exc:  # past the high watermark: OFFSET_OUT_OF_RANGE
            return DeletedRecords(exc.code)

    def active_producers(self, topic: str, partition: int) -> list[ActiveProducer] | ErrorCode:
        """DescribeProducers: the producers the partition's producer state has."""
        partition_log = self.leader_log(topic, partition)
        if isinstance(partition_log, ErrorCode):
            return partition_log
        return [ActiveProducer(p.producer_id, p.epoch, p.last_seq, p.batches[-1].timestamp if p.batches else -1,
                               p.coordinator_epoch, p.txn_first_offset) for p in partition_log.active_producers()]

    def verification_guard(self, topic: str, partition: int, producer_id: int) -> int | None:
        """The guard a transactional batch is verified under (txn_verification.py); None while the
        producer's transaction is open on the partition, or when it is not led here (the append
        answers that)."""
        partition_log = self.leader_log(topic, partition)
        return None if isinstance(partition_log, ErrorCode) else partition_log.verification_guard(producer_id)

    def _led_in_epoch(self, topic: str, partition: int, current_leader_epoch: int) -> PartitionLog | int:
        """The log of a partition led here in the leader epoch the client knows (-1: not checked)."""
        partition_log = self.leader_log(topic, partition)
        if isinstance(partition_log, ErrorCode):
            return partition_log
        return leader_epoch_error(current_leader_epoch, partition_log.leader_epoch) or partition_log

    def appends(self, acks: int) -> Appends:
        return Appends(self, acks)

    async def append_coordinator_batch(self, partition_log: PartitionLog, batch: bytes, header: BatchHeader,
                                       now_ms: int) -> AppendResult:
        """A coordinator's own records, appended as Kafka's coordinators do, with acks=all: done once
        durable and, in a cluster, once the ISR has them, so that the broker elected next has every
        group and transaction record a client was told about. KafkaError or OSError if not."""
        appends = Appends(self, -1)
        result = appends.append(partition_log, batch, header, now_ms)
        pending = appends.complete(COORDINATOR_APPEND_TIMEOUT_MS)
        if pending is not None:
            failures = await pending
            if failures:
                failure = failures[(partition_log.topic, partition_log.partition)]
                if failure.code == ErrorCode.KAFKA_STORAGE_ERROR:
                    raise OSError(failure.message)
                raise KafkaError(failure.code, f"{partition_log.topic}-{partition_log.partition}: not replicated "
                                               f"({failure.code.name})")
        return result

    async def append_markers(self, producer_id: int, producer_epoch: int, coordinator_epoch: int, commit: bool,
                             partitions: Iterable[TopicPartition], now_ms: int) -> dict[TopicPartition, ErrorCode]:
        """A COMMIT / ABORT marker on each partition, appended with acks=all as Kafka does (no
        min.insync.replicas check first); each partition's error code once the marker is durable
        and, in a cluster, in the ISR."""
        results: dict[TopicPartition, ErrorCode] = {}
        appends = Appends(self, -1)
        for key in partitions:
            partition_log = self.leader_log(*key)
            if isinstance(partition_log, ErrorCode):
                results[key] = partition_log
                continue
            try:
                partition_log.append_control_batch(producer_id, producer_epoch, coordinator_epoch, commit, now_ms)
            except KafkaError as exc:
                results[key] = exc.code
                continue
            except OSError as exc:
                log.debug("marker for producer %d on %s-%d failed: %s", producer_id, *key, exc)
                results[key] = ErrorCode.KAFKA_STORAGE_ERROR
                continue
            appends.wrote(partition_log)
            results[key] = ErrorCode.NONE
        pending = appends.complete(MARKER_APPEND_TIMEOUT_MS)
        if pending is not None:
            for key, failure in (await pending).items():
                results[key] = failure.code
        return results

    def replicas_moved(self, partition_log: PartitionLog) -> None:
        """A follower fetched or the ISR changed: the high watermark may move up."""
        replicas = self.cluster.replicas_of(partition_log.topic, partition_log.partition)
        if replicas is None:
            return
        high_watermark = min(replicas.high_watermark(), partition_log.log_end_offset)
        if high_watermark > partition_log.high_watermark:
            partition_log.update_high_watermark(high_watermark)
            self.purgatory.notify((partition_log.topic, partition_log.partition))

    def _advance_high_watermark(self, partition_log: PartitionLog, offset: int) -> None:
        """The leader's log end (or fsynced end) moved to `offset`. Alone, the high watermark follows
        it; with followers it is the smallest log end in the ISR, and the followers' long polls
        wake to fetch what was just written."""
        replicas = self.cluster.replicas_of(partition_log.topic, partition_log.partition) if self.cluster else None
        if replicas is not None:
            replicas.leader_end = max(replicas.leader_end, offset)
            self.purgatory.notify((partition_log.topic, partition_log.partition))
            self.replicas_moved(partition_log)
            return
        if offset > partition_log.high_watermark:
            partition_log.update_high_watermark(offset)
            self.purgatory.notify((partition_log.topic, partition_log.partition))

    def _replicated(self, partition_log: PartitionLog) -> bool:
        return self.cluster is not None and self.cluster.replicas_of(partition_log.topic,
                                                                     partition_log.partition) is not None

    def _too_few_in_sync(self, topic: str, partition: int) -> bool:
        """A replicated partition whose ISR is below min.insync.replicas (acks=all checks before appending)."""
        replicas = self.cluster.replicas_of(topic, partition)
        return replicas is not None and len(replicas.isr) < self.cluster.min_insync_replicas(topic)

    async def _flush(self, written: list[Written]) -> dict[TopicPartition, AppendError]:
        """fsync the partitions, all at once; expose what was synced; the ones that failed."""
        outcomes = await asyncio.gather(*(self.flusher.flush_through(*entry) for entry in written),
                                        return_exceptions=True)
        failures = {}
        for (partition_log, _, _), outcome in zip(written, outcomes):
            if isinstance(outcome, OSError):  # not durable: not acknowledged
                failures[(partition_log.topic, partition_log.partition)] = _storage_error(outcome, partition_log)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                self._advance_high_watermark(
                    partition_log, min(partition_log.recovery_point, partition_log.log_end_offset))
        return failures

    def _flush_unanswered(self, written: list[Written]) -> None:
        """acks=0: the fsync still runs (the high watermark waits for it), with nobody to answer."""
        task = asyncio.get_running_loop().create_task(self._flush(written))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _wait_replicated(self, appended: list[Written], timeout_ms: int) -> dict[TopicPartition, AppendError]:
        """The partitions that failed to replicate their append, see the header."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout_ms, 0) / 1000
        failures: dict[TopicPartition, AppendError] = {}
        waiting = {(entry.partition_log.topic, entry.partition_log.partition): entry for entry in appended}
        while waiting:
            for key, entry in list(waiting.items()):
                code = self._replication_outcome(*entry)
                if code is not None:
                    del waiting[key]
                    if code != ErrorCode.NONE:
                        failures[key] = AppendError(code, None, entry.partition_log.log_start_offset)
            if not waiting:
                break
            woken = self.purgatory.watch(waiting, PURGATORY)
            timer = loop.call_at(deadline, _time_out, woken)
            try:
                timed_out = await woken
            finally:
                timer.cancel()
                self.purgatory.unwatch(woken, waiting, PURGATORY)
            if timed_out:
                failures.update(
                    (key, AppendError(ErrorCode.REQUEST_TIMED_OUT, None, entry.partition_log.log_start_offset))
                    for key, entry in waiting.items())
                break
        return failures

    def _replication_outcome(self, partition_log: PartitionLog, end: int, truncations: int) -> ErrorCode | None:
        """NONE once replicated, an error once it cannot be, None while it may still be."""
        if self.leader_log(partition_log.topic, partition_log.partition) is not partition_log:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        if partition_log.truncations != truncations:  # cut back (a new leader): not replicated
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        if partition_log.high_watermark >= end:
            return ErrorCode.NONE
        replicas = self.cluster.replicas_of(partition_log.topic, partition_log.partition)
        if replicas is None:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        if len(replicas.isr) < self.cluster.min_insync_replicas(partition_log.topic):
            return ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
        return None

    async def close(self) -> None:
        """Cancel the acks=0 flushes still running (the logs close next; recovery covers the rest)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class Appends:
    """One request's appends, completed together (see the module header)."""
    __slots__ = ("_service", "_acks", "_written")

    def __init__(self, service: PartitionService, acks: int) -> None:
        self._service = service
        self._acks = acks
        # Each log appended to, with its truncation count after the request's first append to it:
        # a later cut (a failed fsync, a new leader) means those records are gone.
        self._written: dict[PartitionLog, int] = {}

    def produce(self, topic: str, partition: int, records: memoryview | None, produce_version: int,
                verified: Verified | None, now_ms: int) -> AppendResult | AppendError:
        """Validate and append one partition's batch from a Produce request."""
        service = self._service
        partition_log = service.leader_log(topic, partition)
        if isinstance(partition_log, ErrorCode):
            return AppendError(partition_log)
        if records is None:
            return AppendError(ErrorCode.INVALID_RECORD, "no record batch", partition_log.log_start_offset)
        if self._acks == -1 and service.cluster is not None and service._too_few_in_sync(topic, partition):
            return AppendError(ErrorCode.NOT_ENOUGH_REPLICAS, "The size of the current ISR is below "
                               "min.insync.replicas", partition_log.log_start_offset)
        try:
            max_message_bytes = partition_log.config.max_message_bytes
            header = validate_produce_batch(records, max_message_bytes)
            if header.compression == Compression.ZSTD and produce_version < ZSTD_MIN_PRODUCE_VERSION:
                raise KafkaError(ErrorCode.UNSUPPORTED_COMPRESSION_TYPE, "zstd needs Produce v7 or later (KIP-110)")
            if verified is not None and \
                    partition_log.verification_guard(verified.producer_id) not in (None, verified.guard):
                # a marker ended the transaction since it was verified (and none is open again)
                raise KafkaError(ErrorCode.INVALID_TXN_STATE, "the transaction ended while its partition was verified")
            if partition_log.config.compact:
                keyless = keyless_record_indexes(records, decompressed_limit(max_message_bytes))
                if keyless:
                    message = ("Compacted topic cannot accept message without key in topic partition "
                               f"{topic}-{partition}")
                    return _record_errors(ErrorCode.INVALID_RECORD, [(i, message) for i in keyless], partition_log)
            window = partition_log.config.create_time_window_ms()
            if window is not None:
                low, high = now_ms - window[0], now_ms + window[1]
                late = timestamps_out_of_range(records, decompressed_limit(max_message_bytes), low, high)
                if late:
                    return _record_errors(ErrorCode.INVALID_TIMESTAMP, [
                        (i, f"Timestamp {t} of message with offset {i} is out of range. The timestamp should be "
                            f"within [{low}, {high}]") for i, t in late], partition_log)
            return self.append(partition_log, records, header, now_ms)
        except KafkaError as exc:
            return AppendError(exc.code, exc.message, partition_log.log_start_offset)
        except OSError as exc:  # nothing was written; the log reports the failure (once) and the recovery
            log.debug("append to %s-%d failed: %s", topic, partition, exc)
            return _storage_error(exc, partition_log)

    def append(self, partition_log: PartitionLog, batch: bytes | bytearray | memoryview, header: BatchHeader,
               now_ms: int) -> AppendResult:
        """Append a batch that passed validation (KafkaError or OSError if the log refuses it)."""
        result = partition_log.append(batch, header, leader_epoch=partition_log.leader_epoch, now_ms=now_ms)
        self.wrote(partition_log)  # a duplicate too: its answer waits for the original as a retry's would
        return result

    def wrote(self, partition_log: PartitionLog) -> None:
        if partition_log not in self._written:
            self._written[partition_log] = partition_log.truncations

    def complete(self, timeout_ms: int) -> Awaitable[dict[TopicPartition, AppendError]] | None:
        """Flush, advance the high watermarks and wake the purgatory for every partition written;
        None when the answer need not wait, else the partitions that failed after appending."""
        service = self._service
        pending = []  # partitions whose answer waits for an fsync (flush.messages reached)
        for partition_log, truncations in self._written.items():
            if service.flusher.needs_flush(partition_log):
                pending.append(Written(partition_log, partition_log.log_end_offset, truncations))
            else:
                service._advance_high_watermark(partition_log, partition_log.log_end_offset)
        if self._acks == 0:
            if pending:
                service._flush_unanswered(pending)
            return None
        replicated = [] if self._acks != -1 or service.cluster is None else [
            Written(partition_log, partition_log.log_end_offset, truncations)
            for partition_log, truncations in self._written.items() if service._replicated(partition_log)]
        if replicated:
            return self._after_replication(pending, replicated, timeout_ms)
        if pending:
            return service._flush(pending)
        return None

    async def _after_replication(self, pending: list[Written], replicated: list[Written],
                                 timeout_ms: int) -> dict[TopicPartition, AppendError]:
        """acks=all with followers: each partition once its high watermark passes what was appended
        (after the fsyncs flush.messages asks for)."""
        service = self._service
        failures = await service._flush(pending) if pending else {}
        waiting = [entry for entry in replicated
                   if (entry.partition_log.topic, entry.partition_log.partition) not in failures]
        failures.update(await service._wait_replicated(waiting, timeout_ms))
        return failures


def _offset_for_timestamp(partition_log: PartitionLog, timestamp: int, read_committed: bool) -> OffsetLookup:
    """PartitionService.offset_for_timestamp on the log found (Kafka's UnifiedLog.fetchOffsetByTimestamp)."""
    upper = partition_log.last_stable_offset if read_committed else partition_log.high_watermark
    if timestamp == LATEST_TIMESTAMP:
        return OffsetLookup(0, upper, -1, partition_log.leader_epoch)
    if timestamp in (EARLIEST_TIMESTAMP, EARLIEST_LOCAL_TIMESTAMP):
        offset, _, epoch = partition_log.earliest_offset()
        return OffsetLookup(0, offset, -1, epoch)
    if timestamp == LATEST_TIERED_TIMESTAMP:  # nothing is tiered: Kafka answers "not found"
        return OffsetLookup(0)
    found = (partition_log.max_timestamp_offset() if timestamp == MAX_TIMESTAMP
             else partition_log.offset_for_timestamp(timestamp))
    if found is None or found.offset >= upper:  # consumers must not see past what they may read
        return OffsetLookup(0)
    return OffsetLookup(0, found.offset, found.timestamp, found.leader_epoch)


def leader_epoch_error(requested: int, leader_epoch: int) -> int:
    """A request made in another leader epoch is refused: its sender knows an older leader (FENCED),
    or this leader has not yet learnt of its own new epoch (UNKNOWN); -1: none given, not checked.
    As Kafka's Partition.localLogWithEpochOrThrow; a follower's Fetch, whose every negative epoch
    means none, passes -1 for them. Refused, a follower is not counted for the high watermark."""
    if requested == -1 or requested == leader_epoch:
        return 0
    return ErrorCode.FENCED_LEADER_EPOCH if requested < leader_epoch else ErrorCode.UNKNOWN_LEADER_EPOCH


def _storage_error(exc: OSError, partition_log: PartitionLog) -> AppendError:
    return AppendError(ErrorCode.KAFKA_STORAGE_ERROR, f"Disk error: {exc.strerror or exc}",
                       partition_log.log_start_offset)


def _record_errors(code: ErrorCode, errors: list[tuple[int, str]], partition_log: PartitionLog) -> AppendError:
    """Kafka's LogValidator answer to records it refuses one by one (the batch is not appended)."""
    shown = ", ".join(f"RecordError(batchIndex={i}, message='{m}')" for i, m in errors[:3])
    return AppendError(code, f"One or more records have been rejected due to {len(errors)} record errors in total, "
                             f"and only showing the first three errors at most: [{shown}]",
                       partition_log.log_start_offset, tuple(errors))


def _time_out(waiter: asyncio.Future[bool | None]) -> None:
    if not waiter.done():
        waiter.set_result(True)  # the purgatory wakes it with None
