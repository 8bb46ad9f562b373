"""Leader elections and log dirs on three kbroker processes and a real ZooKeeper, with real clients.

With replication factor 3 a broker restarted leaves its partitions led by others; ElectLeaders
(kafka-python, confluent-kafka) moves leadership back to the preferred replicas, as does the
controller by itself with auto.leader.rebalance.enable; DescribeLogDirs (kafka-python) shows each
broker's replicas, the same bytes on every one once the followers have caught up. Every wait is on
what the cluster reports (Metadata, DescribeLogDirs), never a sleep.
"""
from __future__ import annotations

import time

import pytest

from compat_tests.clients import ConfluentKafka, KafkaPython, Record
from kbroker.errors import ErrorCode
from tests.cluster_process import ClusterProcesses, ClusterView

pytestmark = pytest.mark.timeout(240)

PARTITIONS = 6
PREFERRED, UNCLEAN = 0, 1
NO_REBALANCE = {"auto.leader.rebalance.enable": "false"}
RESTARTED = 1


def _preferred(view: ClusterView, topic: str) -> dict[int, int]:
    return {p: v.replicas[0] for p, v in view.topics[topic].items()}


def _in_sync(view: ClusterView, topic: str) -> bool:
    partitions = view.topics.get(topic, {})
    return len(partitions) == PARTITIONS and all(set(v.isr) == set(v.replicas) == set(view.brokers)
                                                 for v in partitions.values())


def _create_replicated(cluster: ClusterProcesses, topic: str) -> None:
    with ConfluentKafka().admin(cluster.bootstrap(2)) as admin:
        admin.create_topic(topic, PARTITIONS, replication_factor=3)
    records = [Record(p, f"k{p}-{i}".encode(), f"v{p}-{i}".encode()) for p in range(PARTITIONS) for i in range(20)]
    deliveries = KafkaPython().produce(cluster.bootstrap(1), topic, records, acks=-1)
    assert [d.error_code for d in deliveries if d.error_code] == []
    for node in cluster.brokers:
        view, _ = cluster.wait_until(lambda v: _in_sync(v, topic), via=node, topics=[topic])
        assert view.leaders(topic) == _preferred(view, topic)  # the first replica led from the start


def _restart_one(cluster: ClusterProcesses, topic: str) -> set[int]:
    """Restart broker 1 (SIGTERM) and wait until it is back in every ISR: the partitions it
    prefers, now led elsewhere."""
    view = cluster.metadata(2, [topic])
    preferring = {p for p, b in _preferred(view, topic).items() if b == RESTARTED}
    assert preferring, "placement gave broker 1 no partition to prefer"
    assert cluster.brokers[RESTARTED].stop() == 0
    cluster.wait_until(lambda v: all(v.leaders(topic)[p] not in (RESTARTED, -1) for p in preferring), via=2,
                       topics=[topic])
    cluster.brokers[RESTARTED].start()
    cluster.wait_until(lambda v: _in_sync(v, topic), via=2, topics=[topic])
    return preferring


