"""Partition reassignment (reassignment.py): the pure decisions, then the real `Controller` and
`ClusterAdmin` carrying moves out on the in-memory store twin (memory_store.py)."""
from __future__ import annotations

import uuid

import pytest

from kbroker.cluster.image import BrokerRegistration, ClusterImage, PartitionState, TopicAssignment
from kbroker.cluster.reassignment import begin, original_replicas, progress, removable, target_replicas
from kbroker.errors import ErrorCode, KafkaError
from tests.cluster.memory_store import MemoryZooKeeper
from tests.cluster.test_controller import TIMEOUT_MS, controller_of, in_sync, leader_epoch_isr, start, zk  # noqa: F401
from tests.cluster.waiting import wait_until

TOPIC_ID = uuid.UUID(int=7)
EPOCH = 3


def image(replicas: tuple[tuple[int, ...], ...], states: dict[int, PartitionState], *, live=(1, 2, 3, 4),
          adding=None, removing=None, requests=None) -> ClusterImage:
    assignment = TopicAssignment("t", TOPIC_ID, replicas, 5, adding or {}, removing or {})
    return ClusterImage.of({b: BrokerRegistration(b, "h", 9000 + b) for b in live}, 1, frozenset({"t"}),
                           {"t": assignment}, {}, {("t", p): s for p, s in states.items()}, frozenset(),
                           reassignments=requests or {}, reassignments_version=0 if requests else -1)


def state(leader: int, isr: tuple[int, ...], leader_epoch: int = 4) -> PartitionState:
    return PartitionState(leader, leader_epoch, isr, controller_epoch=2, version=9)


# -- the decisions ------------------------------------------------------------------------------


def test_begin_puts_the_target_first_and_records_adding_and_removing() -> None:
    current = image(((1, 2),), {0: state(1, (1, 2))})
    started = begin(current, {("t", 0): (3, 2)})["t"]
    assert started.replicas == ((3, 2, 1),)
    assert (dict(started.adding), dict(started.removing)) == ({0: (3,)}, {0: (1,)})
    assert started.version == 5  # written conditional on the version it was read at
    assert (original_replicas(started, 0), target_replicas(started, 0)) == ((2, 1), (3, 2))


def test_a_new_request_replaces_the_one_under_way_from_the_original_replicas() -> None:
    moving = image(((3, 2, 1),), {0: state(1, (1, 2))}, adding={0: (3,)}, removing={0: (1,)})
    replaced = begin(moving, {("t", 0): (4, 1)})["t"]
    assert replaced.replicas == ((4, 1, 2),)
    assert (dict(replaced.adding), dict(replaced.removing)) == ({0: (4,)}, {0: (2,)})


def test_cancel_puts_the_original_replicas_back() -> None:
    moving = image(((3, 2, 1),), {0: state(1, (1, 2, 3))}, adding={0: (3,)}, removing={0: (1,)})
    cancelled = begin(moving, {("t", 0): None})["t"]
    assert cancelled.replicas == ((2, 1),) and not cancelled.adding and not cancelled.removing


def test_requests_that_change_nothing_write_nothing() -> None:
    current = image(((1, 2),), {0: state(1, (1, 2))})
    assert begin(current, {("t", 0): None, ("t", 1): (3,), ("gone", 0): (3,)}) == {}  # cancel idle, unknown
    assert begin(current, {("t", 0): (1, 2)}) == {}  # the target is what it has


def test_nothing_moves_until_every_target_replica_is_in_the_isr() -> None:
    moving = image(((3, 2, 1),), {0: state(1, (1, 2))}, adding={0: (3,)}, removing={0: (1,)})
    assert progress(moving, EPOCH) == ({}, {})


