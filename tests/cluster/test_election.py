"""The controller's decisions (election.py): pure functions of replicas, states and live brokers."""
from __future__ import annotations

import dataclasses
import uuid

from hypothesis import given
from hypothesis import strategies as st

from kbroker.cluster.election import (
    PREFERRED,
    UNCLEAN,
    elect,
    initial_state,
    next_state,
    preferred_election,
    rebalance,
    rebalance_due,
    reconcile,
    requested_elections,
    unclean_election,
)
from kbroker.cluster.image import NO_LEADER, BrokerRegistration, ClusterImage, PartitionState, TopicAssignment
from kbroker.errors import ErrorCode

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
          states: dict[tuple[str, int], PartitionState], deleting: frozenset[str] = frozenset(),
          elections: dict[tuple[str, int], int] | None = None) -> ClusterImage:
    return ClusterImage.of({b: BrokerRegistration(b, "localhost", 9000 + b) for b in live}, min(live, default=NO_LEADER),
                           frozenset(topics),
                           {name: TopicAssignment(name, uuid.uuid4(), replicas) for name, replicas in topics.items()},
                           {}, states, deleting, elections, 0 if elections else -1)


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


# -- elections asked for (ElectLeaders) ------------------------------------------------------------


def test_preferred_election_moves_leadership_to_the_first_replica() -> None:
    new = preferred_election(REPLICAS, state(1, 5, (1, 2, 3)), {1, 2, 3}, CONTROLLER_EPOCH)
    assert new == PartitionState(3, 6, (1, 2, 3), CONTROLLER_EPOCH, version=4)


def test_preferred_election_not_needed_when_the_preferred_replica_leads() -> None:
    assert preferred_election(REPLICAS, state(3, 5, (3, 1)), {1, 2, 3}, CONTROLLER_EPOCH) == \
        ErrorCode.ELECTION_NOT_NEEDED


def test_preferred_replica_dead_or_out_of_the_isr_cannot_lead() -> None:
    assert preferred_election(REPLICAS, state(1, 5, (1, 2, 3)), {1, 2}, CONTROLLER_EPOCH) == \
        ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
    assert preferred_election(REPLICAS, state(1, 5, (1, 2)), {1, 2, 3}, CONTROLLER_EPOCH) == \
        ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
    # it "leads" in a state written before it died: still not available
    assert preferred_election(REPLICAS, state(3, 5, (3,)), {1, 2}, CONTROLLER_EPOCH) == \
        ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE


def test_preferred_election_brings_an_offline_partition_back() -> None:
    new = preferred_election(REPLICAS, state(NO_LEADER, 5, (3, 2)), {3}, CONTROLLER_EPOCH)
    assert (new.leader, new.leader_epoch, new.isr) == (3, 6, (3,))


def test_unclean_election_elects_a_live_replica_outside_the_isr_alone() -> None:
    new = unclean_election(REPLICAS, state(NO_LEADER, 5, (3,)), {1, 2}, CONTROLLER_EPOCH)
    assert new == PartitionState(1, 6, (1,), CONTROLLER_EPOCH, version=4)


def test_unclean_election_prefers_a_live_isr_member() -> None:
    new = unclean_election(REPLICAS, state(NO_LEADER, 5, (3, 2)), {1, 2}, CONTROLLER_EPOCH)
    assert (new.leader, new.isr) == (2, (2,))


def test_unclean_election_not_needed_with_a_live_leader_and_impossible_without_live_replicas() -> None:
    assert unclean_election(REPLICAS, state(2, 5, (2,)), {2}, CONTROLLER_EPOCH) == ErrorCode.ELECTION_NOT_NEEDED
    assert unclean_election(REPLICAS, state(NO_LEADER, 5, (3,)), {4}, CONTROLLER_EPOCH) == \
        ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE
    # a leader in the state that is dead counts as none
    new = unclean_election(REPLICAS, state(3, 5, (3,)), {2}, CONTROLLER_EPOCH)
    assert (new.leader, new.isr) == (2, (2,))


