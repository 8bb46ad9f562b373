"""Partition reassignment (KIP-455) on three kbroker processes and a real ZooKeeper, asked with
kafka-python's KafkaAdminClient (alter_partition_reassignments, list_partition_reassignments:
confluent-kafka's AdminClient has neither).

Partitions of a replication-factor-1 topic move to other brokers under an idempotent acks=all
producer: one to another single broker, one to two others. Once Metadata shows the target alone,
every acknowledged record is there, the new replicas hold the same batches as the new leader,
and the old replica's directory is gone from its broker. A move whose target broker is paused
stays listed until cancelled, which puts the original replica back. Every wait is on what the
cluster reports, never a sleep.
"""
from __future__ import annotations

import signal

import pytest

from compat_tests.clients import ConfluentKafka
from kbroker.errors import ErrorCode
from kbroker.wire.messages.alter_partition_reassignments import (
    ALTER_PARTITION_REASSIGNMENTS,
    AlterPartitionReassignmentsRequest,
    ReassignablePartition,
    ReassignableTopic,
)
from kbroker.wire.messages.list_partition_reassignments import (
    LIST_PARTITION_REASSIGNMENTS,
    ListPartitionReassignmentsRequest,
)
from tests.replication_checker import LoadProducer, check
from tests.waiting import wait_until
from tests.wire_client import WireClient

pytestmark = pytest.mark.timeout(240)

PARTITIONS = 3


def _wait_for_gone(path, timeout: float = 30.0) -> None:
    wait_until(lambda: not path.exists(), f"{path} to go", timeout, poll=0.1)


def test_partitions_move_to_other_brokers_under_a_producer(cluster_factory, topic_name):
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.errors import (InvalidReplicationAssignmentError, NoReassignmentInProgressError,
                              UnknownTopicOrPartitionError)

    cluster = cluster_factory(3)
    with ConfluentKafka().admin(cluster.bootstrap(1)) as admin:
        admin.create_topic(topic_name, PARTITIONS, replication_factor=1)
    view, _ = cluster.wait_until(lambda v: v.fully_led(topic_name, PARTITIONS), via=2, topics=[topic_name])
    before = {p: v.replicas for p, v in view.topics[topic_name].items()}
    others = {p: [b for b in sorted(cluster.brokers) if b not in before[p]] for p in range(PARTITIONS)}
    targets = {0: others[0][:1], 1: others[1]}  # one broker to another; one broker to two others

    producer = LoadProducer(cluster.bootstrap_all, topic_name, PARTITIONS).start()
    admin = KafkaAdminClient(bootstrap_servers=cluster.bootstrap(2))
    try:
        producer.acked_since(300)
        outcomes = admin.alter_partition_reassignments({
            TopicPartition(topic_name, p): replicas for p, replicas in targets.items()})
        assert outcomes == {TopicPartition(topic_name, p): None for p in targets}
        listed = admin.list_partition_reassignments()  # under way, or already done
        for tp, entry in listed.items():
            assert tp.topic == topic_name and tp.partition in targets
            assert entry["adding_replicas"] == targets[tp.partition]
            assert entry["removing_replicas"] == list(before[tp.partition])
        refused = admin.alter_partition_reassignments({
            TopicPartition(topic_name, 2): None, TopicPartition(topic_name, 7): [1],
            TopicPartition(topic_name, 0): [others[0][0], 42]})
        assert refused == {TopicPartition(topic_name, 2): NoReassignmentInProgressError,
                           TopicPartition(topic_name, 7): UnknownTopicOrPartitionError,
                           TopicPartition(topic_name, 0): InvalidReplicationAssignmentError}
        for node in cluster.brokers:
            cluster.wait_until(lambda v: all(
                set(v.topics[topic_name][p].replicas) == set(t) == set(v.topics[topic_name][p].isr)
                and v.topics[topic_name][p].leader in t for p, t in targets.items()),
                via=node, topics=[topic_name], timeout=60)
        producer.acked_since(300)
        assert admin.list_partition_reassignments() == {}
    finally:
        admin.close()
        producer.stop()
    assert producer.errors == []
    for p in targets:
        for old in before[p]:
            _wait_for_gone(cluster.brokers[old].data_dir / f"{topic_name}-{p}")
        for new in targets[p]:
            assert (cluster.brokers[new].data_dir / f"{topic_name}-{p}").is_dir()
    report = check(cluster, topic_name, PARTITIONS, producer.acked, via=3)
    assert report.ok, (f"{len(report.missing)} acknowledged records missing (e.g. {report.missing[:3]}), "
                       f"duplicates {report.duplicates}, out of order {report.out_of_order}, "
                       f"diverged replicas {report.diverged}")
    assert report.records >= len(producer.acked)


