"""Consumer-group APIs over real sockets, request by request, with the exact error codes Kafka gives.

One broker for the module (initial rebalance delay 0 so a join phase ends as soon as the group
allows); every test uses its own group id. The raw client lets a test hold a JoinGroup on one
connection while it drives other members on another.
"""
from __future__ import annotations

import itertools

import pytest

from kbroker.errors import ErrorCode
from kbroker.wire.messages.create_topics import CreatableTopic, CreateTopicsRequest
from kbroker.wire.messages.delete_groups import DeleteGroupsRequest
from kbroker.wire.messages.describe_groups import DescribeGroupsRequest
from kbroker.wire.messages.find_coordinator import FindCoordinatorRequest
from kbroker.wire.messages.heartbeat import HeartbeatRequest
from kbroker.wire.messages.join_group import JoinGroupRequest, JoinGroupRequestProtocol
from kbroker.wire.messages.leave_group import LeaveGroupRequest, MemberIdentity
from kbroker.wire.messages.list_groups import ListGroupsRequest
from kbroker.wire.messages.offset_commit import (
    OffsetCommitRequest,
    OffsetCommitRequestPartition,
    OffsetCommitRequestTopic,
)
from kbroker.wire.messages.offset_fetch import (
    OffsetFetchRequest,
    OffsetFetchRequestGroup,
    OffsetFetchRequestTopic,
)
from kbroker.wire.messages.sync_group import SyncGroupRequest, SyncGroupRequestAssignment
from tests.broker_process import BrokerProcess
from tests.waiting import wait_until
from tests.wire_client import WireClient

E = ErrorCode
OFFSET_COMMIT, OFFSET_FETCH, FIND_COORDINATOR, JOIN, HEARTBEAT, LEAVE, SYNC = 8, 9, 10, 11, 12, 13, 14
DESCRIBE_GROUPS, LIST_GROUPS, CREATE_TOPICS, DELETE_GROUPS, API_VERSIONS = 15, 16, 19, 42, 18
TOPIC = "group-topic"
_ids = itertools.count()


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    process = BrokerProcess(tmp_path_factory.mktemp("groups") / "data",
                            {"group.initial.rebalance.delay.ms": "0", "message.max.bytes": "200000"}).start()
    with WireClient(process.bootstrap) as client:
        response = client.request(CREATE_TOPICS, 7, CreateTopicsRequest(
            topics=[CreatableTopic(name=TOPIC, num_partitions=3, replication_factor=1)], timeout_ms=5000))
        assert response.topics[0].error_code == 0
        # The first lookup creates __consumer_offsets.
        found = client.request(FIND_COORDINATOR, 4, FindCoordinatorRequest(key_type=0, coordinator_keys=["x"]))
        assert found.coordinators[0].error_code == 0
    yield process
    process.stop()


@pytest.fixture
def client(broker):
    with WireClient(broker.bootstrap) as c:
        yield c


@pytest.fixture
def group() -> str:
    return f"group-{next(_ids)}"


def join(client, group, member_id="", *, version=7, protocols=None, session=10_000, instance_id=None,
         protocol_type="consumer"):
    protocols = [JoinGroupRequestProtocol(name="range", metadata=b"m")] if protocols is None else protocols
    return client.request(JOIN, version, JoinGroupRequest(
        group_id=group, session_timeout_ms=session, rebalance_timeout_ms=10_000, member_id=member_id,
        group_instance_id=instance_id, protocol_type=protocol_type, protocols=protocols))


def sync(client, group, member_id, generation, assignments=None, version=5):
    return client.request(SYNC, version, SyncGroupRequest(
        group_id=group, generation_id=generation, member_id=member_id, protocol_type="consumer",
        protocol_name="range", assignments=[SyncGroupRequestAssignment(member_id=m, assignment=a)
                                            for m, a in (assignments or {}).items()]))


def heartbeat(client, group, member_id, generation, version=4):
    return client.request(HEARTBEAT, version, HeartbeatRequest(
        group_id=group, generation_id=generation, member_id=member_id)).error_code


def single_member_group(client, group):
    first = join(client, group)
    assert first.error_code == E.MEMBER_ID_REQUIRED and first.member_id
    joined = join(client, group, first.member_id)
    assert joined.error_code == 0 and joined.leader == first.member_id and joined.generation_id == 1
    assert [m.member_id for m in joined.members] == [first.member_id]
    synced = sync(client, group, first.member_id, 1, {first.member_id: b"assignment"})
    assert synced.error_code == 0 and synced.assignment == b"assignment" and synced.protocol_name == "range"
    return first.member_id


