"""Classic consumer groups and committed offsets: JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
OffsetCommit, OffsetFetch, OffsetDelete, DescribeGroups, ListGroups, DeleteGroups.

Each handler turns its request (every version) into a call on the group coordinator
(`ctx.broker.groups`) and its answer back into the response of that version. JoinGroup and
SyncGroup are held until the group answers them; the connection keeps later answers in order.
"""
from __future__ import annotations

from typing import Any

from kbroker.broker import authorization
from kbroker.broker.authorization import authorized_operations
from kbroker.broker.dispatch import RequestContext
from kbroker.coordinator.classic import ClassicGroup, Protocol
from kbroker.coordinator.offsets import OffsetToCommit
from kbroker.errors import ErrorCode
from kbroker.security.acls import Operation, ResourceType
from kbroker.wire.messages.delete_groups import DeletableGroupResult, DeleteGroupsRequest, DeleteGroupsResponse
from kbroker.wire.messages.describe_groups import (
    DescribedGroup,
    DescribedGroupMember,
    DescribeGroupsRequest,
    DescribeGroupsResponse,
)
from kbroker.wire.messages.heartbeat import HeartbeatRequest, HeartbeatResponse
from kbroker.wire.messages.join_group import JoinGroupRequest, JoinGroupResponse, JoinGroupResponseMember
from kbroker.wire.messages.leave_group import LeaveGroupRequest, LeaveGroupResponse, MemberResponse
from kbroker.wire.messages.list_groups import ListedGroup, ListGroupsRequest, ListGroupsResponse
from kbroker.wire.messages.offset_commit import (
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetCommitResponsePartition,
    OffsetCommitResponseTopic,
)
from kbroker.wire.messages.offset_delete import (
    OffsetDeleteRequest,
    OffsetDeleteResponse,
    OffsetDeleteResponsePartition,
    OffsetDeleteResponseTopic,
)
from kbroker.wire.messages.offset_fetch import (
    OffsetFetchRequest,
    OffsetFetchResponse,
    OffsetFetchResponseGroup,
    OffsetFetchResponsePartition,
    OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
)
from kbroker.wire.messages.sync_group import SyncGroupRequest, SyncGroupResponse

NO_OFFSET = -1
GROUP_DENIED = ErrorCode.GROUP_AUTHORIZATION_FAILED
TOPIC_DENIED = ErrorCode.TOPIC_AUTHORIZATION_FAILED


def client_host(ctx: RequestContext) -> str:
    """The client's address as Kafka prints it (InetAddress.toString: "/127.0.0.1")."""
    peer = ctx.connection.peer
    host = peer.rsplit(":", 1)[0] if ":" in peer else peer
    return "/" + host


# -- JoinGroup / SyncGroup / Heartbeat / LeaveGroup ----------------------------------------------

async def handle_join_group(ctx: RequestContext, request: JoinGroupRequest) -> JoinGroupResponse:
    if not authorization.on_group(ctx, Operation.READ, request.group_id):
        return JoinGroupResponse(error_code=GROUP_DENIED, member_id=request.member_id,
                                 protocol_name=None if ctx.version >= 7 else "")
    result = await ctx.broker.groups.join_group(
        group_id=request.group_id, member_id=request.member_id, group_instance_id=request.group_instance_id,
        client_id=ctx.header.client_id or "", client_host=client_host(ctx),
        session_timeout_ms=request.session_timeout_ms, rebalance_timeout_ms=request.rebalance_timeout_ms,
        protocol_type=request.protocol_type, protocols=[Protocol(p.name, bytes(p.metadata)) for p in request.protocols],
        version=ctx.version)
    flexible_names = ctx.version >= 7
    return JoinGroupResponse(
        error_code=result.error, generation_id=result.generation_id,
        protocol_type=result.protocol_type if flexible_names else None,
        protocol_name=result.protocol_name if flexible_names else (result.protocol_name or ""),
        leader=result.leader, skip_assignment=result.skip_assignment, member_id=result.member_id,
        members=[JoinGroupResponseMember(member_id=m.member_id, group_instance_id=m.group_instance_id,
                                         metadata=m.metadata) for m in result.members])


