"""KIP-848 consumer groups (`group.protocol=consumer`) with confluent-kafka: the broker assigns.

Members join with ConsumerGroupHeartbeat, share the partitions as the server-side assignor
(uniform) decides, commit with OffsetCommit v9 (member epoch), and hand partitions over when a
member leaves or dies. The broker runs with a 1 s heartbeat interval and a 6 s session timeout
(Kafka's defaults are 5 s and 45 s) so the test does not wait on them.
"""
from __future__ import annotations

import pytest

from compat_tests.group_fleet import Fleet
from compat_tests.test_groups import PARTITIONS, create_topic, produce

KIP848_SETTINGS = {
    "group.consumer.heartbeat.interval.ms": "1000", "group.consumer.min.heartbeat.interval.ms": "1000",
    "group.consumer.session.timeout.ms": "6000", "group.consumer.min.session.timeout.ms": "6000",
}


@pytest.fixture
def fleet(broker_factory, topic_name):
    broker = broker_factory(KIP848_SETTINGS)
    create_topic(broker.bootstrap, topic_name)
    fleet = Fleet(broker.bootstrap, topic_name, f"group-{topic_name}")
    fleet.broker = broker
    yield fleet
    fleet.stop_all()


@pytest.mark.timeout(240)
def test_consumer_protocol_members_join_share_and_leave(fleet):
    members = [fleet.start("confluent-kafka", protocol="consumer") for _ in range(3)]
    fleet.wait_balanced(PARTITIONS)
    assert sorted(len(m.assignment) for m in members) == [2, 2, 2]
    records = produce(fleet.bootstrap, fleet.topic, 30_000)
    fleet.wait_consumed(records)
    consumed = fleet.consumed()
    assert len(consumed) == len(set(consumed)) == 30_000
    _describe(fleet, members=3)

    leaving = members[0]
    handed_over = set(leaving.assignment)
    leaving.stop()  # close(): a heartbeat with epoch -1, the partitions move at once
    assert leaving.closed
    fleet.wait_balanced(PARTITIONS, members=members[1:])
    assert sorted(len(m.assignment) for m in members[1:]) == [3, 3]
    more = produce(fleet.bootstrap, fleet.topic, 3000, start=30_000)
    fleet.wait_consumed(records | more)
    for partition in handed_over:  # picked up at the leaver's last commit: nothing read twice
        offsets = [o for m in members[1:] for p, o, _ in m.records if p == partition]
        assert len(offsets) == len(set(offsets))
    _describe(fleet, members=2)


@pytest.mark.timeout(240)
def test_consumer_protocol_member_killed_and_joining(fleet):
    members = [fleet.start("confluent-kafka", protocol="consumer") for _ in range(2)]
    fleet.wait_balanced(PARTITIONS)
    records = produce(fleet.bootstrap, fleet.topic, 3000)
    fleet.wait_consumed(records)
    killed_at = members[0].kill()
    taken_over = fleet.wait_balanced(PARTITIONS, members=members[1:], timeout=60)
    assert 3 <= taken_over - killed_at <= 20, f"took {taken_over - killed_at:.1f}s"
    newcomer = fleet.start("confluent-kafka", protocol="consumer")
    fleet.wait_balanced(PARTITIONS, members=[members[1], newcomer])
    more = produce(fleet.bootstrap, fleet.topic, 3000, start=3000)
    fleet.wait_consumed(records | more)
    assert newcomer.records


def _describe(fleet: Fleet, members: int) -> None:
    """ConsumerGroupDescribe through confluent-kafka's admin client, and the offsets with OffsetFetch."""
    from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, ConsumerGroupType
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": fleet.bootstrap})
    fleet.wait_for(lambda: admin.describe_consumer_groups([fleet.group])[fleet.group].result(10).state
                   == ConsumerGroupState.STABLE, 30, "a Stable consumer group")
    group = admin.describe_consumer_groups([fleet.group])[fleet.group].result(10)
    assert group.type == ConsumerGroupType.CONSUMER and group.partition_assignor == "uniform"
    assert len(group.members) == members
    described = sorted(tp.partition for m in group.members for tp in m.assignment.topic_partitions)
    assert described == list(range(PARTITIONS))
    listed = {g.group_id: g for g in admin.list_consumer_groups().result(10).valid}
    assert listed[fleet.group].type == ConsumerGroupType.CONSUMER
    offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(fleet.group)])[fleet.group].result(10)
    assert len(offsets.topic_partitions) == PARTITIONS