def test_join_sync_heartbeat_leave(client, group):
    member = single_member_group(client, group)
    assert heartbeat(client, group, member, 1) == E.NONE
    assert heartbeat(client, group, member, 2) == E.ILLEGAL_GENERATION
    assert heartbeat(client, group, "stranger", 1) == E.UNKNOWN_MEMBER_ID
    assert heartbeat(client, "no-such-group", member, 1) == E.UNKNOWN_MEMBER_ID
    left = client.request(LEAVE, 5, LeaveGroupRequest(group_id=group, members=[
        MemberIdentity(member_id=member), MemberIdentity(member_id="stranger")]))
    assert left.error_code == 0 and [m.error_code for m in left.members] == [E.NONE, E.UNKNOWN_MEMBER_ID]
    assert heartbeat(client, group, member, 1) == E.UNKNOWN_MEMBER_ID
    old = client.request(LEAVE, 1, LeaveGroupRequest(group_id=group, member_id=member))
    assert old.error_code == E.UNKNOWN_MEMBER_ID


def test_old_join_versions_need_no_member_id_round_trip(client, group):
    joined = join(client, group, version=3)
    assert joined.error_code == 0 and joined.member_id and joined.generation_id == 1
    described = client.request(DESCRIBE_GROUPS, 0, DescribeGroupsRequest(groups=[group])).groups[0]
    assert described.group_state == "CompletingRebalance"


def test_bad_joins(client, group):
    assert join(client, group, protocols=[]).error_code == E.INCONSISTENT_GROUP_PROTOCOL
    assert join(client, group, protocol_type="").error_code == E.INCONSISTENT_GROUP_PROTOCOL
    assert join(client, group, session=1000).error_code == E.INVALID_SESSION_TIMEOUT
    assert join(client, group, session=3_600_000).error_code == E.INVALID_SESSION_TIMEOUT
    assert join(client, "").error_code == E.INVALID_GROUP_ID
    assert join(client, group, "made-up-member").error_code == E.UNKNOWN_MEMBER_ID
    single_member_group(client, group)
    assert join(client, group, protocols=[JoinGroupRequestProtocol(name="sticky", metadata=b"")]).error_code \
        == E.INCONSISTENT_GROUP_PROTOCOL
    assert join(client, group, protocol_type="connect").error_code == E.INCONSISTENT_GROUP_PROTOCOL


def test_sync_errors(client, group):
    member = single_member_group(client, group)
    assert sync(client, group, member, 7).error_code == E.ILLEGAL_GENERATION
    assert sync(client, group, "stranger", 1).error_code == E.UNKNOWN_MEMBER_ID
    assert sync(client, "no-such-group", member, 1).error_code == E.UNKNOWN_MEMBER_ID
    assert client.request(SYNC, 5, SyncGroupRequest(
        group_id=group, generation_id=1, member_id=member, protocol_type="consumer",
        protocol_name="roundrobin")).error_code == E.INCONSISTENT_GROUP_PROTOCOL


def test_assignment_for_a_topic_that_does_not_exist_is_handed_out_as_given(client, group):
    """The broker never reads the leader's assignment bytes; Kafka stores and returns them too."""
    first = join(client, group)
    joined = join(client, group, first.member_id)
    from kbroker.coordinator.consumer_protocol import assignment_partitions, encode_assignment
    assignment = encode_assignment({"no-such-topic": [0, 1]})
    synced = sync(client, group, first.member_id, joined.generation_id, {first.member_id: assignment})
    assert synced.error_code == 0 and assignment_partitions(synced.assignment) == {"no-such-topic": [0, 1]}


def test_oversize_member_metadata_fails_the_store_and_the_group_rebalances(client, group):
    big = [JoinGroupRequestProtocol(name="range", metadata=b"x" * 250_000)]
    first = join(client, group, protocols=big)
    joined = join(client, group, first.member_id, protocols=big)
    assert joined.error_code == 0
    synced = sync(client, group, first.member_id, joined.generation_id, {first.member_id: b"a"})
    assert synced.error_code == E.UNKNOWN_SERVER_ERROR  # the GroupMetadata record exceeds message.max.bytes
    assert heartbeat(client, group, first.member_id, joined.generation_id) == E.REBALANCE_IN_PROGRESS


