"""The group coordinator on a real log (`tmp_path`): what it writes to `__consumer_offsets`, what a
restart replays, loading, expiry, deletion and failed writes. A fake clock drives expiry."""
from __future__ import annotations

import asyncio

import pytest

from kbroker.config import build_config
from kbroker.coordinator import records as rec
from kbroker.coordinator.classic import STABLE, Protocol
from kbroker.coordinator.consumer import HeartbeatRequest
from kbroker.coordinator.group_coordinator import GroupCoordinator, OffsetToCommit
from kbroker.coordinator.offsets import CommittedOffset, OffsetStore
from kbroker.errors import ErrorCode
from kbroker.log.log_manager import LogManager
from tests.coordinator.appending import append_at_once
from tests.waiting import wait_until_async

E = ErrorCode
TOPIC = "orders"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


class Node:
    """A log directory and a coordinator on it; `restart()` reopens both as a broker restart would."""

    def __init__(self, path, **settings) -> None:
        self.path = path
        self.config = build_config({"log.dirs": str(path), "offsets.topic.num.partitions": "5",
                                    "group.initial.rebalance.delay.ms": "0", **settings})
        self.clock = Clock()
        self.logs = LogManager(path, self.config.log_defaults()).load()
        self.logs.create_topic(TOPIC, 3, {})
        self.coordinator = self._coordinator()

    def _coordinator(self) -> GroupCoordinator:
        return GroupCoordinator(self.config, self.logs, append_at_once, now_ms=self.clock)

    async def restart(self) -> GroupCoordinator:
        await self.coordinator.close()
        self.logs.shutdown()
        self.logs = LogManager(self.path, self.config.log_defaults()).load()
        self.coordinator = self._coordinator()
        await self.coordinator.load()
        return self.coordinator


@pytest.fixture
async def node(tmp_path):
    node = Node(tmp_path)
    await node.coordinator.load()
    yield node
    await node.coordinator.close()
    node.logs.shutdown()


def commit(offset: int, partition: int = 0, metadata: str = "") -> OffsetToCommit:
    return OffsetToCommit(TOPIC, partition, offset, 3, metadata)


async def simple_commit(coordinator, group, *offsets, version=8):
    return await coordinator.commit_offsets(group_id=group, member_id="", group_instance_id=None,
                                            generation_id_or_member_epoch=-1, version=version, retention_time_ms=-1,
                                            offsets=list(offsets))


async def test_commits_survive_a_restart(node):
    assert await simple_commit(node.coordinator, "g", commit(10, 0, "m0"), commit(20, 1)) == [E.NONE, E.NONE]
    assert await simple_commit(node.coordinator, "g", commit(11, 0, "m1")) == [E.NONE]
    coordinator = await node.restart()
    error, found = coordinator.fetch_offsets("g", None)
    assert error == E.NONE
    assert [(t, p, c.offset, c.leader_epoch, c.metadata) for t, p, c in found] == \
        [(TOPIC, 0, 11, 3, "m1"), (TOPIC, 1, 20, 3, "")]
    assert [(g.group_id, g.state, g.protocol_type) for g in coordinator.list_groups()] == [("g", "Empty", "")]
    # The records are in the group's partition of __consumer_offsets.
    partition_log = node.logs.get_log(rec.OFFSETS_TOPIC, rec.partition_for("g", 5))
    assert partition_log.log_end_offset == 3


async def test_commit_errors(node):
    coordinator = node.coordinator
    assert await simple_commit(coordinator, "g", OffsetToCommit("nope", 0, 1, -1, ""),
                               OffsetToCommit(TOPIC, 9, 1, -1, ""), commit(1, 0, "x" * 5000)) == \
        [E.UNKNOWN_TOPIC_OR_PARTITION, E.UNKNOWN_TOPIC_OR_PARTITION, E.OFFSET_METADATA_TOO_LARGE]
    member_commit = dict(group_id="unknown", member_id="m", group_instance_id=None, generation_id_or_member_epoch=3,
                         retention_time_ms=-1, offsets=[commit(1)])
    assert await coordinator.commit_offsets(version=8, **member_commit) == E.ILLEGAL_GENERATION
    assert await coordinator.commit_offsets(version=9, **member_commit) == E.GROUP_ID_NOT_FOUND
    assert await simple_commit(coordinator, "", commit(1)) == E.INVALID_GROUP_ID


