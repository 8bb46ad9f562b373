"""The group coordinator on a real log (`tmp_path`): what it writes to `__consumer_offsets`, what a
restart replays, loading, expiry, deletion and failed writes. A fake clock drives expiry."""
from __future__ import annotations

import asyncio

import pytest

from kbroker.config import build_config
from kbroker.coordinator import records as rec
from kbroker.coordinator.classic import STABLE, Protocol
from kbroker.coordinator.consumer import HeartbeatRequest
from kbroker.coordinator.group_coordinator import GroupCoordinator
from kbroker.coordinator.offsets import CommittedOffset, OffsetStore, OffsetToCommit
from kbroker.errors import ErrorCode
from kbroker.log.log_manager import LogManager
from tests.coordinator.appending import ControlledAppend
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
        self.append = ControlledAppend()
        self.logs = LogManager(path, self.config.log_defaults()).load()
        self.logs.create_topic(TOPIC, 3, {})
        self.coordinator = self._coordinator()

    def _coordinator(self) -> GroupCoordinator:
        return GroupCoordinator(self.config, self.logs, self.append, now_ms=self.clock)

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


async def join_both(coordinator):
    """Two members through MEMBER_ID_REQUIRED and the join phase: their JoinGroup answers."""
    async def join(member_id=""):
        return await coordinator.join_group(
            group_id="cg", member_id=member_id, group_instance_id=None, client_id="c", client_host="/127.0.0.1",
            session_timeout_ms=10_000, rebalance_timeout_ms=10_000, protocol_type="consumer",
            protocols=[Protocol("range", b"meta")], version=7)
    first = [await join(), await join()]
    assert {r.error for r in first} == {E.MEMBER_ID_REQUIRED}
    return await asyncio.gather(*(join(r.member_id) for r in first))


def sync(coordinator, member, leader):
    """`member`'s SyncGroup (a JoinGroup answer) as a task; the leader's assigns each member its id."""
    return asyncio.ensure_future(coordinator.sync_group(
        group_id="cg", member_id=member.member_id, group_instance_id=None, generation_id=member.generation_id,
        protocol_type="consumer", protocol_name="range",
        assignments={m.member_id: m.member_id.encode() for m in leader.members} if member is leader else {}))


def leader_of(joined):
    return next(r for r in joined if r.leader == r.member_id)


def sync_both(coordinator, joined):
    """Both members' SyncGroup, the leader's with an assignment for each: the tasks, in the order of
    `joined`. The follower's goes first, so it is held until the leader's is stored."""
    leader = leader_of(joined)
    tasks = {id(r): sync(coordinator, r, leader) for r in sorted(joined, key=lambda r: r is leader)}
    return [tasks[id(r)] for r in joined]


async def join_two(coordinator):
    """Two members through MEMBER_ID_REQUIRED, the join phase and the leader's SyncGroup."""
    joined = await join_both(coordinator)
    syncs = await asyncio.gather(*sync_both(coordinator, joined))
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


# -- CoordinatorResult: a step's records are appended once, and answered only when durable --------

# The log's error -> what a group API answers (Kafka's appendGroupMetadataErrorToResponseError).
APPEND_FAILURES = [
    (E.NOT_ENOUGH_REPLICAS, E.COORDINATOR_NOT_AVAILABLE),
    (E.REQUEST_TIMED_OUT, E.COORDINATOR_NOT_AVAILABLE),
    (E.NOT_LEADER_OR_FOLLOWER, E.NOT_COORDINATOR),
    (E.KAFKA_STORAGE_ERROR, E.NOT_COORDINATOR),
]


# A commit too large for the log is the client's to fix, not the coordinator's.
COMMIT_FAILURES = APPEND_FAILURES + [(E.RECORD_LIST_TOO_LARGE, E.INVALID_COMMIT_OFFSET_SIZE)]


