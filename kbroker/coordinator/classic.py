"""The classic consumer group protocol (JoinGroup / SyncGroup / Heartbeat / LeaveGroup) as a pure
state machine: requests and the clock go in, replies, records and timer deadlines come out.

Kafka's `ClassicGroup` and the classic half of its `GroupMetadataManager` are the spec. States:

    Empty ──join──> PreparingRebalance ──all joined / timeout──> CompletingRebalance
      ^                 ^        │                                   │ leader's assignment written
      │                 │        └──no member left──> Empty          v
      └── (members leave or expire; the join phase ends with none) Stable ──join/leave/expiry──┐
                        └──────────────────────────────────────────────────────────────────────┘
    Dead: deleted (DeleteGroups, offsets expired); the object is dropped.

A rebalance collects JoinGroup requests (held: the reply comes when the join phase ends), picks
the protocol every member supports with the most votes, bumps the generation, makes a leader and
answers everyone; the leader alone receives the members' metadata and sends the assignment in its
SyncGroup. That is stored (a GroupMetadata record) while the group stays CompletingRebalance and
holds each member's SyncGroup; once the record is written (`append_committed`) every held member
gets its assignment and the group is Stable; if the write fails (`append_failed`) they get the
error and the group rebalances (Kafka's `appendFuture` of a SyncGroup).
The first rebalance of an Empty group waits `group.initial.rebalance.delay.ms`, extended while new
members keep arriving (up to the rebalance timeout), so a starting fleet joins one generation.

Time: every entry point takes `now_ms`; deadlines are kept here (`next_deadline`) and `advance(now)`
fires those due: a member's session (heartbeat) expiry, the join phase's end, the sync deadline.
Waiting requests are opaque handles (`waiter`). Each step returns a `CoordinatorResult`
(`result.py`): the GroupMetadata record it stores, if any, and the `Reply(waiter, result)` of each
request it answers; the replies leave only once the record is written, and the group is told the
outcome of the write (`append_committed` / `append_failed`).

Invariants (checked by the Hypothesis tests): the leader is a member; members awaiting join or sync
are members; pending-sync members are members; the generation only grows; assignments are handed
out only when the group becomes Stable (or to a member syncing in Stable).
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from kbroker.coordinator.consumer_protocol import subscription_topics
from kbroker.coordinator.records import (
    GROUP_METADATA,
    CoordinatorRecord,
    GroupMetadataValue,
    MemberMetadata,
    group_metadata,
)
from kbroker.coordinator.result import CoordinatorResult, Reply
from kbroker.errors import ErrorCode

log = logging.getLogger("kbroker.coordinator")

CONSUMER_PROTOCOL_TYPE = "consumer"
# Kafka's classicGroupNewMemberJoinTimeoutMs: a new member's held JoinGroup expires after this.
NEW_MEMBER_JOIN_TIMEOUT_MS = 5 * 60 * 1000
NO_GENERATION = -1


class GroupState(Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


EMPTY, PREPARING, COMPLETING, STABLE, DEAD = GroupState

# Kafka's ClassicGroupState.validPreviousStates: a transition from anything else is our bug.
_VALID_PREVIOUS = {
    PREPARING: {STABLE, COMPLETING, EMPTY},
    COMPLETING: {PREPARING},
    STABLE: {COMPLETING},
    EMPTY: {PREPARING},
    DEAD: {STABLE, PREPARING, COMPLETING, EMPTY, DEAD},
}


@dataclass(frozen=True, slots=True)
class ClassicGroupConfig:
    initial_rebalance_delay_ms: int = 3000
    max_size: int = 2**31 - 1
    new_member_join_timeout_ms: int = NEW_MEMBER_JOIN_TIMEOUT_MS


# -- results -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class JoinedMember:
    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass(frozen=True, slots=True)
class JoinResult:
    error: ErrorCode
    member_id: str = ""
    generation_id: int = NO_GENERATION
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader: str = ""
    skip_assignment: bool = False
    members: tuple[JoinedMember, ...] = ()  # the leader's answer only


@dataclass(frozen=True, slots=True)
class SyncResult:
    error: ErrorCode
    protocol_type: str | None = None
    protocol_name: str | None = None
    assignment: bytes = b""


def with_error(result: JoinResult | SyncResult, code: ErrorCode) -> JoinResult | SyncResult:
    """A held request's answer when the records of the step that answered it were not written."""
    if isinstance(result, JoinResult):
        return JoinResult(code, result.member_id)
    return SyncResult(code)


@dataclass(frozen=True, slots=True)
class Protocol:
    name: str
    metadata: bytes


