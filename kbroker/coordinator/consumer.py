"""KIP-848 consumer groups (ConsumerGroupHeartbeat) as a pure state machine.

The broker assigns: each member heartbeats its subscription and the partitions it owns; the group
keeps an epoch that moves whenever membership or subscriptions change, computes a target
assignment for that epoch with a server-side assignor (`assignors.py`), and walks each member
towards its target one heartbeat at a time (Kafka's `CurrentAssignmentBuilder`):

    STABLE                 the member owns its target of the current epoch
    UNREVOKED_PARTITIONS   it must first give up partitions (they are left out of its assignment;
                           it acknowledges by no longer listing them as owned); epoch unchanged
    UNRELEASED_PARTITIONS  it has the new epoch, but some target partitions are still owned by
                           members that have not revoked them yet; they come on later heartbeats

A partition is only ever assigned to one member at a time (members in UNREVOKED_PARTITIONS still
own their pending partitions). Member epochs fence zombies: a heartbeat with a newer epoch, or
an older one that is not the previous epoch with a subset of the current partitions, gets
FENCED_MEMBER_EPOCH; the client then rejoins with epoch 0.

Timers (deadlines here, fired by `advance`): a session timeout per member (reset by each heartbeat;
expiry removes it and bumps the epoch) and a rebalance timeout while a member holds partitions it
must revoke (expiry fences it). Epoch -1 leaves; -2 is a static member leaving to come back (its
partitions wait for it until its session expires).

Every change is written as Kafka's ConsumerGroup* records (`records.py`), the records of each
step's `CoordinatorResult` (`result.py`), and `from_records` rebuilds the group from them after a
restart.
"""
from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from kbroker.coordinator import assignors as assignor_functions
from kbroker.coordinator import records as rec
from kbroker.coordinator.records import CoordinatorRecord as Record
from kbroker.coordinator.result import CoordinatorResult
from kbroker.errors import ErrorCode

LEAVE_GROUP_MEMBER_EPOCH = -1
LEAVE_GROUP_STATIC_MEMBER_EPOCH = -2
# ConsumerGroupHeartbeat v1 (KIP-1082): the client makes up its member id.
CONSUMER_GENERATED_MEMBER_ID_VERSION = 1

TopicAssignment = dict[uuid.UUID, set[int]]


class MemberState(IntEnum):
    STABLE = 0
    UNREVOKED_PARTITIONS = 1
    UNRELEASED_PARTITIONS = 2
    UNKNOWN = 127


@dataclass(frozen=True, slots=True)
class ConsumerGroupConfig:
    heartbeat_interval_ms: int = 5000
    session_timeout_ms: int = 45000
    max_size: int = 2**31 - 1
    assignors: tuple[str, ...] = ("uniform", "range")


@dataclass(frozen=True, slots=True)
class HeartbeatRequest:
    group_id: str
    member_id: str
    member_epoch: int
    instance_id: str | None = None
    rack_id: str | None = None
    rebalance_timeout_ms: int = -1
    subscribed_topic_names: Sequence[str] | None = None
    subscribed_topic_regex: str | None = None
    server_assignor: str | None = None
    topic_partitions: Sequence[tuple[uuid.UUID, Sequence[int]]] | None = None  # owned; None: unchanged
    client_id: str = ""
    client_host: str = ""
    version: int = 0


@dataclass(frozen=True, slots=True)
class HeartbeatResponse:
    error: ErrorCode
    error_message: str | None = None
    member_id: str | None = None
    member_epoch: int = 0
    heartbeat_interval_ms: int = 0
    assignment: dict[uuid.UUID, list[int]] | None = None


