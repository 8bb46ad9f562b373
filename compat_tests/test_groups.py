"""Classic consumer groups with real clients: members share partitions, commit, fail over, rebalance.

Each member is its own process (`group_member.py`, auto-commit off, a synchronous commit after
every batch), so a test can SIGKILL one like a crash. The broker runs with a short initial
rebalance delay (the tests do not measure the 3 s default) and the members with a 6 s session
timeout, except where a test says otherwise.
"""
from __future__ import annotations

import time

import pytest

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
