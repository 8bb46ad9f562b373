"""Both coordinators on a real log (`tmp_path`): transactional offset commits staged until their
marker, `__transaction_state` written before answering and replayed on restart, a prepared
transaction completed on load, the timeout abort. Markers go to the local logs, as the broker's
`write_txn_markers` does; a fake clock drives the timeouts."""
from __future__ import annotations

import pytest

from kbroker.config import build_config
from kbroker.coordinator import records as rec
from kbroker.coordinator.group_coordinator import GroupCoordinator, OffsetToCommit
from kbroker.coordinator.transactions import TxnState
from kbroker.coordinator.txn_coordinator import TransactionCoordinator
from kbroker.errors import ErrorCode
from kbroker.log.log_manager import LogManager
from tests.coordinator.appending import append_at_once
from tests.coordinator.test_group_coordinator import Clock
from tests.waiting import wait_until_async

E = ErrorCode
TOPIC = "orders"
TID = "tx"


class Node:
    """A log directory with both coordinators; `restart()` reopens everything as a broker would."""

    def __init__(self, path) -> None:
        self.path = path
        self.config = build_config({"log.dirs": str(path), "offsets.topic.num.partitions": "5",
                                    "transaction.state.log.num.partitions": "5"})
        self.clock = Clock()
        self.markers_fail = False
        self.next_pid = 1000
        self.logs = LogManager(path, self.config.log_defaults()).load()
        self.logs.create_topic(TOPIC, 2, {})
        self._open()

    def _open(self) -> None:

        async def allocate() -> int:
            self.next_pid += 1
            return self.next_pid

        self.groups = GroupCoordinator(self.config, self.logs, append_at_once, now_ms=self.clock)
        self.txns = TransactionCoordinator(self.config, self.logs, append_at_once, self.write_markers, allocate,
                                           now_ms=self.clock)

    async def write_markers(self, pid, epoch, coordinator_epoch, commit, partitions):
        if self.markers_fail:
            return {tp: E.KAFKA_STORAGE_ERROR for tp in partitions}
        for topic, partition in partitions:
            partition_log = self.logs.get_log(topic, partition)
            partition_log.append_control_batch(pid, epoch, coordinator_epoch, commit, self.clock())
            partition_log.update_high_watermark(partition_log.log_end_offset)
            if topic == rec.OFFSETS_TOPIC:
                self.groups.end_transaction(partition, pid, commit)
        return {tp: E.NONE for tp in partitions}

    async def load(self) -> None:
        await self.groups.load()
        await self.txns.load()

    async def restart(self) -> None:
        await self.txns.close()
        await self.groups.close()
        self.logs.shutdown()
        self.logs = LogManager(self.path, self.config.log_defaults()).load()
        self._open()
        await self.load()

    async def settled(self, state: TxnState) -> None:
        """Wait (on the loop, bounded) until the markers task has logged `state`."""
        def reached() -> bool:
            txn = self.txns.table.transactions.get(TID)
            return txn is not None and txn.state is state and not txn.busy
        await wait_until_async(reached, lambda: f"{TID} to reach {state.display_name}: "
                                                f"{self.txns.table.transactions.get(TID)}")


@pytest.fixture
async def node(tmp_path):
    node = Node(tmp_path)
    await node.load()
    yield node
    await node.txns.close()
    await node.groups.close()
    node.logs.shutdown()


async def txn_commit(node: Node, pid: int, epoch: int, group: str, offset: int):
    return await node.groups.commit_txn_offsets(group_id=group, producer_id=pid, producer_epoch=epoch, member_id="",
                                                group_instance_id=None, generation_id=-1,
                                                offsets=[OffsetToCommit(TOPIC, 0, offset, -1, "")])


def committed(node: Node, group: str) -> int | None:
    found = node.groups.offsets.get(group, TOPIC, 0)
    return None if found is None else found.offset


async def begin(node: Node, group: str | None = None) -> tuple[int, int]:
    init = await node.txns.init_producer_id(TID, 60_000, None)
    assert init.error == E.NONE
    partitions = [(TOPIC, 0)] + ([(rec.OFFSETS_TOPIC, node.groups.partition_for(group))] if group else [])
    assert await node.txns.add_partitions(TID, init.producer_id, init.producer_epoch, partitions) == E.NONE
    return init.producer_id, init.producer_epoch


