"""The read side of the partition service (Fetch, ListOffsets, OffsetForLeaderEpoch,
DescribeProducers, the transaction verification guard) and DeleteRecords, and its contract with
the in-memory twin: every
scenario runs on the real service (logs in a tmp dir, the cluster member stood in for by
test_partitions.Followers) and on PartitionTwin, which the handler tests use, so the two cannot drift."""
from __future__ import annotations

import asyncio

import pytest

from kbroker.broker.partitions import (
    EARLIEST_TIMESTAMP,
    LATEST_TIERED_TIMESTAMP,
    LATEST_TIMESTAMP,
    MAX_TIMESTAMP,
    ActiveProducer,
    DeletedRecords,
    EpochEndOffset,
    OffsetLookup,
    PartitionRead,
)
from kbroker.broker.purgatory import FetchPurgatory
from kbroker.errors import ErrorCode
from kbroker.log.partition_log import AppendResult
from tests.broker.partition_twin import PartitionTwin
from tests.broker.test_partitions import TP, WAIT_S, Followers, Node
from tests.log.conftest import NOW, batch
from tests.log.test_partition_log import BATCH, slice_bytes

BIG = 1 << 20
PRODUCER = 7


class OnService:
    """The real service, over real logs."""

    def __init__(self, tmp_path) -> None:
        self.node = Node(tmp_path)
        self.service = self.node.service
        self.purgatory = self.node.purgatory
        self.followers: Followers | None = None

    def replicate(self) -> None:
        self.followers = Followers(self.node)  # followers 2 and 3, in the ISR, that have fetched nothing

    def lose_leadership(self) -> None:
        (self.followers or Followers(self.node)).led.clear()

    def become_leader(self, epoch: int) -> None:
        self.node.log.become_leader(epoch)

    async def close(self) -> None:
        await self.node.close()


class OnTwin:
    def __init__(self, tmp_path) -> None:
        self.purgatory = FetchPurgatory()
        self.service = PartitionTwin(self.purgatory)
        self.service.create_topic("t")

    def replicate(self) -> None:
        self.service.replicate(TP, (2, 3))

    def lose_leadership(self) -> None:
        self.service.led_elsewhere.add(TP)

    def become_leader(self, epoch: int) -> None:
        self.service.partitions[TP].become_leader(epoch)

    async def close(self) -> None:
        pass


@pytest.fixture(params=[OnService, OnTwin], ids=["service", "twin"])
async def on(request, tmp_path):
    harness = request.param(tmp_path)
    yield harness
    await harness.close()


async def _produce(on, data: bytearray | None = None) -> AppendResult:
    appends = on.service.appends(1)
    outcome = appends.produce(*TP, memoryview(batch() if data is None else data), 9, None, NOW)
    pending = appends.complete(30_000)
    if pending is not None:
        assert await asyncio.wait_for(pending, WAIT_S) == {}
    assert isinstance(outcome, AppendResult), outcome
    return outcome


def _read(on, fetch_offset: int, max_bytes: int = BIG, min_one_batch: bool = True, read_committed: bool = False,
          replica_id: int = -1, epoch: int = -1, tp=TP) -> PartitionRead:
    return on.service.read(*tp, fetch_offset, max_bytes, min_one_batch, read_committed, replica_id, epoch)


def _records(found: PartitionRead) -> bytes:
    records = found.records
    data = records if isinstance(records, bytes) else slice_bytes(records)
    assert len(data) == found.size
    return data


def _offsets(found: PartitionRead) -> tuple[int, int, int]:
    return found.high_watermark, found.last_stable_offset, found.log_start_offset


async def test_reads_whole_batches_from_the_one_holding_the_offset(on):
    first, second = await _produce(on), await _produce(on)
    assert (first.base_offset, second.base_offset) == (0, 3)
    everything = _read(on, 0)
    assert (everything.error, everything.size, _offsets(everything)) == (0, 2 * BATCH, (6, 6, 0))
    from_middle = _read(on, 4)  # inside the second batch: that batch whole
    assert _records(from_middle) == _records(everything)[BATCH:]
    assert everything.aborted is None  # read_uncommitted: no list at all


async def test_the_log_end_is_in_range_with_nothing_to_read_and_past_it_is_out_of_range(on):
    await _produce(on)
    at_end = _read(on, 3)
    assert (at_end.error, at_end.records, _offsets(at_end)) == (0, b"", (3, 3, 0))
    past = _read(on, 4)
    assert (past.error, past.records, _offsets(past)) == (ErrorCode.OFFSET_OUT_OF_RANGE, b"", (3, 3, 0))


