"""KIP-848 consumer groups (ConsumerGroupHeartbeat) on a fake clock, and the server-side assignors."""
from __future__ import annotations

import itertools
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kbroker.coordinator import records as rec
from kbroker.coordinator.assignors import range_, uniform
from kbroker.coordinator.consumer import (
    ConsumerGroup,
    ConsumerGroupConfig,
    HeartbeatRequest,
    InvalidRequest,
    MemberState,
    validate_request,
)
from kbroker.errors import ErrorCode

E = ErrorCode
TOPIC = uuid.UUID(int=1)
OTHER = uuid.UUID(int=2)
TOPICS = {"orders": (TOPIC, 6), "audit": (OTHER, 2)}


class Group:
    def __init__(self, config: ConsumerGroupConfig | None = None) -> None:
        ids = itertools.count(1)
        self.now = 1_000_000
        self.group = ConsumerGroup("g", config or ConsumerGroupConfig(), self.now, member_ids=lambda: f"m{next(ids)}")
        self.records: list = []

    def beat(self, member_id="", epoch=0, owned=None, topics=("orders",), **kwargs):
        request = HeartbeatRequest(
            group_id="g", member_id=member_id, member_epoch=epoch,
            rebalance_timeout_ms=kwargs.pop("rebalance_timeout_ms", 30_000 if epoch == 0 else -1),
            subscribed_topic_names=list(topics) if topics is not None else None,
            topic_partitions=[] if epoch == 0 else owned, **kwargs)
        result = self.group.heartbeat(self.now, request, TOPICS)
        self.records.extend(result.records)
        return result.response

    def join(self, **kwargs):
        response = self.beat(**kwargs)
        assert response.error == E.NONE, response
        return response.member_id, response

    def ack(self, member_id):
        """A heartbeat that reports exactly what the member was given, with its epoch."""
        member = self.group.members[member_id]
        owned = [(t, sorted(p)) for t, p in member.assigned.items()]
        return self.beat(member_id, member.member_epoch, owned=owned, topics=None)

    def tick(self, ms):
        self.now += ms
        self.records.extend(self.group.advance(self.now).records)


def partitions(response):
    return sorted(p for ps in (response.assignment or {}).values() for p in ps)


def test_a_member_joins_and_gets_everything():
    g = Group()
    member_id, response = g.join()
    assert response.member_epoch == 1 and response.heartbeat_interval_ms == 5000
    assert response.assignment == {TOPIC: [0, 1, 2, 3, 4, 5]}
    assert g.group.state_name == "Stable"
    kinds = [r.kind for r in g.records]
    assert rec.CONSUMER_GROUP_METADATA in kinds and rec.CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT in kinds
    # An unchanged heartbeat carries no assignment.
    assert g.beat(member_id, 1, owned=None, topics=None).assignment is None


def test_a_second_member_takes_half_after_the_first_revokes():
    g = Group()
    a, _ = g.join()
    b, joined = g.join()
    assert joined.member_epoch == 2 and joined.assignment == {}  # its partitions are still a's
    assert g.group.state_name == "Reconciling"
    # a is told to give up three partitions (epoch unchanged until it acknowledges).
    revoke = g.beat(a, 1, owned=[(TOPIC, [0, 1, 2, 3, 4, 5])], topics=None)
    assert revoke.member_epoch == 1 and len(partitions(revoke)) == 3
    assert g.group.members[a].state is MemberState.UNREVOKED_PARTITIONS
    kept = partitions(revoke)
    # b still waits for them
    assert g.beat(b, 2, owned=[], topics=None).assignment is None
    # a acknowledges: new epoch; then b gets the released partitions.
    done = g.beat(a, 1, owned=[(TOPIC, kept)], topics=None)
    assert done.member_epoch == 2 and g.group.members[a].state is MemberState.STABLE
    given = g.beat(b, 2, owned=[], topics=None)
    assert sorted(partitions(given) + kept) == list(range(6)) and len(partitions(given)) == 3
    assert g.group.state_name == "Stable"


def test_fencing_by_epoch_and_unknown_members():
    g = Group()
    a, _ = g.join()
    assert g.beat(a, 5, owned=[], topics=None).error == E.FENCED_MEMBER_EPOCH
    assert g.beat("ghost", 1, owned=[], topics=None).error == E.UNKNOWN_MEMBER_ID
    g.join()  # bump the epoch: a's next epoch will be 2
    g.ack(a)
    g.ack(a)
    epoch = g.group.members[a].member_epoch
    assert epoch == 2
    # The previous epoch with a subset of its partitions is accepted (a lost response) ...
    previous = g.beat(a, 1, owned=[(TOPIC, sorted(g.group.members[a].assigned[TOPIC]))], topics=None)
    assert previous.error == E.NONE and previous.member_epoch == 2
    # ... an older one, or the previous one owning more, is fenced.
    assert g.beat(a, 0 + 1, owned=[(TOPIC, [0, 1, 2, 3, 4, 5])], topics=None).error == E.FENCED_MEMBER_EPOCH


