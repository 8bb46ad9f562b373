"""The classic group state machine, event by event, on a fake clock (no sleeps)."""
from __future__ import annotations

from kbroker.coordinator.classic import (
    COMPLETING,
    EMPTY,
    PREPARING,
    STABLE,
    ClassicGroup,
    ClassicGroupConfig,
    Protocol,
)
from kbroker.errors import ErrorCode
from tests.coordinator.classic_harness import RANGE, Harness

E = ErrorCode


def test_first_join_requires_a_member_id_then_waits_for_the_initial_delay():
    h = Harness()
    first = h.join(client_id="consumer-1")
    result = h.answered(first)
    assert result.error == E.MEMBER_ID_REQUIRED
    assert result.member_id == "consumer-1-1"
    assert h.group.state is EMPTY and result.member_id in h.group.pending_join

    held = h.join(result.member_id, client_id="consumer-1")
    assert h.answered(held) is None and h.group.state is PREPARING
    h.tick(2999)
    assert h.answered(held) is None
    h.tick(1)  # the initial delay passed and no one else arrived
    joined = h.answered(held)
    assert joined.error == E.NONE and joined.generation_id == 1
    assert joined.leader == result.member_id and joined.protocol_name == "range"
    assert [m.member_id for m in joined.members] == [result.member_id]
    assert joined.members[0].metadata == b"range-meta"
    assert h.group.state is COMPLETING


def test_three_members_share_one_generation_and_only_the_leader_sees_members():
    h = Harness()
    a, wa = h.join_dynamic("a")
    h.tick(1000)
    b, wb = h.join_dynamic("b")
    h.tick(1000)
    c, wc = h.join_dynamic("c")
    h.tick(2000)  # 4 s after the first join: the delay was extended by the new members
    assert h.answered(wa) is None
    h.tick(1000)
    h.tick(3000)
    results = [h.answered(w) for w in (wa, wb, wc)]
    assert all(r is not None and r.error == E.NONE for r in results), results
    assert {r.generation_id for r in results} == {1}
    assert {r.leader for r in results} == {a}
    assert [m.member_id for m in results[0].members] == [a, b, c]
    assert results[1].members == () and results[2].members == ()


def test_sync_hands_out_the_leaders_assignment_and_stores_it():
    h = Harness()
    a, wa = h.join_dynamic("a")
    b, wb = h.join_dynamic("b")
    for _ in range(3):
        h.tick(3000)
    generation = h.answered(wa).generation_id
    follower = h.sync(b, generation)
    assert h.answered(follower) is None  # held until the leader's assignment arrives
    leader = h.sync(a, generation, {a: b"A", b: b"B", "stranger": b"X"})
    assert h.group.state is STABLE
    assert h.answered(leader).assignment == b"A" and h.answered(follower).assignment == b"B"
    assert h.answered(leader).protocol_name == "range" and h.answered(leader).protocol_type == "consumer"
    assert len(h.stores) == 1
    record = h.stores[0].value
    assert record.generation == generation and {m.member_id: m.assignment for m in record.members} == {a: b"A", b: b"B"}
    # A late sync in Stable gets the stored assignment straight away.
    again = h.sync(b, generation)
    assert h.answered(again).assignment == b"B"


def two_members_joined(h: Harness) -> tuple[str, str, int]:
    """Two dynamic members through the join phase: (leader, follower, generation)."""
    a, wa = h.join_dynamic("a")
    b, _ = h.join_dynamic("b")
    for _ in range(3):
        h.tick(3000)
    joined = h.answered(wa)
    return joined.leader, b if joined.leader == a else a, joined.generation_id