@pytest.mark.parametrize("log_error,answer", COMMIT_FAILURES)
async def test_a_failed_commit_answers_the_mapped_error_and_commits_nothing(node, log_error, answer):
    assert await simple_commit(node.coordinator, "g", commit(1)) == [E.NONE]
    node.append.fail_with = log_error
    assert await simple_commit(node.coordinator, "g", commit(2), commit(2, 1), OffsetToCommit("nope", 0, 1, -1, "")) \
        == [answer, answer, E.UNKNOWN_TOPIC_OR_PARTITION]
    assert [(p, c.offset) for _, p, c in node.coordinator.fetch_offsets("g", None)[1]] == [(0, 1)]
    node.append.fail_with = None
    assert await simple_commit(node.coordinator, "g", commit(3)) == [E.NONE]
    assert [(p, c.offset) for _, p, c in node.coordinator.fetch_offsets("g", None)[1]] == [(0, 3)]


async def test_a_commit_is_answered_and_visible_only_once_its_records_are_durable(node):
    node.append.gate = asyncio.Event()
    pending = asyncio.ensure_future(simple_commit(node.coordinator, "g", commit(7)))
    await wait_until_async(lambda: node.append.calls == 1, "the commit's append")
    assert not pending.done()
    assert node.coordinator.fetch_offsets("g", [(TOPIC, 0)]) == (E.NONE, [(TOPIC, 0, None)])
    node.append.gate.set()
    assert await pending == [E.NONE]
    assert node.coordinator.fetch_offsets("g", [(TOPIC, 0)])[1][0][2].offset == 7


async def test_the_syncs_are_answered_once_the_group_is_stored(node):
    joined = await join_both(node.coordinator)
    node.append.gate = asyncio.Event()
    syncs = sync_both(node.coordinator, joined)
    await wait_until_async(lambda: node.append.calls == 1, "the GroupMetadata append")
    assert not any(s.done() for s in syncs)  # the assignment is not yet stored
    node.append.gate.set()
    assert [(await s).assignment for s in syncs] == [r.member_id.encode() for r in joined]


@pytest.mark.parametrize("log_error,answer", APPEND_FAILURES)
async def test_a_failed_group_store_answers_every_sync_the_error_and_the_group_rebalances(node, log_error, answer):
    joined = await join_both(node.coordinator)
    node.append.fail_with = log_error
    syncs = await asyncio.gather(*sync_both(node.coordinator, joined))
    assert [s.error for s in syncs] == [answer, answer]
    await wait_until_async(lambda: node.coordinator.groups["cg"].state_name == "PreparingRebalance",
                           "the group to rebalance (Kafka's answer to a lost GroupMetadata write)")
    assert all(m.assignment == b"" for m in node.coordinator.groups["cg"].members.values())


async def sync_leader_then_follower(node):
    """The leader's SyncGroup, its GroupMetadata write held at `node.append.gate`, then the
    follower's, once the coordinator holds it: the JoinGroup answers and the SyncGroup tasks of
    (leader, follower)."""
    joined = await join_both(node.coordinator)
    leader = leader_of(joined)
    follower = next(r for r in joined if r is not leader)
    node.append.gate = asyncio.Event()
    leader_sync = sync(node.coordinator, leader, leader)
    await wait_until_async(lambda: node.append.calls == 1, "the leader's GroupMetadata append")
    group = node.coordinator.groups["cg"]
    # Kafka's group stays CompletingRebalance until the assignment is written.
    assert group.state_name == "CompletingRebalance"
    follower_sync = sync(node.coordinator, follower, leader)
    await wait_until_async(lambda: group.members[follower.member_id].awaiting_sync is not None,
                           "the follower's SyncGroup to be held")
    assert not leader_sync.done() and not follower_sync.done()
    return (leader, follower), (leader_sync, follower_sync)


async def test_a_follower_syncing_while_the_assignment_is_written_gets_it_once_written(node):
    members, syncs = await sync_leader_then_follower(node)
    node.append.gate.set()
    for member, task in zip(members, syncs):
        answer = await task
        assert (answer.error, answer.protocol_name, answer.assignment) == (E.NONE, "range", member.member_id.encode())
    assert node.coordinator.groups["cg"].state is STABLE and node.append.calls == 1
    # A SyncGroup after the write is answered by the Stable group at once, with nothing written.
    late = await sync(node.coordinator, members[1], members[0])
    assert late.error == E.NONE and late.assignment == members[1].member_id.encode() and node.append.calls == 1


