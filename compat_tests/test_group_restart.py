"""Groups and committed offsets survive the broker: a clean restart (SIGTERM) and a crash (SIGKILL).

Three members consume and commit; the broker goes down while they keep running and comes back
on the same port and data directory. The group is replayed from `__consumer_offsets` (Stable,
same generation, same members), so the members carry on without a rebalance, from their
commits: nothing is read twice, nothing is lost. The crash case runs the broker with
`log.flush.interval.messages=1` (a commit is answered after its fsync) and kills it right after
the members saw their commits return.
"""
from __future__ import annotations

import pytest

from compat_tests.group_fleet import Fleet
from compat_tests.test_groups import FAST_GROUPS, GROUP_CLIENTS, PARTITIONS, SESSION_MS, create_topic, produce
from tests.broker_process import BrokerProcess


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
@pytest.mark.parametrize("client", GROUP_CLIENTS)
def test_group_and_offsets_survive_a_broker_restart(broker_factory, topic_name, client, how):
    settings = dict(FAST_GROUPS)
    if how == "sigkill":
        settings["log.flush.interval.messages"] = "1"
    broker = broker_factory(settings)
    create_topic(broker.bootstrap, topic_name)
    fleet = Fleet(broker.bootstrap, topic_name, f"group-{topic_name}")
    restarted = None
    try:
        members = [fleet.start(client, session_ms=SESSION_MS * 2) for _ in range(3)]
        fleet.wait_balanced(PARTITIONS)
        first = produce(broker.bootstrap, topic_name, 3000)
        fleet.wait_consumed(first)
        fleet.wait_for(lambda: _committed(fleet) == {p: 500 for p in range(PARTITIONS)}, 30, "commits")
        marks = [len(m.assignments) for m in members]

        if how == "sigterm":
            assert broker.stop() == 0, broker.log()
        else:
            broker.kill()
        restarted = BrokerProcess(broker.data_dir, settings, port=broker.port)
        restarted.log_path = broker.data_dir.parent / f"{broker.data_dir.name}-restarted.log"
        restarted.start()

        second = produce(restarted.bootstrap, topic_name, 3000, start=3000)
        fleet.wait_consumed(first | second, timeout=90)
        consumed = fleet.consumed()
        assert len(consumed) == len(set(consumed)), "a committed record was read again"
        for member, mark in zip(members, marks):
            assert member.assignments[mark:] == [], \
                f"{member.name} was reassigned after the restart\n{restarted.log()}"
        fleet.wait_for(lambda: _committed(fleet) == {p: 1000 for p in range(PARTITIONS)}, 30, "commits")
        _check_offsets_with_admin(restarted.bootstrap, fleet.group, topic_name, 1000)
    finally:
        fleet.stop_all()
        if restarted is not None:
            restarted.kill()


def _committed(fleet: Fleet) -> dict[int, int]:
    committed: dict[int, int] = {}
    for member in fleet.members:
        for partition, offset in member.committed.items():
            committed[partition] = max(offset, committed.get(partition, 0))
    return committed


def _check_offsets_with_admin(bootstrap: str, group: str, topic: str, per_partition: int) -> None:
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets(group)[group]
        assert {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic} == \
            {p: per_partition for p in range(PARTITIONS)}
        described = admin.describe_groups([group])[group]
        assert described["group_state"] == "Stable" and len(described["members"]) == 3
        assert TopicPartition(topic, 0) in offsets
    finally:
        admin.close()