@dataclass(slots=True)
class ConsumerMember:
    member_id: str
    instance_id: str | None = None
    rack_id: str | None = None
    client_id: str = ""
    client_host: str = ""
    subscribed_topic_names: list[str] = field(default_factory=list)
    subscribed_topic_regex: str | None = None
    rebalance_timeout_ms: int = -1
    server_assignor: str | None = None
    member_epoch: int = 0
    previous_member_epoch: int = -1
    state: MemberState = MemberState.STABLE
    assigned: TopicAssignment = field(default_factory=dict)
    pending_revocation: TopicAssignment = field(default_factory=dict)

    def metadata_value(self) -> Any:
        return rec.ConsumerGroupMemberMetadataValue(
            instance_id=self.instance_id, rack_id=self.rack_id, client_id=self.client_id,
            client_host=self.client_host, subscribed_topic_names=list(self.subscribed_topic_names),
            subscribed_topic_regex=self.subscribed_topic_regex, rebalance_timeout_ms=self.rebalance_timeout_ms,
            server_assignor=self.server_assignor)

    def assignment_value(self) -> Any:
        return rec.ConsumerGroupCurrentMemberAssignmentValue(
            member_epoch=self.member_epoch, previous_member_epoch=self.previous_member_epoch,
            state=int(self.state), assigned_partitions=_topic_partitions(self.assigned),
            partitions_pending_revocation=_topic_partitions(self.pending_revocation))

    def metadata_key(self) -> tuple:
        return (self.instance_id, self.rack_id, self.client_id, self.client_host, tuple(self.subscribed_topic_names),
                self.subscribed_topic_regex, self.rebalance_timeout_ms, self.server_assignor)

    def assignment_key(self) -> tuple:
        return (self.member_epoch, self.previous_member_epoch, self.state, _frozen(self.assigned),
                _frozen(self.pending_revocation))


@dataclass(frozen=True, slots=True)
class DescribedConsumerMember:
    member_id: str
    instance_id: str | None
    rack_id: str | None
    member_epoch: int
    client_id: str
    client_host: str
    subscribed_topic_names: list[str]
    subscribed_topic_regex: str | None
    assignment: dict[uuid.UUID, list[int]]
    target_assignment: dict[uuid.UUID, list[int]]


@dataclass(frozen=True, slots=True)
class ConsumerGroupDescription:
    state: str
    group_epoch: int
    assignment_epoch: int
    assignor_name: str
    members: tuple[DescribedConsumerMember, ...]


def _topic_partitions(assignment: TopicAssignment) -> list[Any]:
    return [rec.AssignedTopicPartitions(topic_id=t, partitions=sorted(p), assignment_epochs=None)
            for t, p in sorted(assignment.items(), key=lambda kv: str(kv[0])) if p]


def _frozen(assignment: Mapping[uuid.UUID, Iterable[int]]) -> frozenset:
    return frozenset((t, p) for t, ps in assignment.items() for p in ps)


def _metadata_hash(metadata: Mapping[str, tuple[uuid.UUID, int]]) -> int:
    """A stable int64 digest of the subscribed topics (ours, not Kafka's murmur3 over racks too)."""
    if not metadata:
        return 0
    text = ";".join(f"{name}:{topic_id}:{count}" for name, (topic_id, count) in sorted(metadata.items()))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


def _random_member_id() -> str:
    """Kafka's Uuid.toString(): url-safe base64 of 16 random bytes, unpadded."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


class InvalidRequest(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def validate_request(request: HeartbeatRequest, assignors: Iterable[str]) -> None:
    """Kafka's throwIfConsumerGroupHeartbeatRequestIsInvalid."""
    def empty(value: str | None) -> bool:
        return value is not None and not value.strip()

    if (request.version >= CONSUMER_GENERATED_MEMBER_ID_VERSION or request.member_epoch > 0
            or request.member_epoch == LEAVE_GROUP_MEMBER_EPOCH) and empty(request.member_id):
        raise InvalidRequest(ErrorCode.INVALID_REQUEST, "MemberId can't be empty.")
    if empty(request.group_id):
        raise InvalidRequest(ErrorCode.INVALID_REQUEST, "GroupId can't be empty.")
    if empty(request.instance_id):
        raise InvalidRequest(ErrorCode.INVALID_REQUEST, "InstanceId can't be empty.")
    if empty(request.rack_id):
        raise InvalidRequest(ErrorCode.INVALID_REQUEST, "RackId can't be empty.")
    if request.member_epoch == 0:
        if request.rebalance_timeout_ms == -1:
            raise InvalidRequest(ErrorCode.INVALID_REQUEST, "RebalanceTimeoutMs must be provided in first request.")
        if request.topic_partitions is None or request.topic_partitions:
            raise InvalidRequest(ErrorCode.INVALID_REQUEST, "TopicPartitions must be empty when (re-)joining.")
        if not request.subscribed_topic_names and not request.subscribed_topic_regex:
            raise InvalidRequest(ErrorCode.INVALID_REQUEST,
                                 "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.")
    elif request.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
        if request.instance_id is None:
            raise InvalidRequest(ErrorCode.INVALID_REQUEST, "InstanceId can't be null.")
    elif request.member_epoch < LEAVE_GROUP_STATIC_MEMBER_EPOCH:
        raise InvalidRequest(ErrorCode.INVALID_REQUEST, f"MemberEpoch {request.member_epoch} is invalid.")
    if request.subscribed_topic_regex:
        try:
            re.compile(request.subscribed_topic_regex)
        except re.error as exc:
            raise InvalidRequest(ErrorCode.INVALID_REGULAR_EXPRESSION,
                                 f"SubscribedTopicRegex `{request.subscribed_topic_regex}` is not a valid "
                                 f"regular expression: {exc}.") from None
    if request.server_assignor is not None and request.server_assignor not in assignors:
        raise InvalidRequest(ErrorCode.UNSUPPORTED_ASSIGNOR,
                             f"ServerAssignor {request.server_assignor} is not supported. "
                             f"Supported assignors: {', '.join(assignors)}.")


