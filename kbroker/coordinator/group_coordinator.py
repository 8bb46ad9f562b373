"""The group coordinator: the pure group machines, their timers, and `__consumer_offsets`.

This is the thin async layer around `classic.ClassicGroup`, `consumer.ConsumerGroup` and
`offsets.OffsetStore`. It owns what they must not: the clock, one asyncio timer armed for the
earliest deadline of any group, futures for held requests (JoinGroup, SyncGroup), and the log.
It talks to the log (`LogManager`, `PartitionLog`), never to the network; the broker hands in
`append(log, batch, header, now_ms)` (its partition service), which returns once the batch is
fsynced when `log.flush.interval.messages` asks for it, under the high watermark and, in a
cluster, in the ISR, so an answer never leaves before its record is safe.

Writes: every state-changing step of a group machine or of the offset store returns a
`CoordinatorResult` (`result.py`); `_commit` is the one place its records are appended to the
group's partition. Once they are durable the offset records are replayed into the offset store,
the step's replies are released, then its response, and a classic group is told (its SyncGroups
wait for the assignment to be written). If an append fails, the replies and the response carry
Kafka's mapped error instead, the offset store is untouched and the group is told.

Start-up: `load()` replays every partition of `__consumer_offsets` in the background (latest value
per key, then decoded into groups and offsets); until a group's partition is loaded, requests for
it get COORDINATOR_LOAD_IN_PROGRESS. Then each group restarts its members' sessions.
"""
from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kbroker.clock import Clock, wall_clock_ms
from kbroker.coordinator import records as rec
from kbroker.coordinator.classic import (
    ClassicGroup,
    ClassicGroupConfig,
    JoinResult,
    Protocol,
    SyncResult,
    with_error,
)
from kbroker.coordinator.consumer import (
    ConsumerGroup,
    ConsumerGroupConfig,
    HeartbeatRequest,
    HeartbeatResponse,
    InvalidRequest,
    validate_request,
)
from kbroker.coordinator.internal_log import AppendBatch, AppendFailed, append_durably
from kbroker.coordinator.loader import Pending, latest_values
from kbroker.coordinator.offsets import NO_PRODUCER_ID, CommittedOffset, OffsetStore, OffsetToCommit
from kbroker.coordinator.result import CoordinatorResult
from kbroker.errors import ErrorCode, KafkaError

if TYPE_CHECKING:
    from kbroker.config import Config
    from kbroker.log.log_manager import LogManager
    from kbroker.log.partition_log import PartitionLog

log = logging.getLogger("kbroker.coordinator")

REPLAY_YIELD_RECORDS = 5000
Group = ClassicGroup | ConsumerGroup

# appendGroupMetadataErrorToResponseError / the OffsetCommit equivalent in Kafka.
_GROUP_APPEND_ERRORS = {
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_ENOUGH_REPLICAS: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.REQUEST_TIMED_OUT: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_LEADER_OR_FOLLOWER: ErrorCode.NOT_COORDINATOR,
    ErrorCode.KAFKA_STORAGE_ERROR: ErrorCode.NOT_COORDINATOR,
    ErrorCode.MESSAGE_TOO_LARGE: ErrorCode.UNKNOWN_SERVER_ERROR,
    ErrorCode.RECORD_LIST_TOO_LARGE: ErrorCode.UNKNOWN_SERVER_ERROR,
    ErrorCode.INVALID_FETCH_SIZE: ErrorCode.UNKNOWN_SERVER_ERROR,
}
_COMMIT_APPEND_ERRORS = {
    **_GROUP_APPEND_ERRORS,
    ErrorCode.MESSAGE_TOO_LARGE: ErrorCode.INVALID_COMMIT_OFFSET_SIZE,
    ErrorCode.RECORD_LIST_TOO_LARGE: ErrorCode.INVALID_COMMIT_OFFSET_SIZE,
    ErrorCode.INVALID_FETCH_SIZE: ErrorCode.INVALID_COMMIT_OFFSET_SIZE,
}


@dataclass(frozen=True, slots=True)
class ListedGroup:
    group_id: str
    protocol_type: str
    state: str
    group_type: str