def _alter(client: WireClient, topic: str, replicas: list[int] | None) -> tuple[int, int]:
    response = client.request(ALTER_PARTITION_REASSIGNMENTS.key, 0, AlterPartitionReassignmentsRequest(
        topics=[ReassignableTopic(name=topic, partitions=[ReassignablePartition(partition_index=0,
                                                                               replicas=replicas)])]))
    return response.error_code, response.responses[0].partitions[0].error_code


def _listed(client: WireClient) -> dict[tuple[str, int], tuple[list[int], list[int], list[int]]]:
    response = client.request(LIST_PARTITION_REASSIGNMENTS.key, 0, ListPartitionReassignmentsRequest(topics=None))
    return {(t.name, p.partition_index): (p.replicas, p.adding_replicas, p.removing_replicas)
            for t in response.topics for p in t.partitions}


def test_a_stalled_move_is_cancelled_back_to_the_original_replica(cluster_factory, topic_name):
    """The target broker is paused (SIGSTOP, well within its session timeout): the move cannot end,
    ListPartitionReassignments shows it; cancelled (null replicas), the original replica is all
    there is again, and the paused broker, once it runs, keeps no copy. The requests go straight
    to one running broker (kafka-python's admin may pick the paused one for its metadata)."""
    cluster = cluster_factory(3)
    with ConfluentKafka().admin(cluster.bootstrap(1)) as admin:
        admin.create_topic(topic_name, 1, replication_factor=1)
    view, _ = cluster.wait_until(lambda v: v.fully_led(topic_name, 1), via=1, topics=[topic_name])
    (original,) = view.topics[topic_name][0].replicas
    paused = next(b for b in sorted(cluster.brokers) if b not in (original, view.controller))
    asked = next(b for b in sorted(cluster.brokers) if b != paused)
    producer = LoadProducer(cluster.bootstrap(asked), topic_name, 1).start()
    try:
        producer.acked_since(100)
        with WireClient(cluster.bootstrap(asked)) as client:
            cluster.signal(paused, signal.SIGSTOP)
            try:
                assert _alter(client, topic_name, [paused]) == (0, 0)
                assert _listed(client) == {(topic_name, 0): ([paused, original], [paused], [original])}
                assert _alter(client, topic_name, None) == (0, 0)
                assert _listed(client) == {}
                assert _alter(client, topic_name, None) == (0, ErrorCode.NO_REASSIGNMENT_IN_PROGRESS)
            finally:
                cluster.signal(paused, signal.SIGCONT)
        for node in cluster.brokers:
            cluster.wait_until(lambda v: v.topics[topic_name][0].replicas == (original,)
                               and v.topics[topic_name][0].isr == (original,), via=node, topics=[topic_name])
        producer.acked_since(100)
    finally:
        producer.stop()
    assert producer.errors == []
    _wait_for_gone(cluster.brokers[paused].data_dir / f"{topic_name}-0")
    report = check(cluster, topic_name, 1, producer.acked, via=original)
    assert report.ok and report.records >= len(producer.acked), report