@pytest.mark.parametrize("log_error,answer", APPEND_FAILURES)
async def test_a_follower_syncing_while_the_assignment_write_fails_gets_the_error(node, log_error, answer):
    _, syncs = await sync_leader_then_follower(node)
    node.append.fail_with = log_error
    node.append.gate.set()
    assert [(await s).error for s in syncs] == [answer, answer]
    group = node.coordinator.groups["cg"]
    assert group.state_name == "PreparingRebalance"
    assert all(m.assignment == b"" for m in group.members.values())


@pytest.mark.parametrize("log_error,answer", APPEND_FAILURES)
async def test_a_failed_consumer_group_write_answers_the_error(node, log_error, answer):
    node.append.fail_with = log_error
    response = await node.coordinator.consumer_group_heartbeat(HeartbeatRequest(
        group_id="kip848", member_id="", member_epoch=0, rebalance_timeout_ms=30_000,
        subscribed_topic_names=[TOPIC], topic_partitions=[]))
    assert response.error == answer and response.member_epoch == 0 and response.assignment is None
    # Kafka would revert the group to its last committed state (its timeline); kbroker keeps no
    # timeline, so the member it added stays until its session expires.
    group = node.coordinator.groups["kip848"]
    assert group.group_epoch == 1 and len(group.members) == 1


async def test_a_failed_deletion_keeps_the_group_and_its_offsets(node):
    await simple_commit(node.coordinator, "empty", commit(5))
    node.append.fail_with = E.NOT_LEADER_OR_FOLLOWER
    assert await node.coordinator.delete_groups(["empty"]) == [E.NOT_COORDINATOR]
    assert await node.coordinator.delete_offsets("empty", [(TOPIC, 0)]) == (E.NOT_COORDINATOR, [])
    node.clock.now += 8 * 24 * 3600 * 1000
    assert await node.coordinator.expire_offsets() == 0
    assert "empty" in node.coordinator.groups and len(node.coordinator.fetch_offsets("empty", None)[1]) == 1
    node.append.fail_with = None
    assert await node.coordinator.delete_groups(["empty"]) == [E.NONE]
    assert "empty" not in node.coordinator.groups and node.coordinator.fetch_offsets("empty", None) == (E.NONE, [])


async def test_a_failed_transactional_commit_stages_nothing(node):
    async def txn_commit():
        return await node.coordinator.commit_txn_offsets(
            group_id="g", producer_id=7, producer_epoch=0, member_id="", group_instance_id=None, generation_id=-1,
            offsets=[commit(4)])
    node.append.fail_with = E.REQUEST_TIMED_OUT
    assert await txn_commit() == [E.COORDINATOR_NOT_AVAILABLE]
    assert not node.coordinator.has_pending_offset("g", TOPIC, 0)
    node.append.fail_with = None
    assert await txn_commit() == [E.NONE]
    assert node.coordinator.has_pending_offset("g", TOPIC, 0)
    assert node.coordinator.fetch_offsets("g", [(TOPIC, 0)])[1] == [(TOPIC, 0, None)]  # until the marker


def test_offset_store_changes_only_by_replaying_what_it_wrote():
    store = OffsetStore()
    result = store.commit("g", [commit(5), commit(6, 1, "m"), OffsetToCommit(TOPIC, 9, 1, -1, None)], 100, -1,
                          lambda item, _metadata: E.UNKNOWN_TOPIC_OR_PARTITION if item.partition == 9 else E.NONE)
    assert result.response == [E.NONE, E.NONE, E.UNKNOWN_TOPIC_OR_PARTITION]
    assert [(r.key.partition, r.value.offset) for r in result.records] == [(0, 5), (1, 6)]
    assert store.of_group("g") == {}  # nothing until the records are written and replayed
    for record in result.records:
        store.replay(rec.decode_record(*record.encode()))  # what a restart reads back does the same
    assert store.get("g", TOPIC, 1) == CommittedOffset(6, 3, "m", 100)
    deletion = store.delete("g", [(TOPIC, 0), (TOPIC, 2)])  # no offset for partition 2: no tombstone
    assert [(r.key.partition, r.value) for r in deletion.records] == [(0, None)]
    store.replay(deletion.records[0])
    assert list(store.of_group("g")) == [(TOPIC, 1)]
    store.replay(result.records[0], producer_id=42)
    assert store.has_pending("g", TOPIC, 0) and store.get("g", TOPIC, 0) is None