def test_syncs_wait_in_completing_rebalance_until_the_assignment_is_written():
    h = Harness(hold_writes=True)
    leader, follower, generation = two_members_joined(h)
    leader_sync = h.sync(leader, generation, {leader: b"L", follower: b"F"})
    follower_sync = h.sync(follower, generation)  # after the leader's, before the write completes
    assert h.group.state is COMPLETING and not h.stores
    assert h.answered(leader_sync) is None and h.answered(follower_sync) is None
    assert h.heartbeat(follower, generation) == E.NONE
    h.complete_writes()
    assert h.group.state is STABLE
    assert [(h.answered(w).error, h.answered(w).assignment) for w in (leader_sync, follower_sync)] == \
        [(E.NONE, b"L"), (E.NONE, b"F")]
    # After the write, the Stable group answers at once and writes nothing.
    again = h.sync(follower, generation)
    assert h.answered(again).assignment == b"F" and len(h.stores) == 1


def test_a_failed_assignment_write_answers_every_held_sync_and_rebalances():
    h = Harness(hold_writes=True)
    leader, follower, generation = two_members_joined(h)
    syncs = [h.sync(leader, generation, {leader: b"L", follower: b"F"}), h.sync(follower, generation)]
    h.fail_writes(E.NOT_COORDINATOR)
    assert [h.answered(w).error for w in syncs] == [E.NOT_COORDINATOR, E.NOT_COORDINATOR]
    assert h.group.state is PREPARING and h.group.generation_id == generation
    assert all(m.assignment == b"" for m in h.group.members.values())


def test_a_rebalance_during_the_assignment_write_leaves_the_write_without_effect():
    h = Harness(hold_writes=True)
    leader, follower, generation = two_members_joined(h)
    syncs = [h.sync(leader, generation, {leader: b"L", follower: b"F"}), h.sync(follower, generation)]
    h.join_dynamic("newcomer")  # Kafka: the group must still be CompletingRebalance when the write completes
    assert [h.answered(w).error for w in syncs] == [E.REBALANCE_IN_PROGRESS, E.REBALANCE_IN_PROGRESS]
    h.complete_writes()
    assert h.group.state is PREPARING and all(m.assignment == b"" for m in h.group.members.values())


def test_sync_errors():
    h = Harness()
    a, b = h.stable_group(2)
    generation = h.group.generation_id
    assert h.answered(h.sync("nobody", generation)).error == E.UNKNOWN_MEMBER_ID
    assert h.answered(h.sync(a, generation + 1)).error == E.ILLEGAL_GENERATION
    assert h.answered(h.sync(a, generation, protocol_type="connect")).error == E.INCONSISTENT_GROUP_PROTOCOL
    assert h.answered(h.sync(a, generation, protocol_name="roundrobin")).error == E.INCONSISTENT_GROUP_PROTOCOL
    h.join(b, client_id="c1")  # b rejoins with the same metadata: no change in Stable for a follower
    assert h.group.state is STABLE
    h.join(a, client_id="c0")  # the leader rejoining forces a rebalance
    assert h.group.state is PREPARING
    assert h.answered(h.sync(b, generation)).error == E.REBALANCE_IN_PROGRESS


def test_heartbeat_errors_by_state():
    h = Harness()
    a, b = h.stable_group(2)
    generation = h.group.generation_id
    assert h.heartbeat(a, generation) == E.NONE
    assert h.heartbeat(a, generation - 1) == E.ILLEGAL_GENERATION
    assert h.heartbeat("nobody", generation) == E.UNKNOWN_MEMBER_ID
    h.join_dynamic("newcomer")
    assert h.group.state is PREPARING
    assert h.heartbeat(a, generation) == E.REBALANCE_IN_PROGRESS


def test_a_member_whose_session_expires_is_removed_and_the_rest_rebalance():
    h = Harness()
    a, b, c = h.stable_group(3, session=10_000)
    generation = h.group.generation_id
    for _ in range(4):  # a and b keep heartbeating, c is gone
        h.tick(3000)
        assert h.heartbeat(a, generation) in (E.NONE, E.REBALANCE_IN_PROGRESS)
        assert h.heartbeat(b, generation) in (E.NONE, E.REBALANCE_IN_PROGRESS)
    assert c not in h.group.members and h.group.state is PREPARING
    assert h.heartbeat(a, generation) == E.REBALANCE_IN_PROGRESS
    wa = h.join(a, client_id="c0")
    assert h.answered(wa) is None
    wb = h.join(b, client_id="c1")  # everyone left has rejoined: no delay after the first rebalance
    assert h.answered(wa).generation_id == generation + 1 and h.answered(wb).generation_id == generation + 1
    assert [m.member_id for m in h.answered(wa).members] == [a, b]