async def test_requests_wait_while_the_partitions_load(tmp_path):
    node = Node(tmp_path)
    coordinator = node.coordinator  # not loaded yet
    assert coordinator.group_error("g") == E.COORDINATOR_LOAD_IN_PROGRESS
    assert await simple_commit(coordinator, "g", commit(1)) == E.COORDINATOR_LOAD_IN_PROGRESS
    assert coordinator.heartbeat(group_id="g", member_id="m", group_instance_id=None, generation_id=1) == E.NONE
    assert coordinator.list_groups() == [] and coordinator.loading_any()
    await coordinator.load()
    assert coordinator.group_error("g") == E.NONE and not coordinator.loading_any()
    await coordinator.close()
    node.logs.shutdown()


async def join_two(coordinator):
    """Two members through MEMBER_ID_REQUIRED, the join phase and the leader's SyncGroup."""
    async def join(member_id=""):
        return await coordinator.join_group(
            group_id="cg", member_id=member_id, group_instance_id=None, client_id="c", client_host="/127.0.0.1",
            session_timeout_ms=10_000, rebalance_timeout_ms=10_000, protocol_type="consumer",
            protocols=[Protocol("range", b"meta")], version=7)
    first = [await join(), await join()]
    assert {r.error for r in first} == {E.MEMBER_ID_REQUIRED}
    joined = await asyncio.gather(*(join(r.member_id) for r in first))
    leader = next(r for r in joined if r.leader == r.member_id)
    syncs = await asyncio.gather(*(
        coordinator.sync_group(group_id="cg", member_id=r.member_id, group_instance_id=None,
                               generation_id=r.generation_id, protocol_type="consumer", protocol_name="range",
                               assignments={m.member_id: m.member_id.encode() for m in leader.members}
                               if r is leader else {}) for r in joined))
    assert all(s.error == E.NONE and s.assignment == r.member_id.encode() for s, r in zip(syncs, joined))
    return joined


async def test_a_stable_group_survives_a_restart(node):
    joined = await join_two(node.coordinator)
    coordinator = await node.restart()
    group = coordinator.groups["cg"]
    assert group.state is STABLE and group.generation_id == joined[0].generation_id
    assert set(group.members) == {r.member_id for r in joined}
    for result in joined:  # the members carry on with their generation: no rebalance
        assert coordinator.heartbeat(group_id="cg", member_id=result.member_id, group_instance_id=None,
                                     generation_id=result.generation_id) == E.NONE
    described = group.describe()
    assert described.state == "Stable" and all(m.assignment == m.member_id.encode() for m in described.members)


async def test_delete_groups(node):
    await join_two(node.coordinator)
    await simple_commit(node.coordinator, "empty", commit(5))
    assert await node.coordinator.delete_groups(["cg", "empty", "missing", ""]) == \
        [E.NON_EMPTY_GROUP, E.NONE, E.GROUP_ID_NOT_FOUND, E.INVALID_GROUP_ID]
    coordinator = await node.restart()
    assert "empty" not in coordinator.groups and coordinator.fetch_offsets("empty", None) == (E.NONE, [])
    assert "cg" in coordinator.groups


async def test_offset_delete(node):
    await simple_commit(node.coordinator, "g", commit(5, 0), commit(6, 1))
    assert await node.coordinator.delete_offsets("g", [(TOPIC, 0)]) == (E.NONE, [E.NONE])
    assert await node.coordinator.delete_offsets("missing", [(TOPIC, 0)]) == (E.GROUP_ID_NOT_FOUND, [])
    coordinator = await node.restart()
    assert [(t, p) for t, p, _ in coordinator.fetch_offsets("g", None)[1]] == [(TOPIC, 1)]


async def test_offsets_expire_after_retention(node):
    await simple_commit(node.coordinator, "old", commit(1))
    node.clock.now += 3 * 24 * 3600 * 1000
    await simple_commit(node.coordinator, "new", commit(2))
    node.clock.now += 5 * 24 * 3600 * 1000  # 8 days after the first commit, 5 after the second
    assert await node.coordinator.expire_offsets() == 1
    assert "old" not in node.coordinator.groups
    coordinator = await node.restart()
    assert coordinator.fetch_offsets("old", None) == (E.NONE, [])
    assert len(coordinator.fetch_offsets("new", None)[1]) == 1