def test_elect_unknown_topic_partition_or_topic_being_deleted() -> None:
    current = image({1, 2}, {"t": ((1, 2),), "doomed": ((1, 2),)},
                    {("t", 0): state(2, 0, (1, 2)), ("doomed", 0): state(2, 0, (1, 2))},
                    deleting=frozenset({"doomed"}))
    for topic, partition in (("nope", 0), ("t", 1), ("t", -1), ("doomed", 0)):
        assert elect(PREFERRED, current, topic, partition, CONTROLLER_EPOCH) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert elect(PREFERRED, current, "t", 0, CONTROLLER_EPOCH).leader == 1
    assert elect(UNCLEAN, current, "t", 0, CONTROLLER_EPOCH) == ErrorCode.ELECTION_NOT_NEEDED


def test_requested_elections_only_the_possible_ones() -> None:
    current = image({1, 2}, {"t": ((1, 2), (2, 1), (3, 1))},
                    {("t", 0): state(2, 0, (1, 2)), ("t", 1): state(2, 0, (2, 1)), ("t", 2): state(1, 0, (1,))},
                    elections={("t", 0): PREFERRED, ("t", 1): PREFERRED, ("t", 2): PREFERRED, ("u", 0): UNCLEAN})
    assert requested_elections(current, CONTROLLER_EPOCH) == {
        ("t", 0): PartitionState(1, 1, (1, 2), CONTROLLER_EPOCH, version=4)}


# -- auto leader rebalance -------------------------------------------------------------------------


def test_rebalance_moves_leadership_back_when_a_broker_leads_too_few_of_its_partitions() -> None:
    # broker 1 is the preferred replica of 4 partitions and leads 3: 25% elsewhere > 10%.
    topics = {"t": ((1, 2), (1, 2), (1, 2), (1, 2), (2, 1))}
    states = {("t", p): state(1, 0, (1, 2)) for p in range(3)}
    states[("t", 3)] = state(2, 3, (1, 2))
    states[("t", 4)] = state(2, 0, (2, 1))
    assert rebalance(image({1, 2}, topics, states), CONTROLLER_EPOCH, 10) == {
        ("t", 3): PartitionState(1, 4, (1, 2), CONTROLLER_EPOCH, version=4)}
    assert rebalance(image({1, 2}, topics, states), CONTROLLER_EPOCH, 25) == {}  # not above 25%


def test_rebalance_skips_a_preferred_replica_not_alive_or_not_in_sync() -> None:
    topics = {"t": ((1, 2), (1, 2))}
    states = {("t", 0): state(2, 1, (2,)), ("t", 1): state(2, 1, (2, 1))}
    assert set(rebalance(image({1, 2}, topics, states), CONTROLLER_EPOCH, 10)) == {("t", 1)}
    assert rebalance(image({2}, topics, states), CONTROLLER_EPOCH, 10) == {}


def test_rebalance_leaves_a_topic_being_deleted_alone() -> None:
    current = image({1, 2}, {"doomed": ((1, 2),)}, {("doomed", 0): state(2, 1, (2, 1))},
                    deleting=frozenset({"doomed"}))
    assert rebalance(current, CONTROLLER_EPOCH, 0) == {}


def test_rebalance_is_due_once_an_interval_has_passed() -> None:
    assert not rebalance_due(now=1299.9, last_check=1000.0, interval_s=300)
    assert rebalance_due(now=1300.0, last_check=1000.0, interval_s=300)


@given(clusters(), st.integers(0, 100))
def test_rebalance_only_elects_live_in_sync_preferred_replicas(current: ClusterImage, percentage: int) -> None:
    for (topic, partition), new in rebalance(current, CONTROLLER_EPOCH, percentage).items():
        old = current.states[(topic, partition)]
        preferred = current.topics[topic].replicas[partition][0]
        assert new.leader == preferred != old.leader
        assert preferred in current.brokers and preferred in old.isr
        assert new.leader_epoch == old.leader_epoch + 1 and new.version == old.version