@dataclass(slots=True)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    protocols: list[Protocol]
    assignment: bytes = b""
    awaiting_join: Any = None  # the held JoinGroup's waiter
    awaiting_sync: Any = None
    is_new: bool = False

    def metadata(self, protocol_name: str | None) -> bytes:
        for protocol in self.protocols:
            if protocol.name == protocol_name:
                return protocol.metadata
        return b""

    def vote(self, candidates: set[str]) -> str | None:
        return next((p.name for p in self.protocols if p.name in candidates), None)

    def matches(self, protocols: Sequence[Protocol]) -> bool:
        return list(protocols) == self.protocols

    def satisfied_heartbeat(self) -> bool:
        # A member waiting in a rebalance needs no heartbeat; a new member's JoinGroup can expire.
        return not self.is_new and (self.awaiting_join is not None or self.awaiting_sync is not None)


@dataclass(frozen=True, slots=True)
class DescribedMember:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupDescription:
    state: str
    protocol_type: str
    protocol: str
    members: tuple[DescribedMember, ...]


def _random_member_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4()}"


# -- the group ----------------------------------------------------------------------------------

class ClassicGroup:
    group_type = "classic"

    def __init__(self, group_id: str, config: ClassicGroupConfig, now_ms: int,
                 member_ids: Callable[[str], str] = _random_member_id) -> None:
        self.group_id = group_id
        self.config = config
        self._member_ids = member_ids
        self.state = EMPTY
        self.previous_state = DEAD
        self.state_timestamp_ms: int | None = now_ms
        self.generation_id = 0
        self.protocol_type: str | None = None
        self.protocol_name: str | None = None
        self.leader_id: str | None = None
        self.members: dict[str, Member] = {}
        self.static_members: dict[str, str] = {}
        self.pending_join: set[str] = set()
        self.pending_sync: set[str] = set()
        self.new_member_added = False
        # deadline and payload per timer: ("heartbeat", member id), ("join",), ("sync",)
        self._timers: dict[tuple[str, ...], tuple[int, Any]] = {}
        # what the current step wrote and answered (`_take` hands them out as its result)
        self._records: list[CoordinatorRecord] = []
        self._replies: list[Reply] = []

    # -- queries ----------------------------------------------------------------------------------

    @property
    def state_name(self) -> str:
        return self.state.value

    def is_empty(self) -> bool:
        return self.state is EMPTY

    def is_leader(self, member_id: str) -> bool:
        return self.leader_id is not None and self.leader_id == member_id

    def next_deadline(self) -> int | None:
        return min((deadline for deadline, _ in self._timers.values()), default=None)

    def uses_consumer_protocol(self) -> bool:
        return self.protocol_type == CONSUMER_PROTOCOL_TYPE

    def rebalance_timeout_ms(self) -> int:
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def has_all_members_joined(self) -> bool:
        return (not self.pending_join
                and all(m.awaiting_join is not None for m in self.members.values()))

    def describe(self) -> GroupDescription:
        stable = self.state is STABLE
        members = tuple(
            DescribedMember(m.member_id, m.group_instance_id, m.client_id, m.client_host,
                            m.metadata(self.protocol_name) if stable else b"", m.assignment if stable else b"")
            for m in self.members.values())
        return GroupDescription(self.state_name, self.protocol_type or "",
                                (self.protocol_name or "") if stable else "", members)

    def held_waiters(self) -> list[Any]:
        return [w for m in self.members.values() for w in (m.awaiting_join, m.awaiting_sync) if w is not None]

    def fail_held(self, error: ErrorCode) -> CoordinatorResult[None]:
        """Answer every held JoinGroup and SyncGroup with `error` (the coordinator is stopping)."""
        for member in self.members.values():
            self._complete_join(member, JoinResult(error, member.member_id))
            self._complete_sync(member, SyncResult(error))
        return self._take()

    # -- time -------------------------------------------------------------------------------------

    def advance(self, now_ms: int) -> CoordinatorResult[None]:
        """Fire every timer due at `now_ms`, earliest first."""
        while True:
            due = [(deadline, key) for key, (deadline, _) in self._timers.items() if deadline <= now_ms]
            if not due:
                break
            _, key = min(due)
            _, payload = self._timers.pop(key)
            if key[0] == "heartbeat":
                self._expire_heartbeat(now_ms, key[1])
            elif key[0] == "join":
                self._join_timer_fired(now_ms, payload)
            elif key[0] == "sync":
                self._expire_pending_sync(now_ms, payload)
        return self._take()

    def _schedule(self, key: tuple[str, ...], deadline: int, payload: Any = None) -> None:
        self._timers[key] = (deadline, payload)

    def _cancel(self, key: tuple[str, ...]) -> None:
        self._timers.pop(key, None)

    def _reschedule_heartbeat(self, now_ms: int, member: Member, timeout_ms: int | None = None) -> None:
        timeout = member.session_timeout_ms if timeout_ms is None else timeout_ms
        self._schedule(("heartbeat", member.member_id), now_ms + timeout)

    def _take(self, response: Any = None) -> CoordinatorResult[Any]:
        result = CoordinatorResult(tuple(self._records), response, tuple(self._replies))
        self._records, self._replies = [], []
        return result

    # -- transitions ------------------------------------------------------------------------------

    def _transition(self, now_ms: int, state: GroupState) -> None:
        if self.state not in _VALID_PREVIOUS[state]:
            raise AssertionError(f"group {self.group_id}: illegal transition {self.state.value} -> {state.value}")
        self.previous_state = self.state
        self.state = state
        self.state_timestamp_ms = now_ms

    def mark_dead(self, now_ms: int) -> None:
        self._transition(now_ms, DEAD)
        self._timers.clear()

    def can_rebalance(self) -> bool:
        return self.state in _VALID_PREVIOUS[PREPARING]

    # -- membership bookkeeping -------------------------------------------------------------------

    def _supports(self, protocol_type: str, protocol_names: Iterable[str]) -> bool:
        names = list(protocol_names)
        if self.state is EMPTY:
            return bool(protocol_type) and bool(names)
        counts = self._protocol_counts()
        return self.protocol_type == protocol_type and any(counts.get(n, 0) == len(self.members) for n in names)

    def _protocol_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for member in self.members.values():
            for name in {p.name for p in member.protocols}:
                counts[name] = counts.get(name, 0) + 1
        return counts

    def select_protocol(self) -> str:
        counts = self._protocol_counts()
        candidates = {name for name, count in counts.items() if count == len(self.members)}
        votes: dict[str, int] = {}
        for member in self.members.values():
            choice = member.vote(candidates)
            if choice is not None:
                votes[choice] = votes.get(choice, 0) + 1
        if not votes:
            raise AssertionError(f"group {self.group_id}: no protocol all members support")
        # Most votes wins; a tie goes to the protocol voted for first (Kafka leaves it to HashMap order).
        return max(votes, key=lambda name: votes[name])

    def _add(self, member: Member) -> None:
        if member.group_instance_id is not None:
            if member.group_instance_id in self.static_members:
                raise AssertionError(f"static member {member.group_instance_id} is already in {self.group_id}")
            self.static_members[member.group_instance_id] = member.member_id
        if not self.members:
            self.protocol_type = member.protocol_type
        if self.leader_id is None:
            self.leader_id = member.member_id
        self.members[member.member_id] = member
        self.pending_join.discard(member.member_id)

    def _remove(self, member_id: str) -> None:
        removed = self.members.pop(member_id, None)
        if removed is not None:
            # Kafka may leave a removed member's held request to the client's timeout; we answer.
            self._complete_join(removed, JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, ""))
            self._complete_sync(removed, SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
            if removed.group_instance_id is not None:
                self.static_members.pop(removed.group_instance_id, None)
        if self.is_leader(member_id):
            self.leader_id = next(iter(self.members), None)
        self.pending_join.discard(member_id)
        self.pending_sync.discard(member_id)

    def _complete_join(self, member: Member, result: JoinResult) -> bool:
        if member.awaiting_join is None:
            return False
        self._replies.append(Reply(member.awaiting_join, result))
        member.awaiting_join = None
        return True

    def _complete_sync(self, member: Member, result: SyncResult) -> bool:
        if member.awaiting_sync is None:
            return False
        self._replies.append(Reply(member.awaiting_sync, result))
        member.awaiting_sync = None
        return True

    def _current_members(self) -> tuple[JoinedMember, ...]:
        return tuple(JoinedMember(m.member_id, m.group_instance_id, m.metadata(self.protocol_name))
                     for m in self.members.values())

    def _generation_reply(self, member_id: str, *, with_members: bool, skip_assignment: bool = False) -> JoinResult:
        return JoinResult(ErrorCode.NONE, member_id, self.generation_id, self.protocol_type, self.protocol_name,
                          self.leader_id or "", skip_assignment, self._current_members() if with_members else ())

    # -- JoinGroup --------------------------------------------------------------------------------

    def join(self, now_ms: int, waiter: Any, *, member_id: str, group_instance_id: str | None, client_id: str,
             client_host: str, session_timeout_ms: int, rebalance_timeout_ms: int, protocol_type: str,
             protocols: Sequence[Protocol], require_known_member_id: bool,
             supports_skip_assignment: bool) -> CoordinatorResult[None]:
        """A JoinGroup (session timeout and group id already validated by the caller)."""
        if rebalance_timeout_ms < 0:  # JoinGroup v0 has none: Kafka uses the session timeout
            rebalance_timeout_ms = session_timeout_ms
        request = _JoinRequest(waiter, member_id, group_instance_id, client_id, client_host, session_timeout_ms,
                               rebalance_timeout_ms, protocol_type, list(protocols), require_known_member_id,
                               supports_skip_assignment)
        if not self._accepts_joining_member(member_id):
            self._remove(member_id)
            self._reply(waiter, JoinResult(ErrorCode.GROUP_MAX_SIZE_REACHED, ""))
        elif not member_id:
            self._join_new_member(now_ms, request)
        else:
            self._join_existing_member(now_ms, request)
        return self._take()

    def _reply(self, waiter: Any, result: JoinResult | SyncResult) -> None:
        self._replies.append(Reply(waiter, result))

    def _accepts_joining_member(self, member_id: str) -> bool:
        if self.state in (EMPTY, DEAD):
            return True
        member = self.members.get(member_id)
        if self.state is PREPARING:
            awaiting = sum(1 for m in self.members.values() if m.awaiting_join is not None)
            return (member is not None and member.awaiting_join is not None) or awaiting < self.config.max_size
        return member is not None or len(self.members) < self.config.max_size

    def _join_new_member(self, now_ms: int, request: _JoinRequest) -> None:
        if self.state is DEAD:
            self._reply(request.waiter, JoinResult(ErrorCode.COORDINATOR_NOT_AVAILABLE, ""))
            return
        if not self._supports(request.protocol_type, (p.name for p in request.protocols)):
            self._reply(request.waiter, JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, ""))
            return
        new_member_id = self._member_ids(request.group_instance_id or request.client_id)
        if request.group_instance_id is not None:
            existing = self.static_members.get(request.group_instance_id)
            if existing is not None:
                self._replace_static_member(now_ms, request, existing, new_member_id)
            else:
                self._add_member_and_rebalance(now_ms, request, new_member_id)
        elif request.require_known_member_id:
            # KIP-394: the member must come back with this id; until then it is "pending".
            if new_member_id in self.members:
                raise AssertionError(f"generated member id {new_member_id} is already a member")
            self.pending_join.add(new_member_id)
            self._schedule(("heartbeat", new_member_id), now_ms + request.session_timeout_ms)
            self._reply(request.waiter, JoinResult(ErrorCode.MEMBER_ID_REQUIRED, new_member_id))
        else:
            self._add_member_and_rebalance(now_ms, request, new_member_id)

    def _join_existing_member(self, now_ms: int, request: _JoinRequest) -> None:
        member_id = request.member_id
        if self.state is DEAD:
            self._reply(request.waiter, JoinResult(ErrorCode.COORDINATOR_NOT_AVAILABLE, member_id))
            return
        if not self._supports(request.protocol_type, (p.name for p in request.protocols)):
            self._reply(request.waiter, JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id))
            return
        if member_id in self.pending_join:
            if request.group_instance_id is not None:  # Kafka: a pending member is never static
                self._reply(request.waiter, JoinResult(ErrorCode.INVALID_REQUEST, member_id))
                return
            self._add_member_and_rebalance(now_ms, request, member_id)
            return
        error = self._validate_member(member_id, request.group_instance_id)
        if error:
            self._reply(request.waiter, JoinResult(error, member_id))
            return
        member = self.members[member_id]
        if self.state is PREPARING:
            self._update_member_and_rebalance(now_ms, request, member)
        elif self.state is COMPLETING:
            if member.matches(request.protocols):
                # It lost the first answer: repeat this generation's.
                self._reply(request.waiter, self._generation_reply(member_id, with_members=self.is_leader(member_id)))
            else:
                self._update_member_and_rebalance(now_ms, request, member)
        elif self.state is STABLE:
            if self.is_leader(member_id) or not member.matches(request.protocols):
                # A leader's JoinGroup forces a rebalance (e.g. topic metadata changed).
                self._update_member_and_rebalance(now_ms, request, member)
            else:
                self._reply(request.waiter, self._generation_reply(member_id, with_members=False))
        else:  # Empty with a known member id: the member must reset and rejoin
            self._reply(request.waiter, JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id))

    def _validate_member(self, member_id: str, group_instance_id: str | None) -> ErrorCode:
        if group_instance_id is not None:
            existing = self.static_members.get(group_instance_id)
            if existing is None:
                return ErrorCode.UNKNOWN_MEMBER_ID
            if existing != member_id:
                return ErrorCode.FENCED_INSTANCE_ID
        if member_id not in self.members:
            return ErrorCode.UNKNOWN_MEMBER_ID
        return ErrorCode.NONE

    def _add_member_and_rebalance(self, now_ms: int, request: _JoinRequest, member_id: str) -> None:
        member = Member(member_id, request.group_instance_id, request.client_id, request.client_host,
                        request.rebalance_timeout_ms, request.session_timeout_ms, request.protocol_type,
                        request.protocols, is_new=True)
        if self.state is PREPARING and self.previous_state is EMPTY:
            self.new_member_added = True  # the initial rebalance waits a little longer
        self._add(member)
        member.awaiting_join = request.waiter
        # A held JoinGroup cannot heartbeat; a new member that vanished is dropped after this.
        self._reschedule_heartbeat(now_ms, member, self.config.new_member_join_timeout_ms)
        self._maybe_prepare_rebalance_or_complete_join(now_ms, "adding new member " + member_id)

    def _update_member_and_rebalance(self, now_ms: int, request: _JoinRequest, member: Member) -> None:
        member.protocols = request.protocols
        member.rebalance_timeout_ms = request.rebalance_timeout_ms
        member.session_timeout_ms = request.session_timeout_ms
        # A second JoinGroup while one is held (the client gave up on the first): the old one
        # gets a retriable error rather than no answer.
        self._complete_join(member, JoinResult(ErrorCode.REBALANCE_IN_PROGRESS, member.member_id))
        member.awaiting_join = request.waiter
        self._maybe_prepare_rebalance_or_complete_join(now_ms, "updating member " + member.member_id)

    def _replace_static_member(self, now_ms: int, request: _JoinRequest, old_member_id: str,
                               new_member_id: str) -> None:
        current_leader = self.leader_id
        old = self.members.pop(old_member_id)
        # Fence whoever still waits under the old id.
        if old.awaiting_join is not None:
            self._reply(old.awaiting_join, JoinResult(ErrorCode.FENCED_INSTANCE_ID, old_member_id))
        if old.awaiting_sync is not None:
            self._reply(old.awaiting_sync, SyncResult(ErrorCode.FENCED_INSTANCE_ID))
        self._cancel(("heartbeat", old_member_id))
        member = Member(new_member_id, old.group_instance_id, old.client_id, old.client_host,
                        request.rebalance_timeout_ms, request.session_timeout_ms, old.protocol_type,
                        request.protocols, old.assignment)
        self.members[new_member_id] = member
        if self.leader_id == old_member_id:
            self.leader_id = new_member_id
        self.static_members[request.group_instance_id] = new_member_id
        if old_member_id in self.pending_sync:
            self.pending_sync.discard(old_member_id)
            self.pending_sync.add(new_member_id)
        self._reschedule_heartbeat(now_ms, member)
        member.awaiting_join = request.waiter
        if self.state is STABLE:
            if self.protocol_name == self.select_protocol():
                # KIP-345: same protocol, no rebalance. The member takes over its assignment; the
                # new member id is stored first, then answered (the leader may skip assigning).
                if request.supports_skip_assignment:  # JoinGroup v9+ (KIP-814)
                    skip = self.is_leader(new_member_id)
                    result = self._generation_reply(new_member_id, with_members=skip, skip_assignment=skip)
                else:
                    # Older clients must not think they lead (they would assign with no members):
                    # Kafka names the leader as it was before the replacement.
                    result = replace(self._generation_reply(new_member_id, with_members=False),
                                     leader=current_leader or "")
                self._store()
                self._complete_join(member, result)
            else:
                self._maybe_prepare_rebalance_or_complete_join(
                    now_ms, f"static member {new_member_id} changes the group's protocol")
        elif self.state is COMPLETING:
            # The leader may already assign for the old id: only a new rebalance is safe.
            self._prepare_rebalance(now_ms, f"static member {new_member_id} rejoined during CompletingRebalance")
        else:
            self._maybe_complete_join_phase(now_ms)

    # -- rebalance --------------------------------------------------------------------------------

    def _maybe_prepare_rebalance_or_complete_join(self, now_ms: int, reason: str) -> None:
        if self.can_rebalance():
            self._prepare_rebalance(now_ms, reason)
        else:
            self._maybe_complete_join_phase(now_ms)

    def _maybe_complete_join_phase(self, now_ms: int) -> None:
        # The initial rebalance (from Empty) always waits for its delay to pass.
        if self.state is PREPARING and self.has_all_members_joined() and self.previous_state is not EMPTY:
            self._complete_join_phase(now_ms)

    def _prepare_rebalance(self, now_ms: int, reason: str) -> None:
        log.info("preparing to rebalance group %s in state %s with old generation %d (reason: %s)",
                 self.group_id, self.state.value, self.generation_id, reason)
        if self.state is COMPLETING:
            self._reset_and_propagate_assignment_error(ErrorCode.REBALANCE_IN_PROGRESS, now_ms)
        self._remove_sync_expiration()
        initial = self.state is EMPTY
        self._transition(now_ms, PREPARING)
        if initial:
            delay = self.config.initial_rebalance_delay_ms
            remaining = max(self.rebalance_timeout_ms() - delay, 0)
            self._schedule(("join",), now_ms + delay, ("initial", delay, remaining))
        elif self.has_all_members_joined():
            self._complete_join_phase(now_ms)
        else:
            self._schedule(("join",), now_ms + self.rebalance_timeout_ms(), ("rebalance",))

    def _join_timer_fired(self, now_ms: int, payload: tuple) -> None:
        if payload[0] == "initial":
            _, delay, remaining = payload
            if self.new_member_added and remaining != 0:
                self.new_member_added = False
                next_delay = min(self.config.initial_rebalance_delay_ms, remaining)
                self._schedule(("join",), now_ms + next_delay, ("initial", next_delay, max(remaining - delay, 0)))
                return
        self._complete_join_phase(now_ms)

    def _complete_join_phase(self, now_ms: int) -> None:
        self._cancel(("join",))
        for member in [m for m in self.members.values() if m.awaiting_join is None and m.group_instance_id is None]:
            self._remove(member.member_id)
            self._cancel(("heartbeat", member.member_id))
        if self.state is DEAD:
            return
        if not self._maybe_elect_joined_leader() and self.members:
            # Nobody rejoined: wait another rebalance timeout for sessions to expire.
            self._schedule(("join",), now_ms + self.rebalance_timeout_ms(), ("rebalance",))
            return
        self._init_next_generation(now_ms)
        if self.state is EMPTY:
            log.info("group %s with generation %d is now empty", self.group_id, self.generation_id)
            self._store()
            return
        log.info("stabilized group %s generation %d (protocol %s) with %d members", self.group_id,
                 self.generation_id, self.protocol_name, len(self.members))
        for member in self.members.values():
            result = self._generation_reply(member.member_id, with_members=self.is_leader(member.member_id))
            self._complete_join(member, result)
            self._reschedule_heartbeat(now_ms, member)
            member.is_new = False
            self.pending_sync.add(member.member_id)
        self._schedule(("sync",), now_ms + self.rebalance_timeout_ms(), self.generation_id)

    def _maybe_elect_joined_leader(self) -> bool:
        if self.leader_id is None:
            return False
        leader = self.members.get(self.leader_id)
        if leader is not None and leader.awaiting_join is not None:
            return True
        for member in self.members.values():
            if member.awaiting_join is not None:
                self.leader_id = member.member_id
                return True
        return False

    def _init_next_generation(self, now_ms: int) -> None:
        self.generation_id += 1
        if self.members:
            self.protocol_name = self.select_protocol()
            self._transition(now_ms, COMPLETING)
        else:
            self.protocol_name = None
            self._transition(now_ms, EMPTY)
        self.pending_sync.clear()

    def _reset_and_propagate_assignment_error(self, error: ErrorCode, now_ms: int) -> None:
        for member in self.members.values():
            member.assignment = b""
        self._propagate_assignment(error, now_ms)

    def _propagate_assignment(self, error: ErrorCode, now_ms: int) -> None:
        ok = error == ErrorCode.NONE
        for member in self.members.values():
            result = SyncResult(error, self.protocol_type if ok else None, self.protocol_name if ok else None,
                                member.assignment)
            if self._complete_sync(member, result):
                # Its session restarts now: it may have expired while the member waited.
                self._reschedule_heartbeat(now_ms, member)

    def _remove_sync_expiration(self) -> None:
        self.pending_sync.clear()
        self._cancel(("sync",))

    def _expire_pending_sync(self, now_ms: int, generation_id: int) -> None:
        if generation_id != self.generation_id or self.state not in (COMPLETING, STABLE):
            return
        if self.pending_sync:
            late = sorted(self.pending_sync)
            for member_id in late:
                self._remove(member_id)
                self._cancel(("heartbeat", member_id))
            self._prepare_rebalance(now_ms, f"members {', '.join(late)} did not sync in time")

    def _expire_heartbeat(self, now_ms: int, member_id: str) -> None:
        if self.state is DEAD:
            return
        if member_id in self.pending_join:
            self._remove(member_id)
            if self.state is PREPARING and self.has_all_members_joined():
                self._complete_join_phase(now_ms)
            return
        member = self.members.get(member_id)
        if member is None or member.satisfied_heartbeat():
            return
        self._remove_member_and_update(now_ms, member)

    def _remove_member_and_update(self, now_ms: int, member: Member) -> None:
        # A new member's held JoinGroup may time out: answer it so the client retries.
        self._complete_join(member, JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, ""))
        self._remove(member.member_id)
        if self.state in (STABLE, COMPLETING):
            self._maybe_prepare_rebalance_or_complete_join(
                now_ms, f"member {member.member_id} failed (session timeout)")
        elif self.state is PREPARING and self.has_all_members_joined():
            self._complete_join_phase(now_ms)

    def _store(self) -> None:
        self._records.append(group_metadata(self.group_id, self.to_record()))

    # -- SyncGroup --------------------------------------------------------------------------------

    def sync(self, now_ms: int, waiter: Any, *, member_id: str, group_instance_id: str | None, generation_id: int,
             protocol_type: str | None, protocol_name: str | None,
             assignments: dict[str, bytes]) -> CoordinatorResult[None]:
        error = self._validate_sync(member_id, group_instance_id, generation_id, protocol_type, protocol_name)
        if error:
            self._reply(waiter, SyncResult(error))
        elif self.state is EMPTY:
            self._reply(waiter, SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        elif self.state is PREPARING:
            self._reply(waiter, SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
        elif self.state is COMPLETING:
            member = self.members[member_id]
            self._complete_sync(member, SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
            member.awaiting_sync = waiter
            self._remove_pending_sync_member(member_id)
            if self.is_leader(member_id):
                # Kafka stores the assignment first: until the record is written the group stays
                # CompletingRebalance and holds every SyncGroup; `append_committed` hands the
                # assignment out from the written record, `append_failed` rebalances.
                self._records.append(group_metadata(self.group_id, self.to_record(assignments)))
        elif self.state is STABLE:
            self._remove_pending_sync_member(member_id)
            member = self.members[member_id]
            self._reply(waiter, SyncResult(ErrorCode.NONE, self.protocol_type, self.protocol_name, member.assignment))
        return self._take()

    def _validate_sync(self, member_id: str, group_instance_id: str | None, generation_id: int,
                       protocol_type: str | None, protocol_name: str | None) -> ErrorCode:
        if self.state is DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        error = self._validate_member(member_id, group_instance_id)
        if error:
            return error
        if generation_id != self.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        if _inconsistent(protocol_type, self.protocol_type) or _inconsistent(protocol_name, self.protocol_name):
            return ErrorCode.INCONSISTENT_GROUP_PROTOCOL
        return ErrorCode.NONE

    def _remove_pending_sync_member(self, member_id: str) -> None:
        self.pending_sync.discard(member_id)
        if not self.pending_sync:
            self._cancel(("sync",))

    def append_committed(self, now_ms: int, written: CoordinatorResult[Any]) -> CoordinatorResult[None]:
        """The records of `written` are stored: if one is the leader's assignment for this
        generation and the group still completes that rebalance, every member gets its part of
        it and the group is Stable (Kafka's append future completing)."""
        if self.state is COMPLETING:
            stored = next((r.value for r in written.records if r.kind is GROUP_METADATA and r.value is not None
                           and r.value.generation == self.generation_id), None)
            if stored is not None:
                assignments = {m.member_id: m.assignment for m in stored.members}
                for member in self.members.values():
                    member.assignment = assignments.get(member.member_id, b"")
                self._propagate_assignment(ErrorCode.NONE, now_ms)
                self._transition(now_ms, STABLE)
        return self._take()

    def append_failed(self, now_ms: int, failed: CoordinatorResult[Any], error: ErrorCode) -> CoordinatorResult[None]:
        """The records of `failed` were not written: if they stored this generation, the members
        must rebalance (Kafka's append future completing exceptionally)."""
        generations = {r.value.generation for r in failed.records if r.kind is GROUP_METADATA and r.value is not None}
        if self.state in (STABLE, COMPLETING) and self.generation_id in generations:
            for member in self.members.values():
                member.assignment = b""
            if self.state is STABLE:
                self._prepare_rebalance(now_ms, "storing the group failed")
            else:
                self._reset_and_propagate_assignment_error(error, now_ms)
                self._maybe_prepare_rebalance_or_complete_join(now_ms, "storing the group failed")
        return self._take()

    # -- Heartbeat --------------------------------------------------------------------------------

    def heartbeat(self, now_ms: int, *, member_id: str, group_instance_id: str | None,
                  generation_id: int) -> ErrorCode:
        if self.state is DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        error = self._validate_member(member_id, group_instance_id)
        if error:
            return error
        if generation_id != self.generation_id:
            return ErrorCode.ILLEGAL_GENERATION
        if self.state is EMPTY:
            return ErrorCode.UNKNOWN_MEMBER_ID
        self._reschedule_heartbeat(now_ms, self.members[member_id])
        if self.state is PREPARING:
            return ErrorCode.REBALANCE_IN_PROGRESS
        return ErrorCode.NONE

    # -- LeaveGroup -------------------------------------------------------------------------------

    def leave(self, now_ms: int, members: Sequence[tuple[str, str | None]]) -> CoordinatorResult[list[ErrorCode]]:
        """Members leave: (member id, group instance id) each; an empty member id names a static
        member by instance id (an admin removing it)."""
        if self.state is DEAD:
            return CoordinatorResult(response=[ErrorCode.COORDINATOR_NOT_AVAILABLE] * len(members))
        errors = []
        for member_id, instance_id in members:
            if not member_id:
                if instance_id is not None and instance_id in self.static_members:
                    self._remove_current_member(self.static_members[instance_id])
                    errors.append(ErrorCode.NONE)
                else:
                    errors.append(ErrorCode.UNKNOWN_MEMBER_ID)
            elif member_id in self.pending_join:
                self._remove(member_id)
                self._cancel(("heartbeat", member_id))
                errors.append(ErrorCode.NONE)
            else:
                error = self._validate_member(member_id, instance_id)
                if not error:
                    self._remove_current_member(member_id)
                errors.append(error)
        if any(e == ErrorCode.NONE for e in errors):
            if self.state in (STABLE, COMPLETING):
                self._maybe_prepare_rebalance_or_complete_join(now_ms, "members left")
            elif self.state is PREPARING:
                self._maybe_complete_join_phase(now_ms)
        return self._take(errors)

    def _remove_current_member(self, member_id: str) -> None:
        member = self.members[member_id]
        self._cancel(("heartbeat", member_id))
        self._complete_join(member, JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, ""))
        self._remove(member_id)

    # -- offsets ----------------------------------------------------------------------------------

    def validate_offset_commit(self, member_id: str, group_instance_id: str | None, generation_id: int, *,
                               transactional: bool = False) -> ErrorCode:
        """A TxnOffsetCommit (`transactional`) without member or generation (v0-2) is not checked
        against the members, nor refused during a rebalance (Kafka's validateOffsetCommit)."""
        if self.state is DEAD:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        if generation_id < 0 and self.state is EMPTY:
            return ErrorCode.NONE  # an admin client or a consumer without group management
        if generation_id >= 0 or member_id or group_instance_id is not None:
            error = self._validate_member(member_id, group_instance_id)
            if error:
                return error
            if generation_id != self.generation_id:
                return ErrorCode.ILLEGAL_GENERATION
        elif self.state is not EMPTY and not transactional:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if self.state is COMPLETING and not transactional:
            return ErrorCode.REBALANCE_IN_PROGRESS
        return ErrorCode.NONE

    def subscribed_topics(self) -> frozenset[str] | None:
        """Topics the members subscribe to (consumer protocol, known protocol), else None."""
        if not self.uses_consumer_protocol():
            return None
        if not self.members:
            return frozenset()
        if self.protocol_name is None:
            return None
        topics: set[str] = set()
        for member in self.members.values():
            parsed = subscription_topics(member.metadata(self.protocol_name))
            if parsed is None:
                return None
            topics.update(parsed)
        return frozenset(topics)

    def is_subscribed_to(self, topic: str) -> bool:
        topics = self.subscribed_topics()
        return topic in topics if topics is not None else self.uses_consumer_protocol()

    def offset_expiry_base(self) -> str | None:
        """How committed offsets of this group expire (Kafka's offsetExpirationCondition):
        "state" from when the group became Empty, "commit" from each commit, None not at all."""
        if self.protocol_type is None:
            return "commit"  # a simple group (manual commits only)
        if self.state is EMPTY:
            return "state"
        if self.uses_consumer_protocol() and self.state is STABLE and self.subscribed_topics() is not None:
            return "commit"
        return None

    # -- records ----------------------------------------------------------------------------------

    def to_record(self, assignments: Mapping[str, bytes] | None = None) -> Any:
        """The group as a GroupMetadataValue; with `assignments` (the leader's, not yet written)
        instead of the members' current ones (a member the leader left out gets an empty one)."""
        members = [MemberMetadata(member_id=m.member_id, group_instance_id=m.group_instance_id,
                                  client_id=m.client_id, client_host=m.client_host,
                                  rebalance_timeout=m.rebalance_timeout_ms, session_timeout=m.session_timeout_ms,
                                  subscription=m.metadata(self.protocol_name),
                                  assignment=m.assignment if assignments is None
                                  else assignments.get(m.member_id, b""))
                   for m in self.members.values()]
        return GroupMetadataValue(protocol_type=self.protocol_type or "", generation=self.generation_id,
                                  protocol=self.protocol_name, leader=self.leader_id,
                                  current_state_timestamp=self.state_timestamp_ms if self.state_timestamp_ms
                                  is not None else -1, members=members)

    def tombstones(self) -> tuple[CoordinatorRecord, ...]:
        """The records that delete the group."""
        return (group_metadata(self.group_id, None),)

    @classmethod
    def from_record(cls, group_id: str, value: Any, config: ClassicGroupConfig, now_ms: int,
                    member_ids: Callable[[str], str] = _random_member_id) -> ClassicGroup:
        """A group as its latest GroupMetadata record left it: Stable with members, else Empty."""
        group = cls(group_id, config, now_ms, member_ids)
        group.generation_id = value.generation
        group.protocol_type = value.protocol_type or None
        group.protocol_name = value.protocol
        group.leader_id = value.leader
        group.state_timestamp_ms = value.current_state_timestamp if value.current_state_timestamp != -1 else None
        for m in value.members:
            rebalance_timeout = m.session_timeout if m.rebalance_timeout == -1 else m.rebalance_timeout
            member = Member(m.member_id, m.group_instance_id, m.client_id, m.client_host, rebalance_timeout,
                            m.session_timeout, value.protocol_type, [Protocol(value.protocol or "", m.subscription)],
                            m.assignment)
            group.members[m.member_id] = member
            if m.group_instance_id is not None:
                group.static_members[m.group_instance_id] = m.member_id
        group.state = STABLE if group.members else EMPTY
        if group.leader_id not in group.members:
            group.leader_id = next(iter(group.members), None)
        return group

    def on_loaded(self, now_ms: int) -> CoordinatorResult[None]:
        """After replay: every member gets a fresh session; an oversized group rebalances."""
        for member in self.members.values():
            self._reschedule_heartbeat(now_ms, member)
        if len(self.members) > self.config.max_size and self.can_rebalance():
            self._prepare_rebalance(now_ms, "the loaded group is over group.max.size")
        return self._take()


@dataclass(frozen=True, slots=True)
class _JoinRequest:
    waiter: Any
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: list[Protocol] = field(default_factory=list)
    require_known_member_id: bool = True
    supports_skip_assignment: bool = False


def _inconsistent(requested: str | None, current: str | None) -> bool:
    return requested is not None and current is not None and requested != current