TopicMetadata = Mapping[str, tuple[uuid.UUID, int]]  # name -> (topic id, partition count)


class ConsumerGroup:
    group_type = "consumer"
    protocol_type = "consumer"

    def __init__(self, group_id: str, config: ConsumerGroupConfig, now_ms: int,
                 member_ids: Callable[[], str] = _random_member_id) -> None:
        self.group_id = group_id
        self.config = config
        self._member_ids = member_ids
        self.group_epoch = 0
        self.assignment_epoch = 0
        self.members: dict[str, ConsumerMember] = {}
        self.target: dict[str, TopicAssignment] = {}
        self.subscription_metadata: dict[str, tuple[uuid.UUID, int]] = {}
        # A digest of the subscribed topics (ids, partition counts), stored with the group epoch
        # (Kafka 4.1's MetadataHash) so a restart can tell whether they changed meanwhile.
        self.metadata_hash = 0
        self.state_timestamp_ms: int | None = now_ms
        self.dead = False
        # ("session", member id) / ("rebalance", member id): (deadline, member epoch it guards)
        self._timers: dict[tuple[str, str], tuple[int, int]] = {}
        self._topic_names: dict[uuid.UUID, str] = {}

    # -- queries ----------------------------------------------------------------------------------

    @property
    def state_name(self) -> str:
        if self.dead:
            return "Dead"
        if not self.members:
            return "Empty"
        if self.group_epoch > self.assignment_epoch:
            return "Assigning"
        if any(m.member_epoch != self.assignment_epoch or m.state is not MemberState.STABLE
               for m in self.members.values()):
            return "Reconciling"
        return "Stable"

    def is_empty(self) -> bool:
        return not self.members

    def held_waiters(self) -> list[Any]:
        return []  # heartbeats are answered at once

    def next_deadline(self) -> int | None:
        return min((deadline for deadline, _ in self._timers.values()), default=None)

    def mark_dead(self, now_ms: int) -> None:
        self.dead = True
        self._timers.clear()

    def offset_expiry_base(self) -> str | None:
        return "commit"  # offsets of topics no member subscribes to expire from their commit

    def is_subscribed_to(self, topic: str) -> bool:
        return any(self._subscribes(m, topic) for m in self.members.values())

    @staticmethod
    def _subscribes(member: ConsumerMember, topic: str) -> bool:
        if topic in member.subscribed_topic_names:
            return True
        return bool(member.subscribed_topic_regex) and re.fullmatch(member.subscribed_topic_regex, topic) is not None

    def preferred_assignor(self) -> str:
        votes: dict[str, int] = {}
        for member in self.members.values():
            if member.server_assignor:
                votes[member.server_assignor] = votes.get(member.server_assignor, 0) + 1
        if votes:
            return max(votes, key=lambda name: votes[name])
        return self.config.assignors[0]

    def _partition_owner_epoch(self, topic_id: uuid.UUID, partition: int, except_member: str) -> int:
        for member in self.members.values():
            if member.member_id == except_member:
                continue
            if (partition in member.assigned.get(topic_id, ())
                    or partition in member.pending_revocation.get(topic_id, ())):
                return member.member_epoch
        return -1

    # -- time -------------------------------------------------------------------------------------

    def advance(self, now_ms: int) -> CoordinatorResult[None]:
        records: list[Record] = []
        while True:
            due = [(deadline, key) for key, (deadline, _) in self._timers.items() if deadline <= now_ms]
            if not due:
                break
            _, key = min(due)
            _, epoch = self._timers.pop(key)
            kind, member_id = key
            member = self.members.get(member_id)
            if member is None:
                continue
            if kind == "session" or (kind == "rebalance" and member.member_epoch == epoch
                                     and member.state is MemberState.UNREVOKED_PARTITIONS):
                self._remove_member(now_ms, member, records)
        return CoordinatorResult(tuple(records))

    def on_loaded(self, now_ms: int) -> CoordinatorResult[None]:
        for member in self.members.values():
            self._timers[("session", member.member_id)] = (now_ms + self.config.session_timeout_ms, 0)
            if member.state is MemberState.UNREVOKED_PARTITIONS:
                self._timers[("rebalance", member.member_id)] = (
                    now_ms + max(member.rebalance_timeout_ms, 0), member.member_epoch)
        return CoordinatorResult()

    # -- ConsumerGroupHeartbeat -------------------------------------------------------------------

    def heartbeat(self, now_ms: int, request: HeartbeatRequest,
                  topics: TopicMetadata) -> CoordinatorResult[HeartbeatResponse]:
        self._topic_names = {topic_id: name for name, (topic_id, _) in topics.items()}
        records: list[Record] = []
        try:
            if request.member_epoch in (LEAVE_GROUP_MEMBER_EPOCH, LEAVE_GROUP_STATIC_MEMBER_EPOCH):
                response = self._leave(now_ms, request, records)
            else:
                response = self._heartbeat(now_ms, request, topics, records)
        except InvalidRequest as exc:
            response = HeartbeatResponse(exc.code, exc.message)
        return CoordinatorResult(tuple(records), response)

    def _leave(self, now_ms: int, request: HeartbeatRequest, records: list[Record]) -> HeartbeatResponse:
        member = self.members.get(request.member_id)
        if member is None and request.instance_id is not None:
            member = self._static_member(request.instance_id)
        if member is None:
            raise InvalidRequest(ErrorCode.UNKNOWN_MEMBER_ID, f"Member {request.member_id} is not a member "
                                                              f"of group {self.group_id}.")
        if request.instance_id is not None and member.instance_id != request.instance_id:
            raise InvalidRequest(ErrorCode.FENCED_INSTANCE_ID, f"Static member {request.instance_id} is fenced.")
        if request.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
            # A static member going away to come back: its partitions wait for it (KIP-345).
            member.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH
            records.append(Record(rec.CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT, self._member_key(member),
                                  member.assignment_value()))
            self._timers.pop(("rebalance", member.member_id), None)
        else:
            self._remove_member(now_ms, member, records)
        return HeartbeatResponse(ErrorCode.NONE, member_id=member.member_id, member_epoch=request.member_epoch)

    def _static_member(self, instance_id: str) -> ConsumerMember | None:
        return next((m for m in self.members.values() if m.instance_id == instance_id), None)

    def _member_key(self, member: ConsumerMember | str) -> Any:
        member_id = member if isinstance(member, str) else member.member_id
        return rec.ConsumerGroupMemberKey(group_id=self.group_id, member_id=member_id)

    def _remove_member(self, now_ms: int, member: ConsumerMember, records: list[Record]) -> None:
        """Fence a member: its partitions are free at once; the epoch moves for the others."""
        del self.members[member.member_id]
        self.target.pop(member.member_id, None)
        for kind in ("session", "rebalance"):
            self._timers.pop((kind, member.member_id), None)
        key = self._member_key(member)
        records += [Record(rec.CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT, key, None),
                    Record(rec.CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER, key, None),
                    Record(rec.CONSUMER_GROUP_MEMBER_METADATA, key, None)]
        self._bump_epoch(now_ms, records)

    def _bump_epoch(self, now_ms: int, records: list[Record]) -> None:
        self.group_epoch += 1
        self.state_timestamp_ms = now_ms
        records.append(Record(rec.CONSUMER_GROUP_METADATA, rec.ConsumerGroupMetadataKey(group_id=self.group_id),
                              rec.ConsumerGroupMetadataValue(epoch=self.group_epoch, metadata_hash=self.metadata_hash)))

    def _heartbeat(self, now_ms: int, request: HeartbeatRequest, topics: TopicMetadata,
                   records: list[Record]) -> HeartbeatResponse:
        member, is_new = self._member_for(now_ms, request, records)
        old_metadata = member.metadata_key()
        old_assignment = (member.member_epoch, _frozen(member.assigned))
        # 1. Update the member; a changed subscription moves the group epoch.
        if request.instance_id is not None:
            member.instance_id = request.instance_id
        if request.rack_id is not None:
            member.rack_id = request.rack_id
        if request.rebalance_timeout_ms != -1:
            member.rebalance_timeout_ms = request.rebalance_timeout_ms
        if request.server_assignor is not None:
            member.server_assignor = request.server_assignor
        if request.subscribed_topic_names is not None:
            member.subscribed_topic_names = list(request.subscribed_topic_names)
        if request.subscribed_topic_regex is not None:
            member.subscribed_topic_regex = request.subscribed_topic_regex or None
        member.client_id = request.client_id
        member.client_host = request.client_host
        bump = False
        if is_new or member.metadata_key() != old_metadata:
            records.append(Record(rec.CONSUMER_GROUP_MEMBER_METADATA, self._member_key(member),
                                  member.metadata_value()))
            bump = bump or is_new or member.metadata_key()[4:6] != old_metadata[4:6]
        metadata = self._subscription_metadata(topics)
        digest = _metadata_hash(metadata)
        self.subscription_metadata = metadata
        if digest != self.metadata_hash:
            self.metadata_hash = digest
            bump = True
        if bump:
            self._bump_epoch(now_ms, records)
        # 2. A new epoch gets a new target assignment.
        if self.group_epoch > self.assignment_epoch:
            self._compute_target(records)
        # 3. Walk the member towards its target.
        before = member.assignment_key()
        self._reconcile(member, request.topic_partitions)
        if is_new or member.assignment_key() != before:
            records.append(Record(rec.CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT, self._member_key(member),
                                  member.assignment_value()))
        self._timers[("session", member.member_id)] = (now_ms + self.config.session_timeout_ms, 0)
        if member.state is MemberState.UNREVOKED_PARTITIONS:
            current = self._timers.get(("rebalance", member.member_id))
            if current is None or current[1] != member.member_epoch:
                self._timers[("rebalance", member.member_id)] = (
                    now_ms + max(member.rebalance_timeout_ms, 0), member.member_epoch)
        else:
            self._timers.pop(("rebalance", member.member_id), None)
        full = request.member_epoch == 0 or (request.rebalance_timeout_ms != -1
                                             and request.subscribed_topic_names is not None
                                             and request.topic_partitions is not None)
        changed = (member.member_epoch, _frozen(member.assigned)) != old_assignment
        return HeartbeatResponse(
            ErrorCode.NONE, member_id=member.member_id, member_epoch=member.member_epoch,
            heartbeat_interval_ms=self.config.heartbeat_interval_ms,
            assignment={t: sorted(p) for t, p in member.assigned.items() if p} if full or changed else None)

    def _member_for(self, now_ms: int, request: HeartbeatRequest, records: list[Record]) -> tuple[ConsumerMember, bool]:
        member_id = request.member_id
        if request.member_epoch == 0:
            existing = self.members.get(member_id) if member_id else None
            static = self._static_member(request.instance_id) if request.instance_id is not None else None
            if existing is None and static is None and len(self.members) >= self.config.max_size:
                raise InvalidRequest(ErrorCode.GROUP_MAX_SIZE_REACHED,
                                     f"The consumer group has reached its maximum capacity of "
                                     f"{self.config.max_size} members.")
            if not member_id:
                member_id = self._member_ids()
            if static is not None:
                if static.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
                    # KIP-345: the static member is back; it takes over its old place.
                    return self._replace_static(static, member_id, records), True
                if static.member_id != member_id:
                    raise InvalidRequest(ErrorCode.UNRELEASED_INSTANCE_ID,
                                         f"Static member {request.instance_id} with unknown member id is "
                                         f"trying to join while it is still in use by {static.member_id}.")
            if existing is not None:
                # Rejoining from scratch: whatever it owned is gone on its side.
                self._remove_member(now_ms, existing, records)
            member = ConsumerMember(member_id)
            self.members[member_id] = member
            return member, True
        member = self.members.get(member_id)
        if member is None:
            raise InvalidRequest(ErrorCode.UNKNOWN_MEMBER_ID,
                                 f"Member {member_id} is not a member of group {self.group_id}.")
        if request.instance_id is not None and member.instance_id not in (None, request.instance_id):
            raise InvalidRequest(ErrorCode.FENCED_INSTANCE_ID, f"Static member {request.instance_id} is fenced.")
        epoch = request.member_epoch
        if epoch > member.member_epoch:
            raise InvalidRequest(ErrorCode.FENCED_MEMBER_EPOCH,
                                 f"The consumer group member has a greater member epoch ({epoch}) than the one "
                                 f"known by the group coordinator ({member.member_epoch}). The member must abandon "
                                 f"all its partitions and rejoin.")
        if epoch < member.member_epoch:
            owned = request.topic_partitions
            # The answer with the new epoch may have been lost: the previous epoch with a subset
            # of the current partitions is still this member.
            if epoch != member.previous_member_epoch or owned is None or not all(
                    set(parts) <= member.assigned.get(topic_id, set()) for topic_id, parts in owned):
                raise InvalidRequest(ErrorCode.FENCED_MEMBER_EPOCH,
                                     f"The consumer group member has a smaller member epoch ({epoch}) than the one "
                                     f"known by the group coordinator ({member.member_epoch}). The member must "
                                     f"abandon all its partitions and rejoin.")
        return member, False

    def _replace_static(self, old: ConsumerMember, member_id: str, records: list[Record]) -> ConsumerMember:
        """A static member comes back under a new member id: it takes over the old one's place."""
        del self.members[old.member_id]
        target = self.target.pop(old.member_id, None)
        for kind in ("session", "rebalance"):
            self._timers.pop((kind, old.member_id), None)
        old_key = self._member_key(old)
        records += [Record(rec.CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT, old_key, None),
                    Record(rec.CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER, old_key, None),
                    Record(rec.CONSUMER_GROUP_MEMBER_METADATA, old_key, None)]
        member = ConsumerMember(member_id, instance_id=old.instance_id, rack_id=old.rack_id,
                                subscribed_topic_names=list(old.subscribed_topic_names),
                                subscribed_topic_regex=old.subscribed_topic_regex,
                                rebalance_timeout_ms=old.rebalance_timeout_ms, server_assignor=old.server_assignor,
                                member_epoch=0, previous_member_epoch=-1, assigned={}, pending_revocation={})
        self.members[member_id] = member
        if target is not None:
            self.target[member_id] = target
            records.append(Record(rec.CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER, self._member_key(member),
                                  rec.ConsumerGroupTargetAssignmentMemberValue(topic_partitions=[
                                      rec.TargetTopicPartition(topic_id=t, partitions=sorted(p))
                                      for t, p in target.items() if p])))
        return member

    def _subscribed_topic_ids(self, member: ConsumerMember, metadata: Mapping[str, tuple[uuid.UUID, int]]
                              ) -> set[uuid.UUID]:
        return {topic_id for name, (topic_id, _) in metadata.items() if self._subscribes(member, name)}

    def _subscription_metadata(self, topics: TopicMetadata) -> dict[str, tuple[uuid.UUID, int]]:
        return {name: meta for name, meta in topics.items()
                if any(self._subscribes(m, name) for m in self.members.values())}

    def _compute_target(self, records: list[Record]) -> None:
        metadata = self.subscription_metadata
        by_id = {topic_id: (name, count) for name, (topic_id, count) in metadata.items()}
        subscriptions = {m.member_id: self._subscribed_topic_ids(m, metadata) for m in self.members.values()}
        assign = assignor_functions.ASSIGNORS[self.preferred_assignor()]
        new_target = assign(subscriptions, by_id, self.target)
        for member_id, assignment in new_target.items():
            assignment = {t: p for t, p in assignment.items() if p}
            if _frozen(assignment) != _frozen(self.target.get(member_id, {})) or member_id not in self.target:
                records.append(Record(rec.CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER, self._member_key(member_id),
                                      rec.ConsumerGroupTargetAssignmentMemberValue(topic_partitions=[
                                          rec.TargetTopicPartition(topic_id=t, partitions=sorted(p))
                                          for t, p in sorted(assignment.items(), key=lambda kv: str(kv[0]))])))
            self.target[member_id] = assignment
        self.assignment_epoch = self.group_epoch
        records.append(Record(rec.CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA,
                              rec.ConsumerGroupMetadataKey(group_id=self.group_id),
                              rec.ConsumerGroupTargetAssignmentMetadataValue(assignment_epoch=self.assignment_epoch)))

    def _reconcile(self, member: ConsumerMember, owned: Sequence[tuple[uuid.UUID, Sequence[int]]] | None) -> None:
        """One step of Kafka's CurrentAssignmentBuilder."""
        if member.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH:
            return
        target = self.target.get(member.member_id, {})
        if member.state is MemberState.STABLE:
            if member.member_epoch != self.assignment_epoch:
                self._next_assignment(member, target, owned)
        elif member.state is MemberState.UNREVOKED_PARTITIONS:
            if not self._owns_any(owned, member.pending_revocation):
                self._next_assignment(member, target, owned)
        elif member.state is MemberState.UNRELEASED_PARTITIONS:
            self._next_assignment(member, target, owned)
        else:
            self._next_assignment(member, target, owned)

    @staticmethod
    def _owns_any(owned: Sequence[tuple[uuid.UUID, Sequence[int]]] | None, partitions: TopicAssignment) -> bool:
        if owned is None:
            return True  # no news from the member: it still owns what it had
        return any(p in partitions.get(topic_id, ()) for topic_id, parts in owned for p in parts)

    def _next_assignment(self, member: ConsumerMember, target: TopicAssignment,
                         owned: Sequence[tuple[uuid.UUID, Sequence[int]]] | None) -> None:
        assigned: TopicAssignment = {}
        revoke: TopicAssignment = {}
        to_assign: TopicAssignment = {}
        unreleased = False
        for topic_id in set(target) | set(member.assigned):
            wanted = target.get(topic_id, set())
            current = member.assigned.get(topic_id, set())
            keep = current & wanted
            gone = current - keep
            pending = wanted - keep
            free = {p for p in pending
                    if self._partition_owner_epoch(topic_id, p, member.member_id) == -1
                    or p in member.pending_revocation.get(topic_id, ())}
            unreleased = unreleased or bool(pending - free)
            if keep:
                assigned[topic_id] = keep
            if gone:
                revoke[topic_id] = gone
            if free:
                to_assign[topic_id] = free
        if revoke and self._owns_any(owned, revoke):
            member.state = MemberState.UNREVOKED_PARTITIONS
            member.assigned = assigned
            member.pending_revocation = revoke
            return
        for topic_id, partitions in to_assign.items():
            assigned.setdefault(topic_id, set()).update(partitions)
        member.state = MemberState.UNRELEASED_PARTITIONS if unreleased else MemberState.STABLE
        if member.member_epoch != self.assignment_epoch:
            member.previous_member_epoch = member.member_epoch
            member.member_epoch = self.assignment_epoch
        member.assigned = assigned
        member.pending_revocation = {}

    # -- offsets ----------------------------------------------------------------------------------

    def validate_offset_commit(self, member_id: str, member_epoch: int, version: int) -> ErrorCode:
        if member_epoch < 0 and not self.members:
            return ErrorCode.NONE  # the admin client
        member = self.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if version < 9:
            return ErrorCode.UNSUPPORTED_VERSION  # KIP-848 members commit with OffsetCommit v9+
        if member_epoch != member.member_epoch:
            return ErrorCode.STALE_MEMBER_EPOCH
        return ErrorCode.NONE

    def validate_txn_offset_commit(self, member_id: str, member_epoch: int) -> ErrorCode:
        """TxnOffsetCommit: a stale member epoch is ILLEGAL_GENERATION there (Kafka's ConsumerGroup)."""
        if member_epoch < 0 and not self.members:
            return ErrorCode.NONE
        member = self.members.get(member_id)
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if member_epoch != member.member_epoch:
            return ErrorCode.ILLEGAL_GENERATION
        return ErrorCode.NONE

    def validate_offset_fetch(self, member_id: str | None, member_epoch: int) -> ErrorCode:
        if member_epoch < 0:
            return ErrorCode.NONE  # the admin client
        member = self.members.get(member_id or "")
        if member is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if member_epoch != member.member_epoch:
            return ErrorCode.STALE_MEMBER_EPOCH
        return ErrorCode.NONE

    # -- admin views and records ------------------------------------------------------------------

    def describe(self) -> ConsumerGroupDescription:
        members = tuple(
            DescribedConsumerMember(m.member_id, m.instance_id, m.rack_id, m.member_epoch, m.client_id, m.client_host,
                                    list(m.subscribed_topic_names), m.subscribed_topic_regex,
                                    {t: sorted(p) for t, p in m.assigned.items() if p},
                                    {t: sorted(p) for t, p in self.target.get(m.member_id, {}).items() if p})
            for m in self.members.values())
        return ConsumerGroupDescription(self.state_name, self.group_epoch, self.assignment_epoch,
                                        self.preferred_assignor(), members)

    def tombstones(self) -> tuple[Record, ...]:
        """The records that delete the group: every member's, then the group's own."""
        member_kinds = (rec.CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT, rec.CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER,
                        rec.CONSUMER_GROUP_MEMBER_METADATA)
        records = [Record(kind, self._member_key(member_id), None)
                   for member_id in set(self.members) | set(self.target) for kind in member_kinds]
        group_key = rec.ConsumerGroupMetadataKey(group_id=self.group_id)
        records += [Record(rec.CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA, group_key, None),
                    Record(rec.CONSUMER_GROUP_METADATA, group_key, None)]
        return tuple(records)

    def append_failed(self, now_ms: int, failed: CoordinatorResult[Any], error: ErrorCode) -> CoordinatorResult[None]:
        """The records of `failed` were not written. Kafka reverts the group to its last committed
        state (its timeline); we keep no timeline: the group stays as the step left it (the caller
        was answered the error, and the next step's records carry the state again)."""
        return CoordinatorResult()

    @classmethod
    def from_records(cls, group_id: str, records: Iterable[Record], config: ConsumerGroupConfig,
                     now_ms: int) -> ConsumerGroup | None:
        """Rebuild a group from its latest records; None without a group epoch record."""
        group = cls(group_id, config, now_ms)
        has_epoch = False
        metadata: dict[str, Any] = {}
        assignments: dict[str, Any] = {}
        for record in records:
            if record.value is None:
                continue
            kind = record.kind
            if kind is rec.CONSUMER_GROUP_METADATA:
                group.group_epoch = record.value.epoch
                group.metadata_hash = record.value.metadata_hash
                has_epoch = True
            elif kind is rec.CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA:
                group.assignment_epoch = record.value.assignment_epoch
            elif kind is rec.CONSUMER_GROUP_MEMBER_METADATA:
                metadata[record.key.member_id] = record.value
            elif kind is rec.CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT:
                assignments[record.key.member_id] = record.value
            elif kind is rec.CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER:
                group.target[record.key.member_id] = {tp.topic_id: set(tp.partitions)
                                                      for tp in record.value.topic_partitions}
        if not has_epoch:
            return None
        for member_id, value in metadata.items():
            member = ConsumerMember(member_id, value.instance_id, value.rack_id, value.client_id, value.client_host,
                                    list(value.subscribed_topic_names), value.subscribed_topic_regex,
                                    value.rebalance_timeout_ms, value.server_assignor)
            current = assignments.get(member_id)
            if current is not None:
                member.member_epoch = current.member_epoch
                member.previous_member_epoch = current.previous_member_epoch
                try:
                    member.state = MemberState(current.state)
                except ValueError:
                    member.state = MemberState.UNKNOWN
                member.assigned = {tp.topic_id: set(tp.partitions) for tp in current.assigned_partitions}
                member.pending_revocation = {tp.topic_id: set(tp.partitions)
                                             for tp in current.partitions_pending_revocation}
            group.members[member_id] = member
        group.target = {m: t for m, t in group.target.items() if m in group.members}
        return group
