"""`kbroker groups list|describe|lag|reset-offsets|delete` (Kafka's kafka-consumer-groups)."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kbroker.coordinator.consumer_protocol import assignment_partitions
from kbroker.errors import ErrorCode
from kbroker.tools.client import (EARLIEST, LATEST, BrokerError, Client, Connection, Partition, ToolError, UsageError,
                                  check)
from kbroker.tools.output import Table, emit, note
from kbroker.wire.messages.consumer_group_describe import CONSUMER_GROUP_DESCRIBE, ConsumerGroupDescribeRequest
from kbroker.wire.messages.delete_groups import DELETE_GROUPS, DeleteGroupsRequest
from kbroker.wire.messages.describe_groups import DESCRIBE_GROUPS, DescribeGroupsRequest
from kbroker.wire.messages.list_groups import LIST_GROUPS, ListGroupsRequest
from kbroker.wire.messages.offset_commit import (OFFSET_COMMIT, OffsetCommitRequest, OffsetCommitRequestPartition,
                                                 OffsetCommitRequestTopic)
from kbroker.wire.messages.offset_fetch import OFFSET_FETCH, OffsetFetchRequest

_INACTIVE = ("Empty", "Dead")  # group states in which offsets may be reset (as Kafka's tool checks)


def register(commands: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    groups = commands.add_parser("groups", help="consumer groups: list, describe, lag, reset offsets, delete")
    actions = groups.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", parents=[common], help="every group on every broker").set_defaults(run=list_groups)
    describe = actions.add_parser("describe", parents=[common], help="state, members, assignments, offsets, lag")
    describe.add_argument("group")
    describe.set_defaults(run=describe_group)
    lag = actions.add_parser("lag", parents=[common], help="committed offset, log end and lag per partition")
    lag.add_argument("group")
    lag.set_defaults(run=group_lag)
    reset = actions.add_parser("reset-offsets", parents=[common],
                               help="move an inactive group's committed offsets")
    reset.add_argument("group")
    scope = reset.add_mutually_exclusive_group(required=True)
    scope.add_argument("--topic", action="append", metavar="TOPIC[:P,P...]",
                       help="a topic, or some of its partitions (repeatable)")
    scope.add_argument("--all-topics", action="store_true", help="every topic the group has offsets for")
    target = reset.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-earliest", action="store_true")
    target.add_argument("--to-latest", action="store_true")
    target.add_argument("--to-offset", type=int, metavar="N", help="kept within each partition's offsets")
    target.add_argument("--to-datetime", metavar="ISO",
                        help="first offset at or after a time, e.g. 2026-01-31T12:00:00Z (no zone: local time)")
    reset.add_argument("--dry-run", action="store_true", help="show the new offsets, change nothing")
    reset.set_defaults(run=reset_offsets)
    delete = actions.add_parser("delete", parents=[common], help="delete empty groups and their offsets")
    delete.add_argument("groups", nargs="+", metavar="GROUP")
    delete.set_defaults(run=delete_groups)


def list_groups(args: argparse.Namespace) -> int:
    found: dict[str, Any] = {}
    with Client(args.bootstrap_server, args.timeout) as client:
        client.metadata([])
        for node_id in sorted(client.brokers):  # each broker lists the groups it coordinates
            answer = client.node(node_id).request(LIST_GROUPS, ListGroupsRequest())
            check(answer.error_code, f"listing the groups of broker {node_id}")
            for group in answer.groups:
                found[group.group_id] = {"group": group.group_id, "protocol_type": group.protocol_type,
                                         "state": group.group_state or None}
    document = [found[g] for g in sorted(found)]
    emit(args.output, document, Table(None, ("group", "protocol type", "state"),
                                      [(g["group"], g["protocol_type"], g["state"]) for g in document]))
    return 0


@dataclass(frozen=True, slots=True)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    host: str
    assignment: dict[str, list[int]]


@dataclass(frozen=True, slots=True)
class GroupView:
    state: str  # "Dead": no such group
    protocol_type: str
    protocol: str  # the classic group's chosen protocol (the assignor), or a consumer group's assignor
    members: list[Member]


def group_view(coordinator: Connection, group: str) -> GroupView:
    """A classic group (DescribeGroups) or a KIP-848 consumer group (ConsumerGroupDescribe), as
    Kafka's admin client finds them: DescribeGroups says Dead for the latter."""
    (classic,) = coordinator.request(DESCRIBE_GROUPS, DescribeGroupsRequest(groups=[group])).groups
    check(classic.error_code, f"group {group!r}")
    if classic.group_state != "Dead" or not coordinator.supports(CONSUMER_GROUP_DESCRIBE):
        return GroupView(classic.group_state, classic.protocol_type, classic.protocol_data, [
            Member(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                   (assignment_partitions(m.member_assignment) if classic.protocol_type == "consumer" else None) or {})
            for m in classic.members])
    (modern,) = coordinator.request(CONSUMER_GROUP_DESCRIBE, ConsumerGroupDescribeRequest(group_ids=[group])).groups
    if modern.error_code == ErrorCode.GROUP_ID_NOT_FOUND:
        return GroupView("Dead", "", "", [])
    check(modern.error_code, f"group {group!r}", modern.error_message)
    return GroupView(modern.group_state, "consumer", modern.assignor_name, [
        Member(m.member_id, m.instance_id, m.client_id, m.client_host,
               {t.topic_name: list(t.partitions) for t in m.assignment.topic_partitions})
        for m in modern.members])