async def test_max_bytes_takes_whole_batches_and_the_first_one_only_with_min_one_batch(on):
    await _produce(on)
    await _produce(on)
    assert _read(on, 0, BATCH + BATCH // 2).size == BATCH  # never half a batch
    assert _read(on, 0, BATCH // 2, min_one_batch=True).size == BATCH  # KIP-74: a large batch cannot stall
    assert _read(on, 0, BATCH // 2, min_one_batch=False).size == 0
    assert _read(on, 0, 0, min_one_batch=False).records == b""  # no budget left: nothing read


async def test_read_committed_stops_at_the_last_stable_offset_and_names_the_aborted_transaction(on):
    await _produce(on, batch(producer_id=PRODUCER, producer_epoch=0, sequence=0, transactional=True))
    await _produce(on)  # a plain batch after the open transaction, at 3-5
    held = _read(on, 0, read_committed=True)
    assert (held.size, held.aborted, _offsets(held)) == (0, [], (6, 0, 0))
    assert _read(on, 0).size == 2 * BATCH  # read_uncommitted reads past the open transaction
    assert await on.service.append_markers(PRODUCER, 0, 0, False, [TP], NOW) == {TP: ErrorCode.NONE}
    committed = _read(on, 0, read_committed=True)
    assert _offsets(committed) == (7, 7, 0)
    assert [(t.producer_id, t.first_offset) for t in committed.aborted] == [(PRODUCER, 0)]
    assert _records(committed)[:2 * BATCH] == _records(_read(on, 0))[:2 * BATCH]
    marker = _read(on, 3, read_committed=True)  # past its records, but its marker is in the read
    assert [(t.producer_id, t.first_offset) for t in marker.aborted] == [(PRODUCER, 0)]
    await _produce(on)
    after = _read(on, 7, read_committed=True)  # all after the marker: nothing to drop
    assert (after.aborted, after.size) == ([], BATCH)


async def test_a_marker_from_an_old_producer_epoch_is_refused(on):
    await _produce(on, batch(producer_id=PRODUCER, producer_epoch=3, sequence=0, transactional=True))
    assert await on.service.append_markers(PRODUCER, 2, 0, False, [TP], NOW) == {
        TP: ErrorCode.INVALID_PRODUCER_EPOCH}


async def test_a_follower_reads_to_the_log_end_and_its_fetches_move_the_high_watermark(on):
    on.replicate()
    await _produce(on)
    consumer = _read(on, 0)
    assert (consumer.size, consumer.high_watermark) == (0, 0)  # not in the ISR yet: not exposed
    woken = on.purgatory.watch([TP])
    copied = _read(on, 0, replica_id=2, epoch=0)
    assert (copied.size, copied.high_watermark, copied.aborted) == (BATCH, 0, [])
    _read(on, 3, replica_id=2, epoch=0)
    assert not woken.done() and _read(on, 0).high_watermark == 0  # follower 3 has not fetched yet
    _read(on, 3, replica_id=3, epoch=0)
    assert woken.done() and _read(on, 0).high_watermark == 3  # parked fetches re-read


async def test_a_follower_of_another_leader_epoch_is_refused_and_not_counted(on):
    on.replicate()
    on.become_leader(3)
    await _produce(on)
    assert _read(on, 3, replica_id=2, epoch=2) == PartitionRead(ErrorCode.FENCED_LEADER_EPOCH)
    assert _read(on, 3, replica_id=2, epoch=4) == PartitionRead(ErrorCode.UNKNOWN_LEADER_EPOCH)
    _read(on, 3, replica_id=3, epoch=3)
    assert _read(on, 0).high_watermark == 0  # follower 2's refused fetches moved nothing
    _read(on, 3, replica_id=2, epoch=-1)  # no epoch given (older followers): not checked
    assert _read(on, 0).high_watermark == 3


async def test_an_unknown_partition_and_one_led_elsewhere(on):
    assert _read(on, 0, tp=("t", 5)) == PartitionRead(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    assert _read(on, 0, tp=("nope", 0)) == PartitionRead(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    on.lose_leadership()
    assert _read(on, 0) == PartitionRead(ErrorCode.NOT_LEADER_OR_FOLLOWER)
    appends = on.service.appends(1)
    assert appends.produce(*TP, memoryview(batch()), 9, None, NOW).code == ErrorCode.NOT_LEADER_OR_FOLLOWER


async def test_an_append_wakes_the_parked_fetches_and_a_corrupt_batch_is_refused(on):
    woken = on.purgatory.watch([TP])
    await _produce(on)
    assert woken.done()
    data = batch()
    data[-1] ^= 0xFF
    appends = on.service.appends(1)
    assert appends.produce(*TP, memoryview(data), 9, None, NOW).code == ErrorCode.CORRUPT_MESSAGE
    assert appends.complete(30_000) is None and _read(on, 0).high_watermark == 3


def _offset(on, timestamp: int, read_committed: bool = False, current_epoch: int = -1, tp=TP) -> OffsetLookup:
    return on.service.offset_for_timestamp(*tp, timestamp, read_committed, current_epoch)


async def test_list_offsets_earliest_latest_max_timestamp_and_by_time(on):
    await _produce(on, batch(timestamp=NOW))  # offsets 0-2 at NOW, NOW+1, NOW+2
    await _produce(on, batch(timestamp=NOW + 100))  # 3-5 at NOW+100..NOW+102
    await _produce(on, batch(timestamp=NOW + 50))  # 6-8: older stamps after newer ones
    assert _offset(on, EARLIEST_TIMESTAMP) == OffsetLookup(0, 0, -1, 0)
    assert _offset(on, LATEST_TIMESTAMP) == OffsetLookup(0, 9, -1, 0)
    assert _offset(on, MAX_TIMESTAMP) == OffsetLookup(0, 5, NOW + 102, 0)
    assert _offset(on, NOW + 1) == OffsetLookup(0, 1, NOW + 1, 0)
    assert _offset(on, NOW + 3) == OffsetLookup(0, 3, NOW + 100, 0)  # the first record at or after it
    assert _offset(on, NOW + 103) == OffsetLookup(0)  # after every record: not found
    assert _offset(on, LATEST_TIERED_TIMESTAMP) == OffsetLookup(0)  # nothing is tiered


async def test_list_offsets_never_point_past_what_the_isolation_level_may_read(on):
    await _produce(on, batch(timestamp=NOW))
    await _produce(on, batch(timestamp=NOW + 100, producer_id=PRODUCER, producer_epoch=0, sequence=0,
                             transactional=True))  # open at 3-5
    assert _offset(on, LATEST_TIMESTAMP, read_committed=True).offset == 3  # the last stable offset
    assert _offset(on, LATEST_TIMESTAMP).offset == 6  # the high watermark
    assert _offset(on, MAX_TIMESTAMP, read_committed=True) == OffsetLookup(0)  # in the open transaction
    assert _offset(on, NOW + 100, read_committed=True) == OffsetLookup(0)
    assert _offset(on, NOW + 100) == OffsetLookup(0, 3, NOW + 100, 0)


async def test_list_offsets_of_a_replicated_partition_stop_at_the_high_watermark(on):
    on.replicate()
    await _produce(on)
    assert _offset(on, LATEST_TIMESTAMP).offset == 0  # not yet in the followers
    assert _offset(on, NOW) == OffsetLookup(0)


async def test_list_offsets_and_epoch_end_offsets_are_fenced_by_the_leader_epoch(on):
    await _produce(on)
    on.become_leader(2)
    await _produce(on)  # epoch 2 starts at 3
    assert _offset(on, LATEST_TIMESTAMP, current_epoch=1) == OffsetLookup(ErrorCode.FENCED_LEADER_EPOCH)
    assert _offset(on, LATEST_TIMESTAMP, current_epoch=3) == OffsetLookup(ErrorCode.UNKNOWN_LEADER_EPOCH)
    assert _offset(on, LATEST_TIMESTAMP, current_epoch=2) == OffsetLookup(0, 6, -1, 2)
    assert _offset(on, EARLIEST_TIMESTAMP) == OffsetLookup(0, 0, -1, 0)
    assert _offset(on, NOW + 1) == OffsetLookup(0, 1, NOW + 1, 0)
    assert _offset(on, MAX_TIMESTAMP) == OffsetLookup(0, 2, NOW + 2, 0)  # the first record carrying it
    end = on.service.end_offset_for_epoch
    assert end(*TP, 0) == EpochEndOffset(0, 0, 3)  # epoch 0 ended where epoch 2 began
    assert end(*TP, 1) == EpochEndOffset(0, 0, 3)  # never led in 1: the largest epoch below it
    assert end(*TP, 2, 2) == EpochEndOffset(0, 2, 6)  # the current epoch ends at the log end
    assert end(*TP, 3) == EpochEndOffset(0)  # an epoch not known yet
    assert end(*TP, -1) == EpochEndOffset(0)
    assert end(*TP, 0, 1) == EpochEndOffset(ErrorCode.FENCED_LEADER_EPOCH)
    assert end(*TP, 0, 5) == EpochEndOffset(ErrorCode.UNKNOWN_LEADER_EPOCH)


async def test_offset_lookups_of_a_partition_not_led_here(on):
    assert _offset(on, LATEST_TIMESTAMP, tp=("t", 5)) == OffsetLookup(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    assert on.service.end_offset_for_epoch("nope", 0, 0) == EpochEndOffset(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    assert on.service.active_producers("nope", 0) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    on.lose_leadership()
    assert _offset(on, LATEST_TIMESTAMP) == OffsetLookup(ErrorCode.NOT_LEADER_OR_FOLLOWER)
    assert on.service.end_offset_for_epoch(*TP, 0) == EpochEndOffset(ErrorCode.NOT_LEADER_OR_FOLLOWER)
    assert on.service.delete_records(*TP, 0) == DeletedRecords(ErrorCode.NOT_LEADER_OR_FOLLOWER)
    assert on.service.active_producers(*TP) == ErrorCode.NOT_LEADER_OR_FOLLOWER
    assert on.service.verification_guard(*TP, PRODUCER) is None  # the append answers NOT_LEADER_OR_FOLLOWER


async def test_delete_records_moves_the_log_start_up_to_the_high_watermark(on):
    await _produce(on)
    await _produce(on)
    delete = on.service.delete_records
    assert delete(*TP, 7) == DeletedRecords(ErrorCode.OFFSET_OUT_OF_RANGE)  # above the high watermark
    assert delete(*TP, -2) == DeletedRecords(ErrorCode.OFFSET_OUT_OF_RANGE)
    assert delete(*TP, 4) == DeletedRecords(0, 4)  # below it, inside the second batch
    assert _offsets(_read(on, 4)) == (6, 6, 4)
    assert _read(on, 2).error == ErrorCode.OFFSET_OUT_OF_RANGE  # before the log start now
    assert _offset(on, EARLIEST_TIMESTAMP).offset == 4
    assert _offset(on, NOW) == OffsetLookup(0, 4, NOW + 1, 0)  # records below the log start are not found
    assert delete(*TP, 1) == DeletedRecords(0, 4)  # never moves back
    assert delete(*TP, -1) == DeletedRecords(0, 6)  # -1: up to the high watermark, as kafka-delete-records does
    assert _offsets(_read(on, 6)) == (6, 6, 6)
    assert delete("__consumer_offsets", 0, 0) == DeletedRecords(ErrorCode.INVALID_TOPIC_EXCEPTION)


async def test_delete_records_of_a_replicated_partition_stop_at_its_high_watermark(on):
    on.replicate()
    await _produce(on)
    assert on.service.delete_records(*TP, 3) == DeletedRecords(ErrorCode.OFFSET_OUT_OF_RANGE)  # not replicated yet
    assert on.service.delete_records(*TP, 0) == DeletedRecords(0, 0)


async def test_active_producers_and_the_verification_guard_follow_the_transactions(on):
    assert on.service.active_producers(*TP) == []
    guard = on.service.verification_guard(*TP, PRODUCER)
    assert guard is not None
    await _produce(on, batch(producer_id=3, producer_epoch=1, sequence=0))  # idempotent, 0-2
    await _produce(on, batch(timestamp=NOW + 10, producer_id=PRODUCER, producer_epoch=2, sequence=5,
                             transactional=True))  # 3-5, opens a transaction
    assert on.service.verification_guard(*TP, PRODUCER) is None  # open: later batches need no verification
    assert sorted(on.service.active_producers(*TP)) == [
        ActiveProducer(3, 1, 2, NOW + 2, -1, -1), ActiveProducer(PRODUCER, 2, 7, NOW + 12, -1, 3)]
    assert await on.service.append_markers(PRODUCER, 2, 4, True, [TP], NOW) == {TP: ErrorCode.NONE}
    assert ActiveProducer(PRODUCER, 2, 7, NOW + 12, 4, -1) in on.service.active_producers(*TP)
    after = on.service.verification_guard(*TP, PRODUCER)
    assert after is not None and after != guard  # a marker moved it: a batch verified before is refused