def test_leaving_frees_partitions_at_once():
    g = Group()
    a, _ = g.join()
    b, _ = g.join()
    g.ack(a)
    g.ack(a)
    g.ack(b)
    left = g.beat(a, g.group.members[a].member_epoch, topics=None, owned=None)
    assert left.error == E.NONE
    response = g.beat(a, -1, topics=None)
    assert response.member_epoch == -1 and a not in g.group.members
    after = g.ack(b)
    assert partitions(after) == list(range(6))
    tombstones = [(r.kind, r.key) for r in g.records if r.value is None]
    assert (rec.CONSUMER_GROUP_MEMBER_METADATA, rec.ConsumerGroupMemberKey(group_id="g", member_id=a)) in tombstones


def test_session_timeout_removes_a_member():
    g = Group(ConsumerGroupConfig(session_timeout_ms=6000))
    a, _ = g.join()
    b, _ = g.join()
    g.tick(3000)
    g.ack(b)
    g.tick(3001)  # a never heartbeats again
    assert a not in g.group.members and b in g.group.members
    g.ack(b)
    g.ack(b)
    assert sorted(g.group.members[b].assigned[TOPIC]) == list(range(6))


def test_rebalance_timeout_fences_a_member_that_keeps_its_partitions():
    g = Group(ConsumerGroupConfig(session_timeout_ms=60_000))
    a, _ = g.join(rebalance_timeout_ms=10_000)
    g.join()
    g.beat(a, 1, owned=[(TOPIC, [0, 1, 2, 3, 4, 5])], topics=None)
    assert g.group.members[a].state is MemberState.UNREVOKED_PARTITIONS
    for _ in range(3):  # keeps heartbeating but never revokes
        g.tick(4000)
        g.beat(a, 1, owned=[(TOPIC, [0, 1, 2, 3, 4, 5])], topics=None)
    assert a not in g.group.members


def test_static_member_leaves_temporarily_and_comes_back_to_its_partitions():
    g = Group()
    a, _ = g.join(instance_id="i-a")
    b, _ = g.join(instance_id="i-b")
    for _ in range(3):
        g.ack(a)
        g.ack(b)
    before = sorted(g.group.members[a].assigned[TOPIC])
    epoch = g.group.group_epoch
    assert g.beat(a, -2, topics=None, instance_id="i-a").member_epoch == -2
    assert g.group.group_epoch == epoch  # no rebalance for a static member's bounce
    back = g.beat("", 0, instance_id="i-a")
    assert back.error == E.NONE and partitions(back) == before and back.member_id != a
    # A second process with the same instance id while it is in use is refused.
    assert g.beat("", 0, instance_id="i-a").error == E.UNRELEASED_INSTANCE_ID


def test_group_max_size():
    g = Group(ConsumerGroupConfig(max_size=1))
    g.join()
    assert g.beat().error == E.GROUP_MAX_SIZE_REACHED


def test_subscription_change_moves_the_epoch_and_assignment():
    g = Group()
    a, _ = g.join()
    response = g.beat(a, 1, owned=[(TOPIC, [0, 1, 2, 3, 4, 5])], topics=("orders", "audit"))
    assert g.group.group_epoch == 2
    assert response.assignment == {TOPIC: [0, 1, 2, 3, 4, 5], OTHER: [0, 1]}


def test_range_assignor_is_used_when_a_member_asks():
    g = Group()
    a, _ = g.join(server_assignor="range")
    assert g.group.preferred_assignor() == "range"
    assert g.group.describe().assignor_name == "range"


def test_offset_commit_and_fetch_validation():
    g = Group()
    a, _ = g.join()
    assert g.group.validate_offset_commit(a, 1, 9) == E.NONE
    assert g.group.validate_offset_commit(a, 0, 9) == E.STALE_MEMBER_EPOCH
    assert g.group.validate_offset_commit(a, 1, 8) == E.UNSUPPORTED_VERSION
    assert g.group.validate_offset_commit("ghost", 1, 9) == E.UNKNOWN_MEMBER_ID
    assert g.group.validate_offset_commit("", -1, 9) == E.UNKNOWN_MEMBER_ID  # not empty
    assert g.group.validate_offset_fetch(None, -1) == E.NONE
    assert g.group.validate_offset_fetch(a, 1) == E.NONE
    assert g.group.validate_offset_fetch(a, 7) == E.STALE_MEMBER_EPOCH


