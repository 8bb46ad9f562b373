"""The controller's decisions (election.py): pure functions of replicas, states and live brokers."""
from __future__ import annotations

import dataclasses
import uuid

from hypothesis import given
from hypothesis import strategies as st

from kbroker.cluster.election import initial_state, next_state, reconcile
from kbroker.cluster.image import NO_LEADER, BrokerRegistration, ClusterImage, PartitionState, TopicAssignment

REPLICAS = (3, 1, 2)
CONTROLLER_EPOCH = 7


def state(leader: int, leader_epoch: int, isr: tuple[int, ...], version: int = 4) -> PartitionState:
    return PartitionState(leader, leader_epoch, isr, controller_epoch=2, version=version)


def test_initial_state_first_live_replica_leads_alone_in_the_isr() -> None:
    assert initial_state(REPLICAS, {1, 2}, CONTROLLER_EPOCH) == PartitionState(1, 0, (1,), CONTROLLER_EPOCH)
    assert initial_state(REPLICAS, {1, 2, 3}, CONTROLLER_EPOCH).leader == 3


def test_no_initial_state_while_no_replica_is_alive() -> None:
    assert initial_state(REPLICAS, {4, 5}, CONTROLLER_EPOCH) is None


def test_dead_leader_replaced_by_first_live_isr_member_in_assignment_order() -> None:
    # 2 is first in the ISR as written, but 1 comes before it in the assignment.
    new = next_state(REPLICAS, state(3, 5, (3, 2, 1)), {1, 2}, CONTROLLER_EPOCH)
    assert new == PartitionState(1, 6, (2, 1), CONTROLLER_EPOCH, version=4)


def test_a_live_replica_outside_the_isr_is_not_elected() -> None:
    new = next_state(REPLICAS, state(3, 5, (3, 2)), {1, 2}, CONTROLLER_EPOCH)
    assert (new.leader, new.leader_epoch, new.isr) == (2, 6, (2,))


def test_no_live_isr_member_goes_offline_keeping_the_isr() -> None:
    new = next_state(REPLICAS, state(3, 5, (3, 2)), {1}, CONTROLLER_EPOCH)
    assert new == PartitionState(NO_LEADER, 6, (3, 2), CONTROLLER_EPOCH, version=4)


def test_offline_partition_stays_put_while_no_isr_member_returns() -> None:
    assert next_state(REPLICAS, state(NO_LEADER, 6, (3, 2)), {1}, CONTROLLER_EPOCH) is None


def test_dead_follower_leaves_the_isr_without_an_epoch_change() -> None:
    new = next_state(REPLICAS, state(3, 5, (3, 1, 2)), {3, 2}, CONTROLLER_EPOCH)
    assert new == PartitionState(3, 5, (3, 2), CONTROLLER_EPOCH, version=4)


def test_nothing_to_write_when_every_isr_member_is_alive() -> None:
    assert next_state(REPLICAS, state(3, 5, (3, 1)), {3, 1}, CONTROLLER_EPOCH) is None


def test_returning_leader_is_elected_again() -> None:
    offline = next_state(REPLICAS, state(3, 5, (3,)), set(), CONTROLLER_EPOCH)
    assert offline.leader == NO_LEADER and offline.isr == (3,)
    back = next_state(REPLICAS, offline, {3, 1, 2}, CONTROLLER_EPOCH)
    assert (back.leader, back.leader_epoch, back.isr) == (3, 7, (3,))


def test_unreadable_state_stays_offline() -> None:
    """zk_store reads a corrupt state znode as leader -1 with an empty ISR: no one may lead it."""
    assert next_state(REPLICAS, state(NO_LEADER, 0, ()), {1, 2, 3}, CONTROLLER_EPOCH) is None


# -- reconcile over an image ---------------------------------------------------------------------


def image(live: set[int], topics: dict[str, tuple[tuple[int, ...], ...]],
          states: dict[tuple[str, int], PartitionState], deleting: frozenset[str] = frozenset()) -> ClusterImage:
    return ClusterImage.of({b: BrokerRegistration(b, "localhost", 9000 + b) for b in live}, min(live, default=NO_LEADER),
                           frozenset(topics),
                           {name: TopicAssignment(name, uuid.uuid4(), replicas) for name, replicas in topics.items()},
                           {}, states, deleting)


def test_reconcile_writes_initial_states_and_elections_only_where_needed() -> None:
    current = image({1, 2}, {"new": ((1, 2), (2, 1)), "old": ((3, 1), (1, 2))},
                    {("old", 0): state(3, 1, (3, 1)), ("old", 1): state(1, 0, (1, 2))})
    assert reconcile(current, CONTROLLER_EPOCH) == {
        ("new", 0): PartitionState(1, 0, (1,), CONTROLLER_EPOCH),
        ("new", 1): PartitionState(2, 0, (2,), CONTROLLER_EPOCH),
        ("old", 0): PartitionState(1, 2, (1,), CONTROLLER_EPOCH, version=4),
    }


def test_reconcile_leaves_a_topic_being_deleted_alone() -> None:
    current = image({1}, {"doomed": ((2, 1),), "kept": ((2, 1),)},
                    {("doomed", 0): state(2, 0, (2, 1)), ("kept", 0): state(2, 0, (2, 1))},
                    deleting=frozenset({"doomed"}))
    assert set(reconcile(current, CONTROLLER_EPOCH)) == {("kept", 0)}


def test_reconcile_skips_a_partition_with_no_live_replica() -> None:
    assert reconcile(image({1}, {"t": ((2, 3),)}, {}), CONTROLLER_EPOCH) == {}


@st.composite
def clusters(draw: st.DrawFn) -> ClusterImage:
    brokers = list(range(1, 6))
    topics = {}
    states = {}
    for name in draw(st.lists(st.sampled_from("abc"), unique=True, max_size=3)):
        rf = draw(st.integers(1, 3))
        topics[name] = tuple(tuple(draw(st.permutations(brokers))[:rf]) for _ in range(draw(st.integers(1, 3))))
        for partition, replicas in enumerate(topics[name]):
            if draw(st.booleans()):
                isr = tuple(draw(st.lists(st.sampled_from(replicas), unique=True, max_size=rf)))
                leader = draw(st.sampled_from(isr)) if isr and draw(st.booleans()) else NO_LEADER
                states[(name, partition)] = state(leader, draw(st.integers(0, 9)), isr)
    live = set(draw(st.lists(st.sampled_from(brokers), unique=True)))
    return image(live, topics, states)


@given(clusters())
def test_reconcile_settles_in_one_round(current: ClusterImage) -> None:
    """After its writes, the controller finds nothing more to write; every leader is a live ISR member."""
    changes = reconcile(current, CONTROLLER_EPOCH)
    settled = dataclasses.replace(current, states={**current.states, **changes})
    assert reconcile(settled, CONTROLLER_EPOCH) == {}
    for key, new in changes.items():
        old = current.states.get(key)
        assert new.controller_epoch == CONTROLLER_EPOCH
        if new.leader != NO_LEADER:
            assert new.leader in current.brokers and new.leader in new.isr
            assert new.leader in current.topics[key[0]].replicas[key[1]]
        if old is not None:
            assert new.leader_epoch == old.leader_epoch + (new.leader != old.leader)