def test_a_member_that_does_not_rejoin_is_dropped_after_the_rebalance_timeout():
    h = Harness()
    a, b = h.stable_group(2, rebalance=20_000)
    generation = h.group.generation_id
    wa = h.join(a, client_id="c0", rebalance=20_000)  # leader rejoin: a rebalance; b only heartbeats
    for _ in range(6):
        h.tick(3000)
        h.heartbeat(b, generation)
    assert h.answered(wa) is None
    h.tick(3000)  # 21 s > rebalance timeout
    result = h.answered(wa)
    assert result.error == E.NONE and [m.member_id for m in result.members] == [a]
    assert b not in h.group.members


def test_a_member_that_never_syncs_is_removed_after_the_rebalance_timeout():
    h = Harness()
    a, wa = h.join_dynamic("a", rebalance=20_000, session=30_000)
    b, wb = h.join_dynamic("b", rebalance=20_000, session=30_000)
    for _ in range(3):
        h.tick(3000)
    generation = h.answered(wa).generation_id
    h.sync(a, generation, {a: b"A", b: b"B"})
    assert h.group.state is STABLE
    for _ in range(4):
        h.tick(5000)
        h.heartbeat(a, generation)
    assert b not in h.group.members and a in h.group.members and h.group.state is PREPARING


def test_a_new_member_rebalances_a_stable_group_and_pending_syncs_are_told():
    h = Harness()
    a, b = h.stable_group(2)
    generation = h.group.generation_id
    c, wc = h.join_dynamic("c")
    assert h.group.state is PREPARING
    wa, wb = h.join(a, client_id="c0"), h.join(b, client_id="c1")
    results = [h.answered(w) for w in (wa, wb, wc)]
    assert all(r.generation_id == generation + 1 for r in results)
    # b syncs, then the leader's rejoin restarts the rebalance before a's assignment arrives.
    sb = h.sync(b, generation + 1)
    h.join(a, client_id="c0", protocols=[Protocol("range", b"changed")])
    assert h.answered(sb).error == E.REBALANCE_IN_PROGRESS


def test_leaving_members_rebalance_and_the_last_one_empties_the_group():
    h = Harness()
    a, b = h.stable_group(2)
    generation = h.group.generation_id
    assert h.leave((b, None)) == [E.NONE]
    assert h.group.state is PREPARING
    assert h.leave(("nobody", None)) == [E.UNKNOWN_MEMBER_ID]
    wa = h.join(a, client_id="c0")
    assert h.answered(wa).generation_id == generation + 1
    stores = len(h.stores)
    assert h.leave((a, None)) == [E.NONE]
    assert h.group.state is EMPTY and h.group.generation_id == generation + 2
    assert len(h.stores) == stores + 1 and h.stores[-1].value.members == []


def test_a_leave_during_the_join_phase_answers_the_held_join():
    h = Harness()
    a, wa = h.join_dynamic("a")
    assert h.leave((a, None)) == [E.NONE]
    assert h.answered(wa).error == E.UNKNOWN_MEMBER_ID


def test_protocol_selection_takes_the_common_protocol_with_most_votes():
    h = Harness()
    both = [Protocol("range", b"r"), Protocol("roundrobin", b"rr")]
    rr_only = [Protocol("roundrobin", b"rr2")]
    a, wa = h.join_dynamic("a", protocols=both)
    b, wb = h.join_dynamic("b", protocols=rr_only)
    for _ in range(3):
        h.tick(3000)
    result = h.answered(wa)
    assert result.protocol_name == "roundrobin"
    assert {m.member_id: m.metadata for m in result.members} == {a: b"rr", b: b"rr2"}


