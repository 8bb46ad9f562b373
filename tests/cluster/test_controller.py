"""The real `Controller` and `ClusterAdmin` on the in-memory store twin (memory_store.py).

Each `Node` is one broker's cluster side, wired as ClusterMember wires it: on every change the
controller, then the admin, look at the image. Losing a session is only recorded: what a broker
does then (resign, register again) is member.py's, and the tests here decide it.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kbroker.cluster import placement
from kbroker.cluster.admin import ClusterAdmin
from kbroker.cluster.controller import Controller
from kbroker.cluster.election import PREFERRED, UNCLEAN, reconcile
from kbroker.cluster.image import NO_LEADER, BrokerRegistration, PartitionState, TopicAssignment
from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.config import LogConfig
from tests.cluster.memory_store import MemoryMetaStore, MemoryZooKeeper
from tests.cluster.waiting import wait_until

TIMEOUT_MS = 5000


class Node:
    def __init__(self, zk: MemoryZooKeeper, broker_id: int, **controller_options: Any) -> None:
        self.broker_id = broker_id
        self.store = MemoryMetaStore(zk)
        self.controller = Controller(self.store, broker_id, **controller_options)
        self.admin = ClusterAdmin(self.store, LogConfig())
        self.sessions_lost = 0

    async def start(self) -> Node:
        await self.store.start()
        await self.store.watch(self._on_change, self._on_session_lost)
        await self.register()
        self._on_change()
        return self

    async def register(self) -> int:
        return await self.store.register_broker(BrokerRegistration(self.broker_id, "127.0.0.1", 9000 + self.broker_id))

    def _on_change(self) -> None:
        self.controller.on_change()
        self.admin.on_change()

    def _on_session_lost(self) -> None:
        self.sessions_lost += 1

    async def close(self) -> None:
        await self.controller.close()
        await self.store.close()

    async def create(self, name: str, replicas: list[list[int]]) -> None:
        await self.admin.create_topic(name, len(replicas), len(replicas[0]), replicas, {},
                                      validate_only=False, timeout_ms=TIMEOUT_MS)


@pytest.fixture
def zk() -> MemoryZooKeeper:
    return MemoryZooKeeper()


@pytest.fixture
async def start(zk: MemoryZooKeeper) -> AsyncIterator[Callable[[int], Awaitable[Node]]]:
    nodes: list[Node] = []

    async def start_node(broker_id: int) -> Node:
        node = await Node(zk, broker_id).start()
        nodes.append(node)
        return node

    yield start_node
    for node in nodes:
        await node.close()


async def controller_of(start: Callable[[int], Awaitable[Node]], *broker_ids: int) -> list[Node]:
    """Start brokers in order, the first elected controller before the others start; each sees all."""
    first = await start(broker_ids[0])
    await wait_until(lambda: first.controller.active, f"broker {first.broker_id} to be the controller")
    nodes = [first] + [await start(b) for b in broker_ids[1:]]
    await wait_until(lambda: all(n.store.image.brokers.keys() == set(broker_ids) for n in nodes), "every registration")
    return nodes


def leader_epoch_isr(zk: MemoryZooKeeper, key: tuple[str, int]) -> tuple[int, int, tuple[int, ...]]:
    state = zk.states[key]
    return state.leader, state.leader_epoch, state.isr


def in_sync(zk: MemoryZooKeeper, key: tuple[str, int], isr: tuple[int, ...]) -> None:
    """The followers caught up: every replica in the ISR (here written by hand)."""
    current = zk.states[key]
    zk.set_state(key, PartitionState(current.leader, current.leader_epoch, isr, current.controller_epoch))


async def test_elects_itself_when_there_is_no_controller(zk: MemoryZooKeeper, start) -> None:
    node = await start(1)
    await wait_until(lambda: node.controller.active, "broker 1 to be the controller")
    assert (node.controller.epoch, zk.controller[0], zk.controller_epoch) == (1, 1, 1)


async def test_another_broker_takes_over_with_the_next_epoch(zk: MemoryZooKeeper, start) -> None:
    first, second = await controller_of(start, 1, 2)
    assert not second.controller.active
    zk.expire(first.store)
    await wait_until(lambda: second.controller.active, "broker 2 to take over")
    assert second.controller.epoch == 2 and zk.controller[0] == 2
    assert (first.sessions_lost, second.sessions_lost) == (1, 0)


async def test_writes_initial_states_for_a_new_topic(zk: MemoryZooKeeper, start) -> None:
    controller, other, _ = await controller_of(start, 1, 2, 3)
    assignment = await other.admin.create_topic("orders", 6, 2, None, {}, validate_only=False, timeout_ms=TIMEOUT_MS)
    for partition, replicas in enumerate(assignment.replicas):
        assert zk.states[("orders", partition)] == PartitionState(
            replicas[0], 0, (replicas[0],), controller.controller.epoch, version=0)
    assert other.store.image.fully_led("orders")


async def test_a_partition_waits_for_one_of_its_replicas_to_be_alive(zk: MemoryZooKeeper, start) -> None:
    controller, third = await controller_of(start, 1, 3)
    zk.expire(third.store)  # after the assignment was made, before the controller saw it
    await controller.store.create_topic(TopicAssignment("later", uuid.uuid4(), ((3,),)), {})
    await controller.create("now", [[1]])  # the controller has seen "later" too by then
    assert ("later", 0) not in zk.states
    await third.register()
    await wait_until(lambda: ("later", 0) in zk.states, "the partition's first state")
    assert zk.states[("later", 0)].leader == 3


async def test_elects_the_next_isr_member_when_the_leader_expires(zk: MemoryZooKeeper, start) -> None:
    nodes = {n.broker_id: n for n in await controller_of(start, 1, 2, 3)}
    await nodes[1].create("t", [[2, 3, 1]])
    in_sync(zk, ("t", 0), (2, 3, 1))
    zk.expire(nodes[2].store)
    await wait_until(lambda: zk.states[("t", 0)].leader == 3, "broker 3 to lead t-0")
    assert leader_epoch_isr(zk, ("t", 0)) == (3, 1, (3, 1))
    zk.expire(nodes[3].store)
    await wait_until(lambda: zk.states[("t", 0)].leader == 1, "broker 1 to lead t-0")
    assert leader_epoch_isr(zk, ("t", 0)) == (1, 2, (1,))


@pytest.mark.parametrize("leaving", (1, 2), ids=("the-controller", "another-broker"))
async def test_a_broker_leaving_in_a_controlled_shutdown_hands_its_partitions_over(zk: MemoryZooKeeper, start,
                                                                                  leaving: int) -> None:
    """Its registration goes while its session lives (member.py's controlled shutdown): the
    controller, even when it is that broker, moves its partitions to the ISR at once."""
    nodes = {n.broker_id: n for n in await controller_of(start, 1, 2, 3)}
    await nodes[1].create("t", [[leaving, 3, 6 - leaving - 3]])
    in_sync(zk, ("t", 0), tuple(zk.topics["t"].replicas[0]))
    await nodes[leaving].store.unregister_broker(leaving)
    await wait_until(lambda: zk.states[("t", 0)].leader == 3, "broker 3 to lead t-0")
    assert leaving not in zk.states[("t", 0)].isr
    assert nodes[leaving].sessions_lost == 0 and zk.controller[0] == 1  # nothing expired, nobody took over


async def test_offline_partition_led_again_by_its_returning_leader(zk: MemoryZooKeeper, start) -> None:
    controller, leader = await controller_of(start, 1, 2)
    await controller.create("t", [[2, 1]])
    zk.expire(leader.store)
    await wait_until(lambda: zk.states[("t", 0)].leader == NO_LEADER, "t-0 to go offline")
    assert leader_epoch_isr(zk, ("t", 0)) == (NO_LEADER, 1, (2,))  # 1 never joined the ISR: no unclean election
    await leader.register()
    await wait_until(lambda: zk.states[("t", 0)].leader == 2, "broker 2 to lead t-0 again")
    assert leader_epoch_isr(zk, ("t", 0)) == (2, 2, (2,))


async def test_completes_a_topic_deletion(zk: MemoryZooKeeper, start) -> None:
    _, other = await controller_of(start, 1, 2)
    await other.admin.create_topic("doomed", 3, 2, None, {"retention.ms": "1000"}, validate_only=False,
                                   timeout_ms=TIMEOUT_MS)
    await other.create("kept", [[1, 2]])
    await other.admin.delete_topic("doomed", TIMEOUT_MS)
    assert "doomed" not in zk.topics and "doomed" not in zk.configs
    assert "doomed" not in zk.deleting
    assert {key[0] for key in zk.states} == {"kept"}


async def test_resigns_when_another_broker_is_controller(zk: MemoryZooKeeper, start) -> None:
    first, second = await controller_of(start, 1, 2)
    first.store.hold()  # broker 1's watches lag: it does not see its /controller vanish
    zk.expire(first.store)
    await wait_until(lambda: second.controller.active, "broker 2 to take over")
    assert first.controller.active
    first.store.release()
    await wait_until(lambda: not first.controller.active, "broker 1 to resign")
    assert zk.controller[0] == 2


async def test_a_deposed_controllers_writes_are_refused(zk: MemoryZooKeeper, start, caplog) -> None:
    caplog.set_level(logging.INFO, logger="kbroker.controller")
    deposed, leader = await controller_of(start, 1, 3)
    successor = MemoryMetaStore(zk)  # wins the next election, and does nothing with it
    await successor.watch(lambda: None, lambda: None)
    await deposed.create("t", [[3, 1]])
    in_sync(zk, ("t", 0), (3, 1))
    await wait_until(lambda: deposed.store.image.states[("t", 0)].isr == (3, 1), "the ISR in broker 1's image")
    before = zk.states[("t", 0)]
    deposed.store.hold()
    zk.expire(leader.store)
    zk.expire(deposed.store)
    assert await successor.elect_controller(2) == 2
    deposed.store.release(1)  # broker 1 sees broker 3 gone, not yet its own /controller
    await wait_until(lambda: "controller write refused" in caplog.text, "broker 1's write to be refused")
    assert zk.states[("t", 0)] == before  # only the controller epoch stood in its way
    await successor.close()


async def test_a_stale_state_version_does_not_block_other_partitions(zk: MemoryZooKeeper, start) -> None:
    controller, _, leader = await controller_of(start, 1, 2, 3)
    await controller.create("t", [[3, 2], [3, 2]])
    for partition in (0, 1):
        in_sync(zk, ("t", partition), (3, 2))
    await wait_until(lambda: controller.store.image.states[("t", 1)].isr == (3, 2), "the ISR in the image")
    controller.store.hold()
    zk.expire(leader.store)
    stale = zk.states[("t", 0)]
    zk.set_state(("t", 0), stale)  # written again meanwhile: its version moves on
    controller.store.release(1)  # the controller sees broker 3 dead, t-0 at its old version
    await wait_until(lambda: zk.states[("t", 1)].leader == 2, "t-1 to be led by broker 2")
    assert zk.states[("t", 0)].leader == 3
    controller.store.release()
    await wait_until(lambda: zk.states[("t", 0)].leader == 2, "t-0 to be led by broker 2")


async def test_added_partitions_get_leaders(zk: MemoryZooKeeper, start) -> None:
    controller, other = await controller_of(start, 1, 2)
    await controller.create("t", [[1, 2]])
    await other.admin.create_partitions("t", 3, None, validate_only=False, timeout_ms=TIMEOUT_MS)
    assert zk.topics["t"].partition_count == 3
    assert all(zk.states[("t", p)].leader in (1, 2) for p in range(3))


async def test_added_partitions_continue_the_topics_round_robin(zk: MemoryZooKeeper, start,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """As Kafka's AdminZkClient.createPartitions: start (and shift) where partition 0's leader sits,
    not at random, so that the leaders stay spread over the brokers as the topic grows."""
    drawn = iter([2, 2, 0, 0])  # the topic's random start and shift, then what a growth would draw
    monkeypatch.setattr(placement.random, "randrange", lambda n: next(drawn))
    controller, _, _ = await controller_of(start, 1, 2, 3)
    await controller.admin.create_topic("t", 4, 2, None, {}, validate_only=False, timeout_ms=TIMEOUT_MS)
    await controller.admin.create_partitions("t", 6, None, validate_only=False, timeout_ms=TIMEOUT_MS)
    assert [replicas[0] for replicas in zk.topics["t"].replicas] == [3, 1, 2, 3, 1, 2]


async def test_added_partitions_keep_the_topics_replication_factor(zk: MemoryZooKeeper, start) -> None:
    controller, _ = await controller_of(start, 1, 2)
    await controller.create("t", [[1], [2]])
    with pytest.raises(KafkaError) as refused:
        await controller.admin.create_partitions("t", 4, [[1, 2], [2, 1]], validate_only=False, timeout_ms=TIMEOUT_MS)
    assert refused.value.code == ErrorCode.INVALID_REPLICA_ASSIGNMENT
    assert refused.value.message == ("Inconsistent replication factor between partitions, partition 0 has 1 "
                                     "while partitions [2, 3] have replication factors [2, 2], respectively.")
    assert zk.topics["t"].partition_count == 2


async def test_adding_partitions_to_a_topic_changed_meanwhile_is_refused(zk: MemoryZooKeeper, start) -> None:
    controller, other = await controller_of(start, 1, 2)
    await controller.create("t", [[1, 2]])
    other.store.hold()  # broker 2 still sees the topic with one partition
    await controller.admin.create_partitions("t", 2, None, validate_only=False, timeout_ms=TIMEOUT_MS)
    with pytest.raises(KafkaError) as refused:
        await other.admin.create_partitions("t", 2, [[2, 1]], validate_only=False, timeout_ms=TIMEOUT_MS)
    assert refused.value.code == ErrorCode.REASSIGNMENT_IN_PROGRESS
    assert zk.topics["t"].version == 1  # as the first request left it


# -- leader elections (ElectLeaders) and the auto rebalance ----------------------------------------


async def leader_moved_away(zk: MemoryZooKeeper, nodes: dict[int, Node], *keys: tuple[str, int]) -> None:
    """The preferred replica (broker 2) expires and returns, then catches up: broker 3 leads."""
    for key in keys:
        in_sync(zk, key, (2, 3, 1))
    zk.expire(nodes[2].store)
    await wait_until(lambda: all(zk.states[key].leader == 3 for key in keys), "broker 3 to lead")
    await nodes[2].register()
    await wait_until(lambda: 2 in zk.brokers, "broker 2 back")
    for key in keys:
        in_sync(zk, key, (3, 1, 2))
    await wait_until(lambda: all(n.store.image.states[key].isr == (3, 1, 2) for n in nodes.values() for key in keys),
                     "the ISR")


async def test_preferred_election_asked_of_any_broker_moves_leadership_back(zk: MemoryZooKeeper, start) -> None:
    nodes = {n.broker_id: n for n in await controller_of(start, 1, 2, 3)}
    await nodes[1].create("t", [[2, 3, 1], [3, 1, 2]])
    await leader_moved_away(zk, nodes, ("t", 0))
    epoch = zk.states[("t", 0)].leader_epoch
    outcomes = await nodes[3].admin.elect_leaders(PREFERRED, [("t", 0), ("t", 1), ("t", 2), ("nope", 0)], TIMEOUT_MS)
    assert {key: code for key, (code, _) in outcomes.items()} == {
        ("t", 0): ErrorCode.NONE, ("t", 1): ErrorCode.ELECTION_NOT_NEEDED,
        ("t", 2): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ("nope", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
    assert leader_epoch_isr(zk, ("t", 0)) == (2, epoch + 1, (3, 1, 2))
    await wait_until(lambda: zk.elections_version == -1, "the controller to remove the elections znode")
    again = await nodes[3].admin.elect_leaders(PREFERRED, None, TIMEOUT_MS)
    assert {key: code for key, (code, _) in again.items()} == {
        ("t", 0): ErrorCode.ELECTION_NOT_NEEDED, ("t", 1): ErrorCode.ELECTION_NOT_NEEDED}


async def test_preferred_election_refused_while_the_preferred_replica_is_not_in_sync(zk: MemoryZooKeeper,
                                                                                     start) -> None:
    nodes = {n.broker_id: n for n in await controller_of(start, 1, 2, 3)}
    await nodes[1].create("t", [[2, 3, 1]])
    in_sync(zk, ("t", 0), (2, 3, 1))
    zk.expire(nodes[2].store)
    await wait_until(lambda: zk.states[("t", 0)].leader == 3, "broker 3 to lead")
    outcomes = await nodes[1].admin.elect_leaders(PREFERRED, [("t", 0)], TIMEOUT_MS)
    assert outcomes[("t", 0)][0] == ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
    await nodes[2].register()  # back, not yet caught up: still outside the ISR
    await wait_until(lambda: 2 in nodes[1].store.image.brokers, "broker 2 in the image")
    outcomes = await nodes[1].admin.elect_leaders(PREFERRED, [("t", 0)], TIMEOUT_MS)
    assert outcomes[("t", 0)][0] == ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
    assert zk.states[("t", 0)].leader == 3 and zk.elections_version == -1  # nothing was asked of the controller


async def test_unclean_election_brings_an_offline_partition_back(zk: MemoryZooKeeper, start) -> None:
    controller, leader = await controller_of(start, 1, 2)
    await controller.create("t", [[2, 1]])
    zk.expire(leader.store)
    await wait_until(lambda: zk.states[("t", 0)].leader == NO_LEADER, "t-0 to go offline")
    assert (await controller.admin.elect_leaders(PREFERRED, [("t", 0)], TIMEOUT_MS))[("t", 0)][0] == \
        ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE
    outcomes = await controller.admin.elect_leaders(UNCLEAN, [("t", 0)], TIMEOUT_MS)
    assert outcomes[("t", 0)] == (ErrorCode.NONE, None)
    assert leader_epoch_isr(zk, ("t", 0)) == (1, 2, (1,))
    again = await controller.admin.elect_leaders(UNCLEAN, [("t", 0)], TIMEOUT_MS)
    assert again[("t", 0)][0] == ErrorCode.ELECTION_NOT_NEEDED


async def test_an_election_the_controller_does_not_hold_in_time_times_out(zk: MemoryZooKeeper, start) -> None:
    nodes = {n.broker_id: n for n in await controller_of(start, 1, 2, 3)}
    await nodes[2].create("t", [[2, 3, 1]])
    await leader_moved_away(zk, nodes, ("t", 0))
    nodes[1].store.hold()  # the controller does not hear of the request
    outcomes = await nodes[3].admin.elect_leaders(PREFERRED, [("t", 0)], 200)
    assert outcomes[("t", 0)][0] == ErrorCode.REQUEST_TIMED_OUT
    assert zk.elections == {("t", 0): PREFERRED}  # still asked for: the controller acts once it hears
    nodes[1].store.release()
    await wait_until(lambda: zk.states[("t", 0)].leader == 2 and zk.elections_version == -1, "the late election")


async def test_requests_from_two_brokers_merge_into_one_znode(zk: MemoryZooKeeper, start) -> None:
    nodes = {n.broker_id: n for n in await controller_of(start, 1, 2, 3)}
    await nodes[2].create("t", [[2, 3, 1]])
    await nodes[2].create("u", [[2, 3, 1]])
    await leader_moved_away(zk, nodes, ("t", 0), ("u", 0))
    nodes[1].store.hold()
    first = asyncio.create_task(nodes[2].admin.elect_leaders(PREFERRED, [("t", 0)], TIMEOUT_MS))
    second = asyncio.create_task(nodes[3].admin.elect_leaders(PREFERRED, [("u", 0)], TIMEOUT_MS))
    await wait_until(lambda: len(zk.elections) == 2, "both elections in the znode")
    nodes[1].store.release()
    assert (await first)[("t", 0)][0] == ErrorCode.NONE and (await second)[("u", 0)][0] == ErrorCode.NONE
    assert zk.states[("t", 0)].leader == zk.states[("u", 0)].leader == 2


async def test_auto_rebalance_moves_leadership_back_by_itself(zk: MemoryZooKeeper) -> None:
    nodes = {b: await Node(zk, b, auto_rebalance=True, rebalance_interval_s=0.2, imbalance_percentage=10).start()
             for b in (1, 2, 3)}
    try:
        await wait_until(lambda: nodes[1].controller.active, "broker 1 to be the controller")
        await wait_until(lambda: all(len(n.store.image.brokers) == 3 for n in nodes.values()), "every registration")
        await nodes[1].create("t", [[2, 3, 1]])
        await leader_moved_away(zk, nodes, ("t", 0))
        await wait_until(lambda: zk.states[("t", 0)].leader == 2, "broker 2 to lead again, unasked")
        assert zk.elections_version == -1
    finally:
        for node in nodes.values():
            await node.close()


async def test_no_auto_rebalance_when_disabled(zk: MemoryZooKeeper) -> None:
    nodes = {b: await Node(zk, b, auto_rebalance=False, rebalance_interval_s=0.05).start() for b in (1, 2, 3)}
    try:
        await wait_until(lambda: nodes[1].controller.active, "broker 1 to be the controller")
        await wait_until(lambda: all(len(n.store.image.brokers) == 3 for n in nodes.values()), "every registration")
        await nodes[1].create("t", [[2, 3, 1]])
        await leader_moved_away(zk, nodes, ("t", 0))
        await asyncio.sleep(0.3)  # six intervals: a rebalance, were it on, would have run
        assert zk.states[("t", 0)].leader == 3
    finally:
        for node in nodes.values():
            await node.close()


# -- random failures -----------------------------------------------------------------------------

BROKERS = (1, 2, 3, 4)


async def run_failures(events: list[tuple[str, int]]) -> None:
    zk = MemoryZooKeeper()
    nodes = {b: await Node(zk, b).start() for b in BROKERS}
    try:
        await wait_until(lambda: zk.controller is not None and len(zk.brokers) == len(BROKERS), "the cluster")
        await wait_until(lambda: all(len(n.store.image.brokers) == len(BROKERS) for n in nodes.values()), "images")
        assignment = await nodes[1].admin.create_topic("t", 8, 3, None, {}, validate_only=False,
                                                       timeout_ms=TIMEOUT_MS)
        for partition, replicas in enumerate(assignment.replicas):
            in_sync(zk, ("t", partition), replicas)
        epochs = {key: state.leader_epoch for key, state in zk.states.items()}
        for event, broker in events:
            if event == "expire" and broker in zk.brokers:
                zk.expire(nodes[broker].store)
            elif event == "return" and broker not in zk.brokers:
                await nodes[broker].register()
            await wait_until(lambda: zk.controller is not None and not reconcile(zk.image(), zk.controller_epoch),
                             f"the controller to settle after {event} {broker}")
            for key, state in zk.states.items():
                replicas = assignment.replicas[key[1]]
                assert set(state.isr) <= set(replicas) and state.isr, state
                if state.leader == NO_LEADER:
                    assert not set(state.isr) & zk.brokers.keys(), state  # no live ISR member was passed over
                else:
                    assert state.leader in zk.brokers and state.leader in state.isr, state
                    assert set(state.isr) <= zk.brokers.keys(), state
                assert state.leader_epoch >= epochs[key], (key, state, epochs[key])
                epochs[key] = state.leader_epoch
    finally:
        for node in nodes.values():
            await node.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["expire", "return"]), st.sampled_from(BROKERS)), max_size=12))
def test_random_failures_settle_with_live_leaders_from_the_isr(events: list[tuple[str, int]]) -> None:
    """Brokers (the controller among them) expire and come back in any order: the controllers,
    taking over from one another, always settle on leaders that are alive and in sync."""
    asyncio.run(run_failures(events))