@pytest.mark.parametrize("client", (KafkaPython(), ConfluentKafka()), ids=str)
def test_preferred_election_brings_leadership_back_after_a_restart(cluster_factory, client, topic_name):
    cluster = cluster_factory(3, NO_REBALANCE)
    _create_replicated(cluster, topic_name)
    preferring = _restart_one(cluster, topic_name)
    view = cluster.metadata(2, [topic_name])
    assert all(view.leaders(topic_name)[p] != RESTARTED for p in preferring), "no auto rebalance here"
    epochs = {p: v.leader_epoch for p, v in view.topics[topic_name].items()}

    with client.admin(cluster.bootstrap(3)) as admin:
        outcomes = admin.elect_leaders(PREFERRED, [(topic_name, p) for p in range(PARTITIONS)] + [(topic_name, 99)])
    assert outcomes == {**{(topic_name, p): 0 if p in preferring else ErrorCode.ELECTION_NOT_NEEDED
                           for p in range(PARTITIONS)}, (topic_name, 99): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
    for node in cluster.brokers:  # answered once the asking broker saw it; every broker sees it soon after
        view, _ = cluster.wait_until(lambda v: v.leaders(topic_name) == _preferred(v, topic_name), via=node,
                                     topics=[topic_name])
    assert {p: v.leader_epoch for p, v in view.topics[topic_name].items()} == {
        p: epochs[p] + (p in preferring) for p in range(PARTITIONS)}

    with client.admin(cluster.bootstrap(1)) as admin:
        again = admin.elect_leaders(PREFERRED, [(topic_name, p) for p in range(PARTITIONS)])
        assert set(again.values()) == {ErrorCode.ELECTION_NOT_NEEDED}
        unclean = admin.elect_leaders(UNCLEAN, [(topic_name, 0)])
        assert unclean == {(topic_name, 0): ErrorCode.ELECTION_NOT_NEEDED}  # it has a live leader
    received = client.consume(cluster.bootstrap(2), topic_name, {p: (0, 20) for p in range(PARTITIONS)})
    assert len(received) == PARTITIONS * 20


def test_a_null_partition_list_elects_every_partition(cluster_factory, topic_name):
    """librdkafka sends a null list for `partitions=None`: every partition of every topic."""
    cluster = cluster_factory(3, NO_REBALANCE)
    _create_replicated(cluster, topic_name)
    preferring = _restart_one(cluster, topic_name)
    with ConfluentKafka().admin(cluster.bootstrap(2)) as admin:
        outcomes = admin.elect_leaders(PREFERRED, None)
    assert {p for (t, p), code in outcomes.items() if t == topic_name and code == 0} == preferring
    cluster.wait_until(lambda v: v.leaders(topic_name) == _preferred(v, topic_name), via=2, topics=[topic_name])


def test_auto_rebalance_brings_leadership_back_by_itself(cluster_factory, topic_name):
    cluster = cluster_factory(3, {"leader.imbalance.check.interval.seconds": "1"})
    _create_replicated(cluster, topic_name)
    preferring = _restart_one(cluster, topic_name)
    _, waited = cluster.wait_until(lambda v: v.leaders(topic_name) == _preferred(v, topic_name), via=2,
                                   topics=[topic_name], timeout=30)
    print(f"leadership of {len(preferring)} partitions back on broker {RESTARTED} {waited:.1f} s after it caught up")


def test_describe_log_dirs_shows_every_replica_on_each_broker(cluster_factory, topic_name):
    cluster = cluster_factory(3, NO_REBALANCE)
    _create_replicated(cluster, topic_name)
    wanted = {(topic_name, p) for p in range(PARTITIONS)}
    deadline = time.monotonic() + 30
    with KafkaPython().admin(cluster.bootstrap(1)) as admin:
        while True:  # followers append what they fetched a moment after the ISR says they have it
            by_broker = {}
            for node in cluster.brokers:
                (dirs,) = admin.describe_log_dirs(node).items()
                assert dirs[0] == str(cluster.brokers[node].data_dir.resolve())
                by_broker[node] = {key: value for key, value in dirs[1].items() if key[0] == topic_name}
            sizes = {key: {by_broker[n][key][0] for n in by_broker if key in by_broker[n]} for key in wanted}
            if all(by_broker[n].keys() == wanted for n in by_broker) and all(len(s) == 1 for s in sizes.values()):
                break
            assert time.monotonic() < deadline, by_broker
            time.sleep(0.1)
    for node, partitions in by_broker.items():
        for key, (size, lag) in partitions.items():
            assert size > 20 * 8 and lag == 0, (node, key, size, lag)


def test_unclean_election_brings_an_offline_partition_back(cluster_factory, topic_name):
    """The followers stop (and leave the ISR), then the leader: the partition is offline, and stays
    so when the followers return (no unclean election by itself). UNCLEAN elects one of them."""
    cluster = cluster_factory(3, NO_REBALANCE)
    with KafkaPython().admin(cluster.bootstrap(1)) as admin:
        admin.create_topic(topic_name, 1, replication_factor=3)
    view, _ = cluster.wait_until(lambda v: v.fully_led(topic_name, 1) and len(v.topics[topic_name][0].isr) == 3,
                                 via=1, topics=[topic_name])
    leader, *followers = view.topics[topic_name][0].replicas
    everywhere = [Record(0, b"k", f"replicated {i}".encode()) for i in range(5)]
    assert [d.error_code for d in KafkaPython().produce(cluster.bootstrap(1), topic_name, everywhere, acks=-1)] == \
        [None] * 5
    for node in followers:
        assert cluster.brokers[node].stop() == 0
    cluster.wait_until(lambda v: v.topics[topic_name][0].isr == (leader,), via=leader, topics=[topic_name])
    only_on_leader = [Record(0, b"k", f"leader only {i}".encode()) for i in range(3)]
    assert [d.offset for d in KafkaPython().produce(cluster.bootstrap(leader), topic_name, only_on_leader,
                                                     acks=1)] == [5, 6, 7]
    assert cluster.brokers[leader].stop() == 0
    for node in followers:
        cluster.brokers[node].start()
    view, _ = cluster.wait_until(lambda v: set(v.brokers) == set(followers) and v.leaders(topic_name) == {0: -1},
                                 via=followers[0], topics=[topic_name])
    assert view.topics[topic_name][0].isr == (leader,)

    with KafkaPython().admin(cluster.bootstrap(followers[0])) as admin:
        assert admin.elect_leaders(PREFERRED, [(topic_name, 0)]) == {
            (topic_name, 0): ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE}
        assert admin.elect_leaders(UNCLEAN, [(topic_name, 0)]) == {(topic_name, 0): 0}
    view, _ = cluster.wait_until(lambda v: v.leaders(topic_name)[0] in followers, via=followers[1],
                                 topics=[topic_name])
    assert view.topics[topic_name][0].isr == (followers[0],)  # the first live replica, alone in the ISR
    deliveries = ConfluentKafka().produce(cluster.bootstrap(followers[1]), topic_name,
                                          [Record(0, b"k", b"after the unclean election")], acks=-1)
    # what only the old leader had is gone: the price of an unclean election
    assert [(d.error_code, d.offset) for d in deliveries] == [(None, 5)]