def test_inconsistent_protocols_are_rejected():
    h = Harness()
    assert h.answered(h.join(protocols=[])).error == E.INCONSISTENT_GROUP_PROTOCOL
    assert h.answered(h.join(protocol_type="")).error == E.INCONSISTENT_GROUP_PROTOCOL
    h.stable_group(1)
    assert h.answered(h.join(protocol_type="connect")).error == E.INCONSISTENT_GROUP_PROTOCOL
    assert h.answered(h.join(protocols=[Protocol("sticky", b"")])).error == E.INCONSISTENT_GROUP_PROTOCOL


def test_joins_with_unknown_or_fenced_ids():
    h = Harness()
    assert h.answered(h.join("ghost")).error == E.UNKNOWN_MEMBER_ID  # Empty group, known id
    (a,) = h.stable_group(1, instance_id=None)
    assert h.answered(h.join("ghost")).error == E.UNKNOWN_MEMBER_ID


def test_old_clients_join_without_a_member_id_round_trip():
    h = Harness()
    waiter = h.join(require_known=False)
    assert h.answered(waiter) is None
    h.tick(3000)
    assert h.answered(waiter).error == E.NONE and h.answered(waiter).member_id


def test_a_pending_member_that_never_rejoins_expires_with_its_session():
    h = Harness()
    first = h.join(session=10_000)
    pending = h.answered(first).member_id
    assert pending in h.group.pending_join
    h.tick(10_000)
    assert pending not in h.group.pending_join


def test_group_max_size():
    h = Harness(ClassicGroupConfig(max_size=2))
    h.stable_group(2)
    assert h.answered(h.join(client_id="third")).error == E.GROUP_MAX_SIZE_REACHED
    # While preparing, the count is of members awaiting join: the members' own rejoins pass.
    h2 = Harness(ClassicGroupConfig(max_size=1))
    first = h2.join(client_id="a")
    a = h2.answered(first).member_id
    h2.join(a)
    assert h2.answered(h2.join(h2.answered(h2.join()).member_id)).error == E.GROUP_MAX_SIZE_REACHED


def test_static_member_restart_gets_its_assignment_back_without_a_rebalance():
    h = Harness()
    first = h.join(instance_id="instance-a", client_id="a")
    held = first  # static members skip MEMBER_ID_REQUIRED
    assert h.answered(held) is None
    b, wb = h.join_dynamic("b")
    for _ in range(3):
        h.tick(3000)
    a = h.answered(held).member_id
    assert a.startswith("instance-a-")
    generation = h.answered(held).generation_id
    h.sync(b, generation)
    h.sync(a if h.group.is_leader(a) else b, generation, {a: b"A", b: b"B"})
    if not h.group.is_leader(a):
        h.sync(a, generation)
    assert h.group.state is STABLE
    stores = len(h.stores)

    # The process restarts: same instance id, no member id. No rebalance, same generation.
    again = h.join(instance_id="instance-a", client_id="a")
    result = h.answered(again)
    assert result.error == E.NONE and result.generation_id == generation
    new_id = result.member_id
    assert new_id != a and h.group.state is STABLE
    assert h.answered(h.sync(new_id, generation, instance_id="instance-a")).assignment == b"A"
    assert len(h.stores) == stores + 1  # the new member id is stored
    # The old incarnation is fenced.
    assert h.heartbeat(a, generation, instance_id="instance-a") == E.FENCED_INSTANCE_ID
    assert h.heartbeat(new_id, generation, instance_id="instance-a") == E.NONE


def test_static_leader_restart_may_skip_assignment():
    h = Harness()
    held = h.join(instance_id="i", client_id="a")
    h.tick(3000)
    a = h.answered(held).member_id
    h.sync(a, 1, {a: b"A"})
    again = h.join(instance_id="i", client_id="a", skip_assignment=True)
    result = h.answered(again)
    assert result.skip_assignment and result.leader == result.member_id and len(result.members) == 1


