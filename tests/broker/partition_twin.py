"""An in-memory twin of `PartitionService` (kbroker/broker/partitions.py), for handler tests.

It answers the calls the handlers make — `appends(acks)` → `produce` → `complete`, `read`,
`append_markers`, `offset_for_timestamp`, `end_offset_for_epoch`, `delete_records`,
`active_producers`, `verification_guard` — with the service's result types, on batches
kept in memory: no files, no fsync, no flusher. test_partition_contract.py runs the same scenarios
on it and on the real service so the two cannot drift. What it keeps of the service's semantics:
- a batch is validated as Produce validates it (framing, CRC, size), then given its offsets and
  the partition's leader epoch;
- the high watermark follows the log end at `complete` when alone; with followers (`replicate`)
  it is the smallest log end of the leader and the followers, which move it by fetching;
- a transactional batch opens its producer's transaction, which holds the last stable offset
  back until its marker; an ABORT marker records the aborted transaction for read_committed;
- reads return whole batches from the one holding the fetch offset, below the high watermark /
  last stable offset / log end, within max_bytes unless min_one_batch; as `bytes`;
- each epoch starts where its leader first appended (or became leader); the offsets looked up by
  time come from the records' own timestamps, below the high watermark / last stable offset;
- DeleteRecords moves the log start (up to the high watermark), dropping the batches below it.
Not modelled: idempotent duplicates, flush.messages, the acks=all wait for the ISR (the twin
answers at once; test_partitions.py covers it on the real service), compaction, retention,
topic configs (no cleanup.policy: DeleteRecords is never a POLICY_VIOLATION here).
`fail_after_append` makes a partition's `complete` report an error, as a failed fsync does.

`twin_broker` is a Broker whose partition service is a twin, for handlers called in-process: its
LogManager only says which topics exist (the records never reach it).
"""
from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from kbroker.broker.broker import Broker
from kbroker.broker.dispatch import RequestContext
from kbroker.broker.partitions import (
    EARLIEST_LOCAL_TIMESTAMP,
    EARLIEST_TIMESTAMP,
    LATEST_TIERED_TIMESTAMP,
    LATEST_TIMESTAMP,
    MAX_TIMESTAMP,
    ActiveProducer,
    AppendError,
    DeletedRecords,
    EpochEndOffset,
    OffsetLookup,
    PartitionRead,
    TopicPartition,
    leader_epoch_error,
)
from kbroker.broker.purgatory import FetchPurgatory
from kbroker.config import build_config
from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.log_manager import LogManager
from kbroker.log.partition_log import AppendResult
from kbroker.log.topics import INTERNAL_TOPICS
from kbroker.log.txn_index import AbortedTxn
from kbroker.wire.frames import RequestHeader
from kbroker.wire.records import (
    BatchHeader,
    ControlRecordType,
    EndTxnMarker,
    assign_offsets,
    build_control_batch,
    decode_records,
    validate_produce_batch,
)

MAX_MESSAGE_BYTES = 1_048_588  # Kafka's message.max.bytes default


