"""ZkMetaStore against a real ZooKeeper (the session's `zookeeper` fixture), each test in a chroot.

The tests of the MetaStore contract (`cluster`) run on the in-memory twin as well, which keeps it
faithful. A raw kazoo client plays the operator who corrupts znodes. A session is expired the way
ZooKeeper's own tests do it: a second client attaches to it (same id and password) and closes it.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import ConnectionLoss
from kazoo.protocol.connection import _CONNECTION_DROP

from kbroker.cluster.image import NO_LEADER, BrokerRegistration, PartitionState, TopicAssignment
from kbroker.cluster.metastore import AclEntry, AclResource, BrokerIdInUse, MetaStore, MetaStoreError, StaleWrite
from kbroker.cluster.zk_store import ZkMetaStore
from tests.cluster.memory_store import MemoryMetaStore, MemoryZooKeeper
from tests.cluster.waiting import wait_until
from tests.zookeeper_process import ZooKeeperProcess

pytestmark = pytest.mark.timeout(60)

WAIT_S = 15.0
_chroots = itertools.count()


@pytest.fixture
def chroot() -> str:
    return f"/zk-store-{next(_chroots)}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def connect(zookeeper: ZooKeeperProcess, chroot: str) -> str:
    return zookeeper.connect + chroot


@pytest.fixture
def raw(zookeeper: ZooKeeperProcess, chroot: str) -> Iterator[KazooClient]:
    client = KazooClient(hosts=zookeeper.connect)
    client.start(10)
    client.ensure_path(chroot)
    client.chroot = chroot
    yield client
    client.stop()
    client.close()


class Watched:
    """A started store following the cluster; counts the changes it reported and the sessions it lost."""

    def __init__(self, store: MetaStore) -> None:
        self.store = store
        self.changes = 0
        self.sessions_lost = 0

    def changed(self) -> None:
        self.changes += 1

    def session_lost(self) -> None:
        self.sessions_lost += 1


class Cluster:
    """Stores on one cluster's metadata: ZooKeeper's (under `connect`) or the twin's (`memory`)."""

    def __init__(self, connect: str | None = None) -> None:
        self._connect = connect
        self._memory = MemoryZooKeeper() if connect is None else None
        self._opened: list[MetaStore] = []

    async def open_store(self) -> Watched:
        if self._connect is None:
            store = MemoryMetaStore(self._memory)
        else:
            store = ZkMetaStore(self._connect, session_timeout_ms=6000, connection_timeout_ms=10000)
        self._opened.append(store)
        await store.start()
        watched = Watched(store)
        await store.watch(watched.changed, watched.session_lost)
        return watched

    def expire(self, watched: Watched) -> None:
        if self._connect is None:
            self._memory.expire(watched.store)
            return
        session_id, password = watched.store._client.client_id  # the only way in: the session is the store's
        intruder = KazooClient(hosts=self._connect, client_id=(session_id, password))
        intruder.start(10)
        intruder.stop()
        intruder.close()

    async def close(self) -> None:
        for store in self._opened:
            await store.close()