def test_static_member_not_rejoining_stays_until_sync_expiry():
    h = Harness()
    a_wait = h.join(instance_id="ia", client_id="a", rebalance=20_000)
    b, wb = h.join_dynamic("b", rebalance=20_000)
    for _ in range(3):
        h.tick(3000)
    a = h.answered(a_wait).member_id
    g = h.group.generation_id
    leader = h.group.leader_id
    for m in (a, b):
        if m != leader:
            h.sync(m, g)
    h.sync(leader, g, {a: b"A", b: b"B"})
    h.join(leader, client_id="x")  # leader rejoin -> rebalance; only the leader joins
    for _ in range(7):
        h.tick(3000)
    assert (a in h.group.members) is True or leader == a  # a static member survives the join phase


def test_offset_commit_validation():
    h = Harness()
    assert h.group.validate_offset_commit("", None, -1) == E.NONE  # empty group, simple commit
    a, b = h.stable_group(2)
    g = h.group.generation_id
    assert h.group.validate_offset_commit(a, None, g) == E.NONE
    assert h.group.validate_offset_commit(a, None, g - 1) == E.ILLEGAL_GENERATION
    assert h.group.validate_offset_commit("ghost", None, g) == E.UNKNOWN_MEMBER_ID
    assert h.group.validate_offset_commit("", None, -1) == E.UNKNOWN_MEMBER_ID  # non-empty group
    h.join_dynamic("c")
    assert h.group.validate_offset_commit(a, None, g) == E.NONE  # allowed while preparing
    h.join(a, client_id="c0")
    h.join(b, client_id="c1")
    # Completing: the member knows the new generation but has no assignment yet.
    assert h.group.validate_offset_commit(a, None, h.group.generation_id) == E.REBALANCE_IN_PROGRESS


def test_record_round_trip_restores_a_stable_group():
    h = Harness()
    a, b = h.stable_group(2)
    record = h.stores[-1].value
    loaded = ClassicGroup.from_record("g", record, ClassicGroupConfig(), h.now)
    assert loaded.state is STABLE and loaded.generation_id == h.group.generation_id
    assert loaded.leader_id == h.group.leader_id and loaded.protocol_name == "range"
    assert {m: loaded.members[m].assignment for m in (a, b)} == {m: h.group.members[m].assignment for m in (a, b)}
    loaded.on_loaded(h.now)
    assert loaded.next_deadline() == h.now + 10_000
    assert loaded.heartbeat(h.now, member_id=a, group_instance_id=None, generation_id=loaded.generation_id) == E.NONE
    # Nobody heartbeats after the restart: both members expire, the group empties and stores that.
    result = loaded.advance(h.now + 20_000)
    assert loaded.state is EMPTY
    assert any(r.value is not None and r.value.members == [] for r in result.records)


def test_describe_shows_metadata_only_when_stable():
    h = Harness()
    a, wa = h.join_dynamic("a")
    described = h.group.describe()
    assert described.state == "PreparingRebalance" and described.protocol == ""
    assert described.members[0].metadata == b""
    h.tick(3000)
    h.sync(a, 1, {a: b"A"})
    described = h.group.describe()
    assert (described.state, described.protocol_type, described.protocol) == ("Stable", "consumer", "range")
    assert (described.members[0].metadata, described.members[0].assignment) == (b"range-meta", b"A")
    assert described.members[0].client_host == "/127.0.0.1"


def test_rebalance_range_protocols_are_kept_per_member():
    h = Harness()
    h.stable_group(1, protocols=RANGE)
    assert h.group.select_protocol() == "range"


def test_static_leader_restart_before_v9_is_told_the_old_leader_id():
    h = Harness()
    held = h.join(instance_id="i", client_id="a")
    h.tick(3000)
    a = h.answered(held).member_id
    h.sync(a, 1, {a: b"A"})
    result = h.answered(h.join(instance_id="i", client_id="a"))
    # Not the leader in its own eyes: it syncs as a follower and gets its stored assignment.
    assert result.leader == a and result.member_id != a and result.members == ()
    assert h.answered(h.sync(result.member_id, 1, instance_id="i")).assignment == b"A"
    assert h.group.leader_id == result.member_id and h.group.state is STABLE