class MemoryPartition:
    def __init__(self) -> None:
        self.batches: list[tuple[int, int, bytes]] = []  # (base offset, next offset, the batch)
        self.log_start_offset = 0
        self.log_end_offset = 0
        self.high_watermark = 0
        self.leader_epoch = 0
        self.open_txns: dict[int, int] = {}  # producer id -> first offset of its open transaction
        self.producers: dict[int, ActiveProducer] = {}
        self.markers = 0  # the verification guard: moves with every marker
        self.epochs: list[tuple[int, int]] = []  # (leader epoch, its first offset)
        self.stamps: list[tuple[int, int]] = []  # (offset, timestamp) of every data record
        self.aborted: list[AbortedTxn] = []
        self.followers: dict[int, int] | None = None  # replica id -> its log end (its last fetch offset)

    @property
    def last_stable_offset(self) -> int:
        return min([self.high_watermark, *self.open_txns.values()])

    def become_leader(self, epoch: int) -> None:
        self.leader_epoch = epoch
        self._start_epoch(self.log_end_offset)

    def _start_epoch(self, offset: int) -> None:
        if not self.epochs or self.epochs[-1][0] != self.leader_epoch:
            self.epochs.append((self.leader_epoch, offset))

    def epoch_of(self, offset: int) -> int:
        return max((epoch for epoch, start in self.epochs if start <= offset), default=-1)

    def append(self, batch: bytearray, header: BatchHeader, coordinator_epoch: int = -1) -> AppendResult:
        known = self.producers.get(header.producer_id) if header.has_producer_id else None
        if known is not None and header.producer_epoch < known.producer_epoch:
            raise KafkaError(ErrorCode.INVALID_PRODUCER_EPOCH, "a fenced producer epoch")
        base = self.log_end_offset
        assign_offsets(batch, base, self.leader_epoch)
        header = BatchHeader.parse(batch)
        self._start_epoch(base)
        if header.is_control:
            self.markers += 1
            self.open_txns.pop(header.producer_id, None)
        else:
            self.stamps.extend((record.offset, record.timestamp) for record in decode_records(batch))
            if header.is_transactional:
                self.open_txns.setdefault(header.producer_id, base)
        if header.has_producer_id:  # a marker keeps the producer's last data batch, and notes the coordinator
            last = ((known.last_sequence, known.last_timestamp) if known else (-1, -1)) if header.is_control else (
                header.last_sequence, header.max_timestamp)
            self.producers[header.producer_id] = ActiveProducer(
                header.producer_id, header.producer_epoch, *last,
                coordinator_epoch if header.is_control or not known else known.coordinator_epoch,
                self.open_txns.get(header.producer_id, -1))
        self.batches.append((base, header.next_offset, bytes(batch)))
        self.log_end_offset = header.next_offset
        return AppendResult(base, header.last_offset, -1, self.log_start_offset)

    def expose(self) -> bool:
        """Move the high watermark to what every replica has; True if it moved."""
        end = min([self.log_end_offset, *(self.followers or {}).values()])
        moved = end > self.high_watermark
        self.high_watermark = max(self.high_watermark, end)
        return moved

    def read(self, fetch_offset: int, max_bytes: int, upper: int, min_one_batch: bool) -> tuple[bytes, int]:
        """The batches read, and the offset after them."""
        taken: list[bytes] = []
        size = 0
        end = fetch_offset
        for base, next_offset, batch in self.batches:
            if next_offset <= fetch_offset:
                continue
            if base >= upper or (size + len(batch) > max_bytes and not (min_one_batch and not taken)):
                break
            taken.append(batch)
            size += len(batch)
            end = next_offset
        return b"".join(taken), end


