"""The partition service on its own: real logs in a tmp dir, no sockets. A stand-in for the
cluster member gives the leader's view of its followers (LeaderReplicas, as the member keeps it)."""
from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import pytest

from kbroker.broker.flusher import Flusher
from kbroker.broker.partitions import AppendError, PartitionService
from kbroker.broker.purgatory import FetchPurgatory
from kbroker.cluster.replica_state import LeaderReplicas
from kbroker.config import build_config
from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.log_manager import LogManager
from kbroker.log.partition_log import AppendResult
from kbroker.wire.records import BatchHeader
from tests.waiting import wait_until_async
from tests.log.conftest import NOW, batch, fail_next_fsync

TP = ("t", 0)
WAIT_S = 5  # a bound on waits that should end at once


class Node:
    def __init__(self, tmp_path, flush_messages: int | None = None) -> None:
        config = build_config({"log.dirs": str(tmp_path)})
        self.logs = LogManager(config.data_dir, config.log_defaults()).load()
        topic_configs = {} if flush_messages is None else {"flush.messages": str(flush_messages)}
        self.logs.create_topic("t", 1, topic_configs)
        self.log = self.logs.get_log(*TP)
        self.flusher = Flusher(config, self.logs)
        self.purgatory = FetchPurgatory()
        self.service = PartitionService(self.logs, self.flusher, self.purgatory)

    def produce(self, acks: int, data: bytearray | None = None, timeout_ms: int = 30_000):
        """One request's append to `t-0`: its outcome and what `complete` returned."""
        appends = self.service.appends(acks)
        outcome = appends.produce("t", 0, memoryview(batch() if data is None else data), 9, None, NOW)
        return outcome, appends.complete(timeout_ms)

    async def close(self) -> None:
        await self.service.close()
        self.flusher.close()
        self.logs.shutdown()


class Followers:
    """What the service asks of the cluster member: leadership, the image's topics, the followers."""

    def __init__(self, node: Node, isr=(1, 2, 3), min_insync: int = 2) -> None:
        self.node = node
        self.image = SimpleNamespace(topics={"t": SimpleNamespace(partition_count=1)})
        self.replicas = LeaderReplicas(1, (1, 2, 3), isr, now_ms=0)
        self.led = {TP}
        self.min_insync = min_insync
        node.service.cluster = self

    def leads(self, topic: str, partition: int) -> bool:
        return (topic, partition) in self.led

    def replicas_of(self, topic: str, partition: int) -> LeaderReplicas | None:
        return self.replicas if (topic, partition) in self.led else None

    def min_insync_replicas(self, topic: str) -> int:
        return self.min_insync

    def on_follower_fetch(self, topic: str, partition: int, replica: int, fetch_offset: int) -> None:
        """As the member does: the follower's log end noted, then the high watermark may move."""
        self.replicas.on_fetch(replica, fetch_offset, self.node.log.log_end_offset, now_ms=1)
        self.node.service.replicas_moved(self.node.log)


@pytest.fixture
async def node(tmp_path):
    node = Node(tmp_path)
    yield node
    await node.close()


@pytest.fixture
async def flushing(tmp_path):
    node = Node(tmp_path, flush_messages=1)
    yield node
    await node.close()


async def _failing_fsync(node: Node, monkeypatch) -> None:
    """The next fsync fails, after a first batch went through (its epoch checkpoint syncs too)."""
    _, pending = node.produce(1)
    assert await asyncio.wait_for(pending, WAIT_S) == {}
    fail_next_fsync(monkeypatch)


async def test_acks_1_answers_at_once_and_exposes_the_batch(node):
    woken = node.purgatory.watch([TP])
    outcome, pending = node.produce(1)
    assert isinstance(outcome, AppendResult) and outcome.base_offset == 0
    assert pending is None  # nothing to wait for: answered without a coroutine
    assert node.log.high_watermark == node.log.log_end_offset == 3
    assert woken.done()  # the parked fetch re-reads


async def test_flush_messages_holds_the_answer_and_the_high_watermark_until_the_fsync(flushing):
    outcome, pending = flushing.produce(1)
    assert isinstance(outcome, AppendResult)
    assert pending is not None and flushing.log.high_watermark == 0  # not exposed before the fsync
    assert await asyncio.wait_for(pending, WAIT_S) == {}
    assert flushing.log.recovery_point == flushing.log.high_watermark == 3


async def test_a_failed_fsync_is_a_storage_error_and_acknowledges_nothing(flushing, monkeypatch):
    await _failing_fsync(flushing, monkeypatch)
    _, pending = flushing.produce(1)
    failures = await asyncio.wait_for(pending, WAIT_S)
    assert failures[TP].code == ErrorCode.KAFKA_STORAGE_ERROR
    assert "injected" in failures[TP].message
    assert flushing.log.high_watermark == flushing.log.log_end_offset == 3  # cut back to what was synced
    outcome, pending = flushing.produce(1)  # the producer's retry works once the disk does
    assert outcome.base_offset == 3 and await asyncio.wait_for(pending, WAIT_S) == {}
    assert flushing.log.high_watermark == 6


async def test_an_idempotent_retry_is_answered_with_the_original_offsets(node):
    data = batch(producer_id=7, producer_epoch=0, sequence=0)
    first, _ = node.produce(1, bytearray(data))
    retry, pending = node.produce(1, bytearray(data))
    assert retry.duplicate and (retry.base_offset, retry.last_offset) == (first.base_offset, first.last_offset)
    assert pending is None and node.log.log_end_offset == 3


