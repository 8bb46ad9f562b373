"""Random sequences of JoinGroup / SyncGroup / Heartbeat / LeaveGroup / time, checking the classic
group's invariants after every step (Hypothesis stateful testing)."""
from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from kbroker.coordinator.classic import COMPLETING, EMPTY, STABLE, JoinResult, Protocol, SyncResult
from kbroker.errors import ErrorCode
from tests.coordinator.classic_harness import Harness

PROTOCOL_SETS = [
    [Protocol("range", b"r")],
    [Protocol("range", b"r"), Protocol("roundrobin", b"rr")],
    [Protocol("roundrobin", b"rr")],
    [],
]


class ClassicGroupMachine(RuleBasedStateMachine):
    @initialize()
    def start(self) -> None:
        self.h = Harness()
        self.known_ids: list[str] = []          # ids the broker ever gave out
        self.generation_of: dict[str, int] = {}  # member id -> generation it learnt
        self.seen_replies = 0
        self.leaders: dict[int, str] = {}        # generation -> leader told to members
        self.last_generation = 0
        self.pending: set = set()
        self.identities: dict[str, str] = {}     # static member id -> its group instance id

    # -- helpers ------------------------------------------------------------------------------

    def _check_new_replies(self) -> None:
        group = self.h.group
        replies = list(self.h.replies.items())
        for waiter, result in replies[self.seen_replies:]:
            self.pending.discard(waiter)
            if isinstance(result, JoinResult):
                if result.member_id and result.member_id not in self.known_ids:
                    self.known_ids.append(result.member_id)
                if result.error == ErrorCode.NONE:
                    # One leader per generation (a static leader restarting keeps the role under
                    # its new member id), and only the leader sees the members.
                    for instance, member_id in group.static_members.items():
                        self.identities[member_id] = instance
                    identity = self.identities.get(result.leader, result.leader)
                    leader = self.leaders.setdefault(result.generation_id, identity)
                    assert leader == identity
                    assert bool(result.members) == (result.member_id == result.leader) or result.skip_assignment
                    assert result.generation_id >= 1
                    self.generation_of[result.member_id] = result.generation_id
            elif isinstance(result, SyncResult) and result.error == ErrorCode.NONE:
                # Assignments are handed out only once the group is Stable.
                assert group.state is STABLE
        self.seen_replies = len(replies)

    def _member(self, data) -> str:
        choices = self.known_ids + ["", "ghost"]
        return data.draw(st.sampled_from(choices))

    # -- rules --------------------------------------------------------------------------------

    @rule(client=st.integers(0, 3), static=st.booleans(), protocols=st.sampled_from(PROTOCOL_SETS),
          session=st.sampled_from([6000, 10_000]), rebalance=st.sampled_from([6000, 20_000]))
    def join_new(self, client, static, protocols, session, rebalance) -> None:
        waiter = self.h.join(client_id=f"c{client}", instance_id=f"i{client}" if static else None,
                             protocols=protocols, session=session, rebalance=rebalance)
        self.pending.add(waiter)
        self._check_new_replies()

    @precondition(lambda self: self.known_ids)
    @rule(data=st.data(), protocols=st.sampled_from(PROTOCOL_SETS[:3]))
    def rejoin(self, data, protocols) -> None:
        member_id = self._member(data)
        member = self.h.group.members.get(member_id)
        instance = member.group_instance_id if member else None
        waiter = self.h.join(member_id, instance_id=instance, protocols=protocols)
        self.pending.add(waiter)
        self._check_new_replies()

    @precondition(lambda self: self.known_ids)
    @rule(data=st.data(), stale=st.booleans())
    def sync(self, data, stale) -> None:
        member_id = self._member(data)
        generation = self.generation_of.get(member_id, 0) - (1 if stale else 0)
        group = self.h.group
        assignments = {m: f"{m}@{generation}".encode() for m in group.members} if group.is_leader(member_id) else {}
        member = group.members.get(member_id)
        waiter = self.h.sync(member_id, generation, assignments,
                             instance_id=member.group_instance_id if member else None)
        self.pending.add(waiter)
        self._check_new_replies()

    @precondition(lambda self: self.known_ids)
    @rule(data=st.data())
    def heartbeat(self, data) -> None:
        member_id = self._member(data)
        member = self.h.group.members.get(member_id)
        error = self.h.heartbeat(member_id, self.generation_of.get(member_id, -1),
                                 instance_id=member.group_instance_id if member else None)
        if error == ErrorCode.NONE:
            assert self.h.group.state in (COMPLETING, STABLE)

    @precondition(lambda self: self.known_ids)
    @rule(data=st.data())
    def leave(self, data) -> None:
        member_id = self._member(data)
        member = self.h.group.members.get(member_id)
        self.h.leave((member_id, member.group_instance_id if member else None))
        self._check_new_replies()

    @rule(hold=st.booleans())
    def hold_writes(self, hold) -> None:
        """Writes from now on stay in flight (the other steps go on meanwhile) or complete at once."""
        self.h.hold_writes = hold

    @precondition(lambda self: self.h.writing)
    @rule(fail=st.booleans())
    def settle_writes(self, fail) -> None:
        if fail:
            self.h.fail_writes(ErrorCode.NOT_COORDINATOR)
        else:
            self.h.complete_writes()
        self._check_new_replies()

    @rule(ms=st.sampled_from([1, 500, 3000, 6000, 20_000]))
    def tick(self, ms) -> None:
        self.h.tick(ms)
        self._check_new_replies()

    # -- invariants ---------------------------------------------------------------------------

    @invariant()
    def group_is_consistent(self) -> None:
        if not hasattr(self, "h"):
            return
        group = self.h.group
        members = group.members
        if members:
            assert group.leader_id in members
        else:
            assert group.leader_id is None
        assert group.pending_sync <= set(members)
        assert not (group.pending_join & set(members))
        assert group.generation_id >= self.last_generation  # the generation only grows
        self.last_generation = group.generation_id
        if group.state is EMPTY:
            assert not members
        if group.state in (COMPLETING, STABLE):
            assert members and group.protocol_name is not None
            assert all(any(p.name == group.protocol_name for p in m.protocols) for m in members.values())
        for instance, member_id in group.static_members.items():
            assert members[member_id].group_instance_id == instance
        waiting = [m for m in members.values() if m.awaiting_join is not None or m.awaiting_sync is not None]
        assert all(w.awaiting_join is None or w.awaiting_sync is None for w in waiting)

    def teardown(self) -> None:
        if not hasattr(self, "h"):
            return
        # Given time and the writes completed, every held JoinGroup and SyncGroup is answered.
        self.h.hold_writes = False
        self.h.complete_writes()
        self._check_new_replies()
        for _ in range(40):
            self.h.tick(20_000)
        self._check_new_replies()
        assert not self.pending, f"never answered: {self.pending}"


ClassicGroupMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_classic_group_invariants = ClassicGroupMachine.TestCase
