"""The read side of the partition service, and its contract with the in-memory twin: every
scenario runs on the real service (logs in a tmp dir, the cluster member stood in for by
test_partitions.Followers) and on PartitionTwin, which the handler tests use, so the two cannot drift."""
from __future__ import annotations

import asyncio

import pytest

from kbroker.broker.partitions import PartitionRead
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
        self.service.partitions[TP].leader_epoch = epoch

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