@pytest.fixture(params=["zookeeper", "memory"])
async def cluster(request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    opened = Cluster(request.getfixturevalue("connect") if request.param == "zookeeper" else None)
    yield opened
    await opened.close()


@pytest.fixture
async def zk_cluster(connect: str) -> AsyncIterator[Cluster]:
    opened = Cluster(connect)
    yield opened
    await opened.close()


def registration(broker_id: int) -> BrokerRegistration:
    return BrokerRegistration(broker_id, "127.0.0.1", 9000 + broker_id)


def topic(name: str, replicas: tuple[tuple[int, ...], ...]) -> TopicAssignment:
    return TopicAssignment(name, uuid.uuid4(), replicas)


def first_state(leader: int, controller_epoch: int) -> PartitionState:
    return PartitionState(leader, 0, (leader,), controller_epoch)


# -- the MetaStore contract, on ZooKeeper and on the twin ------------------------------------------


async def test_cluster_id_is_created_once_then_read(cluster: Cluster) -> None:
    first, second = await cluster.open_store(), await cluster.open_store()
    assert await first.store.cluster_id("first-id") == "first-id"
    assert await second.store.cluster_id("second-id") == "first-id"
    await first.store.close()
    restarted = await cluster.open_store()
    assert await restarted.store.cluster_id("third-id") == "first-id"


async def test_a_broker_id_registered_by_another_session_is_refused(cluster: Cluster) -> None:
    first, second = await cluster.open_store(), await cluster.open_store()
    epoch = await first.store.register_broker(registration(1))
    assert await first.store.register_broker(registration(1)) == epoch  # the same session: already ours
    with pytest.raises(BrokerIdInUse):
        await second.store.register_broker(registration(1))
    assert await first.store.confirm_session(1) and not await second.store.confirm_session(1)
    await first.store.close()  # the registration goes with the session
    assert await second.store.register_broker(registration(1)) > epoch
    await wait_until(lambda: first.sessions_lost == 1, "the closed session reported lost", WAIT_S)
    assert second.sessions_lost == 0


async def test_one_store_wins_the_election_and_the_epoch_grows_on_each_takeover(cluster: Cluster) -> None:
    first, second = await cluster.open_store(), await cluster.open_store()
    won = await asyncio.gather(first.store.elect_controller(1), second.store.elect_controller(2))
    assert sorted(won, key=lambda e: e is None) == [1, None]
    (winner, winner_id), (loser, loser_id) = ((first, 1), (second, 2)) if won[0] == 1 else ((second, 2), (first, 1))
    await wait_until(lambda: loser.store.image.controller_id == winner_id, "the winner in the image", WAIT_S)
    await winner.store.close()
    await wait_until(lambda: loser.store.image.controller_id == NO_LEADER, "/controller to vanish", WAIT_S)
    assert await loser.store.elect_controller(loser_id) == 2
    third = await cluster.open_store()
    assert await third.store.elect_controller(3) is None
    await loser.store.close()
    await wait_until(lambda: third.store.image.controller_id == NO_LEADER, "/controller to vanish", WAIT_S)
    assert await third.store.elect_controller(3) == 3


async def test_a_deposed_controllers_writes_are_refused(cluster: Cluster) -> None:
    deposed, successor = await cluster.open_store(), await cluster.open_store()
    assert await deposed.store.elect_controller(1) == 1
    await deposed.store.create_topic(topic("t", ((1,), (1,))), {})
    await wait_until(lambda: "t" in deposed.store.image.topics, "the topic in the image", WAIT_S)
    assert await deposed.store.write_partition_states({("t", 0): first_state(1, 1)}, 1) == {("t", 0): 0}
    cluster.expire(deposed)
    await wait_until(lambda: successor.store.image.controller_id == NO_LEADER, "/controller to vanish", WAIT_S)
    assert await successor.store.elect_controller(2) == 2
    # Back with a new session, its watches renewed: the zombie is connected and writes with its old epoch.
    await wait_until(lambda: deposed.store.image.controller_id == 2, "the new controller in its image", WAIT_S)
    assert deposed.sessions_lost == 1
    offline = PartitionState(NO_LEADER, 1, (1,), 1, version=0)
    with pytest.raises(StaleWrite):  # "gone": a topic its stale image could still show, deleted meanwhile
        await deposed.store.write_partition_states(
            {("t", 0): offline, ("t", 1): first_state(1, 1), ("gone", 0): first_state(1, 1)}, 1)
    # Nothing of it took: t-0 is still at version 0, t-1 has no state yet, "gone" did not come back.
    assert await successor.store.write_partition_states(
        {("t", 0): offline, ("t", 1): first_state(1, 2)}, 2) == {("t", 0): 1, ("t", 1): 0}
    assert (await cluster.open_store()).store.image.topic_names == {"t"}
    await deposed.store.request_topic_deletion("t")
    with pytest.raises(StaleWrite):  # nor can it complete a deletion
        await deposed.store.delete_topic("t", 1)
    assert "t" in (await cluster.open_store()).store.image.topics


async def test_a_stale_state_is_left_out_and_the_others_written(cluster: Cluster) -> None:
    controller = await cluster.open_store()
    epoch = await controller.store.elect_controller(1)
    await controller.store.create_topic(topic("t", ((1,), (1,), (1,))), {})
    await wait_until(lambda: "t" in controller.store.image.topics, "the topic in the image", WAIT_S)
    assert len(await controller.store.write_partition_states({("t", p): first_state(1, epoch) for p in range(3)},
                                                             epoch)) == 3
    moved = PartitionState(1, 1, (1,), epoch, version=0)
    written = await controller.store.write_partition_states(
        {("t", 0): moved, ("t", 1): moved, ("t", 2): PartitionState(1, 1, (1,), epoch, version=7)}, epoch)
    assert written == {("t", 0): 1, ("t", 1): 1}


async def test_the_first_state_of_a_topic_deleted_meanwhile_is_left_out(cluster: Cluster) -> None:
    controller = await cluster.open_store()
    epoch = await controller.store.elect_controller(1)
    await controller.store.create_topic(topic("kept", ((1,),)), {})
    written = await controller.store.write_partition_states(
        {("kept", 0): first_state(1, epoch), ("deleted", 0): first_state(1, epoch)}, epoch)
    assert written == {("kept", 0): 0}
    assert (await cluster.open_store()).store.image.topic_names == {"kept"}


async def test_producer_id_blocks_from_two_stores_never_overlap(cluster: Cluster) -> None:
    first, second = await cluster.open_store(), await cluster.open_store()
    starts = await asyncio.gather(*(store.claim_producer_id_block(broker_id, 1000)
                                    for _ in range(10) for broker_id, store in ((1, first.store), (2, second.store))))
    assert sorted(starts) == [i * 1000 for i in range(20)]


# -- ZooKeeper only ------------------------------------------------------------------------------


async def test_a_connection_lost_during_an_election_leaves_no_controller_without_an_epoch(
        zk_cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    candidate = await zk_cluster.open_store()
    client = candidate.store._client  # the fault goes in beneath the store: ZooKeeper drops a reply
    real_get = client.get
    dropped = []

    def get(path: str, *args, **kwargs):
        if path == "/controller_epoch" and not dropped:
            dropped.append(path)
            raise ConnectionLoss()
        return real_get(path, *args, **kwargs)

    monkeypatch.setattr(client, "get", get)
    with pytest.raises(MetaStoreError):
        await candidate.store.elect_controller(1)
    assert dropped
    assert await candidate.store.elect_controller(1) == 1  # not held by a half-done election


async def test_corrupt_znodes_read_as_absent_or_offline_and_logged(zk_cluster: Cluster, raw: KazooClient,
                                                                  caplog) -> None:
    caplog.set_level(logging.ERROR, logger="kbroker.zookeeper")
    writer = await zk_cluster.open_store()
    epoch = await writer.store.elect_controller(1)
    await writer.store.register_broker(registration(1))
    await writer.store.create_topic(topic("good", ((1,), (1,))), {})
    await wait_until(lambda: "good" in writer.store.image.topics, "the topic in the image", WAIT_S)
    await writer.store.write_partition_states({("good", p): first_state(1, epoch) for p in range(2)}, epoch)
    raw.create("/brokers/topics/not-json", b"{oops")
    raw.create("/brokers/topics/no-partitions", json.dumps({"version": 3, "topic_id": "x"}).encode())
    raw.set("/brokers/topics/good/partitions/1/state", b'{"leader": "one"}')
    raw.create("/brokers/ids/7", b"\x00\xff garbage")
    raw.create("/brokers/ids/8", json.dumps({"host": "h"}).encode())
    raw.create("/brokers/ids/not-an-id", b"{}")
    reader = await zk_cluster.open_store()  # reads them all at once
    for store in (writer.store, reader.store):
        await wait_until(lambda: store.image.states[("good", 1)].leader == NO_LEADER,
                         "good-1 to read as offline", WAIT_S)
        image = store.image
        assert image.topic_names == {"good", "not-json", "no-partitions"}
        assert set(image.topics) == {"good"}
        assert image.states[("good", 0)].leader == 1
        assert (image.states[("good", 1)].isr, image.states[("good", 1)].version) == ((), 1)
        assert set(image.brokers) == {1}
    for what in ("not-json", "no-partitions", "broker 7", "broker 8", "not-an-id", "malformed partition state"):
        assert what in caplog.text, what


async def test_the_first_image_holds_every_topic(zk_cluster: Cluster) -> None:
    """A restarted broker once took its topics for deleted: its first image had some of them only."""
    writer = await zk_cluster.open_store()
    epoch = await writer.store.elect_controller(1)
    names = [f"topic-{i}" for i in range(40)]
    for name in names:
        await writer.store.create_topic(topic(name, ((1,), (1,))), {"retention.ms": "1000"})
    await wait_until(lambda: writer.store.image.topics.keys() == set(names), "every topic in the image", WAIT_S)
    await writer.store.write_partition_states({(name, p): first_state(1, epoch) for name in names for p in range(2)},
                                              epoch)
    restarted = await zk_cluster.open_store()
    image = restarted.store.image  # as `watch` returned it, before any change was published
    assert image.topic_names == set(names)
    assert image.topics.keys() == set(names)
    assert image.states.keys() == {(name, p) for name in names for p in range(2)}
    assert all(image.configs[name] == {"retention.ms": "1000"} for name in names)


async def test_watches_are_set_again_after_a_dropped_connection(zk_cluster: Cluster) -> None:
    """kazoo forgets every watch when its connection drops, though the session lives on: the store
    reads its znodes again once reconnected, so later changes still reach the image."""
    writer = await zk_cluster.open_store()
    epoch = await writer.store.elect_controller(1)
    await writer.store.create_topic(topic("t", ((1,),)), {})
    await wait_until(lambda: "t" in writer.store.image.topics, "the topic in the image", WAIT_S)
    versions = await writer.store.write_partition_states({("t", 0): first_state(1, epoch)}, epoch)
    reader = await zk_cluster.open_store()
    assert reader.store.image.states[("t", 0)].leader_epoch == 0
    client = reader.store._client  # the only way to drop its connection: kazoo's own test hook
    loop = asyncio.get_running_loop()
    states: list[str] = []
    client.add_listener(lambda state: loop.call_soon_threadsafe(states.append, state))
    client._call(_CONNECTION_DROP, client.handler.async_result())
    await wait_until(lambda: states[-2:] == [KazooState.SUSPENDED, KazooState.CONNECTED], "a reconnection", WAIT_S)
    await writer.store.update_partition_state("t", 0, PartitionState(1, 1, (1,), epoch, versions[("t", 0)]))
    await writer.store.create_topic(topic("u", ((1,),)), {})
    await wait_until(lambda: reader.store.image.states[("t", 0)].leader_epoch == 1 and
                     "u" in reader.store.image.topics, "the changes after the reconnection", WAIT_S)
    assert reader.sessions_lost == 0


async def test_a_deleted_topic_leaves_no_znode_behind(zk_cluster: Cluster, raw: KazooClient) -> None:
    controller = await zk_cluster.open_store()
    epoch = await controller.store.elect_controller(1)
    await controller.store.create_topic(topic("t", ((1,),) * 3), {})
    await wait_until(lambda: "t" in controller.store.image.topics, "the topic in the image", WAIT_S)
    await controller.store.write_partition_states({("t", p): first_state(1, epoch) for p in range(3)}, epoch)
    await controller.store.request_topic_deletion("t")
    await controller.store.delete_topic("t", epoch)
    assert [path for path in ("/brokers/topics/t", "/config/topics/t", "/admin/delete_topics/t") if raw.exists(path)] == []
    await wait_until(lambda: not controller.store.image.topic_names and not controller.store.image.states,
                     "the topic gone from the image", WAIT_S)


async def test_a_leaders_isr_write_is_conditional_on_the_state_version(cluster: Cluster) -> None:
    """The leader writes its ISR against the state version it read; a state moved on refuses it."""
    leader = await cluster.open_store()
    epoch = await leader.store.elect_controller(1)
    await leader.store.create_topic(topic("isr", ((1, 2),)), {})
    await wait_until(lambda: "isr" in leader.store.image.topics, "the topic in the image", WAIT_S)
    versions = await leader.store.write_partition_states({("isr", 0): first_state(1, epoch)}, epoch)
    grown = PartitionState(1, 0, (1, 2), epoch, versions[("isr", 0)])
    assert await leader.store.update_partition_state("isr", 0, grown) == versions[("isr", 0)] + 1
    with pytest.raises(StaleWrite):
        await leader.store.update_partition_state("isr", 0, grown)  # the version it read is gone


async def test_an_unreadable_controller_epoch_is_written_over(zk_cluster: Cluster, raw: KazooClient) -> None:
    raw.create("/controller_epoch", b"not a number")
    store = (await zk_cluster.open_store()).store
    assert await store.elect_controller(1) == 1
    assert raw.get("/controller_epoch")[0] == b"1"


async def test_an_unreadable_producer_id_block_hands_out_no_ids(zk_cluster: Cluster, raw: KazooClient) -> None:
    """Starting over at 0 would give two producers one id: refuse until an operator repairs it."""
    raw.create("/latest_producer_id_block", json.dumps({"version": 1, "broker": 1}).encode())
    store = (await zk_cluster.open_store()).store
    with pytest.raises(MetaStoreError, match="unreadable"):
        await store.claim_producer_id_block(1, 1000)


async def test_elections_asked_from_two_stores_merge_and_are_completed_by_version(cluster: Cluster) -> None:
    """/admin/preferred_replica_election: created, then merged into; removed only at the version
    the controller acted on, so an election added meanwhile is never lost."""
    first, second = await cluster.open_store(), await cluster.open_store()
    await first.store.request_leader_elections({("t", 0): 0})
    await second.store.request_leader_elections({("t", 1): 1, ("u", 0): 0})
    for store in (first.store, second.store):
        await wait_until(lambda: len(store.image.elections) == 3, "every election in the image", WAIT_S)
        assert dict(store.image.elections) == {("t", 0): 0, ("t", 1): 1, ("u", 0): 0}
    acted_on = first.store.image.elections_version
    await second.store.request_leader_elections({("v", 0): 0})
    with pytest.raises(StaleWrite):
        await first.store.complete_leader_elections(acted_on)
    await wait_until(lambda: ("v", 0) in first.store.image.elections, "the late election in the image", WAIT_S)
    await first.store.complete_leader_elections(first.store.image.elections_version)
    for store in (first.store, second.store):
        await wait_until(lambda: not store.image.elections and store.image.elections_version == -1,
                         "no election pending", WAIT_S)


async def test_kafkas_preferred_replica_election_document_is_read(zk_cluster: Cluster, raw: KazooClient) -> None:
    """What Kafka's kafka-preferred-replica-election.sh wrote, and a malformed one (logged, ignored)."""
    reader = await zk_cluster.open_store()
    raw.create("/admin/preferred_replica_election", json.dumps(
        {"version": 1, "partitions": [{"topic": "t", "partition": 3}]}).encode())
    await wait_until(lambda: dict(reader.store.image.elections) == {("t", 3): 0}, "the election", WAIT_S)
    raw.set("/admin/preferred_replica_election", b'{"partitions": 7}')
    await wait_until(lambda: not reader.store.image.elections, "the malformed znode ignored", WAIT_S)
    assert reader.store.image.elections_version == 1


async def test_reassignments_are_queued_then_written_into_the_topic_by_the_controller(cluster: Cluster) -> None:
    """/admin/reassign_partitions: merged from two stores; the controller's write of the topics'
    adding/removing replicas removes it in the same step, only at the version it acted on, and is
    refused once the topic's znode moved on."""
    first, second = await cluster.open_store(), await cluster.open_store()
    await first.store.register_broker(registration(1))
    epoch = await first.store.elect_controller(1)
    await first.store.create_topic(topic("t", ((1, 2), (2, 1))), {})
    await first.store.request_reassignments({("t", 0): (3, 2)})
    await second.store.request_reassignments({("t", 1): None})
    await wait_until(lambda: len(first.store.image.reassignments) == 2 and "t" in first.store.image.topics,
                     "both requests", WAIT_S)
    assert dict(first.store.image.reassignments) == {("t", 0): (3, 2), ("t", 1): None}
    current = first.store.image.topics["t"]
    moving = TopicAssignment("t", current.topic_id, ((3, 2, 1), (2, 1)), current.version, {0: (3,)}, {0: (1,)})
    acted_on = first.store.image.reassignments_version
    await second.store.request_reassignments({("t", 1): (2,)})
    with pytest.raises(StaleWrite):
        await first.store.write_reassignments({"t": moving}, epoch, acted_on)
    await wait_until(lambda: first.store.image.reassignments_version > acted_on, "the late request", WAIT_S)
    await first.store.write_reassignments({"t": moving}, epoch, first.store.image.reassignments_version)
    for store in (first.store, second.store):
        await wait_until(lambda: store.image.reassignments_version == -1 and store.image.topics["t"].adding,
                         "the move in the topic, no request pending", WAIT_S)
        seen = store.image.topics["t"]
        assert seen.replicas == ((3, 2, 1), (2, 1))
        assert (dict(seen.adding), dict(seen.removing)) == ({0: (3,)}, {0: (1,)})
    with pytest.raises(StaleWrite):  # written at a version the topic's znode has left
        await first.store.write_reassignments({"t": moving}, epoch, -1)


# -- ACLs and config entities (the contract, then Kafka's znodes) -----------------------------------

ORDERS = AclResource("LITERAL", "Topic", "orders")
BILLING = AclResource("PREFIXED", "Group", "billing-")


def allow(user: str, operation: str = "Read") -> AclEntry:
    return AclEntry(f"User:{user}", "Allow", operation, "*")


async def test_acl_entries_written_from_two_stores_at_once_all_land_then_go(cluster: Cluster) -> None:
    first, second = await cluster.open_store(), await cluster.open_store()
    users = [f"user-{i}" for i in range(8)]
    await asyncio.gather(*(store.store.update_acls(ORDERS, [allow(user)], []) for user in users
                           for store in (first, second)),
                         *(second.store.update_acls(BILLING, [allow(user, "All")], []) for user in users[:3]))
    expected = {ORDERS: frozenset(allow(user) for user in users),
                BILLING: frozenset(allow(user, "All") for user in users[:3])}
    for watched in (first, second):
        await wait_until(lambda: watched.store.acls() == expected, "every entry on each store", WAIT_S)
    changes = first.changes
    await second.store.update_acls(ORDERS, [], [allow(user) for user in users[1:]])
    await wait_until(lambda: first.store.acls()[ORDERS] == {allow(users[0])}, "the removal on the other store",
                     WAIT_S)
    await wait_until(lambda: first.changes > changes, "the change reported (the broker puts it in force)", WAIT_S)
    await first.store.update_acls(ORDERS, [], [allow(users[0])])
    for watched in (first, second):
        await wait_until(lambda: ORDERS not in watched.store.acls(), "the emptied resource gone", WAIT_S)
    await first.store.update_acls(ORDERS, [allow("again")], [])  # a resource made again is followed again
    await wait_until(lambda: second.store.acls().get(ORDERS) == {allow("again")}, "the resource back", WAIT_S)


async def test_entity_configs_are_merged_key_by_key(cluster: Cluster) -> None:
    first, second = await cluster.open_store(), await cluster.open_store()
    await asyncio.gather(first.store.alter_entity_configs("users/alice", {"SCRAM-SHA-256": "salt=.."}),
                         second.store.alter_entity_configs("users/alice", {"producer_byte_rate": "1024"}),
                         second.store.alter_entity_configs("users/alice/clients/app", {"consumer_byte_rate": "2048"}),
                         first.store.alter_entity_configs("clients/<default>", {"request_percentage": "50.5"}))
    expected = {"users/alice": {"SCRAM-SHA-256": "salt=..", "producer_byte_rate": "1024"},
                "users/alice/clients/app": {"consumer_byte_rate": "2048"},
                "clients/<default>": {"request_percentage": "50.5"}}
    for watched in (first, second):
        await wait_until(lambda: watched.store.entity_configs() == expected, "every key on each store", WAIT_S)
    await first.store.alter_entity_configs("users/alice", {"producer_byte_rate": None, "SCRAM-SHA-512": "x"})
    await wait_until(lambda: second.store.entity_configs()["users/alice"] == {"SCRAM-SHA-256": "salt=..",
                                                                              "SCRAM-SHA-512": "x"},
                     "the key removed and the other kept", WAIT_S)
    for bad in ("topics/orders", "users", "users/alice/clients", "clients/app/clients/x", "users//clients/x"):
        with pytest.raises(MetaStoreError):
            await first.store.alter_entity_configs(bad, {"producer_byte_rate": "1"})


async def test_acls_and_entities_are_kafkas_znodes(zk_cluster: Cluster, raw: KazooClient) -> None:
    """What Kafka's brokers and tools (kafka-acls, kafka-configs --zookeeper) write is read, and ours is theirs."""
    store = (await zk_cluster.open_store()).store
    await store.update_acls(ORDERS, [allow("alice", "IdempotentWrite")], [])
    await store.update_acls(BILLING, [AclEntry("User:bob", "Deny", "All", "10.0.0.1")], [])
    await store.alter_entity_configs("users/alice/clients/app", {"producer_byte_rate": "1024"})
    assert json.loads(raw.get("/kafka-acl/Topic/orders")[0]) == {"version": 1, "acls": [
        {"principal": "User:alice", "permissionType": "Allow", "operation": "IdempotentWrite", "host": "*"}]}
    assert json.loads(raw.get("/kafka-acl-extended/prefixed/Group/billing-")[0])["acls"][0]["permissionType"] == "Deny"
    assert json.loads(raw.get("/config/users/alice/clients/app")[0]) == {"version": 1, "config": {
        "producer_byte_rate": "1024"}}
    assert raw.get("/config/users/alice")[0] == b""  # made as Kafka makes a parent: no data, no configs
    raw.create("/kafka-acl/Cluster/kafka-cluster", json.dumps({"version": 1, "acls": [
        {"principal": "User:ops", "permissionType": "Allow", "operation": "Alter", "host": "*"}]}).encode())
    raw.create("/config/clients/batch", json.dumps({"version": 1, "config": {"consumer_byte_rate": "10"}}).encode())
    raw.create("/config/users/bob/clients/app", json.dumps({"version": 1, "config": {}}).encode(), makepath=True)
    raw.set("/config/users/bob/clients/app", json.dumps({"version": 1, "config": {"producer_byte_rate": "5"}}).encode())
    raw.create("/kafka-acl/Topic/broken", b"{oops")
    await wait_until(lambda: store.acls().get(AclResource("LITERAL", "Cluster", "kafka-cluster"))
                     == {AclEntry("User:ops", "Allow", "Alter", "*")}, "kafka-acls' binding", WAIT_S)
    await wait_until(lambda: store.entity_configs().get("users/bob/clients/app") == {"producer_byte_rate": "5"}
                     and store.entity_configs().get("clients/batch") == {"consumer_byte_rate": "10"},
                     "kafka-configs' quotas", WAIT_S)
    assert AclResource("LITERAL", "Topic", "broken") not in store.acls()
    await store.update_acls(ORDERS, [], [allow("alice", "IdempotentWrite")])
    assert raw.exists("/kafka-acl/Topic/orders") is None  # removed with its last entry, as Kafka does


async def test_registrations_and_elections_are_stamped_by_the_stores_wall_clock(connect: str,
                                                                               raw: KazooClient) -> None:
    store = ZkMetaStore(connect, session_timeout_ms=6000, connection_timeout_ms=10000, clock=lambda: 1_234_567)
    await store.start()
    try:
        await store.register_broker(registration(1))
        assert await store.elect_controller(1) is not None
        for path in ("/brokers/ids/1", "/controller"):
            assert json.loads(raw.get(path)[0])["timestamp"] == "1234567", path
    finally:
        await store.close()