def _send_join(client, group, member_id, metadata=b"m") -> int:
    return client.send(JOIN, 7, JoinGroupRequest(
        group_id=group, session_timeout_ms=10_000, rebalance_timeout_ms=10_000, member_id=member_id,
        protocol_type="consumer", protocols=[JoinGroupRequestProtocol(name="range", metadata=metadata)]))


def _until_rebalancing(client, group, member_id, generation) -> None:
    """The other connection's JoinGroup may still be on its way: heartbeat until it has arrived."""
    def rebalancing() -> bool:
        error = heartbeat(client, group, member_id, generation)
        assert error in (E.NONE, E.REBALANCE_IN_PROGRESS), error
        return error == E.REBALANCE_IN_PROGRESS
    wait_until(rebalancing, "the group to start rebalancing")


def test_a_held_join_keeps_response_order_on_its_connection(broker, group):
    """B's JoinGroup is held until the Stable member A rejoins; what B sent after it waits its turn."""
    with WireClient(broker.bootstrap) as a, WireClient(broker.bootstrap) as b:
        id_a = single_member_group(a, group)
        id_b = join(b, group).member_id
        held = _send_join(b, group, id_b)
        fetch = b.send(OFFSET_FETCH, 7, OffsetFetchRequest(group_id=group, topics=None))
        _until_rebalancing(a, group, id_a, 1)
        joined_a = join(a, group, id_a)  # everyone is in: the join phase ends
        correlation, joined_b = b.receive(JOIN, 7)
        assert correlation == held and joined_b.error_code == 0
        assert joined_a.generation_id == joined_b.generation_id == 2 and joined_a.leader == id_a
        assert sorted(m.member_id for m in joined_a.members) == sorted([id_a, id_b]) and joined_b.members == []
        correlation, fetched = b.receive(OFFSET_FETCH, 7)
        assert correlation == fetch and fetched.error_code == 0


def test_two_members_rebalance_when_one_leaves(broker, group):
    with WireClient(broker.bootstrap) as a, WireClient(broker.bootstrap) as b:
        id_a = single_member_group(a, group)
        id_b = join(b, group).member_id
        _send_join(b, group, id_b)
        _until_rebalancing(a, group, id_a, 1)
        join(a, group, id_a)
        b.receive(JOIN, 7)
        assert sync(a, group, id_a, 2, {id_a: b"A", id_b: b"B"}).assignment == b"A"
        assert sync(b, group, id_b, 2).assignment == b"B"
        left = b.request(LEAVE, 3, LeaveGroupRequest(group_id=group, members=[MemberIdentity(member_id=id_b)]))
        assert [m.error_code for m in left.members] == [E.NONE]
        assert heartbeat(a, group, id_a, 2) == E.REBALANCE_IN_PROGRESS
        rejoined = join(a, group, id_a)
        assert rejoined.generation_id == 3 and [m.member_id for m in rejoined.members] == [id_a]


def offset_commit(client, group, offset, *, member="", generation=-1, version=8, metadata="meta",
                  topic=TOPIC, partition=0):
    return client.request(OFFSET_COMMIT, version, OffsetCommitRequest(
        group_id=group, generation_id_or_member_epoch=generation, member_id=member, topics=[
            OffsetCommitRequestTopic(name=topic, partitions=[OffsetCommitRequestPartition(
                partition_index=partition, committed_offset=offset, committed_leader_epoch=4,
                committed_metadata=metadata)])])).topics[0].partitions[0].error_code


@pytest.mark.parametrize("version", [0, 1, 2, 3, 5, 7, 8, 9])
def test_offset_commit_and_fetch_every_version(client, group, version):
    assert offset_commit(client, group, 42, version=version) == E.NONE
    fetch_version = min(version, 7) if version < 8 else version
    if fetch_version >= 8:
        response = client.request(OFFSET_FETCH, fetch_version, OffsetFetchRequest(groups=[
            OffsetFetchRequestGroup(group_id=group, topics=None)]))
        partitions = response.groups[0].topics[0].partitions
    else:
        response = client.request(OFFSET_FETCH, max(fetch_version, 1), OffsetFetchRequest(
            group_id=group, topics=[OffsetFetchRequestTopic(name=TOPIC, partition_indexes=[0, 1])]))
        partitions = response.topics[0].partitions
    assert (partitions[0].committed_offset, partitions[0].metadata) == (42, "meta")
    if version >= 8:
        assert len(partitions) == 1  # null topics: only what was committed
    else:
        assert partitions[1].committed_offset == -1  # asked for, never committed