def committed_offsets(coordinator: Connection, group: str) -> dict[Partition, int]:
    answer = coordinator.request(OFFSET_FETCH, OffsetFetchRequest(group_id=group, topics=None))
    check(answer.error_code, f"offsets of group {group!r}")
    committed = {}
    for topic in answer.topics:
        for partition in topic.partitions:
            check(partition.error_code, f"offset of group {group!r} in {topic.name}-{partition.partition_index}")
            if partition.committed_offset >= 0:
                committed[(topic.name, partition.partition_index)] = partition.committed_offset
    return committed


def _group_state(client: Client, group: str) -> dict[str, Any]:
    """A group as `describe` shows it: members with their assignments, offsets and lag."""
    coordinator = client.coordinator(group)
    view = group_view(coordinator, group)
    if view.state == "Dead":
        raise ToolError(f"unknown group {group!r}")
    members = [{"member_id": m.member_id, "group_instance_id": m.group_instance_id, "client_id": m.client_id,
                "host": m.host, "assignment": {t: sorted(ps) for t, ps in sorted(m.assignment.items())}}
               for m in view.members]
    owner = {(t, p): m for m in view.members for t, ps in m.assignment.items() for p in ps}
    committed = committed_offsets(coordinator, group)
    partitions = sorted(set(committed) | set(owner))
    ends = client.list_offsets(partitions, LATEST) if partitions else {}
    offsets = []
    for topic, partition in partitions:
        current, end = committed.get((topic, partition)), ends[(topic, partition)]
        member = owner.get((topic, partition))
        offsets.append({"topic": topic, "partition": partition, "committed": current, "log_end": end,
                        "lag": None if current is None else max(end - current, 0),
                        "member_id": member.member_id if member else None,
                        "client_id": member.client_id if member else None})
    return {"group": group, "state": view.state, "protocol_type": view.protocol_type,
            "protocol": view.protocol, "members": members, "offsets": offsets,
            "total_lag": sum(o["lag"] or 0 for o in offsets)}


def _lag_table(state: dict[str, Any]) -> Table:
    return Table(f"group {state['group']}: {state['state']}, total lag {state['total_lag']}",
                 ("topic", "partition", "committed", "log end", "lag", "member", "client"),
                 [(o["topic"], o["partition"], _dash(o["committed"]), o["log_end"], _dash(o["lag"]),
                   o["member_id"] or "-", o["client_id"] or "-") for o in state["offsets"]])


def _dash(value: int | None) -> Any:
    return "-" if value is None else value


def describe_group(args: argparse.Namespace) -> int:
    with Client(args.bootstrap_server, args.timeout) as client:
        state = _group_state(client, args.group)
    members = Table(f"members ({state['protocol_type'] or '-'} / {state['protocol'] or '-'})",
                    ("member", "client", "host", "assignment"),
                    [(m["member_id"], m["client_id"], m["host"],
                      " ".join(f"{t}:{','.join(map(str, ps))}" for t, ps in m["assignment"].items()))
                     for m in state["members"]])
    emit(args.output, state, _lag_table(state), members)
    return 0


def group_lag(args: argparse.Namespace) -> int:
    with Client(args.bootstrap_server, args.timeout) as client:
        state = _group_state(client, args.group)
    emit(args.output, {k: state[k] for k in ("group", "state", "offsets", "total_lag")}, _lag_table(state))
    return 0


