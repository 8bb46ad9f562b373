"""The transaction coordinator: `transactions.TransactionTable`, its log, its markers and timers.

This is the async layer around the pure table. It owns the clock, `__transaction_state` (created
on first use: compacted, `transaction.state.log.num.partitions`), the marker writes and the
periodic checks. Every step logs its transit before anyone is answered: InitProducerId answers
the new epoch once the Empty record is durable; EndTxn answers once PrepareCommit/PrepareAbort is
durable, then writes the markers (`write_markers`: appended to the partitions led here, sent to
the leaders of the others) and logs CompleteCommit/CompleteAbort. A crash in between leaves the Prepare
record, and `load()` completes the transaction from it.

In a cluster this broker coordinates the ids of the `__transaction_state` partitions it leads:
`load_partition` replays one when it becomes the leader (and completes its prepared
transactions), `unload_partition` forgets its ids when another broker takes over; requests for
the others get NOT_COORDINATOR.

Timers (Kafka's): every `transaction.abort.timed.out.transaction.cleanup.interval.ms` ongoing
transactions older than their timeout are aborted under a bumped epoch (the producer is fenced);
every `transaction.remove.expired.transaction.cleanup.interval.ms` ids idle for
`transactional.id.expiration.ms` are tombstoned.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kbroker.clock import Clock, wall_clock_ms
from kbroker.coordinator import records as group_records
from kbroker.coordinator import txn_records
from kbroker.coordinator.internal_log import AppendBatch, AppendFailed, append_durably
from kbroker.coordinator.loader import latest_values
from kbroker.coordinator.records import RecordFormatError
from kbroker.coordinator.transactions import (
    STATE_BY_NAME,
    TopicPartition,
    Transaction,
    TransactionTable,
    Transit,
    TxnState,
)
from kbroker.errors import ErrorCode, KafkaError

if TYPE_CHECKING:
    from kbroker.config import Config
    from kbroker.log.log_manager import LogManager

log = logging.getLogger("kbroker.transactions")

TOPIC = txn_records.TRANSACTION_STATE_TOPIC
# (producer id, epoch, coordinator epoch, commit, partitions) -> an error code per partition
WriteMarkers = Callable[[int, int, int, bool, list[TopicPartition]], Awaitable[dict[TopicPartition, int]]]
MARKER_RETRY_BACKOFF_S = 0.1
END_TXN_WAIT_S = 0.5  # how long EndTxn waits for its markers before answering anyway

# A partition whose marker cannot be written for these reasons is done with (Kafka drops markers
# of deleted partitions; a newer epoch there means a newer coordinator has taken over).
_MARKER_FINAL = {ErrorCode.NONE, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.INVALID_PRODUCER_EPOCH,
                 ErrorCode.TRANSACTION_COORDINATOR_FENCED}
# appendTransactionToLog's mapping of log errors to what clients retry on.
_APPEND_ERRORS = {
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_ENOUGH_REPLICAS: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.REQUEST_TIMED_OUT: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_LEADER_OR_FOLLOWER: ErrorCode.NOT_COORDINATOR,
    ErrorCode.KAFKA_STORAGE_ERROR: ErrorCode.NOT_COORDINATOR,
    ErrorCode.MESSAGE_TOO_LARGE: ErrorCode.UNKNOWN_SERVER_ERROR,
    ErrorCode.RECORD_LIST_TOO_LARGE: ErrorCode.UNKNOWN_SERVER_ERROR,
}


@dataclass(frozen=True, slots=True)
class InitProducerIdAnswer:
    error: ErrorCode
    producer_id: int = -1
    producer_epoch: int = -1


class TransactionCoordinator:
    def __init__(self, config: Config, logs: LogManager, append: AppendBatch, write_markers: WriteMarkers,
                 allocate_producer_id: Callable[[], Awaitable[int]],
                 now_ms: Clock = wall_clock_ms, *, clustered: bool = False) -> None:
        self.config = config
        self.logs = logs
        self._append = append
        self._write_markers = write_markers
        self._allocate_producer_id = allocate_producer_id
        self.now_ms = now_ms
        self.table = TransactionTable(config.transaction_max_timeout_ms)
        # In a cluster, the partitions of __transaction_state this broker leads (loaded as it becomes
        # their leader); None: a single node coordinates every transactional id.
        self._owned: set[int] | None = set() if clustered else None
        self._unloaded: set[int] = set() if clustered else set(range(self.partition_count))
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    # -- topic and partitions -------------------------------------------------------------------

    @property
    def partition_count(self) -> int:
        topic = self.logs.topic(TOPIC)
        return topic.partition_count if topic is not None else self.config.transaction_state_log_num_partitions

    def partition_for(self, transactional_id: str) -> int:
        return group_records.partition_for(transactional_id, self.partition_count)

    @staticmethod
    def topic_configs(config: Config) -> dict[str, str]:
        return {"cleanup.policy": "compact", "segment.bytes": str(config.transaction_state_log_segment_bytes),
                "compression.type": "uncompressed"}

    def ensure_topic(self) -> None:
        """Single node: create `__transaction_state` on first use, compacted, as Kafka does (in a
        cluster the controller creates it)."""
        if self.logs.topic(TOPIC) is not None:
            return
        try:
            self.logs.create_topic(TOPIC, self.config.transaction_state_log_num_partitions,
                                   self.topic_configs(self.config))
        except KafkaError as exc:
            if exc.code != ErrorCode.TOPIC_ALREADY_EXISTS:
                raise
        log.info("created %s with %d partitions", TOPIC, self.partition_count)

    def coordinator_error(self, transactional_id: str | None) -> ErrorCode:
        """The error every transactional API answers before looking at the transaction."""
        if self._closed:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if not transactional_id:
            return ErrorCode.INVALID_REQUEST
        partition = self.partition_for(transactional_id)
        if self._owned is not None and partition not in self._owned:
            return ErrorCode.NOT_COORDINATOR
        if self._unloaded and partition in self._unloaded:
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        return ErrorCode.NONE

    def _coordinates(self, transactional_id: str) -> bool:
        return not self._closed and (self._owned is None or self.partition_for(transactional_id) in self._owned)

    def loading_any(self) -> bool:
        return bool(self._unloaded)

    # -- loading --------------------------------------------------------------------------------

    async def load(self) -> None:
        """Single node: replay all of `__transaction_state`, then finish every transaction the log
        left half-done."""
        started = time.monotonic()
        topic = self.logs.topic(TOPIC)
        if topic is None:
            self._unloaded.clear()
            return
        live = 0
        for partition in range(topic.partition_count):
            live += await self._load(partition)
        log.info("loaded %d transactional ids from %s (%d live records) in %.2fs", len(self.table.transactions),
                 TOPIC, live, time.monotonic() - started)

    async def load_partition(self, partition: int) -> None:
        """Cluster: this broker became the leader of `partition`; coordinate its ids from now on."""
        if self._owned is None:
            raise ValueError("a single node coordinates every partition")
        self._owned.add(partition)
        self._unloaded.add(partition)
        started = time.monotonic()
        live = await self._load(partition)
        log.info("loaded %s-%d (%d live records) in %.2fs", TOPIC, partition, live, time.monotonic() - started)

    def unload_partition(self, partition: int) -> None:
        """Cluster: another broker leads `partition` now; forget its ids (their marker tasks stop)."""
        if self._owned is None:
            raise ValueError("a single node coordinates every partition")
        self._owned.discard(partition)
        self._unloaded.discard(partition)
        for transactional_id in [t for t in self.table.transactions if self.partition_for(t) == partition]:
            del self.table.transactions[transactional_id]

    async def _load(self, partition: int) -> int:
        """Replay one partition (latest value per key), then send the markers of its prepared
        transactions; the number of live records."""
        partition_log = self.logs.get_log(TOPIC, partition)
        latest: dict[bytes, bytes | None] = {}
        if partition_log is not None:
            for latest in latest_values(partition_log):
                await asyncio.sleep(0)
        if partition not in self._unloaded:  # unloaded while reading
            return 0
        live = 0
        for key, value in latest.items():
            try:
                self.table.restore(txn_records.decode_key(key),
                                   None if value is None else _transit(txn_records.decode_value(value)))
            except (RecordFormatError, ValueError) as exc:
                log.error("skipping a corrupt record in %s-%d: %s", TOPIC, partition, exc)
                continue
            live += 1
        self._unloaded.discard(partition)
        for transactional_id, transit in self.table.preparing():
            if self.partition_for(transactional_id) == partition:
                log.info("completing transaction %s (%s) found in %s", transactional_id,
                         transit.state.display_name, TOPIC)
                self._spawn(self._send_markers(transactional_id, transit))
        return live

    # -- writes ---------------------------------------------------------------------------------

    async def _log(self, transactional_id: str, transit: Transit) -> ErrorCode:
        """Write a pending transit; on success it becomes the state. The mapped error, else NONE."""
        if not self._coordinates(transactional_id):
            self.table.cancel(transactional_id)
            return ErrorCode.COORDINATOR_NOT_AVAILABLE if self._closed else ErrorCode.NOT_COORDINATOR
        value = None if transit.state is TxnState.DEAD else txn_records.encode_value(_entry(transit))
        try:
            if self._owned is None:
                self.ensure_topic()
            partition_log = self.logs.get_log(TOPIC, self.partition_for(transactional_id))
            if partition_log is None:
                raise AppendFailed(ErrorCode.COORDINATOR_NOT_AVAILABLE)
            await append_durably(partition_log, [(txn_records.encode_key(transactional_id), value)],
                                 self.now_ms(), self._append)
        except (AppendFailed, KafkaError) as failure:
            self.table.cancel(transactional_id)
            log.error("logging transaction %s failed: %s", transactional_id, failure.code.name)
            return _APPEND_ERRORS.get(failure.code, failure.code)
        txn = self.table.transactions.get(transactional_id)
        if txn is None or txn.pending != transit:  # the partition moved to another broker meanwhile
            return ErrorCode.NOT_COORDINATOR
        self.table.complete(transactional_id, transit)
        return ErrorCode.NONE

    def _spawn(self, work: Awaitable[object]) -> asyncio.Task:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _coordinator_epoch(self, transactional_id: str) -> int:
        partition_log = self.logs.get_log(TOPIC, self.partition_for(transactional_id))
        return partition_log.leader_epoch if partition_log is not None else 0

    async def _send_markers(self, transactional_id: str, prepared: Transit) -> None:
        """Write the markers of a logged Prepare state to every partition, retrying those that fail
        for a transient reason, then log the Complete state."""
        commit = prepared.state is TxnState.PREPARE_COMMIT
        remaining = sorted(prepared.partitions)
        coordinator_epoch = self._coordinator_epoch(transactional_id)
        while remaining and self._coordinates(transactional_id):
            try:
                results = await self._write_markers(prepared.producer_id, prepared.producer_epoch,
                                                    coordinator_epoch, commit, remaining)
            except Exception:  # a bug in the marker path must not leave the transaction hanging silently
                log.exception("writing the markers of %s failed", transactional_id)
                results = {tp: ErrorCode.UNKNOWN_SERVER_ERROR for tp in remaining}
            for tp, code in results.items():
                if code not in (ErrorCode.NONE, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION) and code in _MARKER_FINAL:
                    log.warning("marker of %s for %s-%d not written: %s", transactional_id, tp[0], tp[1],
                                ErrorCode(code).name)
            remaining = [tp for tp in remaining if results.get(tp, ErrorCode.NONE) not in _MARKER_FINAL]
            if remaining:
                await asyncio.sleep(MARKER_RETRY_BACKOFF_S)
        while self._coordinates(transactional_id):  # else the Prepare record stays for the next coordinator
            txn = self.table.transactions.get(transactional_id)
            if txn is None or txn.current != prepared or txn.busy:
                return
            if not await self._log(transactional_id, self.table.complete_transit(transactional_id, self.now_ms())):
                return
            await asyncio.sleep(MARKER_RETRY_BACKOFF_S)

    # -- the APIs -------------------------------------------------------------------------------

    async def init_producer_id(self, transactional_id: str, timeout_ms: int,
                               expected: tuple[int, int] | None) -> InitProducerIdAnswer:
        error = self.coordinator_error(transactional_id)
        if error:
            return InitProducerIdAnswer(error)
        new_producer_id = None
        if self.table.needs_producer_id(transactional_id, None if expected is None else expected[1]):
            try:
                new_producer_id = await self._allocate_producer_id()
            except Exception:  # e.g. ZooKeeper unreachable in a cluster: the client retries
                log.exception("allocating a producer id failed")
                return InitProducerIdAnswer(ErrorCode.COORDINATOR_NOT_AVAILABLE)
            error = self.coordinator_error(transactional_id)
            if error:
                return InitProducerIdAnswer(error)
        result = self.table.init_producer_id(transactional_id, timeout_ms, expected, self.now_ms(), new_producer_id)
        if result.fence is not None:
            error = await self._log(transactional_id, result.fence)
            if error:
                return InitProducerIdAnswer(error)
            self._spawn(self._send_markers(transactional_id, result.fence))
            return InitProducerIdAnswer(ErrorCode.CONCURRENT_TRANSACTIONS)
        if result.error:
            return InitProducerIdAnswer(result.error)
        transit = result.transit
        error = await self._log(transactional_id, transit)
        if error:
            return InitProducerIdAnswer(error)
        return InitProducerIdAnswer(ErrorCode.NONE, transit.producer_id, transit.producer_epoch)

    async def add_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                             partitions: Iterable[TopicPartition]) -> ErrorCode:
        error = self.coordinator_error(transactional_id)
        if error:
            return error
        outcome = self.table.add_partitions(transactional_id, producer_id, producer_epoch, partitions, self.now_ms())
        if outcome is None:
            return ErrorCode.NONE
        if isinstance(outcome, ErrorCode):
            return outcome
        return await self._log(transactional_id, outcome)

    def verify_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                          partitions: Sequence[TopicPartition]) -> dict[TopicPartition, ErrorCode]:
        error = self.coordinator_error(transactional_id)
        if error:
            return {tp: error for tp in partitions}
        return self.table.contains(transactional_id, producer_id, producer_epoch, partitions)

    async def end_txn(self, transactional_id: str, producer_id: int, producer_epoch: int, commit: bool) -> ErrorCode:
        error = self.coordinator_error(transactional_id)
        if error:
            return error
        outcome = self.table.end_txn(transactional_id, producer_id, producer_epoch, commit, self.now_ms())
        if outcome is None:
            return ErrorCode.NONE
        if isinstance(outcome, ErrorCode):
            return outcome
        error = await self._log(transactional_id, outcome)
        if not error:
            # Answer once the transaction is complete if that is quick (local markers are): the
            # producer's next AddPartitionsToTxn then finds it done instead of CONCURRENT_TRANSACTIONS
            # and a retry backoff. Slow markers (a leader elsewhere is down) go on after the answer.
            completing = self._spawn(self._send_markers(transactional_id, outcome))
            await asyncio.wait([completing], timeout=END_TXN_WAIT_S)
        return error

    def describe(self, transactional_id: str) -> tuple[ErrorCode, Transaction | None]:
        error = self.coordinator_error(transactional_id)
        if error:
            return error, None
        txn = self.table.transactions.get(transactional_id)
        return (ErrorCode.NONE, txn) if txn is not None else (ErrorCode.TRANSACTIONAL_ID_NOT_FOUND, None)

    def list(self, states: Sequence[str], producer_ids: Sequence[int], min_duration_ms: int) -> list[Transaction]:
        """ListTransactions: the filters are ANDed; an empty filter matches everything."""
        wanted_states = {STATE_BY_NAME[s] for s in states if s in STATE_BY_NAME}
        if states and not wanted_states:
            return []
        now = self.now_ms()
        out = []
        for txn in self.table.transactions.values():
            current = txn.current
            if wanted_states and current.state not in wanted_states:
                continue
            if producer_ids and current.producer_id not in producer_ids:
                continue
            if min_duration_ms >= 0 and (current.start_ms < 0 or now - current.start_ms <= min_duration_ms):
                continue
            out.append(txn)
        return out

    # -- timers ---------------------------------------------------------------------------------

    async def abort_timed_out(self) -> int:
        """Abort (and fence) every transaction open longer than its timeout."""
        aborted = 0
        for transactional_id, transit in self.table.timed_out(self.now_ms()):
            log.info("aborting transaction %s (producer id %d): open longer than its timeout of %d ms",
                     transactional_id, transit.producer_id, transit.timeout_ms)
            if not await self._log(transactional_id, transit):
                aborted += 1
                self._spawn(self._send_markers(transactional_id, transit))
        return aborted

    async def remove_expired(self) -> int:
        removed = 0
        for transactional_id, transit in self.table.expired(self.now_ms(), self.config.transactional_id_expiration_ms):
            if not await self._log(transactional_id, transit):
                removed += 1
        if removed:
            log.info("removed %d expired transactional ids", removed)
        return removed

    async def _every(self, interval_ms: int, check: Callable[[], Awaitable[int]]) -> None:
        while True:
            await asyncio.sleep(interval_ms / 1000)
            try:
                await check()
            except Exception:
                log.exception("transaction coordinator check failed")

    def start(self) -> None:
        config = self.config
        self._spawn(self._every(config.transaction_abort_timed_out_transaction_cleanup_interval_ms,
                                self.abort_timed_out))
        self._spawn(self._every(config.transaction_remove_expired_transaction_cleanup_interval_ms,
                                self.remove_expired))

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def _entry(transit: Transit) -> txn_records.TxnLogEntry:
    return txn_records.TxnLogEntry(transit.producer_id, transit.producer_epoch, transit.timeout_ms, transit.state,
                                   transit.partitions, transit.last_update_ms, transit.start_ms)


def _transit(entry: txn_records.TxnLogEntry) -> Transit:
    return Transit(entry.producer_id, -1, entry.producer_epoch, -1, entry.timeout_ms, TxnState(entry.state),
                   entry.partitions, entry.start_ms, entry.last_update_ms)