async def handle_sync_group(ctx: RequestContext, request: SyncGroupRequest) -> SyncGroupResponse:
    if not authorization.on_group(ctx, Operation.READ, request.group_id):
        return SyncGroupResponse(error_code=GROUP_DENIED, assignment=b"")
    result = await ctx.broker.groups.sync_group(
        group_id=request.group_id, member_id=request.member_id, group_instance_id=request.group_instance_id,
        generation_id=request.generation_id, protocol_type=request.protocol_type,
        protocol_name=request.protocol_name,
        assignments={a.member_id: bytes(a.assignment) for a in request.assignments})
    return SyncGroupResponse(error_code=result.error, protocol_type=result.protocol_type,
                             protocol_name=result.protocol_name, assignment=result.assignment)


def handle_heartbeat(ctx: RequestContext, request: HeartbeatRequest) -> HeartbeatResponse:
    if not authorization.on_group(ctx, Operation.READ, request.group_id):
        return HeartbeatResponse(error_code=GROUP_DENIED)
    error = ctx.broker.groups.heartbeat(group_id=request.group_id, member_id=request.member_id,
                                        group_instance_id=request.group_instance_id,
                                        generation_id=request.generation_id)
    return HeartbeatResponse(error_code=error)


async def handle_leave_group(ctx: RequestContext, request: LeaveGroupRequest) -> LeaveGroupResponse:
    if not authorization.on_group(ctx, Operation.READ, request.group_id):
        return LeaveGroupResponse(error_code=GROUP_DENIED)
    if ctx.version < 3:
        members = [(request.member_id, None)]
    else:
        members = [(m.member_id, m.group_instance_id) for m in request.members]
    error, errors = await ctx.broker.groups.leave_group(request.group_id, members)
    if ctx.version < 3:
        return LeaveGroupResponse(error_code=error or errors[0])
    return LeaveGroupResponse(error_code=error, members=[] if error else [
        MemberResponse(member_id=m.member_id, group_instance_id=m.group_instance_id, error_code=e)
        for m, e in zip(request.members, errors)])


# -- offsets ------------------------------------------------------------------------------------

async def handle_offset_commit(ctx: RequestContext, request: OffsetCommitRequest) -> OffsetCommitResponse:
    """READ on the group, and READ on each topic: only the permitted topics' offsets are committed."""
    group_permitted = authorization.on_group(ctx, Operation.READ, request.group_id)
    permitted = {t.name: group_permitted and authorization.on_topic(ctx, Operation.READ, t.name)
                 for t in request.topics}
    offsets = [OffsetToCommit(t.name, p.partition_index, p.committed_offset, p.committed_leader_epoch,
                              p.committed_metadata)
               for t in request.topics if permitted[t.name] for p in t.partitions]
    outcome = await ctx.broker.groups.commit_offsets(
        group_id=request.group_id, member_id=request.member_id, group_instance_id=request.group_instance_id,
        generation_id_or_member_epoch=request.generation_id_or_member_epoch, version=ctx.version,
        retention_time_ms=request.retention_time_ms, offsets=offsets) if offsets else []
    errors = iter(outcome if isinstance(outcome, list) else [outcome] * len(offsets))
    denied = TOPIC_DENIED if group_permitted else GROUP_DENIED
    return OffsetCommitResponse(topics=[
        OffsetCommitResponseTopic(name=t.name, partitions=[
            OffsetCommitResponsePartition(partition_index=p.partition_index,
                                          error_code=next(errors) if permitted[t.name] else denied)
            for p in t.partitions])
        for t in request.topics])