class PartitionTwin:
    def __init__(self, purgatory: FetchPurgatory) -> None:
        self.purgatory = purgatory
        self.partitions: dict[TopicPartition, MemoryPartition] = {}
        self.led_elsewhere: set[TopicPartition] = set()
        self.fail_after_append: dict[TopicPartition, AppendError] = {}

    def create_topic(self, name: str, partitions: int = 1) -> None:
        for index in range(partitions):
            self.partitions[(name, index)] = MemoryPartition()

    def replicate(self, key: TopicPartition, followers: Iterable[int]) -> None:
        """The partition has followers from now on, none of which has fetched yet."""
        self.partitions[key].followers = dict.fromkeys(followers, 0)

    def _led(self, topic: str, partition: int) -> MemoryPartition | ErrorCode:
        if (topic, partition) in self.led_elsewhere:
            return ErrorCode.NOT_LEADER_OR_FOLLOWER
        return self.partitions.get((topic, partition), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)

    def appends(self, acks: int) -> TwinAppends:
        return TwinAppends(self)

    def read(self, topic: str, partition: int, fetch_offset: int, max_bytes: int, min_one_batch: bool,
             read_committed: bool, replica_id: int = -1, follower_epoch: int = -1) -> PartitionRead:
        found = self._led(topic, partition)
        if isinstance(found, ErrorCode):
            return PartitionRead(found)
        aborted: list[AbortedTxn] | None = [] if read_committed else None
        if replica_id >= 0 and found.followers is not None:
            epoch_error = leader_epoch_error(max(follower_epoch, -1), found.leader_epoch)
            if epoch_error:
                return PartitionRead(epoch_error)
            found.followers[replica_id] = fetch_offset
            if found.expose():
                self.purgatory.notify((topic, partition))
            upper, read_committed, aborted = found.log_end_offset, False, []  # as the service answers a follower
        else:
            upper = found.last_stable_offset if read_committed else found.high_watermark
        if not found.log_start_offset <= fetch_offset <= found.log_end_offset:
            return PartitionRead(ErrorCode.OFFSET_OUT_OF_RANGE, b"", 0, found.high_watermark,
                                 found.last_stable_offset, found.log_start_offset, aborted)
        records = b""
        if fetch_offset < upper and (max_bytes > 0 or min_one_batch):
            records, end = found.read(fetch_offset, max_bytes, upper, min_one_batch)
            if read_committed and records:
                aborted = [t for t in found.aborted if t.last_offset >= fetch_offset and t.first_offset < end]
        return PartitionRead(0, records, len(records), found.high_watermark, found.last_stable_offset,
                             found.log_start_offset, aborted)

    def offset_for_timestamp(self, topic: str, partition: int, timestamp: int, read_committed: bool,
                             current_leader_epoch: int = -1) -> OffsetLookup:
        found = self._led_in_epoch(topic, partition, current_leader_epoch)
        if isinstance(found, int):
            return OffsetLookup(found)
        upper = found.last_stable_offset if read_committed else found.high_watermark
        if timestamp == LATEST_TIMESTAMP:
            return OffsetLookup(0, upper, -1, found.leader_epoch)
        if timestamp in (EARLIEST_TIMESTAMP, EARLIEST_LOCAL_TIMESTAMP):
            return OffsetLookup(0, found.log_start_offset, -1, found.epoch_of(found.log_start_offset))
        stamps = [(offset, stamp) for offset, stamp in found.stamps if offset >= found.log_start_offset]
        if timestamp == MAX_TIMESTAMP:
            latest = max((stamp for _, stamp in stamps), default=None)
            hits = [(offset, stamp) for offset, stamp in stamps if stamp == latest]
        else:
            hits = [(offset, stamp) for offset, stamp in stamps if stamp >= timestamp]
        if timestamp == LATEST_TIERED_TIMESTAMP or not hits or hits[0][0] >= upper:
            return OffsetLookup(0)
        offset, stamp = hits[0]
        return OffsetLookup(0, offset, stamp, found.epoch_of(offset))

    def end_offset_for_epoch(self, topic: str, partition: int, leader_epoch: int,
                             current_leader_epoch: int = -1) -> EpochEndOffset:
        found = self._led_in_epoch(topic, partition, current_leader_epoch)
        if isinstance(found, int):
            return EpochEndOffset(found)
        epochs = found.epochs
        if leader_epoch == -1 or not epochs or leader_epoch > epochs[-1][0]:  # not known (yet)
            return EpochEndOffset(0)
        older = [epoch for epoch, _ in epochs if epoch <= leader_epoch]
        if not older:  # older than any epoch known: the data before is gone
            return EpochEndOffset(0, leader_epoch, epochs[0][1])
        ends = [start for _, start in epochs[len(older):]]  # the next epoch's start ends it
        return EpochEndOffset(0, older[-1], ends[0] if ends else found.log_end_offset)

    def delete_records(self, topic: str, partition: int, offset: int) -> DeletedRecords:
        if topic in INTERNAL_TOPICS:
            return DeletedRecords(ErrorCode.INVALID_TOPIC_EXCEPTION)
        found = self._led(topic, partition)
        if isinstance(found, ErrorCode):
            return DeletedRecords(found)
        offset = found.high_watermark if offset == -1 else offset
        if not 0 <= offset <= found.high_watermark:
            return DeletedRecords(ErrorCode.OFFSET_OUT_OF_RANGE)
        if offset > found.log_start_offset:
            found.log_start_offset = offset
            found.batches = [entry for entry in found.batches if entry[1] > offset]
        return DeletedRecords(0, found.log_start_offset)

    def active_producers(self, topic: str, partition: int) -> list[ActiveProducer] | ErrorCode:
        found = self._led(topic, partition)
        return found if isinstance(found, ErrorCode) else list(found.producers.values())

    def verification_guard(self, topic: str, partition: int, producer_id: int) -> int | None:
        found = self._led(topic, partition)
        if isinstance(found, ErrorCode) or producer_id in found.open_txns:
            return None
        return found.markers

    def _led_in_epoch(self, topic: str, partition: int, current_leader_epoch: int) -> MemoryPartition | int:
        found = self._led(topic, partition)
        if isinstance(found, ErrorCode):
            return found
        return leader_epoch_error(current_leader_epoch, found.leader_epoch) or found

    async def append_markers(self, producer_id: int, producer_epoch: int, coordinator_epoch: int, commit: bool,
                             partitions: Iterable[TopicPartition], now_ms: int) -> dict[TopicPartition, ErrorCode]:
        results: dict[TopicPartition, ErrorCode] = {}
        for key in partitions:
            found = self._led(*key)
            if isinstance(found, ErrorCode):
                results[key] = found
                continue
            marker = EndTxnMarker(ControlRecordType.COMMIT if commit else ControlRecordType.ABORT, coordinator_epoch)
            batch = bytearray(build_control_batch(marker, producer_id=producer_id, producer_epoch=producer_epoch,
                                                  timestamp_ms=now_ms))
            first = found.open_txns.get(producer_id)
            try:
                offset = found.append(batch, BatchHeader.parse(batch), coordinator_epoch).base_offset
            except KafkaError as exc:
                results[key] = exc.code
                continue
            if first is not None and not commit:
                found.aborted.append(AbortedTxn(producer_id, first, offset, found.last_stable_offset))
            if found.expose():
                self.purgatory.notify(key)
            results[key] = ErrorCode.NONE
        return results


