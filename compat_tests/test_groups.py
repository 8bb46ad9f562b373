"""Classic consumer groups with real clients: members share partitions, commit, fail over, rebalance.

Each member is its own process (`group_member.py`, auto-commit off, a synchronous commit after
every batch), so a test can SIGKILL one like a crash. The broker runs with a short initial
rebalance delay (the tests do not measure the 3 s default) and the members with a 6 s session
timeout, except where a test says otherwise.
"""
from __future__ import annotations

import signal
import subprocess
import threading

import pytest

from compat_tests.clients import KCAT
from compat_tests.group_fleet import Fleet

GROUP_CLIENTS = ("kafka-python", "confluent-kafka", "aiokafka")
PARTITIONS = 6
SESSION_MS = 6000
FAST_GROUPS = {"group.initial.rebalance.delay.ms": "300"}


def produce(bootstrap: str, topic: str, count: int, start: int = 0) -> set[tuple[int, int]]:
    """`count` records round-robin over the partitions; returns the (partition, offset) pairs."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    delivered: list[tuple[int, int]] = []

    def report(err, msg):
        assert err is None, err
        delivered.append((msg.partition(), msg.offset()))

    for i in range(start, start + count):
        producer.produce(topic, value=b"record-%d" % i, key=b"%d" % i, partition=i % PARTITIONS, on_delivery=report)
        if i % 5000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    assert len(delivered) == count
    return set(delivered)


def create_topic(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions)])[topic].result(30)


@pytest.fixture
def fleet(broker_factory, topic_name):
    broker = broker_factory(FAST_GROUPS)
    create_topic(broker.bootstrap, topic_name)
    fleet = Fleet(broker.bootstrap, topic_name, f"group-{topic_name}")
    fleet.broker = broker
    yield fleet
    fleet.stop_all()


@pytest.mark.timeout(240)
@pytest.mark.parametrize("client", GROUP_CLIENTS)
def test_three_members_share_partitions_and_consume_everything_exactly_once(fleet, client):
    members = [fleet.start(client, session_ms=SESSION_MS) for _ in range(3)]
    fleet.wait_balanced(PARTITIONS, timeout=60)
    assert all(len(m.assignment) == 2 for m in members)
    expected = produce(fleet.bootstrap, fleet.topic, 30_000)
    fleet.wait_consumed(expected, timeout=120)
    consumed = fleet.consumed()
    assert len(consumed) == len(set(consumed)) == 30_000, "a record was consumed twice"
    for member in members:  # each member read only its own partitions
        assert {p for p, _, _ in member.records} <= set(member.assignment)
    # Every commit landed: the group's committed offsets are the partitions' ends.
    fleet.wait_for(lambda: _committed(fleet) == {p: 5000 for p in range(PARTITIONS)}, 30, "final commits")


def _committed(fleet: Fleet) -> dict[int, int]:
    committed: dict[int, int] = {}
    for member in fleet.members:
        for partition, offset in member.committed.items():
            committed[partition] = max(offset, committed.get(partition, 0))
    return committed


@pytest.mark.timeout(240)
@pytest.mark.parametrize("client", GROUP_CLIENTS)
def test_killed_member_partitions_move_to_survivors_after_the_session_timeout(fleet, client):
    members = [fleet.start(client, session_ms=SESSION_MS) for _ in range(3)]
    fleet.wait_balanced(PARTITIONS)
    first = produce(fleet.bootstrap, fleet.topic, 3000)
    fleet.wait_consumed(first)
    victim = members[1]
    orphaned = list(victim.assignment)
    fleet.wait_for(lambda: all(victim.committed.get(p) == 500 for p in orphaned), 30, "the victim's commits")
    killed_at = victim.kill()
    # A few records it read but never committed would be read again; here it committed everything.
    second = produce(fleet.bootstrap, fleet.topic, 3000, start=3000)
    survivors = [members[0], members[2]]
    taken_over = fleet.wait_balanced(PARTITIONS, timeout=60, members=survivors)
    failover = taken_over - killed_at
    # The session runs from the victim's last heartbeat (every session/3) to its expiry.
    assert SESSION_MS / 1000 * 2 / 3 - 0.5 <= failover <= SESSION_MS / 1000 + 15, f"failover took {failover:.1f}s"
    fleet.wait_consumed(first | second)
    for partition in orphaned:  # the survivors resumed at the last commit: nothing read twice
        after = sorted(o for m in survivors for p, o, t in m.records if p == partition and t >= killed_at)
        assert after[0] == 500, f"partition {partition} resumed at {after[0]}"
        assert len(after) == len(set(after)) == 500
    print(f"{client}: failover after SIGKILL with session.timeout.ms={SESSION_MS}: {failover:.2f}s")


@pytest.mark.timeout(240)
@pytest.mark.parametrize("client", GROUP_CLIENTS)
def test_a_joining_member_rebalances_a_running_group(fleet, client):
    first, second = fleet.start(client, session_ms=SESSION_MS), fleet.start(client, session_ms=SESSION_MS)
    fleet.wait_balanced(PARTITIONS)
    assert sorted(len(m.assignment) for m in (first, second)) == [3, 3]
    records = produce(fleet.bootstrap, fleet.topic, 3000)
    fleet.wait_consumed(records)
    third = fleet.start(client, session_ms=SESSION_MS)
    fleet.wait_balanced(PARTITIONS)
    assert sorted(len(m.assignment) for m in (first, second, third)) == [2, 2, 2]
    more = produce(fleet.bootstrap, fleet.topic, 3000, start=3000)
    fleet.wait_consumed(records | more)
    assert len(third.records) > 0
    consumed = fleet.consumed()
    assert len(consumed) == len(set(consumed)), "every batch was committed before the rebalance"


@pytest.mark.timeout(240)
def test_cooperative_sticky_keeps_unaffected_partitions_assigned(fleet):
    """confluent-kafka with cooperative-sticky: a new member only takes partitions away;
    the others keep the rest without a pause (never revoked, never an empty assignment)."""
    first = fleet.start("confluent-kafka", session_ms=SESSION_MS, assignor="cooperative-sticky")
    second = fleet.start("confluent-kafka", session_ms=SESSION_MS, assignor="cooperative-sticky")
    fleet.wait_balanced(PARTITIONS)
    before = {m.name: set(m.assignment) for m in (first, second)}
    marks = {m.name: len(m.assignments) for m in (first, second)}
    third = fleet.start("confluent-kafka", session_ms=SESSION_MS, assignor="cooperative-sticky")
    fleet.wait_balanced(PARTITIONS)
    for member in (first, second):
        kept = set(member.assignment)
        assert kept < before[member.name] and len(kept) == 2
        # Every assignment it reported since the join still held the partitions it kept.
        for _, partitions in member.assignments[marks[member.name]:]:
            assert kept <= set(partitions), f"{member.name} lost {kept - set(partitions)} for a while"
    assert len(third.assignment) == 2


@pytest.mark.timeout(240)
@pytest.mark.parametrize("client", GROUP_CLIENTS)
def test_static_member_restart_gets_its_partitions_back_without_a_rebalance(fleet, client):
    members = [fleet.start(client, session_ms=SESSION_MS * 5, instance_id=f"instance-{i}") for i in range(3)]
    fleet.wait_balanced(PARTITIONS)
    records = produce(fleet.bootstrap, fleet.topic, 600)
    fleet.wait_consumed(records)
    ends = {p: max(o for q, o in records if q == p) + 1 for p, _ in records}
    fleet.wait_for(lambda: _committed(fleet) == ends, 30, "the commits of what was consumed")
    others = [members[0], members[2]]
    marks = [len(m.assignments) for m in others]
    restarted_partitions = list(members[1].assignment)
    members[1].kill()
    back = fleet.start(client, session_ms=SESSION_MS * 5, instance_id="instance-1")
    fleet.wait_for(lambda: back.assignment is not None, 60, "the restarted static member's assignment")
    assert back.assignment == restarted_partitions
    more = produce(fleet.bootstrap, fleet.topic, 600, start=600)
    fleet.wait_consumed(records | more)
    for member, mark in zip(others, marks):  # nobody else saw a rebalance
        assert member.assignments[mark:] == [], \
            f"{member.name} was reassigned: {member.assignments[mark:]}\n{fleet.broker.log()}"
    assert {p for p, _, t in back.records} == set(restarted_partitions)


@pytest.mark.timeout(240)
def test_kafka_python_and_confluent_kafka_members_in_one_group(fleet):
    """Different clients, one group: they agree on the range assignor and split the topic."""
    members = [fleet.start("kafka-python", session_ms=SESSION_MS, assignor="range"),
               fleet.start("confluent-kafka", session_ms=SESSION_MS, assignor="range"),
               fleet.start("kafka-python", session_ms=SESSION_MS, assignor="range")]
    fleet.wait_balanced(PARTITIONS)
    assert sorted(len(m.assignment) for m in members) == [2, 2, 2]
    records = produce(fleet.bootstrap, fleet.topic, 6000)
    fleet.wait_consumed(records)
    consumed = fleet.consumed()
    assert len(consumed) == len(set(consumed)) == 6000
    assert all(m.records for m in members)
    members[1].stop()  # the confluent-kafka member leaves; the kafka-python ones take over
    fleet.wait_balanced(PARTITIONS, members=[members[0], members[2]])
    more = produce(fleet.bootstrap, fleet.topic, 600, start=6000)
    fleet.wait_consumed(records | more)


@pytest.mark.timeout(120)
@pytest.mark.skipif(KCAT is None, reason="kcat is not installed")
def test_kcat_balanced_consumers_share_a_group(fleet):
    """`kcat -G`: two balanced consumers split the partitions; their auto-commits land on close."""
    records = produce(fleet.bootstrap, fleet.topic, 600)
    seen: list[list[tuple[int, int]]] = [[], []]
    processes = []
    for index in range(2):
        process = subprocess.Popen(
            [KCAT, "-b", fleet.bootstrap, "-G", fleet.group, "-q", "-u", "-f", "%p %o\\n",
             "-X", "auto.offset.reset=earliest", "-X", f"session.timeout.ms={SESSION_MS}", fleet.topic],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        processes.append(process)
        threading.Thread(target=_read_kcat, args=(process, seen[index]), daemon=True).start()
    try:
        fleet.wait_for(lambda: records <= set(seen[0]) | set(seen[1]), 60, "kcat consumed everything")
        fleet.wait_for(lambda: all(seen), 30, "both kcat members consumed")
        assert not {p for p, _ in seen[0]} & {p for p, _ in seen[1]}, "a partition was read by both"
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(30)
    from kafka.admin import KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=fleet.bootstrap)
    try:
        offsets = admin.list_group_offsets(fleet.group)[fleet.group]
        assert {tp.partition: o.offset for tp, o in offsets.items()} == {p: 100 for p in range(PARTITIONS)}
    finally:
        admin.close()


def _read_kcat(process: subprocess.Popen, into: list[tuple[int, int]]) -> None:
    for line in process.stdout:
        partition, offset = line.split()
        into.append((int(partition), int(offset)))


@pytest.mark.timeout(180)
@pytest.mark.parametrize("client,assignor", [
    ("kafka-python", "roundrobin"), ("kafka-python", "sticky"), ("kafka-python", "cooperative-sticky"),
    ("aiokafka", "range"), ("aiokafka", "sticky"), ("confluent-kafka", "roundrobin"),
])
def test_client_side_assignors(fleet, client, assignor):
    """The leader assigns, whatever the protocol; the broker only picks the one all members share."""
    first = [fleet.start(client, session_ms=SESSION_MS, assignor=assignor) for _ in range(2)]
    fleet.wait_balanced(PARTITIONS)
    third = fleet.start(client, session_ms=SESSION_MS, assignor=assignor)
    fleet.wait_balanced(PARTITIONS)
    assert sorted(len(m.assignment) for m in (*first, third)) == [2, 2, 2]
    fleet.wait_consumed(produce(fleet.bootstrap, fleet.topic, 600))
    from kafka.admin import KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=fleet.bootstrap)
    try:
        assert admin.describe_groups([fleet.group])[fleet.group]["protocol_data"] == assignor
    finally:
        admin.close()