async def test_a_group_record_too_large_fails_the_sync_and_the_group_rebalances(tmp_path):
    node = Node(tmp_path, **{"message.max.bytes": "20000"})
    coordinator = node.coordinator
    await coordinator.load()
    first = await coordinator.join_group(
        group_id="big", member_id="", group_instance_id=None, client_id="c", client_host="/h",
        session_timeout_ms=10_000, rebalance_timeout_ms=10_000, protocol_type="consumer",
        protocols=[Protocol("range", b"x" * 30_000)], version=7)
    joined = await coordinator.join_group(
        group_id="big", member_id=first.member_id, group_instance_id=None, client_id="c", client_host="/h",
        session_timeout_ms=10_000, rebalance_timeout_ms=10_000, protocol_type="consumer",
        protocols=[Protocol("range", b"x" * 30_000)], version=7)
    assert joined.error == E.NONE
    synced = await coordinator.sync_group(group_id="big", member_id=joined.member_id, group_instance_id=None,
                                          generation_id=joined.generation_id, protocol_type=None, protocol_name=None,
                                          assignments={joined.member_id: b"a"})
    assert synced.error == E.UNKNOWN_SERVER_ERROR  # Kafka: RECORD_LIST_TOO_LARGE, mapped
    await wait_until_async(lambda: coordinator.groups["big"].state.value == "PreparingRebalance",
                           "the group to rebalance after its assignment could not be stored")
    await coordinator.close()
    node.logs.shutdown()


async def test_close_answers_held_joins(tmp_path):
    node = Node(tmp_path, **{"group.initial.rebalance.delay.ms": "60000"})
    coordinator = node.coordinator
    await coordinator.load()
    first = await coordinator.join_group(
        group_id="g", member_id="", group_instance_id=None, client_id="c", client_host="/h",
        session_timeout_ms=10_000, rebalance_timeout_ms=60_000, protocol_type="consumer",
        protocols=[Protocol("range", b"")], version=7)
    held = asyncio.ensure_future(coordinator.join_group(
        group_id="g", member_id=first.member_id, group_instance_id=None, client_id="c", client_host="/h",
        session_timeout_ms=10_000, rebalance_timeout_ms=60_000, protocol_type="consumer",
        protocols=[Protocol("range", b"")], version=7))
    group = coordinator.groups["g"]
    await wait_until_async(lambda: getattr(group.members.get(first.member_id), "awaiting_join", None) is not None,
                           "the second JoinGroup to be held")
    assert not held.done()
    await coordinator.close()
    assert (await held).error == E.NOT_COORDINATOR
    node.logs.shutdown()


async def test_a_consumer_group_survives_a_restart(node):
    topic_id = node.logs.topic(TOPIC).topic_id
    response = await node.coordinator.consumer_group_heartbeat(HeartbeatRequest(
        group_id="kip848", member_id="", member_epoch=0, rebalance_timeout_ms=30_000,
        subscribed_topic_names=[TOPIC], topic_partitions=[]))
    assert response.error == E.NONE and response.assignment == {topic_id: [0, 1, 2]}
    coordinator = await node.restart()
    again = await coordinator.consumer_group_heartbeat(HeartbeatRequest(
        group_id="kip848", member_id=response.member_id, member_epoch=response.member_epoch,
        topic_partitions=[(topic_id, [0, 1, 2])]))
    assert again.error == E.NONE and again.member_epoch == response.member_epoch
    assert coordinator.groups["kip848"].state_name == "Stable"
    # A classic join to a group of the other type is refused while it has members.
    joined = await coordinator.join_group(
        group_id="kip848", member_id="", group_instance_id=None, client_id="c", client_host="/h",
        session_timeout_ms=10_000, rebalance_timeout_ms=10_000, protocol_type="consumer",
        protocols=[Protocol("range", b"")], version=7)
    assert joined.error == E.INCONSISTENT_GROUP_PROTOCOL


def test_offset_store_expiry_rules():
    store = OffsetStore()
    store.put("g", "t", 0, CommittedOffset(1, -1, "", commit_timestamp=100))
    store.put("g", "t", 1, CommittedOffset(1, -1, "", commit_timestamp=900))
    store.put("g", "u", 0, CommittedOffset(1, -1, "", commit_timestamp=100, expire_timestamp=5000))
    never = lambda topic: False  # noqa: E731
    assert store.expired("g", 1000, 500, "commit", None, never) == [("t", 0)]
    assert store.expired("g", 1000, 500, "state", 200, never) == [("t", 0), ("t", 1)]
    assert store.expired("g", 1000, 500, None, None, never) == []
    assert store.expired("g", 5000, 10**9, "commit", None, never) == [("u", 0)]
    assert store.expired("g", 10**6, 500, "commit", None, lambda topic: topic == "t") == [("u", 0)]