def test_offset_commit_errors(client, group):
    member = single_member_group(client, group)
    assert offset_commit(client, group, 1, member=member, generation=1) == E.NONE
    assert offset_commit(client, group, 1, member=member, generation=2) == E.ILLEGAL_GENERATION
    assert offset_commit(client, group, 1, member="stranger", generation=1) == E.UNKNOWN_MEMBER_ID
    assert offset_commit(client, group, 1) == E.UNKNOWN_MEMBER_ID  # no member: the group is not empty
    assert offset_commit(client, "never-seen", 1, member="m", generation=3) == E.ILLEGAL_GENERATION
    assert offset_commit(client, "never-seen", 1, member="m", generation=3, version=9) == E.GROUP_ID_NOT_FOUND
    assert offset_commit(client, group, 1, member=member, generation=1, topic="no-such-topic") \
        == E.UNKNOWN_TOPIC_OR_PARTITION
    assert offset_commit(client, group, 1, member=member, generation=1, partition=99) == E.UNKNOWN_TOPIC_OR_PARTITION
    assert offset_commit(client, group, 1, member=member, generation=1, metadata="x" * 5000) \
        == E.OFFSET_METADATA_TOO_LARGE
    assert offset_commit(client, "", 1) == E.INVALID_GROUP_ID


def test_offset_fetch_of_all_topics_v3_has_the_full_body(client, group):
    """aiokafka's admin client: OffsetFetch v3, topics null (Tansu answered with 6 bytes)."""
    offset_commit(client, group, 7)
    response = client.request(OFFSET_FETCH, 3, OffsetFetchRequest(group_id=group, topics=None))
    assert response.error_code == 0 and response.topics[0].partitions[0].committed_offset == 7
    empty = client.request(OFFSET_FETCH, 3, OffsetFetchRequest(group_id="nothing-here", topics=None))
    assert empty.error_code == 0 and empty.topics == []


def test_describe_list_and_delete(client, group):
    member = single_member_group(client, group)
    described = client.request(DESCRIBE_GROUPS, 5, DescribeGroupsRequest(groups=[group, "ghost", ""]))
    one, ghost, empty = described.groups
    assert (one.group_state, one.protocol_type, one.protocol_data) == ("Stable", "consumer", "range")
    assert one.members[0].member_id == member and one.members[0].member_assignment == b"assignment"
    assert one.authorized_operations == -(2**31)  # not requested: INT32_MIN, not a bitmask
    assert (ghost.error_code, ghost.group_state) == (0, "Dead")
    assert empty.error_code == E.INVALID_GROUP_ID
    asked = client.request(DESCRIBE_GROUPS, 5, DescribeGroupsRequest(groups=[group],
                                                                     include_authorized_operations=True))
    assert asked.groups[0].authorized_operations == (1 << 3) | (1 << 6) | (1 << 8) | (1 << 10) | (1 << 11)
    listed = client.request(LIST_GROUPS, 5, ListGroupsRequest(states_filter=["stable"]))
    assert group in [g.group_id for g in listed.groups]
    assert all(g.group_state == "Stable" and g.group_type == "classic" for g in listed.groups)
    assert group not in [g.group_id for g in client.request(LIST_GROUPS, 5, ListGroupsRequest(
        states_filter=["Empty"])).groups]
    assert group not in [g.group_id for g in client.request(LIST_GROUPS, 5, ListGroupsRequest(
        types_filter=["consumer"])).groups]
    deleted = client.request(DELETE_GROUPS, 2, DeleteGroupsRequest(groups_names=[group, "ghost"]))
    assert [r.error_code for r in deleted.results] == [E.NON_EMPTY_GROUP, E.GROUP_ID_NOT_FOUND]


def test_find_coordinator_batched_keys_and_transactions(client):
    response = client.request(FIND_COORDINATOR, 4, FindCoordinatorRequest(
        key_type=0, coordinator_keys=["a", "b", ""]))
    assert [c.error_code for c in response.coordinators] == [0, 0, E.INVALID_GROUP_ID]
    # A single node coordinates every transactional id too; an empty one is refused.
    txn = client.request(FIND_COORDINATOR, 4, FindCoordinatorRequest(key_type=1, coordinator_keys=["t", ""]))
    assert [(c.error_code, c.node_id) for c in txn.coordinators] == [(0, response.coordinators[0].node_id),
                                                                      (E.INVALID_REQUEST, -1)]
