"""Followers fetch from their leaders over the ordinary Fetch API, as Kafka's ReplicaFetcherThread.

One `ReplicaFetcher` per leader broker carries every partition this broker follows there, in one
Fetch (replica_id = this broker, so the leader serves it up to its log end and counts its fetch
offset as this replica's log end). The batches come back exactly as the leader stores them and
are appended as they are (`PartitionLog.append_as_follower`): same offsets, leader epochs,
producer ids and CRCs, so the follower's log is byte-identical to the leader's. The follower's
high watermark follows the leader's answer (never past its own log end); the leader's own, as
last answered, is kept to tell how far behind the follower is (DescribeLogDirs' offset lag).

Before a partition's first fetch in a new leader epoch the follower asks the leader where its own
latest epoch ends (OffsetForLeaderEpoch, KIP-101/279) and truncates what it has past that: a
tail it wrote as leader that the new leader never had. It never truncates to the high watermark
alone, which could lose acknowledged records.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from kbroker.clock import Clock
from kbroker.cluster.broker_client import InterBrokerLink, InterBrokerLoginError
from kbroker.cluster.image import BrokerRegistration
from kbroker.errors import ErrorCode, KafkaError
from kbroker.wire.messages.fetch import FETCH, FetchPartition, FetchRequest, FetchTopic
from kbroker.wire.messages.offset_for_leader_epoch import (
    OFFSET_FOR_LEADER_EPOCH,
    OffsetForLeaderEpochRequest,
    OffsetForLeaderPartition,
    OffsetForLeaderTopic,
)
from kbroker.wire.records import scan_batches

if TYPE_CHECKING:
    from kbroker.log.log_manager import LogManager

log = logging.getLogger("kbroker.replica_fetcher")

FETCH_VERSION = 12  # topics by name, replica_id in the request body
EPOCH_VERSION = 4
MAX_WAIT_MS = 500
MAX_BYTES = 16 * 1024 * 1024
PARTITION_MAX_BYTES = 1024 * 1024
RETRY_S = 0.2
LOGIN_RETRY_S = 1.0
UNDEFINED_EPOCH = -1

TopicPartition = tuple[str, int]


class ReplicaFetcher:
    def __init__(self, broker_id: int, leader: BrokerRegistration, logs: LogManager, link: InterBrokerLink,
                 clock: Clock) -> None:
        """`clock`: the wall clock, for the segment rolls appends decide on."""
        self._broker_id = broker_id
        self._clock = clock
        self.leader = leader
        self._logs = logs
        self._connection = link.connection(leader, f"kbroker-replica-{broker_id}")
        self._login_failure: str | None = None  # the last refusal logged, so a retry loop logs it once
        self._partitions: dict[TopicPartition, int] = {}  # -> the leader epoch we follow it in
        self._truncated: set[TopicPartition] = set()  # checked against the leader in that epoch
        self.leader_high_watermarks: dict[TopicPartition, int] = {}  # as the leader last answered
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def partitions(self) -> dict[TopicPartition, int]:
        return self._partitions

    def set_partitions(self, partitions: dict[TopicPartition, int]) -> None:
        added = False
        for key, epoch in partitions.items():
            if self._partitions.get(key) != epoch:
                self._truncated.discard(key)
                added = True
        self._partitions = dict(partitions)
        self.leader_high_watermarks = {k: v for k, v in self.leader_high_watermarks.items() if k in partitions}
        if added:  # a partition new to this fetcher must not wait for the long poll in flight to end
            self._changed.set()
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._connection.close()

    async def _run(self) -> None:
        while True:
            if not self._partitions:
                self._changed.clear()
                await self._changed.wait()
                continue
            self._changed.clear()
            fetching = asyncio.ensure_future(self._fetch_round())
            changed = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait((fetching, changed), return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:  # closing: the round goes too
                fetching.cancel()
                raise
            finally:
                changed.cancel()
            if not fetching.done():
                # Partitions were added: drop the long poll (it can only be waiting for its answer:
                # appends never yield) and ask again at once with them.
                fetching.cancel()
                self._connection.close()
                await asyncio.gather(fetching, return_exceptions=True)
                continue
            try:
                fetching.result()
            except InterBrokerLoginError as exc:
                # A configuration problem (a wrong password, an untrusted certificate): said once as
                # an error, retried at Kafka's reconnect.backoff.max.ms, said again once it changes.
                if str(exc) != self._login_failure:
                    log.error("cannot replicate from broker %d: %s; retrying every %.0f s", self.leader.broker_id,
                              exc, LOGIN_RETRY_S)
                    self._login_failure = str(exc)
                await asyncio.sleep(LOGIN_RETRY_S)
            except (OSError, KafkaError) as exc:
                log.info("fetching from broker %d: %s; retrying", self.leader.broker_id, exc)
                await asyncio.sleep(RETRY_S)
            else:
                if self._login_failure is not None:
                    log.info("replicating from broker %d again", self.leader.broker_id)
                    self._login_failure = None

    async def _fetch_round(self) -> None:
        await self._truncate_new()
        await self._fetch_once()

    async def _truncate_new(self) -> None:
        pending = {key: epoch for key, epoch in self._partitions.items() if key not in self._truncated}
        if not pending:
            return
        topics: dict[str, list[OffsetForLeaderPartition]] = {}
        for (topic, partition), epoch in pending.items():
            partition_log = self._logs.get_log(topic, partition)
            if partition_log is None:
                continue
            latest = partition_log.latest_epoch
            if latest == UNDEFINED_EPOCH:  # nothing written in any epoch: nothing to truncate
                self._truncated.add((topic, partition))
                continue
            topics.setdefault(topic, []).append(OffsetForLeaderPartition(
                partition=partition, current_leader_epoch=epoch, leader_epoch=latest))
        if not topics:
            return
        response = await self._connection.request(OFFSET_FOR_LEADER_EPOCH, EPOCH_VERSION, OffsetForLeaderEpochRequest(
            replica_id=self._broker_id, topics=[OffsetForLeaderTopic(topic=t, partitions=ps) for t, ps in topics.items()]),
            timeout_s=30)
        for topic in response.topics:
            for answer in topic.partitions:
                key = (topic.topic, answer.partition)
                partition_log = self._logs.get_log(*key)
                if answer.error_code != 0 or partition_log is None or key not in pending:
                    continue  # e.g. the leader has not taken over yet: ask again next round
                if 0 <= answer.end_offset < partition_log.log_end_offset:
                    log.info("%s-%d: truncating from %d to %d, where the leader's epoch %d ends", *key,
                             partition_log.log_end_offset, answer.end_offset, answer.leader_epoch)
                    partition_log.truncate_to(max(answer.end_offset, partition_log.log_start_offset))
                self._truncated.add(key)

    async def _fetch_once(self) -> None:
        wanted = {key: epoch for key, epoch in self._partitions.items() if key in self._truncated}
        if not wanted:
            await asyncio.sleep(RETRY_S)
            return
        topics: dict[str, list[FetchPartition]] = {}
        for (topic, partition), epoch in wanted.items():
            partition_log = self._logs.get_log(topic, partition)
            if partition_log is not None:
                topics.setdefault(topic, []).append(FetchPartition(
                    partition=partition, current_leader_epoch=epoch, fetch_offset=partition_log.log_end_offset,
                    log_start_offset=partition_log.log_start_offset, partition_max_bytes=PARTITION_MAX_BYTES))
        request = FetchRequest(replica_id=self._broker_id, max_wait_ms=MAX_WAIT_MS, min_bytes=1, max_bytes=MAX_BYTES,
                               isolation_level=0, session_id=0, session_epoch=-1,
                               topics=[FetchTopic(topic=t, partitions=ps) for t, ps in topics.items()])
        response = await self._connection.request(FETCH, FETCH_VERSION, request, timeout_s=MAX_WAIT_MS / 1000 + 30)
        now_ms = self._clock()
        refused = False
        for topic in response.responses:
            for data in topic.partitions:
                key = (topic.topic, data.partition_index)
                partition_log = self._logs.get_log(*key)
                if partition_log is None or key not in self._partitions:
                    continue
                if data.error_code != 0:
                    if data.error_code == ErrorCode.OFFSET_OUT_OF_RANGE:
                        self._truncated.discard(key)  # diverged: ask the leader again where to cut
                    log.debug("%s-%d: fetch answered %s", *key, ErrorCode(data.error_code).name)
                    refused = True
                    continue
                records = data.records or b""
                scan = scan_batches(records)
                for position, header in scan:
                    partition_log.append_as_follower(memoryview(records)[position:position + header.size],
                                                     header, now_ms)
                self.leader_high_watermarks[key] = data.high_watermark
                hw = min(data.high_watermark, partition_log.log_end_offset)
                if hw > partition_log.high_watermark:
                    partition_log.update_high_watermark(hw)
        if refused:  # e.g. the leader has not learnt of its epoch yet: it answers at once, so wait a little
            await asyncio.sleep(RETRY_S)
