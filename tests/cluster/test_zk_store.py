"""ZkMetaStore against a real ZooKeeper (the session's `zookeeper` fixture), each test in a chroot.

A raw kazoo client plays the operator who corrupts znodes. A session is expired the way
ZooKeeper's own tests do it: a second client attaches to it (same id and password) and closes it.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss

from kbroker.cluster.image import NO_LEADER, BrokerRegistration, PartitionState, TopicAssignment
from kbroker.cluster.metastore import BrokerIdInUse, MetaStoreError, StaleWrite
from kbroker.cluster.zk_store import ZkMetaStore
from kbroker.log.checkpoints import uuid_to_base64
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
    """A started store following the cluster; counts the sessions it lost."""

    def __init__(self, store: ZkMetaStore) -> None:
        self.store = store
        self.sessions_lost = 0

    def session_lost(self) -> None:
        self.sessions_lost += 1


@pytest.fixture
async def open_store(connect: str) -> AsyncIterator[Callable[[], Awaitable[Watched]]]:
    opened: list[ZkMetaStore] = []

    async def open_one() -> Watched:
        store = ZkMetaStore(connect, session_timeout_ms=6000, connection_timeout_ms=10000)
        opened.append(store)
        await store.start()
        watched = Watched(store)
        await store.watch(lambda: None, watched.session_lost)
        return watched

    yield open_one
    for store in opened:
        await store.close()


def expire_session(connect: str, store: ZkMetaStore) -> None:
    session_id, password = store._client.client_id  # the only way in: the session is the store's own
    intruder = KazooClient(hosts=connect, client_id=(session_id, password))
    intruder.start(10)
    intruder.stop()
    intruder.close()


def registration(broker_id: int) -> BrokerRegistration:
    return BrokerRegistration(broker_id, "127.0.0.1", 9000 + broker_id)


def topic(name: str, replicas: tuple[tuple[int, ...], ...]) -> TopicAssignment:
    return TopicAssignment(name, uuid.uuid4(), replicas)


def first_state(leader: int, controller_epoch: int) -> PartitionState:
    return PartitionState(leader, 0, (leader,), controller_epoch)


async def test_cluster_id_is_created_once_then_read(open_store, raw: KazooClient) -> None:
    first, second = await open_store(), await open_store()
    assert await first.store.cluster_id("first-id") == "first-id"
    assert await second.store.cluster_id("second-id") == "first-id"
    assert await first.store.cluster_id("third-id") == "first-id"
    assert json.loads(raw.get("/cluster/id")[0])["id"] == "first-id"


async def test_a_broker_id_registered_by_another_session_is_refused(open_store) -> None:
    first, second = await open_store(), await open_store()
    epoch = await first.store.register_broker(registration(1))
    assert await first.store.register_broker(registration(1)) == epoch  # the same session: already ours
    with pytest.raises(BrokerIdInUse):
        await second.store.register_broker(registration(1))
    assert await first.store.confirm_session(1) and not await second.store.confirm_session(1)
    await first.store.close()  # the registration goes with the session
    assert await second.store.register_broker(registration(1)) > epoch


async def test_one_store_wins_the_election_and_the_epoch_grows_on_each_takeover(open_store) -> None:
    first, second = await open_store(), await open_store()
    won = await asyncio.gather(first.store.elect_controller(1), second.store.elect_controller(2))
    assert sorted(won, key=lambda e: e is None) == [1, None]
    winner, loser = (first, second) if won[0] == 1 else (second, first)
    loser_id = 2 if winner is first else 1
    await wait_until(lambda: loser.store.image.controller_id == 3 - loser_id, "the winner in the image", WAIT_S)
    await winner.store.close()
    await wait_until(lambda: loser.store.image.controller_id == NO_LEADER, "/controller to vanish", WAIT_S)
    assert await loser.store.elect_controller(loser_id) == 2
    third = await open_store()
    assert await third.store.elect_controller(3) is None
    await loser.store.close()
    await wait_until(lambda: third.store.image.controller_id == NO_LEADER, "/controller to vanish", WAIT_S)
    assert await third.store.elect_controller(3) == 3


async def test_a_connection_lost_during_an_election_leaves_no_controller_without_an_epoch(
        open_store, monkeypatch: pytest.MonkeyPatch) -> None:
    candidate = await open_store()
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


async def test_a_deposed_controllers_writes_are_refused(connect: str, open_store, raw: KazooClient) -> None:
    deposed, successor = await open_store(), await open_store()
    assert await deposed.store.elect_controller(1) == 1
    await deposed.store.create_topic(topic("t", ((1,), (1,))), {})
    await wait_until(lambda: "t" in deposed.store.image.topics, "the topic in the image", WAIT_S)
    assert await deposed.store.write_partition_states({("t", 0): first_state(1, 1)}, 1) == {("t", 0): 0}
    expire_session(connect, deposed.store)
    await wait_until(lambda: successor.store.image.controller_id == NO_LEADER, "/controller to vanish", WAIT_S)
    assert await successor.store.elect_controller(2) == 2
    # Back with a new session, its watches renewed: the zombie is connected and writes with its old epoch.
    await wait_until(lambda: deposed.store.image.controller_id == 2, "the new controller in its image", WAIT_S)
    assert deposed.sessions_lost == 1
    state = PartitionState(NO_LEADER, 1, (1,), 1, version=0)
    with pytest.raises(StaleWrite):  # "gone": a topic its stale image still shows, deleted meanwhile
        await deposed.store.write_partition_states(
            {("t", 0): state, ("t", 1): first_state(1, 1), ("gone", 0): first_state(1, 1)}, 1)
    assert json.loads(raw.get("/brokers/topics/t/partitions/0/state")[0])["leader"] == 1
    assert raw.exists("/brokers/topics/t/partitions/1/state") is None
    assert raw.exists("/brokers/topics/gone") is None
    assert await successor.store.write_partition_states({("t", 0): state}, 2) == {("t", 0): 1}


async def test_a_stale_state_is_left_out_and_the_others_written(open_store) -> None:
    controller = await open_store()
    epoch = await controller.store.elect_controller(1)
    await controller.store.create_topic(topic("t", ((1,), (1,), (1,))), {})
    await wait_until(lambda: "t" in controller.store.image.topics, "the topic in the image", WAIT_S)
    assert len(await controller.store.write_partition_states({("t", p): first_state(1, epoch) for p in range(3)},
                                                             epoch)) == 3
    moved = PartitionState(1, 1, (1,), epoch, version=0)
    written = await controller.store.write_partition_states(
        {("t", 0): moved, ("t", 1): moved, ("t", 2): PartitionState(1, 1, (1,), epoch, version=7)}, epoch)
    assert written == {("t", 0): 1, ("t", 1): 1}


async def test_the_first_state_of_a_topic_deleted_meanwhile_is_left_out(open_store, raw: KazooClient) -> None:
    controller = await open_store()
    epoch = await controller.store.elect_controller(1)
    await controller.store.create_topic(topic("kept", ((1,),)), {})
    written = await controller.store.write_partition_states(
        {("kept", 0): first_state(1, epoch), ("deleted", 0): first_state(1, epoch)}, epoch)
    assert written == {("kept", 0): 0}
    assert raw.exists("/brokers/topics/deleted") is None


async def test_producer_id_blocks_from_two_stores_never_overlap(open_store) -> None:
    first, second = await open_store(), await open_store()
    starts = await asyncio.gather(*(store.claim_producer_id_block(broker_id, 1000)
                                    for _ in range(10) for broker_id, store in ((1, first.store), (2, second.store))))
    assert sorted(starts) == [i * 1000 for i in range(20)]


async def test_corrupt_znodes_read_as_absent_or_offline_and_logged(open_store, raw: KazooClient, caplog) -> None:
    caplog.set_level(logging.ERROR, logger="kbroker.zookeeper")
    writer = await open_store()
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
    reader = await open_store()  # reads them all at once
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


async def test_the_first_image_holds_every_topic(open_store, raw: KazooClient) -> None:
    """A restarted broker once took its topics for deleted: its first image had some of them only."""
    writer = await open_store()
    epoch = await writer.store.elect_controller(1)
    names = [f"topic-{i}" for i in range(40)]
    for name in names:
        await writer.store.create_topic(topic(name, ((1,), (1,))), {"retention.ms": "1000"})
    await wait_until(lambda: writer.store.image.topics.keys() == set(names), "every topic in the image", WAIT_S)
    await writer.store.write_partition_states({(name, p): first_state(1, epoch) for name in names for p in range(2)},
                                              epoch)
    restarted = await open_store()
    image = restarted.store.image  # as `watch` returned it, before any change was published
    assert image.topic_names == set(names)
    assert image.topics.keys() == set(names)
    assert image.states.keys() == {(name, p) for name in names for p in range(2)}
    assert all(image.configs[name] == {"retention.ms": "1000"} for name in names)
