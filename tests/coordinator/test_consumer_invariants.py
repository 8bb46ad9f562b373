"""Random KIP-848 heartbeat sequences (joins, acknowledgements, stale or missing owned partitions,
leaves, static bounces, time), checking after each step that no partition ever has two owners
and that epochs stay ordered (Hypothesis stateful testing)."""
from __future__ import annotations

import uuid

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from kbroker.coordinator.consumer import ConsumerGroup, ConsumerGroupConfig, HeartbeatRequest, MemberState
from kbroker.errors import ErrorCode

TOPIC, OTHER = uuid.UUID(int=1), uuid.UUID(int=2)
TOPICS = {"a": (TOPIC, 5), "b": (OTHER, 3)}


class ConsumerGroupMachine(RuleBasedStateMachine):
    @initialize(assignor=st.sampled_from(["uniform", "range"]))
    def start(self, assignor) -> None:
        self.now = 0
        ids = iter(range(10**6))
        self.group = ConsumerGroup("g", ConsumerGroupConfig(session_timeout_ms=10_000, assignors=(assignor,)),
                                   self.now, member_ids=lambda: f"m{next(ids)}")
        self.known: dict[str, tuple[int, dict]] = {}  # member id -> (epoch, partitions) it was last told

    def _beat(self, request: HeartbeatRequest):
        response = self.group.heartbeat(self.now, request, TOPICS).response
        if response.error == ErrorCode.NONE and response.member_id and response.member_epoch >= 0:
            previous = self.known.get(response.member_id, (0, {}))[1]
            told = response.assignment if response.assignment is not None else previous
            self.known[response.member_id] = (response.member_epoch, told)
        elif response.error in (ErrorCode.UNKNOWN_MEMBER_ID, ErrorCode.FENCED_MEMBER_EPOCH):
            self.known.pop(request.member_id, None)
        return response

    @rule(topics=st.sampled_from([("a",), ("b",), ("a", "b")]), static=st.sampled_from([None, "i1", "i2"]))
    def join(self, topics, static) -> None:
        self._beat(HeartbeatRequest(group_id="g", member_id="", member_epoch=0, rebalance_timeout_ms=5000,
                                    subscribed_topic_names=list(topics), topic_partitions=[], instance_id=static))

    @precondition(lambda self: self.known)
    @rule(data=st.data(), mode=st.sampled_from(["ack", "none", "stale", "keep-all"]))
    def heartbeat(self, data, mode) -> None:
        member_id = data.draw(st.sampled_from(sorted(self.known)))
        epoch, told = self.known[member_id]
        owned = [(t, list(p)) for t, p in told.items()]
        if mode == "none":
            owned = None
        elif mode == "keep-all":  # a member slow to revoke keeps reporting what it had before
            member = self.group.members.get(member_id)
            if member is not None:
                owned = [(t, sorted(p | member.pending_revocation.get(t, set()))) for t, p in member.assigned.items()]
        if mode == "stale":
            epoch = max(epoch - 1, 1)
        self._beat(HeartbeatRequest(group_id="g", member_id=member_id, member_epoch=epoch, topic_partitions=owned))

    @precondition(lambda self: self.known)
    @rule(data=st.data(), static=st.booleans())
    def leave(self, data, static) -> None:
        member_id = data.draw(st.sampled_from(sorted(self.known)))
        member = self.group.members.get(member_id)
        instance = member.instance_id if member else None
        epoch = -2 if static and instance else -1
        response = self._beat(HeartbeatRequest(group_id="g", member_id=member_id, member_epoch=epoch,
                                               instance_id=instance))
        if response.error == ErrorCode.NONE:
            self.known.pop(member_id, None)

    @rule(ms=st.sampled_from([100, 3000, 6000, 11_000]))
    def tick(self, ms) -> None:
        self.now += ms
        self.group.advance(self.now)
        self.known = {m: v for m, v in self.known.items() if m in self.group.members}

    @invariant()
    def one_owner_per_partition(self) -> None:
        if not hasattr(self, "group"):
            return
        owners: dict = {}
        group = self.group
        for member in group.members.values():
            for assignment in (member.assigned, member.pending_revocation):
                for topic_id, partitions in assignment.items():
                    for p in partitions:
                        assert (topic_id, p) not in owners, f"{(topic_id, p)} owned by {owners[(topic_id, p)]} " \
                                                            f"and {member.member_id}"
                        owners[(topic_id, p)] = member.member_id
            assert member.member_epoch <= group.group_epoch
            if member.state is MemberState.STABLE and member.member_epoch == group.assignment_epoch:
                assert member.assigned == {t: p for t, p in group.target.get(member.member_id, {}).items() if p}
        assert group.assignment_epoch <= group.group_epoch
        assert set(group.target) <= set(group.members)


ConsumerGroupMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
test_consumer_group_invariants = ConsumerGroupMachine.TestCase
