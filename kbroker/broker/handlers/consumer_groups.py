"""KIP-848 consumer groups: ConsumerGroupHeartbeat and ConsumerGroupDescribe.

The broker computes assignments (server-side assignors); members name topics by id in both
directions, and librdkafka (`group.protocol=consumer`) pairs these with OffsetCommit and
OffsetFetch v9, which carry the member id and epoch.
"""
from __future__ import annotations

from kbroker.broker import authorization
from kbroker.broker.dispatch import RequestContext
from kbroker.broker.authorization import authorized_operations
from kbroker.broker.handlers.groups import client_host
from kbroker.coordinator.consumer import ConsumerGroup
from kbroker.coordinator.consumer import HeartbeatRequest as GroupHeartbeat
from kbroker.wire.messages.consumer_group_describe import (
    Assignment as DescribedAssignment,
)
from kbroker.wire.messages.consumer_group_describe import (
    ConsumerGroupDescribeRequest,
    ConsumerGroupDescribeResponse,
    DescribedGroup,
    Member,
)
from kbroker.wire.messages.consumer_group_describe import (
    TopicPartitions as DescribedTopicPartitions,
)
from kbroker.wire.messages.consumer_group_heartbeat import (
    Assignment,
    ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse,
    TopicPartitions,
)
from kbroker.errors import ErrorCode
from kbroker.security.acls import Operation, ResourceType


async def handle_consumer_group_heartbeat(ctx: RequestContext,
                                          request: ConsumerGroupHeartbeatRequest) -> ConsumerGroupHeartbeatResponse:
    if not authorization.on_group(ctx, Operation.READ, request.group_id):
        return ConsumerGroupHeartbeatResponse(error_code=ErrorCode.GROUP_AUTHORIZATION_FAILED)
    owned = None if request.topic_partitions is None else [
        (tp.topic_id, list(tp.partitions)) for tp in request.topic_partitions]
    result = await ctx.broker.groups.consumer_group_heartbeat(GroupHeartbeat(
        group_id=request.group_id, member_id=request.member_id, member_epoch=request.member_epoch,
        instance_id=request.instance_id, rack_id=request.rack_id, rebalance_timeout_ms=request.rebalance_timeout_ms,
        subscribed_topic_names=request.subscribed_topic_names, subscribed_topic_regex=request.subscribed_topic_regex,
        server_assignor=request.server_assignor, topic_partitions=owned, client_id=ctx.header.client_id or "",
        client_host=client_host(ctx), version=ctx.version))
    assignment = None
    if result.assignment is not None:
        assignment = Assignment(topic_partitions=[
            TopicPartitions(topic_id=t, partitions=p)
            for t, p in sorted(result.assignment.items(), key=lambda kv: str(kv[0]))])
    return ConsumerGroupHeartbeatResponse(
        error_code=result.error, error_message=result.error_message, member_id=result.member_id,
        member_epoch=result.member_epoch, heartbeat_interval_ms=result.heartbeat_interval_ms, assignment=assignment)


def handle_consumer_group_describe(ctx: RequestContext,
                                   request: ConsumerGroupDescribeRequest) -> ConsumerGroupDescribeResponse:
    coordinator = ctx.broker.groups
    names = {t.topic_id: t.name for t in ctx.broker.logs.topics()}

    def described_assignment(assignment: dict) -> DescribedAssignment:
        return DescribedAssignment(topic_partitions=[
            DescribedTopicPartitions(topic_id=t, topic_name=names.get(t, ""), partitions=p)
            for t, p in sorted(assignment.items(), key=lambda kv: names.get(kv[0], ""))])

    groups = []
    for group_id in request.group_ids:
        operations = authorized_operations(ctx, ResourceType.GROUP, group_id, request.include_authorized_operations)
        error = (coordinator.group_error(group_id) if authorization.on_group(ctx, Operation.DESCRIBE, group_id)
                 else ErrorCode.GROUP_AUTHORIZATION_FAILED)
        group = coordinator.groups.get(group_id)
        if error:
            groups.append(DescribedGroup(error_code=error, group_id=group_id, authorized_operations=operations))
            continue
        if not isinstance(group, ConsumerGroup):
            message = f"Group {group_id} not found." if group is None else f"Group {group_id} is not a consumer group."
            groups.append(DescribedGroup(error_code=ErrorCode.GROUP_ID_NOT_FOUND, error_message=message,
                                         group_id=group_id, authorized_operations=operations))
            continue
        view = group.describe()
        groups.append(DescribedGroup(
            error_code=0, group_id=group_id, group_state=view.state, group_epoch=view.group_epoch,
            assignment_epoch=view.assignment_epoch, assignor_name=view.assignor_name,
            authorized_operations=operations,
            members=[Member(member_id=m.member_id, instance_id=m.instance_id, rack_id=m.rack_id,
                            member_epoch=m.member_epoch, client_id=m.client_id, client_host=m.client_host,
                            subscribed_topic_names=m.subscribed_topic_names,
                            subscribed_topic_regex=m.subscribed_topic_regex,
                            assignment=described_assignment(m.assignment),
                            target_assignment=described_assignment(m.target_assignment))
                     for m in view.members]))
    return ConsumerGroupDescribeResponse(groups=groups)