def test_a_leaving_leader_hands_over_to_the_target_then_the_assignment_becomes_the_target() -> None:
    caught_up = image(((3, 2, 1),), {0: state(1, (1, 2, 3))}, adding={0: (3,)}, removing={0: (1,)})
    states, finished = progress(caught_up, EPOCH)
    assert states == {("t", 0): PartitionState(3, 5, (2, 3), EPOCH, 9)} and finished == {}
    handed_over = image(((3, 2, 1),), {0: state(3, (2, 3), leader_epoch=5)}, adding={0: (3,)}, removing={0: (1,)})
    states, finished = progress(handed_over, EPOCH)
    assert states == {}
    assert finished["t"].replicas == ((3, 2),) and not finished["t"].adding and not finished["t"].removing


def test_a_staying_leader_keeps_its_epoch_while_the_removed_replicas_leave_the_isr() -> None:
    caught_up = image(((2, 3, 1),), {0: state(2, (1, 2, 3))}, adding={0: (3,)}, removing={0: (1,)})
    states, _ = progress(caught_up, EPOCH)
    assert states == {("t", 0): PartitionState(2, 4, (2, 3), EPOCH, 9)}


def test_an_rf1_move_to_another_broker() -> None:
    caught_up = image(((2, 1),), {0: state(1, (1, 2))}, adding={0: (2,)}, removing={0: (1,)})
    states, _ = progress(caught_up, EPOCH)
    assert states == {("t", 0): PartitionState(2, 5, (2,), EPOCH, 9)}


def test_a_copy_is_removable_only_once_unassigned_and_out_of_leadership_and_isr() -> None:
    assert removable(image(((2,),), {0: state(2, (2,))}), 1, "t", 0)
    assert not removable(image(((2,),), {0: state(2, (2,))}), 2, "t", 0)  # still assigned
    assert not removable(image(((2, 1),), {0: state(2, (2,))}, removing={0: (1,)}), 1, "t", 0)  # move under way
    assert not removable(image(((2,),), {0: state(1, (1, 2))}), 1, "t", 0)  # still leads
    assert not removable(image(((2,),), {0: state(2, (1, 2))}), 1, "t", 0)  # still in the ISR
    assert not removable(image(((2,),), {}), 1, "t", 0)  # no state read: wait
    assert not removable(image(((2,),), {0: state(2, (2,))}), 1, "t", 1)  # no such partition
    assert not removable(image(((2,),), {0: state(2, (2,))}), 1, "gone", 0)  # topic not in the image


# -- the controller on the memory twin ------------------------------------------------------------


async def test_a_move_asked_of_any_broker_runs_to_its_end(zk: MemoryZooKeeper, start) -> None:
    nodes = {n.broker_id: n for n in await controller_of(start, 1, 2, 3, 4)}
    await nodes[1].create("t", [[1, 2], [2, 3]])
    in_sync(zk, ("t", 0), (1, 2))
    outcomes = await nodes[3].admin.alter_reassignments({("t", 0): [3, 4]}, TIMEOUT_MS)
    assert outcomes == {("t", 0): (ErrorCode.NONE, None)}
    assert zk.reassignments_version == -1  # taken into the topic's znode
    moving = zk.topics["t"]
    assert moving.replicas[0] == (3, 4, 1, 2)
    assert (dict(moving.adding), dict(moving.removing)) == ({0: (3, 4)}, {0: (1, 2)})
    await wait_until(lambda: ("t", 0) in nodes[2].admin.list_reassignments(None), "broker 2 to see it")
    assert nodes[2].admin.list_reassignments(None) == {("t", 0): ((3, 4, 1, 2), (3, 4), (1, 2))}
    assert leader_epoch_isr(zk, ("t", 0))[0] == 1  # nothing moves before the new replicas caught up
    in_sync(zk, ("t", 0), (1, 2, 3, 4))
    await wait_until(lambda: zk.topics["t"].replicas[0] == (3, 4), "the move to end")
    assert not zk.topics["t"].adding and not zk.topics["t"].removing
    leader, epoch, isr = leader_epoch_isr(zk, ("t", 0))
    assert (leader, isr) == (3, (3, 4)) and epoch == 1
    assert zk.topics["t"].replicas[1] == (2, 3)  # the other partition untouched
    await wait_until(lambda: nodes[2].admin.list_reassignments(None) == {}, "no reassignment listed")