async def test_offsets_count_only_once_their_transaction_commits_also_after_a_restart(node):
    pid, epoch = await begin(node, "g")
    assert await txn_commit(node, pid, epoch, "g", 10) == [E.NONE]
    assert await txn_commit(node, pid, epoch, "g", 12) == [E.NONE]  # the next sequence of the producer
    assert committed(node, "g") is None
    assert node.groups.has_pending_offset("g", TOPIC, 0)  # OffsetFetch(require_stable): UNSTABLE_OFFSET_COMMIT
    assert await node.txns.end_txn(TID, pid, epoch, True) == E.NONE
    # Local markers are quick, so EndTxn answers once the transaction is complete.
    assert node.txns.table.transactions[TID].state is TxnState.COMPLETE_COMMIT
    assert committed(node, "g") == 12
    assert not node.groups.has_pending_offset("g", TOPIC, 0)
    await node.restart()
    assert committed(node, "g") == 12
    txn = node.txns.table.transactions[TID]
    assert (txn.state, txn.current.producer_id, txn.current.producer_epoch) == (TxnState.COMPLETE_COMMIT, pid, epoch)


async def test_aborted_offsets_are_dropped_also_on_replay(node):
    pid, epoch = await begin(node, "g")
    assert await txn_commit(node, pid, epoch, "g", 10) == [E.NONE]
    assert await node.txns.end_txn(TID, pid, epoch, False) == E.NONE
    await node.settled(TxnState.COMPLETE_ABORT)
    assert committed(node, "g") is None
    await node.restart()
    assert committed(node, "g") is None


async def test_a_prepared_transaction_is_completed_on_load(node):
    pid, epoch = await begin(node, "g")
    assert await txn_commit(node, pid, epoch, "g", 7) == [E.NONE]
    node.markers_fail = True  # the markers never make it before the "crash"
    assert await node.txns.end_txn(TID, pid, epoch, True) == E.NONE
    assert node.txns.table.transactions[TID].state is TxnState.PREPARE_COMMIT
    node.markers_fail = False
    await node.restart()
    # Staged again from the log while the transaction is open, then committed by the marker on load.
    await node.settled(TxnState.COMPLETE_COMMIT)
    assert committed(node, "g") == 7
    assert node.logs.get_log(TOPIC, 0).last_stable_offset == node.logs.get_log(TOPIC, 0).log_end_offset


async def test_a_timed_out_transaction_is_aborted_and_its_producer_fenced(node):
    pid, epoch = await begin(node)
    node.clock.now += 60_001
    assert await node.txns.abort_timed_out() == 1
    await node.settled(TxnState.COMPLETE_ABORT)
    assert node.txns.table.transactions[TID].current.producer_epoch == epoch + 1
    assert await node.txns.end_txn(TID, pid, epoch, True) == E.PRODUCER_FENCED
    again = await node.txns.init_producer_id(TID, 60_000, None)
    assert (again.error, again.producer_id, again.producer_epoch) == (E.NONE, pid, epoch + 2)


async def test_requests_wait_while_a_transaction_completes(node):
    pid, epoch = await begin(node)
    node.markers_fail = True
    assert await node.txns.end_txn(TID, pid, epoch, True) == E.NONE
    assert (await node.txns.init_producer_id(TID, 60_000, None)).error == E.CONCURRENT_TRANSACTIONS
    assert await node.txns.add_partitions(TID, pid, epoch, [(TOPIC, 1)]) == E.CONCURRENT_TRANSACTIONS
    node.markers_fail = False
    await node.settled(TxnState.COMPLETE_COMMIT)
    assert (await node.txns.init_producer_id(TID, 60_000, None)).error == E.NONE


async def test_expired_ids_are_tombstoned(node):
    await node.txns.init_producer_id(TID, 60_000, None)
    node.clock.now += node.config.transactional_id_expiration_ms
    assert await node.txns.remove_expired() == 1
    assert TID not in node.txns.table.transactions
    await node.restart()
    assert TID not in node.txns.table.transactions