def handle_offset_fetch(ctx: RequestContext, request: OffsetFetchRequest) -> OffsetFetchResponse:
    groups = ctx.broker.groups
    if ctx.version >= 8:
        answers = []
        for group in request.groups:
            if not authorization.on_group(ctx, Operation.DESCRIBE, group.group_id):
                answers.append(OffsetFetchResponseGroup(group_id=group.group_id, error_code=GROUP_DENIED))
                continue
            wanted = None if group.topics is None else [(t.name, p) for t in group.topics for p in t.partition_indexes]
            error, found = groups.fetch_offsets(group.group_id, wanted, member_id=group.member_id,
                                                member_epoch=group.member_epoch)
            found = _describable(ctx, found, wanted is None)
            answers.append(OffsetFetchResponseGroup(
                group_id=group.group_id, error_code=error,
                topics=[OffsetFetchResponseTopics(name=name, partitions=[
                    OffsetFetchResponsePartitions(partition_index=p, **_committed(
                        c, TOPIC_DENIED if c == TOPIC_DENIED else _unstable(ctx, request, group.group_id, name, p)))
                    for p, c in parts])
                    for name, parts in _by_topic(found)]))
        return OffsetFetchResponse(groups=answers)
    wanted = None if request.topics is None else [(t.name, p) for t in request.topics for p in t.partition_indexes]
    if not authorization.on_group(ctx, Operation.DESCRIBE, request.group_id):
        error, found = GROUP_DENIED, []
    else:
        error, found = groups.fetch_offsets(request.group_id, wanted)
        found = _describable(ctx, found, wanted is None)
    if error and ctx.version < 2:
        # v0-1 have no group-level error: every requested partition carries it.
        found = [(t, p, None) for t, p in wanted or []]
    topics = [OffsetFetchResponseTopic(name=name, partitions=[
        OffsetFetchResponsePartition(partition_index=p, **_committed(
            c, TOPIC_DENIED if c == TOPIC_DENIED
            else error if ctx.version < 2 else _unstable(ctx, request, request.group_id, name, p)))
        for p, c in parts])
        for name, parts in _by_topic(found)]
    return OffsetFetchResponse(topics=topics, error_code=error)


def _describable(ctx: RequestContext, found: list[tuple[str, int, Any]], listing_all: bool) -> list:
    """Offsets of topics the principal may describe; the others are left out of a listing of all
    (as Kafka does) and answered TOPIC_AUTHORIZATION_FAILED where they were asked for."""
    if ctx.broker.authorizer is None:
        return found
    kept = []
    for topic, partition, committed in found:
        if authorization.on_topic(ctx, Operation.DESCRIBE, topic):
            kept.append((topic, partition, committed))
        elif not listing_all:
            kept.append((topic, partition, TOPIC_DENIED))
    return kept


def _by_topic(found: list[tuple[str, int, Any]]) -> list[tuple[str, list[tuple[int, Any]]]]:
    topics: dict[str, list[tuple[int, Any]]] = {}
    for topic, partition, committed in found:
        topics.setdefault(topic, []).append((partition, committed))
    return list(topics.items())


def _unstable(ctx: RequestContext, request: OffsetFetchRequest, group_id: str, topic: str, partition: int) -> int:
    """KIP-447: with require_stable, an offset a transaction has staged but not yet committed is
    UNSTABLE_OFFSET_COMMIT (the client retries), so a new consumer does not start from the old one."""
    if request.require_stable and ctx.broker.groups.has_pending_offset(group_id, topic, partition):
        return ErrorCode.UNSTABLE_OFFSET_COMMIT
    return ErrorCode.NONE


def _committed(committed: Any, error: int = ErrorCode.NONE) -> dict[str, Any]:
    if committed is None or error:
        return {"committed_offset": NO_OFFSET, "committed_leader_epoch": -1, "metadata": "", "error_code": error}
    return {"committed_offset": committed.offset, "committed_leader_epoch": committed.leader_epoch,
            "metadata": committed.metadata, "error_code": error}


