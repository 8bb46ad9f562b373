"""Admin views of consumer groups with each client's admin API: list (with a state filter),
describe (state, protocol, members and their assignments), committed offsets, lag, delete.

A group of two kafka-python members (range) consumes 600 records of a 6-partition topic and
commits; every admin client must then see the same group the members report.
"""
from __future__ import annotations

import asyncio
import subprocess

import pytest

from compat_tests.clients import KCAT
from compat_tests.group_fleet import Fleet
from compat_tests.test_groups import FAST_GROUPS, PARTITIONS, SESSION_MS, create_topic, produce


@pytest.fixture(scope="module")
def stable_group(tmp_path_factory):
    from tests.broker_process import BrokerProcess

    broker = BrokerProcess(tmp_path_factory.mktemp("admin") / "data", FAST_GROUPS).start()
    topic, group = "admin-topic", "admin-group"
    create_topic(broker.bootstrap, topic)
    fleet = Fleet(broker.bootstrap, topic, group)
    members = [fleet.start("kafka-python", session_ms=SESSION_MS, assignor="range") for _ in range(2)]
    fleet.wait_balanced(PARTITIONS)
    fleet.wait_consumed(produce(broker.bootstrap, topic, 600))
    fleet.wait_for(lambda: all(len(m.committed) == 3 and set(m.committed.values()) == {100} for m in members),
                   30, "commits")
    yield broker, fleet, {m.process.pid: m for m in members}
    fleet.stop_all()
    broker.stop()


def _expected_members(fleet: Fleet) -> dict[str, list[int]]:
    """client id -> partitions, as the members themselves report."""
    return {m.name: sorted(m.assignment) for m in fleet.members}


def test_kafka_python_admin(stable_group):
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient

    broker, fleet, _ = stable_group
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        listed = {g["group_id"]: g for g in admin.list_groups()}
        assert listed[fleet.group]["protocol_type"] == "consumer"
        assert [g["group_id"] for g in admin.list_groups(states_filter=["Stable"])] == [fleet.group]
        assert admin.list_groups(states_filter=["Empty"]) == []
        described = admin.describe_groups([fleet.group, "no-such-group"])
        group = described[fleet.group]
        assert (group["group_state"], group["protocol_type"], group["protocol_data"]) == ("Stable", "consumer", "range")
        assignments = {m["client_id"]: sorted(p for a in m["member_assignment"]["assigned_partitions"]
                                              for p in a["partitions"]) for m in group["members"]}
        assert assignments == _expected_members(fleet)
        assert all(m["member_metadata"]["topics"] == [fleet.topic] and m["client_host"] == "/127.0.0.1"
                   for m in group["members"])
        assert described["no-such-group"]["group_state"] == "Dead"
        offsets = admin.list_group_offsets(fleet.group)[fleet.group]
        assert {tp.partition: o.offset for tp, o in offsets.items()} == {p: 100 for p in range(PARTITIONS)}
        ends = admin.list_partition_offsets({TopicPartition(fleet.topic, p): -1 for p in range(PARTITIONS)})
        lag = {tp.partition: info.offset - offsets[tp].offset for tp, info in ends.items()}
        assert lag == {p: 0 for p in range(PARTITIONS)}
    finally:
        admin.close()


def test_confluent_kafka_admin(stable_group):
    from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions
    from confluent_kafka.admin import AdminClient

    broker, fleet, _ = stable_group
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    listed = admin.list_consumer_groups(request_timeout=10).result()
    assert not listed.errors
    assert {g.group_id: g.state for g in listed.valid}[fleet.group] == ConsumerGroupState.STABLE
    stable = admin.list_consumer_groups(states={ConsumerGroupState.STABLE}).result()
    assert [g.group_id for g in stable.valid] == [fleet.group]
    # librdkafka asks ConsumerGroupDescribe first (we advertise it) and falls back to
    # DescribeGroups for a classic group.
    group = admin.describe_consumer_groups([fleet.group])[fleet.group].result(10)
    assert group.state == ConsumerGroupState.STABLE and group.partition_assignor == "range"
    assert {m.client_id: sorted(tp.partition for tp in m.assignment.topic_partitions) for m in group.members} \
        == _expected_members(fleet)
    assert all(m.host == "/127.0.0.1" for m in group.members)
    offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(fleet.group)])[fleet.group].result(10)
    assert {tp.partition: tp.offset for tp in offsets.topic_partitions} == {p: 100 for p in range(PARTITIONS)}


def test_aiokafka_admin(stable_group):
    from aiokafka.admin import AIOKafkaAdminClient

    broker, fleet, _ = stable_group

    async def run():
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            listed = await admin.list_consumer_groups()
            described = await admin.describe_consumer_groups([fleet.group])
            # OffsetFetch v3 with null topics: every committed offset of the group (Tansu sent 6 bytes).
            offsets = await admin.list_consumer_group_offsets(fleet.group)
            return listed, described, offsets
        finally:
            await admin.close()

    listed, described, offsets = asyncio.run(run())
    assert (fleet.group, "consumer") in [tuple(g[:2]) for g in listed]
    (group,) = described[0].to_object()["groups"]
    assert (group["error_code"], group["group"], group["state"], group["protocol"]) == (0, fleet.group, "Stable", "range")
    assert len(group["members"]) == 2
    assert {tp.partition: o.offset for tp, o in offsets.items()} == {p: 100 for p in range(PARTITIONS)}


@pytest.mark.skipif(KCAT is None, reason="kcat is not installed")
def test_kcat_metadata_lists_the_internal_offsets_topic(stable_group):
    broker, _, _ = stable_group
    result = subprocess.run([KCAT, "-b", broker.bootstrap, "-L"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert 'topic "__consumer_offsets" with 50 partitions' in result.stdout


def test_deleting_groups_and_offsets(broker_factory, topic_name):
    """DeleteGroups and OffsetDelete with kafka-python and confluent-kafka on an empty group."""
    from confluent_kafka.admin import AdminClient
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.errors import GroupIdNotFoundError
    from kafka.structs import OffsetAndMetadata

    broker = broker_factory(FAST_GROUPS)
    create_topic(broker.bootstrap, topic_name)
    produce(broker.bootstrap, topic_name, 60)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="to-delete", enable_auto_commit=False)
    consumer.commit({TopicPartition(topic_name, p): OffsetAndMetadata(5, "m", -1) for p in range(PARTITIONS)})
    consumer.close()
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.delete_group_offsets("to-delete", [TopicPartition(topic_name, 0)])
        offsets = admin.list_group_offsets("to-delete")["to-delete"]
        assert sorted(tp.partition for tp in offsets) == list(range(1, PARTITIONS))
        assert offsets[TopicPartition(topic_name, 1)].metadata == "m"
        assert admin.delete_groups(["to-delete"]) == {"to-delete": "OK"}
        assert admin.list_group_offsets("to-delete")["to-delete"] == {}
        assert admin.delete_groups(["to-delete"]) == {"to-delete": GroupIdNotFoundError.__name__}
    finally:
        admin.close()
    ck = AdminClient({"bootstrap.servers": broker.bootstrap})
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="to-delete-2", enable_auto_commit=False)
    consumer.commit({TopicPartition(topic_name, 0): OffsetAndMetadata(1, "", -1)})
    consumer.close()
    ck.delete_consumer_groups(["to-delete-2"])["to-delete-2"].result(10)
    groups = {g.group_id for g in ck.list_consumer_groups().result(10).valid}
    assert "to-delete" not in groups and "to-delete-2" not in groups