def test_records_rebuild_the_group():
    g = Group()
    a, _ = g.join()
    b, _ = g.join()
    g.ack(a)
    g.ack(a)
    g.ack(b)
    latest = {}
    for record in g.records:
        key, value = record.encode()
        latest[key] = value
    decoded = [rec.decode_record(k, v) for k, v in latest.items() if v is not None]
    loaded = ConsumerGroup.from_records("g", decoded, ConsumerGroupConfig(), g.now)
    assert loaded.group_epoch == g.group.group_epoch and loaded.assignment_epoch == g.group.assignment_epoch
    assert {m: (x.member_epoch, x.assigned) for m, x in loaded.members.items()} == \
        {m: (x.member_epoch, x.assigned) for m, x in g.group.members.items()}
    assert loaded.target == g.group.target


@pytest.mark.parametrize("request_fields,code", [
    (dict(group_id=""), E.INVALID_REQUEST),
    (dict(member_epoch=1, member_id=""), E.INVALID_REQUEST),
    (dict(rebalance_timeout_ms=-1), E.INVALID_REQUEST),
    (dict(topic_partitions=None), E.INVALID_REQUEST),
    (dict(subscribed_topic_names=[]), E.INVALID_REQUEST),
    (dict(instance_id=""), E.INVALID_REQUEST),
    (dict(server_assignor="sticky"), E.UNSUPPORTED_ASSIGNOR),
    (dict(member_epoch=-3, member_id="m"), E.INVALID_REQUEST),
    (dict(version=1, member_id=""), E.INVALID_REQUEST),
    (dict(subscribed_topic_names=None, subscribed_topic_regex="("), E.INVALID_REGULAR_EXPRESSION),
])
def test_invalid_heartbeats(request_fields, code):
    fields = dict(group_id="g", member_id="", member_epoch=0, rebalance_timeout_ms=1000,
                  subscribed_topic_names=["t"], topic_partitions=[])
    fields.update(request_fields)
    with pytest.raises(InvalidRequest) as raised:
        validate_request(HeartbeatRequest(**fields), ("uniform", "range"))
    assert raised.value.code == code


# -- assignors -----------------------------------------------------------------------------------

def test_range_assignor_gives_contiguous_ranges_in_member_order():
    result = range_({"b": {TOPIC}, "a": {TOPIC}, "c": {TOPIC}}, {TOPIC: ("orders", 7)}, {})
    assert result == {"a": {TOPIC: {0, 1, 2}}, "b": {TOPIC: {3, 4}}, "c": {TOPIC: {5, 6}}}


def test_uniform_assignor_is_sticky():
    first = uniform({"a": {TOPIC}, "b": {TOPIC}}, {TOPIC: ("orders", 6)}, {})
    second = uniform({"a": {TOPIC}, "b": {TOPIC}, "c": {TOPIC}}, {TOPIC: ("orders", 6)}, first)
    for member in ("a", "b"):
        assert second[member][TOPIC] <= first[member][TOPIC] and len(second[member][TOPIC]) == 2


@given(st.lists(st.sampled_from(["both", "orders", "audit"]), min_size=1, max_size=6),
       st.integers(1, 12), st.integers(1, 5), st.data())
def test_uniform_assignor_assigns_every_partition_once_and_balances(subscriptions, orders, audit, data):
    topics = {TOPIC: ("orders", orders), OTHER: ("audit", audit)}
    subscribed = {f"m{i}": ({TOPIC, OTHER} if s == "both" else {TOPIC} if s == "orders" else {OTHER})
                  for i, s in enumerate(subscriptions)}
    previous = uniform(subscribed, topics, {})
    if data.draw(st.booleans()):  # a member leaves, then assign again from the previous target
        subscribed.pop(data.draw(st.sampled_from(sorted(subscribed))))
        if not subscribed:
            return
    result = uniform(subscribed, topics, previous)
    owners: dict = {}
    for member, assignment in result.items():
        for topic_id, parts in assignment.items():
            assert topic_id in subscribed[member]
            for p in parts:
                assert (topic_id, p) not in owners
                owners[(topic_id, p)] = member
    wanted = {(t, p) for t, (_, n) in topics.items() for p in range(n) if any(t in s for s in subscribed.values())}
    assert set(owners) == wanted
    if len({frozenset(s) for s in subscribed.values()}) == 1:  # same subscriptions: balanced within one
        sizes = [sum(len(p) for p in a.values()) for a in result.values()]
        assert max(sizes) - min(sizes) <= 1