class GroupCoordinator:
    def __init__(self, config: Config, logs: LogManager, append: AppendBatch,
                 now_ms: Clock = wall_clock_ms) -> None:
        self.config = config
        self.logs = logs
        self._append = append
        self.now_ms = now_ms
        self.groups: dict[str, Group] = {}
        self.offsets = OffsetStore()
        self.classic_config = ClassicGroupConfig(
            initial_rebalance_delay_ms=config.group_initial_rebalance_delay_ms, max_size=config.group_max_size)
        self.consumer_config = ConsumerGroupConfig(
            heartbeat_interval_ms=config.group_consumer_heartbeat_interval_ms,
            session_timeout_ms=config.group_consumer_session_timeout_ms,
            max_size=config.group_consumer_max_size,
            assignors=config.group_consumer_assignors)
        self._unloaded: set[int] = set(range(self.partition_count))
        # In a cluster, the partitions of __consumer_offsets this broker leads (None: a single
        # node coordinates every group); a group elsewhere gets NOT_COORDINATOR.
        self._owned: set[int] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: int | None = None
        self._deadlines: list[tuple[int, str]] = []  # heap of (deadline, group id)
        self._pushed: dict[str, int] = {}  # group id -> the deadline of its live heap entry
        self._tasks: set[asyncio.Task] = set()
        self._next_expiry_ms = 0
        self._closed = False

    # -- topic and partitions -------------------------------------------------------------------

    @property
    def partition_count(self) -> int:
        topic = self.logs.topic(rec.OFFSETS_TOPIC)
        return topic.partition_count if topic is not None else self.config.offsets_topic_num_partitions

    def partition_for(self, group_id: str) -> int:
        return rec.partition_for(group_id, self.partition_count)

    def ensure_offsets_topic(self) -> None:
        """Create `__consumer_offsets` on first use, compacted, as Kafka does."""
        if self.logs.topic(rec.OFFSETS_TOPIC) is not None:
            return
        try:
            self.logs.create_topic(rec.OFFSETS_TOPIC, self.config.offsets_topic_num_partitions, {
                "cleanup.policy": "compact",
                "segment.bytes": str(self.config.offsets_topic_segment_bytes),
                "compression.type": "producer",
            })
        except KafkaError as exc:
            if exc.code != ErrorCode.TOPIC_ALREADY_EXISTS:
                raise
        log.info("created %s with %d partitions", rec.OFFSETS_TOPIC, self.partition_count)

    def _partition_log(self, group_id: str) -> PartitionLog:
        if self._owned is None:  # in a cluster the controller creates the topic
            self.ensure_offsets_topic()
        partition_log = self.logs.get_log(rec.OFFSETS_TOPIC, self.partition_for(group_id))
        if partition_log is None:
            raise AppendFailed(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        return partition_log

    # -- loading --------------------------------------------------------------------------------

    def is_loading(self, group_id: str) -> bool:
        return bool(self._unloaded) and self.partition_for(group_id) in self._unloaded

    def coordinates(self, group_id: str) -> bool:
        return self._owned is None or self.partition_for(group_id) in self._owned

    def group_error(self, group_id: str | None) -> ErrorCode:
        """The error every group API answers before looking at the group itself."""
        if self._closed:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID
        if not self.coordinates(group_id):
            return ErrorCode.NOT_COORDINATOR
        if self.is_loading(group_id):
            return ErrorCode.COORDINATOR_LOAD_IN_PROGRESS
        return ErrorCode.NONE

    async def load(self) -> None:
        """Single node: replay all of `__consumer_offsets`, one partition at a time."""
        started = time.monotonic()
        topic = self.logs.topic(rec.OFFSETS_TOPIC)
        self._unloaded = set(range(self.partition_count))
        if topic is None:
            self._unloaded.clear()
            return
        records = sum([await self._load(partition) for partition in range(topic.partition_count)])
        log.info("loaded %d groups and %d committed offsets from %s (%d live records) in %.2fs",
                 len(self.groups), sum(1 for _ in self.offsets), rec.OFFSETS_TOPIC, records,
                 time.monotonic() - started)

    async def load_partition(self, partition: int) -> None:
        """Cluster: this broker became the leader of `partition`; coordinate its groups from now on."""
        if self._owned is None:
            self._owned = set()
            self._unloaded.clear()
        self._owned.add(partition)
        self._unloaded.add(partition)
        started = time.monotonic()
        records = await self._load(partition)
        log.info("loaded %s-%d (%d live records) in %.2fs", rec.OFFSETS_TOPIC, partition, records,
                 time.monotonic() - started)

    def unload_partition(self, partition: int) -> None:
        """Cluster: another broker leads `partition` now; forget its groups (held requests: NOT_COORDINATOR)."""
        if self._owned is None:
            self._owned = set()
            self._unloaded.clear()
        self._owned.discard(partition)
        self._unloaded.discard(partition)
        for group_id in [g for g in self.groups if self.partition_for(g) == partition]:
            group = self.groups.pop(group_id)
            self._pushed.pop(group_id, None)
            if isinstance(group, ClassicGroup):
                self._release(group.fail_held(ErrorCode.NOT_COORDINATOR))
        for group_id in [g for g in self.offsets.group_ids() if self.partition_for(g) == partition]:
            self.offsets.drop_group(group_id)
        self.offsets.drop_pending(lambda g: self.partition_for(g) == partition)

    async def _load(self, partition: int) -> int:
        """Replay one partition (latest value per key), yielding to the loop between chunks; then
        restart its groups' sessions. The number of live records."""
        partition_log = self.logs.get_log(rec.OFFSETS_TOPIC, partition)
        latest: dict[bytes, bytes | None] = {}
        open_transactions: Pending = {}
        if partition_log is not None:
            for latest in latest_values(partition_log, open_transactions):
                await asyncio.sleep(0)
        if partition not in self._unloaded:  # unloaded while reading
            return 0
        records = await self._replay(partition, latest)
        self._stage_open_transactions(partition, open_transactions)
        self._unloaded.discard(partition)
        now = self.now_ms()
        for group in [g for gid, g in self.groups.items() if self.partition_for(gid) == partition]:
            self._spawn_commit(group, group.on_loaded(now))
            self._rearm(group)
        await asyncio.sleep(0)
        return records

    async def _replay(self, partition: int, latest: dict[bytes, bytes | None]) -> int:
        now = self.now_ms()
        consumer_records: dict[str, list[rec.CoordinatorRecord]] = {}
        kept = 0
        for count, (key, value) in enumerate(latest.items(), 1):
            if count % REPLAY_YIELD_RECORDS == 0:
                await asyncio.sleep(0)  # a partition of many live keys must not stall the loop
            if value is None:
                continue
            try:
                decoded = rec.decode_record(key, value)
            except rec.RecordFormatError as exc:
                log.error("skipping a corrupt record in %s-%d: %s", rec.OFFSETS_TOPIC, partition, exc)
                continue
            if decoded is None:
                continue
            kept += 1
            kind = decoded.kind
            if kind is rec.OFFSET_COMMIT:
                self.offsets.replay(decoded)
            elif kind is rec.GROUP_METADATA:
                self.groups[decoded.key.group] = ClassicGroup.from_record(
                    decoded.key.group, decoded.value, self.classic_config, now)
            else:
                consumer_records.setdefault(decoded.key.group_id, []).append(decoded)
        for group_id, group_records in consumer_records.items():
            group = ConsumerGroup.from_records(group_id, group_records, self.consumer_config, now)
            if group is not None:
                self.groups[group_id] = group
        for group_id in self.offsets.group_ids():
            if group_id not in self.groups and self.partition_for(group_id) == partition:
                # Offsets without group metadata: a simple group of manual commits (Kafka recreates it).
                self.groups[group_id] = ClassicGroup(group_id, self.classic_config, now)
        return kept

    def _stage_open_transactions(self, partition: int, open_transactions: Pending) -> None:
        """Offsets of transactions without a marker yet wait for it again, as before the restart."""
        for producer_id, values in open_transactions.items():
            for key, value in values.items():
                try:
                    decoded = rec.decode_record(key, value)
                except rec.RecordFormatError as exc:
                    log.error("skipping a corrupt record in %s-%d: %s", rec.OFFSETS_TOPIC, partition, exc)
                    continue
                if decoded is None or decoded.kind is not rec.OFFSET_COMMIT or decoded.value is None:
                    continue
                self.offsets.replay(decoded, producer_id)
                group_id = decoded.key.group
                if group_id not in self.groups:
                    self.groups[group_id] = ClassicGroup(group_id, self.classic_config, self.now_ms())

    # -- results, timers, writes ----------------------------------------------------------------

    def _spawn_commit(self, group: Group, result: CoordinatorResult[Any]) -> None:
        """Commit a result of the group's own (a timer, a load) in the background."""
        if not result.records and not result.replies:
            return
        task = asyncio.get_running_loop().create_task(self._commit(group.group_id, result, group=group))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _commit(self, group_id: str, result: CoordinatorResult[Any], *, group: Group | None = None,
                      append_errors: Mapping[ErrorCode, ErrorCode] = _GROUP_APPEND_ERRORS,
                      producer: tuple[int, int] | None = None) -> ErrorCode:
        """Append the result's records to the group's partition as one batch and wait until they are
        durable; then replay its offset records into the offset store (staged for the producer of a
        transactional commit: `producer` is its id and epoch) and release its replies; a classic
        `group`, the machine whose step this was, is told the records are written (a rebalance
        waiting for its assignment to be stored ends). If the append fails, the replies carry the
        error `append_errors` maps it to, the offset store is untouched, and `group` is told.
        Returns that error, or NONE; the caller answers with the response (or the error)."""
        if result.records:
            try:
                await self._append_records(group_id, result.records, producer)
            except AppendFailed as failure:
                code = append_errors.get(failure.code, failure.code)
                self._release(result, code)
                if group is not None:
                    log.error("storing group %s failed: %s", group_id, failure.code.name)
                    self._spawn_commit(group, group.append_failed(self.now_ms(), result, code))
                    self._rearm(group)
                return code
            producer_id = NO_PRODUCER_ID if producer is None else producer[0]
            for record in result.records:
                if record.kind is rec.OFFSET_COMMIT:
                    self.offsets.replay(record, producer_id)
        self._release(result)
        if result.records and isinstance(group, ClassicGroup):
            self._spawn_commit(group, group.append_committed(self.now_ms(), result))
        if group is not None:
            self._rearm(group)
        return ErrorCode.NONE

    @staticmethod
    def _release(result: CoordinatorResult[Any], error: ErrorCode = ErrorCode.NONE) -> None:
        """Answer the held requests of `result` (with `error` if its records were not written)."""
        for reply in result.replies:
            if isinstance(reply.waiter, asyncio.Future) and not reply.waiter.done():
                reply.waiter.set_result(with_error(reply.result, error) if error else reply.result)

    async def _append_records(self, group_id: str, records: Sequence[rec.CoordinatorRecord],
                              producer: tuple[int, int] | None) -> None:
        if self._closed:
            raise AppendFailed(ErrorCode.COORDINATOR_NOT_AVAILABLE)
        partition_log = self._partition_log(group_id)
        encoded = [record.encode() for record in records]
        if producer is None:
            await append_durably(partition_log, encoded, self.now_ms(), self._append)
        else:
            producer_id, producer_epoch = producer
            await append_durably(partition_log, encoded, self.now_ms(), self._append, producer_id=producer_id,
                                 producer_epoch=producer_epoch, transactional=True,
                                 base_sequence=_next_sequence(partition_log, producer_id, producer_epoch))

    def _rearm(self, group: Group | None = None) -> None:
        """Note `group`'s next deadline, then arm the one timer for the earliest deadline of any
        group (or the offset expiry check). The heap holds at most one live entry per group: a
        deadline that moved later fires early, finds nothing due and is pushed again."""
        if self._closed:
            return
        if group is not None:
            deadline = group.next_deadline()
            pushed = self._pushed.get(group.group_id)
            if deadline is not None and (pushed is None or deadline < pushed):
                self._pushed[group.group_id] = deadline
                heapq.heappush(self._deadlines, (deadline, group.group_id))
        earliest = self._deadlines[0][0] if self._deadlines else None
        if self._next_expiry_ms and (earliest is None or self._next_expiry_ms < earliest):
            earliest = self._next_expiry_ms
        if earliest is None or (self._timer_at is not None and self._timer_at <= earliest):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = earliest
        self._timer = asyncio.get_running_loop().call_later(max(earliest - self.now_ms(), 0) / 1000, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        now = self.now_ms()
        due: dict[str, None] = {}
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, group_id = heapq.heappop(self._deadlines)
            if self._pushed.get(group_id) == deadline:
                del self._pushed[group_id]
            due[group_id] = None
        for group_id in due:
            group = self.groups.get(group_id)
            if group is None:
                continue
            deadline = group.next_deadline()
            if deadline is not None and deadline <= now:
                self._spawn_commit(group, group.advance(now))
            self._rearm(group)
        if self._next_expiry_ms and now >= self._next_expiry_ms:
            self._next_expiry_ms = now + self.config.offsets_retention_check_interval_ms
            task = asyncio.get_running_loop().create_task(self.expire_offsets())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self._rearm()

    def start(self) -> None:
        """Begin the periodic offset expiry (offsets.retention.check.interval.ms)."""
        self._next_expiry_ms = self.now_ms() + self.config.offsets_retention_check_interval_ms
        self._rearm()

    async def close(self) -> None:
        """Stop timers; held requests are answered with NOT_COORDINATOR so no one waits forever."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        for group in self.groups.values():
            if isinstance(group, ClassicGroup):
                self._release(group.fail_held(ErrorCode.NOT_COORDINATOR))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- classic groups -------------------------------------------------------------------------

    def _classic_group(self, group_id: str, create: bool) -> ClassicGroup | None | ErrorCode:
        """The classic group, a new one, None (absent), or an error if another type holds the id."""
        group = self.groups.get(group_id)
        if isinstance(group, ClassicGroup):
            return group
        if group is not None:
            if not group.is_empty():
                return ErrorCode.INCONSISTENT_GROUP_PROTOCOL
            if not create:
                return None
            self._drop_group(group)
            group = None
        if create:
            group = ClassicGroup(group_id, self.classic_config, self.now_ms())
            self.groups[group_id] = group
        return group

    async def join_group(self, *, group_id: str, member_id: str, group_instance_id: str | None, client_id: str,
                         client_host: str, session_timeout_ms: int, rebalance_timeout_ms: int, protocol_type: str,
                         protocols: Sequence[Protocol], version: int) -> JoinResult:
        error = self.group_error(group_id)
        if error:
            return JoinResult(error, member_id)
        config = self.config
        if not config.group_min_session_timeout_ms <= session_timeout_ms <= config.group_max_session_timeout_ms:
            return JoinResult(ErrorCode.INVALID_SESSION_TIMEOUT, member_id)
        group = self._classic_group(group_id, create=not member_id)
        if isinstance(group, ErrorCode):
            return JoinResult(group, member_id)
        if group is None:
            return JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id)
        waiter = asyncio.get_running_loop().create_future()
        result = group.join(self.now_ms(), waiter, member_id=member_id, group_instance_id=group_instance_id,
                             client_id=client_id, client_host=client_host, session_timeout_ms=session_timeout_ms,
                             rebalance_timeout_ms=rebalance_timeout_ms, protocol_type=protocol_type,
                             protocols=protocols, require_known_member_id=version >= 4,
                             supports_skip_assignment=version >= 9)
        await self._commit(group_id, result, group=group)
        return await waiter

    async def sync_group(self, *, group_id: str, member_id: str, group_instance_id: str | None, generation_id: int,
                         protocol_type: str | None, protocol_name: str | None,
                         assignments: dict[str, bytes]) -> SyncResult:
        error = self.group_error(group_id)
        if error:
            return SyncResult(error)
        group = self._classic_group(group_id, create=False)
        if isinstance(group, ErrorCode):
            return SyncResult(ErrorCode.UNKNOWN_MEMBER_ID)
        if group is None:
            return SyncResult(ErrorCode.UNKNOWN_MEMBER_ID)
        waiter = asyncio.get_running_loop().create_future()
        result = group.sync(self.now_ms(), waiter, member_id=member_id, group_instance_id=group_instance_id,
                             generation_id=generation_id, protocol_type=protocol_type, protocol_name=protocol_name,
                             assignments=assignments)
        await self._commit(group_id, result, group=group)
        return await waiter

    def heartbeat(self, *, group_id: str, member_id: str, group_instance_id: str | None,
                  generation_id: int) -> ErrorCode:
        error = self.group_error(group_id)
        if error == ErrorCode.COORDINATOR_LOAD_IN_PROGRESS:
            return ErrorCode.NONE  # Kafka: the group is loading, so blindly accept the heartbeat
        if error:
            return error
        group = self.groups.get(group_id)
        if not isinstance(group, ClassicGroup):
            return ErrorCode.UNKNOWN_MEMBER_ID
        result = group.heartbeat(self.now_ms(), member_id=member_id, group_instance_id=group_instance_id,
                                 generation_id=generation_id)
        self._rearm(group)
        return result

    async def leave_group(self, group_id: str,
                          members: Sequence[tuple[str, str | None]]) -> tuple[ErrorCode, list[ErrorCode]]:
        error = self.group_error(group_id)
        if error:
            return error, [error] * len(members)
        group = self.groups.get(group_id)
        if not isinstance(group, ClassicGroup):
            return ErrorCode.UNKNOWN_MEMBER_ID, [ErrorCode.UNKNOWN_MEMBER_ID] * len(members)
        result = group.leave(self.now_ms(), members)
        failed = await self._commit(group_id, result, group=group)
        return failed, result.response

    # -- KIP-848 consumer groups ----------------------------------------------------------------

    async def consumer_group_heartbeat(self, request: HeartbeatRequest) -> HeartbeatResponse:
        try:
            validate_request(request, self.consumer_config.assignors)
        except InvalidRequest as exc:
            return HeartbeatResponse(exc.code, exc.message)
        error = self.group_error(request.group_id)
        if error:
            return HeartbeatResponse(error)
        group = self.groups.get(request.group_id)
        if isinstance(group, ClassicGroup):
            if not group.is_empty():
                return HeartbeatResponse(ErrorCode.GROUP_ID_NOT_FOUND,
                                         f"Group {request.group_id} is not a consumer group.")
            if request.member_epoch == 0:
                self._drop_group(group)
                group = None
        if group is None:
            if request.member_epoch != 0:
                return HeartbeatResponse(ErrorCode.UNKNOWN_MEMBER_ID, f"Group {request.group_id} not found.")
            group = ConsumerGroup(request.group_id, self.consumer_config, self.now_ms())
            self.groups[request.group_id] = group
        result = group.heartbeat(self.now_ms(), request, self._topic_metadata())
        failed = await self._commit(request.group_id, result, group=group)
        if failed:
            return HeartbeatResponse(failed, "The group's records could not be written.")
        return result.response

    def _topic_metadata(self) -> dict[str, tuple[Any, int]]:
        """name -> (topic id, partitions) of every topic a consumer group may subscribe to."""
        return {t.name: (t.topic_id, t.partition_count) for t in self.logs.topics() if t.name != rec.OFFSETS_TOPIC}

    # -- offsets --------------------------------------------------------------------------------

    async def commit_offsets(self, *, group_id: str, member_id: str, group_instance_id: str | None,
                             generation_id_or_member_epoch: int, version: int, retention_time_ms: int,
                             offsets: Sequence[OffsetToCommit]) -> ErrorCode | list[ErrorCode]:
        """A group-level error for every partition, or one error per partition."""
        error = self.group_error(group_id)
        if error:
            return error
        group = self.groups.get(group_id)
        if group is None:
            if generation_id_or_member_epoch >= 0:
                # v9+: GROUP_ID_NOT_FOUND for both protocols; older versions ILLEGAL_GENERATION.
                return ErrorCode.GROUP_ID_NOT_FOUND if version >= 9 else ErrorCode.ILLEGAL_GENERATION
            # A "simple" group of manual commits (admin client, assign() without group management).
            group = ClassicGroup(group_id, self.classic_config, self.now_ms())
            self.groups[group_id] = group
        if isinstance(group, ClassicGroup):
            error = group.validate_offset_commit(member_id, group_instance_id, generation_id_or_member_epoch)
        else:
            error = group.validate_offset_commit(member_id, generation_id_or_member_epoch, version)
        if error:
            return error
        now = self.now_ms()
        # A retention that reaches past the int64 expiry timestamp never expires (Kafka's sum overflows).
        expire = min(now + retention_time_ms, 2**63 - 1) if retention_time_ms >= 0 and version <= 4 else -1
        result = self.offsets.commit(group_id, offsets, now, expire, self._commit_item_error)
        return await self._commit_offsets(group_id, result)

    async def commit_txn_offsets(self, *, group_id: str, producer_id: int, producer_epoch: int, member_id: str,
                                 group_instance_id: str | None, generation_id: int,
                                 offsets: Sequence[OffsetToCommit]) -> ErrorCode | list[ErrorCode]:
        """TxnOffsetCommit: the offsets are written as the producer's transactional records and
        staged; its marker on the group's partition commits or drops them (`end_transaction`)."""
        error = self.group_error(group_id)
        if error:
            return error
        group = self.groups.get(group_id)
        if group is None:  # Kafka creates the group, as for a simple group's first commit
            group = ClassicGroup(group_id, self.classic_config, self.now_ms())
            self.groups[group_id] = group
        if isinstance(group, ClassicGroup):
            error = group.validate_offset_commit(member_id, group_instance_id, generation_id, transactional=True)
        else:
            error = group.validate_txn_offset_commit(member_id, generation_id)
        if error:
            return error
        result = self.offsets.commit(group_id, offsets, self.now_ms(), -1, self._commit_item_error)
        return await self._commit_offsets(group_id, result, producer=(producer_id, producer_epoch))

    async def _commit_offsets(self, group_id: str, result: CoordinatorResult[list[ErrorCode]],
                              producer: tuple[int, int] | None = None) -> list[ErrorCode]:
        """The errors per offset; those accepted get the mapped error if their records are not written."""
        failed = await self._commit(group_id, result, append_errors=_COMMIT_APPEND_ERRORS, producer=producer)
        return [failed if e == ErrorCode.NONE else e for e in result.response] if failed else result.response

    def _commit_item_error(self, item: OffsetToCommit, metadata: str) -> ErrorCode:
        if len(metadata.encode()) > self.config.offset_metadata_max_bytes:
            return ErrorCode.OFFSET_METADATA_TOO_LARGE
        topic = self.logs.topic(item.topic)
        if topic is None or not 0 <= item.partition < topic.partition_count:
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        return ErrorCode.NONE

    def has_pending_offset(self, group_id: str, topic: str, partition: int) -> bool:
        """An open transaction has staged an offset for this partition of the group."""
        return self.offsets.has_pending(group_id, topic, partition)

    def end_transaction(self, partition: int, producer_id: int, commit: bool) -> None:
        """The producer's marker is durable in `__consumer_offsets`-`partition`: the offsets it staged
        for the groups there are committed now, or dropped (Kafka's scheduleHandleTxnCompletion)."""
        self.offsets.end_transaction(producer_id, commit, lambda g: self.partition_for(g) == partition)

    def fetch_offsets(self, group_id: str, partitions: Sequence[tuple[str, int]] | None, *,
                      member_id: str | None = None, member_epoch: int = -1,
                      ) -> tuple[ErrorCode, list[tuple[str, int, CommittedOffset | None]]]:
        """The group's committed offsets: the requested partitions (None: every one committed)."""
        error = self.group_error(group_id)
        if error:
            return error, []
        group = self.groups.get(group_id)
        if isinstance(group, ConsumerGroup) and (member_id is not None or member_epoch >= 0):
            error = group.validate_offset_fetch(member_id, member_epoch)
            if error:
                return error, []
        if partitions is None:
            found = self.offsets.of_group(group_id)
            return ErrorCode.NONE, [(t, p, c) for (t, p), c in sorted(found.items())]
        return ErrorCode.NONE, [(t, p, self.offsets.get(group_id, t, p)) for t, p in partitions]

    async def delete_offsets(self, group_id: str,
                             partitions: Sequence[tuple[str, int]]) -> tuple[ErrorCode, list[ErrorCode]]:
        """OffsetDelete: only for partitions the group does not consume (Kafka's rules)."""
        error = self.group_error(group_id)
        if error:
            return error, []
        group = self.groups.get(group_id)
        if group is None:
            return ErrorCode.GROUP_ID_NOT_FOUND, []
        if isinstance(group, ClassicGroup) and not group.is_empty() and not group.uses_consumer_protocol():
            return ErrorCode.NON_EMPTY_GROUP, []
        errors = []
        allowed = []
        for topic, partition in partitions:
            if not group.is_empty() and group.is_subscribed_to(topic):
                errors.append(ErrorCode.GROUP_SUBSCRIBED_TO_TOPIC)
                continue
            errors.append(ErrorCode.NONE)
            allowed.append((topic, partition))
        failed = await self._commit(group_id, self.offsets.delete(group_id, allowed))
        if failed:
            return failed, []
        return ErrorCode.NONE, errors

    async def delete_groups(self, group_ids: Iterable[str]) -> list[ErrorCode]:
        out = []
        for group_id in group_ids:
            error = self.group_error(group_id)
            if error:
                out.append(error)
                continue
            group = self.groups.get(group_id)
            if group is None:
                out.append(ErrorCode.GROUP_ID_NOT_FOUND)
                continue
            if not group.is_empty():
                out.append(ErrorCode.NON_EMPTY_GROUP)
                continue
            out.append(await self._delete_group(group))
        return out

    async def _delete_group(self, group: Group) -> ErrorCode:
        """Tombstones for the group and its offsets; once they are written, the group goes too."""
        group_id = group.group_id
        offsets = self.offsets.delete(group_id, self.offsets.of_group(group_id))
        failed = await self._commit(group_id, CoordinatorResult(offsets.records + group.tombstones()))
        if not failed:
            self._forget(group)
        return failed

    def _forget(self, group: Group) -> None:
        """A group whose tombstones are written is dead (unless a new group took its id meanwhile)."""
        if self.groups.get(group.group_id) is group:
            del self.groups[group.group_id]
            group.mark_dead(self.now_ms())

    def _drop_group(self, group: Group) -> None:
        """Replace an empty group of the other type: its records are tombstoned in the background."""
        del self.groups[group.group_id]
        group.mark_dead(self.now_ms())
        task = asyncio.get_running_loop().create_task(self._write_tombstones(group))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write_tombstones(self, group: Group) -> None:
        failed = await self._commit(group.group_id, CoordinatorResult(group.tombstones()))
        if failed:
            log.error("writing the tombstones of group %s failed: %s", group.group_id, failed.name)

    async def expire_offsets(self) -> int:
        """Remove offsets past `offsets.retention.minutes`, and groups left Empty with none."""
        now = self.now_ms()
        retention = self.config.offsets_retention_minutes * 60_000
        removed = 0
        for group_id in set(self.offsets.group_ids()) | set(self.groups):
            if self.is_loading(group_id):
                continue
            group = self.groups.get(group_id)
            if group is None:
                base, since, subscribed = "commit", None, (lambda _t: False)
            else:
                base, since, subscribed = group.offset_expiry_base(), group.state_timestamp_ms, group.is_subscribed_to
            expired = self.offsets.expired(group_id, now, retention, base, since, subscribed)
            failed = await self._remove_offsets(group_id, expired)
            if failed:
                log.error("expiring offsets of group %s failed: %s", group_id, failed.name)
            elif failed is not None:
                removed += len(expired)
        if removed:
            log.info("expired %d committed offsets", removed)
        return removed

    async def delete_topic_offsets(self, topic: str) -> int:
        """A deleted topic's offsets leave every group, with tombstones, so that a topic of the same
        name starts uncommitted (Kafka's GroupMetadataManager.cleanupGroupMetadata)."""
        removed = 0
        for group_id in self.offsets.group_ids():
            doomed = [tp for tp in self.offsets.of_group(group_id) if tp[0] == topic]
            if not doomed:
                continue
            failed = await self._remove_offsets(group_id, doomed)
            if failed:
                log.error("removing offsets of deleted topic %s from group %s failed: %s", topic, group_id,
                          failed.name)
                continue
            removed += len(doomed)
        if removed:
            log.info("removed %d committed offsets of deleted topic %s", removed, topic)
        return removed

    async def _remove_offsets(self, group_id: str, partitions: list[tuple[str, int]]) -> ErrorCode | None:
        """Tombstone the group's offsets of `partitions`; a group left Empty without offsets goes too.
        None if there was nothing to write, else the write's error (a failure leaves all as it was)."""
        group = self.groups.get(group_id)
        records = self.offsets.delete(group_id, partitions).records
        drop_group = (group is not None and group.is_empty() and not group.held_waiters()
                      and len(partitions) == len(self.offsets.of_group(group_id)))
        if drop_group:
            records += group.tombstones()
        if not records:
            return None
        failed = await self._commit(group_id, CoordinatorResult(records))
        if not failed and drop_group:
            self._forget(group)
        return failed

    # -- admin views ----------------------------------------------------------------------------

    def list_groups(self, states: Sequence[str] = (), types: Sequence[str] = ()) -> list[ListedGroup]:
        wanted_states = {s.lower() for s in states}
        wanted_types = {t.lower() for t in types}
        out = []
        for group_id, group in self.groups.items():
            if self.is_loading(group_id):
                continue
            if wanted_states and group.state_name.lower() not in wanted_states:
                continue
            if wanted_types and group.group_type not in wanted_types:
                continue
            out.append(ListedGroup(group_id, group.protocol_type or "", group.state_name, group.group_type))
        return out

    def loading_any(self) -> bool:
        return bool(self._unloaded)


def _next_sequence(partition_log: PartitionLog, producer_id: int, producer_epoch: int) -> int:
    """The sequence our transactional batch of this producer continues with, so the log takes it as
    neither out of order nor a retry (Kafka skips the check for coordinator appends instead)."""
    for entry in partition_log.active_producers():
        if entry.producer_id == producer_id:
            if entry.epoch != producer_epoch or entry.last_seq < 0:
                return 0
            return (entry.last_seq + 1) & 0x7FFFFFFF
    return 0