async def handle_offset_delete(ctx: RequestContext, request: OffsetDeleteRequest) -> OffsetDeleteResponse:
    if not authorization.on_group(ctx, Operation.DELETE, request.group_id):
        return OffsetDeleteResponse(error_code=GROUP_DENIED)
    permitted = {t.name: authorization.on_topic(ctx, Operation.READ, t.name) for t in request.topics}
    partitions = [(t.name, p.partition_index) for t in request.topics if permitted[t.name] for p in t.partitions]
    error, errors = await ctx.broker.groups.delete_offsets(request.group_id, partitions)
    if error:
        return OffsetDeleteResponse(error_code=error)
    results = iter(errors)
    return OffsetDeleteResponse(error_code=0, topics=[
        OffsetDeleteResponseTopic(name=t.name, partitions=[
            OffsetDeleteResponsePartition(partition_index=p.partition_index,
                                          error_code=next(results) if permitted[t.name] else TOPIC_DENIED)
            for p in t.partitions])
        for t in request.topics])


# -- admin views --------------------------------------------------------------------------------

def handle_describe_groups(ctx: RequestContext, request: DescribeGroupsRequest) -> DescribeGroupsResponse:
    coordinator = ctx.broker.groups
    described = []
    for group_id in request.groups:
        operations = authorized_operations(ctx, ResourceType.GROUP, group_id, request.include_authorized_operations)
        error = (coordinator.group_error(group_id) if authorization.on_group(ctx, Operation.DESCRIBE, group_id)
                 else GROUP_DENIED)
        group = coordinator.groups.get(group_id)
        if error:
            described.append(DescribedGroup(error_code=error, group_id=group_id, group_state="",
                                            authorized_operations=operations))
        elif not isinstance(group, ClassicGroup):
            # Unknown here, or a KIP-848 group (ConsumerGroupDescribe describes those): Kafka says Dead.
            described.append(DescribedGroup(error_code=0, group_id=group_id, group_state="Dead",
                                            authorized_operations=operations))
        else:
            view = group.describe()
            described.append(DescribedGroup(
                error_code=0, group_id=group_id, group_state=view.state, protocol_type=view.protocol_type,
                protocol_data=view.protocol, authorized_operations=operations,
                members=[DescribedGroupMember(member_id=m.member_id, group_instance_id=m.group_instance_id,
                                              client_id=m.client_id, client_host=m.client_host,
                                              member_metadata=m.metadata, member_assignment=m.assignment)
                         for m in view.members]))
    return DescribeGroupsResponse(groups=described)


def handle_list_groups(ctx: RequestContext, request: ListGroupsRequest) -> ListGroupsResponse:
    coordinator = ctx.broker.groups
    error = ErrorCode.COORDINATOR_LOAD_IN_PROGRESS if coordinator.loading_any() else ErrorCode.NONE
    listed = coordinator.list_groups(request.states_filter, request.types_filter)
    if not authorization.on_cluster(ctx, Operation.DESCRIBE):  # else only the groups it may describe
        listed = [g for g in listed if authorization.on_group(ctx, Operation.DESCRIBE, g.group_id)]
    return ListGroupsResponse(error_code=error, groups=[
        ListedGroup(group_id=g.group_id, protocol_type=g.protocol_type, group_state=g.state, group_type=g.group_type)
        for g in listed])


async def handle_delete_groups(ctx: RequestContext, request: DeleteGroupsRequest) -> DeleteGroupsResponse:
    permitted = [g for g in request.groups_names if authorization.on_group(ctx, Operation.DELETE, g)]
    errors = dict(zip(permitted, await ctx.broker.groups.delete_groups(permitted)))
    return DeleteGroupsResponse(results=[DeletableGroupResult(group_id=g, error_code=errors.get(g, GROUP_DENIED))
                                         for g in request.groups_names])