def _targets(client: Client, args: argparse.Namespace, committed: dict[Partition, int]) -> list[Partition]:
    if args.all_topics:
        if not committed:
            raise ToolError(f"group {args.group!r} has no committed offsets; name the topics with --topic")
        return sorted(committed)
    chosen = []
    for item in args.topic:
        topic, _, listed = item.partition(":")
        if not topic:
            raise UsageError(f"--topic expects TOPIC[:P,P...], got {item!r}")
        partitions = sorted(client.leaders(topic))
        if listed:
            try:
                wanted = [int(p) for p in listed.split(",")]
            except ValueError:
                raise UsageError(f"--topic expects TOPIC[:P,P...], got {item!r}") from None
            missing = [p for p in wanted if p not in partitions]
            if missing:
                raise ToolError(f"topic {topic!r} has no partition {missing[0]}")
            partitions = wanted
        chosen += [(topic, p) for p in partitions]
    return sorted(set(chosen))


def _timestamp_ms(text: str) -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--to-datetime expects an ISO 8601 time such as 2026-01-31T12:00:00Z, got {text!r}") from None
    return int(moment.timestamp() * 1000)  # a naive time is local, as in Kafka's tool


def _new_offsets(client: Client, args: argparse.Namespace, partitions: list[Partition]) -> dict[Partition, int]:
    if args.to_earliest:
        return client.list_offsets(partitions, EARLIEST)
    latest = client.list_offsets(partitions, LATEST)
    if args.to_latest:
        return latest
    if args.to_datetime is not None:
        found = client.list_offsets(partitions, _timestamp_ms(args.to_datetime))
        return {tp: latest[tp] if offset < 0 else offset for tp, offset in found.items()}
    earliest = client.list_offsets(partitions, EARLIEST)
    return {tp: min(max(args.to_offset, earliest[tp]), latest[tp]) for tp in partitions}


def reset_offsets(args: argparse.Namespace) -> int:
    with Client(args.bootstrap_server, args.timeout) as client:
        coordinator = client.coordinator(args.group)
        state = group_view(coordinator, args.group).state
        if state not in _INACTIVE:
            raise ToolError(f"offsets can only be reset while group {args.group!r} is inactive, "
                            f"but it is {state} (stop its consumers first)")
        committed = committed_offsets(coordinator, args.group)
        partitions = _targets(client, args, committed)
        new = _new_offsets(client, args, partitions)
        if not args.dry_run:
            commit_offsets(coordinator, args.group, new)
    document = {"group": args.group, "dry_run": args.dry_run,
                "offsets": [{"topic": t, "partition": p, "committed": committed.get((t, p)), "new": new[(t, p)]}
                            for t, p in partitions]}
    emit(args.output, document, Table(f"group {args.group}" + (" (dry run: nothing changed)" if args.dry_run else ""),
                                      ("topic", "partition", "committed", "new offset"),
                                      [(o["topic"], o["partition"], _dash(o["committed"]), o["new"])
                                       for o in document["offsets"]]))
    return 0


def commit_offsets(coordinator: Connection, group: str, offsets: dict[Partition, int]) -> None:
    by_topic: dict[str, list[OffsetCommitRequestPartition]] = {}
    for (topic, partition), offset in sorted(offsets.items()):
        by_topic.setdefault(topic, []).append(OffsetCommitRequestPartition(partition_index=partition,
                                                                           committed_offset=offset))
    # generation -1 and no member id: a commit from outside the group, which only an empty group takes
    request = OffsetCommitRequest(group_id=group, generation_id_or_member_epoch=-1, member_id="",
                                  topics=[OffsetCommitRequestTopic(name=t, partitions=ps) for t, ps in by_topic.items()])
    for topic in coordinator.request(OFFSET_COMMIT, request).topics:
        for partition in topic.partitions:
            check(partition.error_code, f"committing group {group!r}'s offset of {topic.name}-{partition.partition_index}")


def delete_groups(args: argparse.Namespace) -> int:
    with Client(args.bootstrap_server, args.timeout) as client:
        for group in args.groups:
            (result,) = client.coordinator(group).request(DELETE_GROUPS, DeleteGroupsRequest(groups_names=[group])).results
            if result.error_code == ErrorCode.GROUP_ID_NOT_FOUND:
                raise ToolError(f"unknown group {group!r}")
            if result.error_code:
                raise BrokerError(result.error_code, f"deleting group {group!r}")
    note(args.output, {"deleted": list(args.groups)}, "deleted " + ", ".join(repr(g) for g in args.groups))
    return 0