async def test_cancel_reverts_to_the_original_replicas(zk: MemoryZooKeeper, start) -> None:
    nodes = {n.broker_id: n for n in await controller_of(start, 1, 2, 3)}
    await nodes[1].create("t", [[1, 2]])
    await nodes[2].admin.alter_reassignments({("t", 0): [3, 2]}, TIMEOUT_MS)
    in_sync(zk, ("t", 0), (1, 2, 3))  # 3 caught up, but the move is cancelled before it ends
    outcomes = await nodes[2].admin.alter_reassignments({("t", 0): None}, TIMEOUT_MS)
    assert outcomes == {("t", 0): (ErrorCode.NONE, None)}
    await wait_until(lambda: zk.topics["t"].replicas[0] == (2, 1) and zk.states[("t", 0)].isr == (1, 2),
                     "the original replicas back, 3 out of the ISR")
    assert not zk.topics["t"].adding and zk.states[("t", 0)].leader == 1


async def test_refused_reassignments(zk: MemoryZooKeeper, start) -> None:
    nodes = {n.broker_id: n for n in await controller_of(start, 1, 2, 3)}
    await nodes[1].create("t", [[1, 2]])
    for request, refusal in [
        ({("t", 0): None}, ErrorCode.NO_REASSIGNMENT_IN_PROGRESS),
        ({("t", 1): [1]}, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        ({("nope", 0): [1]}, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        ({("t", 0): [1, 1]}, ErrorCode.INVALID_REPLICA_ASSIGNMENT),
        ({("t", 0): []}, ErrorCode.INVALID_REPLICA_ASSIGNMENT),
        ({("t", 0): [1, 9]}, ErrorCode.INVALID_REPLICA_ASSIGNMENT),  # broker 9 is not registered
    ]:
        outcomes = await nodes[2].admin.alter_reassignments(request, TIMEOUT_MS)
        assert {key: code for key, (code, _) in outcomes.items()} == {key: refusal for key in request}
    assert zk.topics["t"].replicas == ((1, 2),) and zk.reassignments_version == -1


async def test_no_partitions_added_while_a_move_is_under_way(zk: MemoryZooKeeper, start) -> None:
    nodes = {n.broker_id: n for n in await controller_of(start, 1, 2, 3)}
    await nodes[1].create("t", [[1]])
    await nodes[1].admin.alter_reassignments({("t", 0): [2]}, TIMEOUT_MS)
    await wait_until(lambda: nodes[1].store.image.topics["t"].adding, "broker 1 to see the move")
    with pytest.raises(KafkaError) as refused:
        await nodes[1].admin.create_partitions("t", 2, None, validate_only=False, timeout_ms=TIMEOUT_MS)
    assert refused.value.code == ErrorCode.REASSIGNMENT_IN_PROGRESS


async def test_a_new_controller_carries_on_a_move_started_by_the_last(zk: MemoryZooKeeper, start) -> None:
    """The move lives in the topic's znode, not in the controller: a successor finishes it."""
    nodes = {n.broker_id: n for n in await controller_of(start, 1, 2, 3)}
    await nodes[2].create("t", [[2]])
    await nodes[2].admin.alter_reassignments({("t", 0): [3]}, TIMEOUT_MS)
    zk.expire(nodes[1].store)
    await wait_until(lambda: nodes[2].controller.active or nodes[3].controller.active, "another controller")
    in_sync(zk, ("t", 0), (2, 3))
    await wait_until(lambda: zk.topics["t"].replicas == ((3,),) and not zk.topics["t"].removing, "the move to end")
    assert leader_epoch_isr(zk, ("t", 0)) == (3, 1, (3,))