async def test_an_invalid_batch_is_refused_before_the_log(node):
    data = batch()
    data[-1] ^= 0xFF  # the CRC no longer matches
    outcome, pending = node.produce(1, data)
    assert isinstance(outcome, AppendError) and outcome.code == ErrorCode.CORRUPT_MESSAGE
    assert pending is None and node.log.log_end_offset == 0


async def test_acks_0_flushes_in_a_task_the_service_keeps_and_cancels_on_close(flushing):
    started, release = threading.Event(), threading.Event()
    real_flush = flushing.log.flush

    def held_flush(up_to=None):
        started.set()
        release.wait(WAIT_S)
        real_flush(up_to)

    flushing.log.flush = held_flush
    _, pending = flushing.produce(0)
    assert pending is None and len(flushing.service._tasks) == 1
    await wait_until_async(started.is_set, "the fsync to start")
    await flushing.service.close()
    assert not flushing.service._tasks and flushing.log.high_watermark == 0
    release.set()


async def test_acks_0_exposes_the_batch_once_fsynced(flushing):
    flushing.produce(0)
    await wait_until_async(lambda: flushing.log.high_watermark == 3, "the fsynced batch to be exposed")
    assert not flushing.service._tasks


async def test_acks_all_below_min_insync_replicas_is_refused_before_appending(node):
    Followers(node, isr=(1,))
    outcome, pending = node.produce(-1)
    assert outcome.code == ErrorCode.NOT_ENOUGH_REPLICAS and node.log.log_end_offset == 0
    outcome, pending = node.produce(1)  # acks=1 does not ask
    assert isinstance(outcome, AppendResult) and pending is None


async def test_acks_all_is_answered_once_the_isr_has_the_batch(node):
    followers = Followers(node)
    _, pending = node.produce(-1)
    answer = asyncio.ensure_future(pending)
    await asyncio.sleep(0)
    assert not answer.done() and node.log.high_watermark == 0
    for replica in (2, 3):
        followers.replicas.on_fetch(replica, 3, node.log.log_end_offset, now_ms=1)
    node.service.replicas_moved(node.log)
    assert await asyncio.wait_for(answer, WAIT_S) == {}
    assert node.log.high_watermark == 3


async def test_acks_all_fails_once_the_isr_shrinks_below_the_minimum(node):
    followers = Followers(node)
    _, pending = node.produce(-1)
    answer = asyncio.ensure_future(pending)
    await asyncio.sleep(0)
    followers.replicas.isr = {1}
    node.purgatory.notify(TP)
    assert (await asyncio.wait_for(answer, WAIT_S))[TP].code == ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND


async def test_acks_all_times_out(node):
    Followers(node)
    _, pending = node.produce(-1, timeout_ms=20)
    assert (await asyncio.wait_for(pending, WAIT_S))[TP].code == ErrorCode.REQUEST_TIMED_OUT


async def test_acks_all_with_flush_messages_skips_the_wait_for_a_failed_fsync(flushing, monkeypatch):
    await _failing_fsync(flushing, monkeypatch)
    Followers(flushing)
    _, pending = flushing.produce(-1)
    assert (await asyncio.wait_for(pending, WAIT_S))[TP].code == ErrorCode.KAFKA_STORAGE_ERROR


async def test_a_partition_led_elsewhere_is_not_leader(node):
    followers = Followers(node)
    followers.led.clear()
    assert node.service.leader_log(*TP) == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert node.service.leader_log("t", 5) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


async def test_a_coordinator_batch_returns_once_fsynced(flushing):
    data = bytes(batch())
    result = await asyncio.wait_for(
        flushing.service.append_coordinator_batch(flushing.log, data, BatchHeader.parse(data), NOW), WAIT_S)
    assert result.base_offset == 0 and flushing.log.recovery_point == flushing.log.high_watermark == 3


async def test_a_coordinator_batch_whose_fsync_fails_raises(flushing, monkeypatch):
    await _failing_fsync(flushing, monkeypatch)
    data = bytes(batch())
    with pytest.raises(OSError):
        await flushing.service.append_coordinator_batch(flushing.log, data, BatchHeader.parse(data), NOW)


async def test_a_coordinator_batch_fails_when_leadership_moves_before_the_isr_has_it(node):
    followers = Followers(node)
    data = bytes(batch())
    append = asyncio.ensure_future(node.service.append_coordinator_batch(node.log, data, BatchHeader.parse(data), NOW))
    await asyncio.sleep(0)
    followers.led.clear()
    node.purgatory.notify(TP)
    with pytest.raises(KafkaError) as refused:
        await asyncio.wait_for(append, WAIT_S)
    assert refused.value.code == ErrorCode.NOT_LEADER_OR_FOLLOWER


async def test_markers_end_the_transaction_and_move_the_last_stable_offset(node):
    node.produce(1, batch(producer_id=7, producer_epoch=0, sequence=0, transactional=True))
    assert node.log.last_stable_offset == 0  # the open transaction holds read_committed back
    results = await node.service.append_markers(7, 0, 0, True, [TP, ("t", 9), ("nope", 0)], NOW)
    assert results == {TP: ErrorCode.NONE, ("t", 9): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                       ("nope", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
    assert node.log.last_stable_offset == node.log.high_watermark == 4


async def test_a_marker_from_an_old_producer_epoch_is_refused(node):
    node.produce(1, batch(producer_id=7, producer_epoch=3, sequence=0, transactional=True))
    results = await node.service.append_markers(7, 2, 0, False, [TP], NOW)
    assert results == {TP: ErrorCode.INVALID_PRODUCER_EPOCH}