class TwinAppends:
    """One request's appends on the twin (see PartitionService.appends)."""

    def __init__(self, twin: PartitionTwin) -> None:
        self._twin = twin
        self._written: set[TopicPartition] = set()

    def produce(self, topic: str, partition: int, records: memoryview | None, produce_version: int,
                verified: object, now_ms: int) -> AppendResult | AppendError:
        found = self._twin._led(topic, partition)
        if isinstance(found, ErrorCode):
            return AppendError(found)
        if records is None:
            return AppendError(ErrorCode.INVALID_RECORD, "no record batch", found.log_start_offset)
        try:
            header = validate_produce_batch(records, MAX_MESSAGE_BYTES)
            result = found.append(bytearray(records), header)
        except KafkaError as exc:
            return AppendError(exc.code, exc.message, found.log_start_offset)
        self._written.add((topic, partition))
        return result

    def complete(self, timeout_ms: int) -> asyncio.Future[dict[TopicPartition, AppendError]] | None:
        twin = self._twin
        failures = {key: twin.fail_after_append[key] for key in self._written if key in twin.fail_after_append}
        for key in self._written - failures.keys():  # what failed after its append is not exposed
            if twin.partitions[key].expose():
                twin.purgatory.notify(key)
        if not failures:
            return None
        answer: asyncio.Future[dict[TopicPartition, AppendError]] = asyncio.get_running_loop().create_future()
        answer.set_result(failures)
        return answer


@asynccontextmanager
async def twin_broker(tmp_path: Path, topics: dict[str, int]) -> AsyncIterator[tuple[Broker, PartitionTwin]]:
    """A Broker (no auto-creation) whose partitions are a PartitionTwin holding `topics`."""
    config = build_config({"log.dirs": str(tmp_path), "auto.create.topics.enable": "false"})
    logs = LogManager(config.data_dir, config.log_defaults()).load()
    broker = Broker(config, logs)
    twin = PartitionTwin(broker.fetch_waiters)
    broker.partitions = twin  # type: ignore[assignment]
    for name, count in topics.items():
        logs.create_topic(name, count, {})
        twin.create_topic(name, count)
    try:
        yield broker, twin
    finally:
        broker.flusher.close()
        logs.shutdown()


def context(broker: Broker, api_key: int, version: int, connection: Any) -> RequestContext:
    return RequestContext(broker, connection, RequestHeader(api_key, version, 1, "test"))


async def answered(answer: Any, timeout_s: float = 5) -> Any:
    """A handler's answer, awaited if it came as an awaitable."""
    return await asyncio.wait_for(answer, timeout_s) if inspect.isawaitable(answer) else answer
