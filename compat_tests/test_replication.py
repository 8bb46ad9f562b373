"""Replication factor 3 on three kbroker processes and a real ZooKeeper: brokers die, nothing
acknowledged is lost.

Each test ends with the checker (tests/replication_checker.py): every record a producer saw
acknowledged is read back at its offset, no value twice (idempotent producers), per-partition
order kept, and the replicas' logs identical below the high watermark. The long versions (many
kill cycles) are in stress/replication_faults.py.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from compat_tests.clients import AioKafka, ConfluentKafka, KafkaPython, Record
from compat_tests.group_fleet import Fleet
from kbroker.coordinator.records import OFFSETS_TOPIC, partition_for
from kbroker.errors import ErrorCode
from tests.cluster_process import SESSION_TIMEOUT_MS, ClusterProcesses
from tests.replication_checker import Acked, LoadProducer, check
from tests.scale_harness import _produce as produce_request
from tests.wire_client import WireClient

pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

PARTITIONS = 3
PRODUCE = 0
REPLICATED = {"min.insync.replicas": "2"}
KILL_CYCLES = 10  # the CI size; stress/replication_faults.py runs 50
FAILOVER_WITHIN_S = SESSION_TIMEOUT_MS / 1000 + 6


def _create(cluster: ClusterProcesses, topic: str, partitions: int = PARTITIONS) -> None:
    with ConfluentKafka().admin(cluster.bootstrap(1)) as admin:
        admin.create_topic(topic, partitions, 3, REPLICATED)
    _wait_in_sync(cluster, topic, partitions)


def _wait_in_sync(cluster: ClusterProcesses, topic: str, partitions: int = PARTITIONS, via: int | None = None,
                  timeout: float = 60) -> float:
    """Until every partition is led and all three replicas are in its ISR again."""
    return cluster.wait_in_sync(topic, partitions, via=via, timeout=timeout)


def _assert_nothing_lost(cluster: ClusterProcesses, topic: str, acked, partitions: int = PARTITIONS) -> None:
    via = cluster.alive()[0]
    report = check(cluster, topic, partitions, acked, via)
    assert report.ok, (f"{len(report.missing)} acknowledged records missing (e.g. {report.missing[:3]}), "
                       f"duplicates {report.duplicates}, out of order {report.out_of_order}, "
                       f"diverged replicas {report.diverged}")
    assert report.records >= len(acked)


@contextmanager
def _under_load(cluster: ClusterProcesses, topic: str) -> Iterator[LoadProducer]:
    """An idempotent acks=all producer on a fresh RF=3 topic through the block (200 records
    acknowledged first); then no producer error, and the checker finds nothing lost."""
    _create(cluster, topic)
    producer = LoadProducer(cluster.bootstrap_all, topic, PARTITIONS).start()
    try:
        producer.acked_since(200)
        yield producer
    finally:
        producer.stop()
    assert producer.errors == []
    _assert_nothing_lost(cluster, topic, producer.acked)


def _back_in_sync(cluster: ClusterProcesses, node: int, topic: str, producer: LoadProducer) -> float:
    """Restart `node`; the seconds until every ISR is whole again, then more records acknowledged."""
    cluster.brokers[node].start()
    waited = _wait_in_sync(cluster, topic)
    producer.acked_since(100)
    return waited


def test_leader_killed_again_and_again_under_an_idempotent_producer(cluster_factory, topic_name):
    cluster = cluster_factory()
    with _under_load(cluster, topic_name) as producer:
        for cycle in range(KILL_CYCLES):
            victim = cluster.metadata(cluster.alive()[0], [topic_name]).leaders(topic_name)[0]
            cluster.brokers[victim].kill()
            killed = time.monotonic()
            producer.acked_since(100, timeout=FAILOVER_WITHIN_S + 30)
            print(f"cycle {cycle}: leader {victim} killed; producing again after {time.monotonic() - killed:.2f} s")
            _back_in_sync(cluster, victim, topic_name, producer)


@pytest.mark.parametrize("client", (KafkaPython(), ConfluentKafka(), AioKafka()), ids=str)
def test_each_client_rides_out_a_leader_failover(cluster_factory, client, topic_name):
    cluster = cluster_factory()
    _create(cluster, topic_name)
    before = [Record(p, b"k", f"{p}-{i}".encode()) for i in range(100) for p in range(PARTITIONS)]
    deliveries = client.produce(cluster.bootstrap_all, topic_name, before, acks=-1, idempotent=True)
    victim = cluster.metadata(1, [topic_name]).leaders(topic_name)[0]
    cluster.brokers[victim].kill()
    after = [Record(p, b"k", f"{p}-{i}".encode()) for i in range(100, 200) for p in range(PARTITIONS)]
    survivors = ",".join(cluster.bootstrap(n) for n in cluster.alive())
    deliveries += client.produce(survivors, topic_name, after, acks=-1, idempotent=True, timeout=90)
    assert [d.error for d in deliveries if d.error_code] == []
    cluster.brokers[victim].start()
    _wait_in_sync(cluster, topic_name)
    _assert_nothing_lost(cluster, topic_name, [Acked(d.partition, d.offset, r.value)
                                               for d, r in zip(deliveries, before + after)])


def test_killed_follower_truncates_catches_up_and_rejoins_the_isr(cluster_factory, topic_name):
    cluster = cluster_factory()
    with _under_load(cluster, topic_name) as producer:
        leaders = cluster.metadata(1, [topic_name]).leaders(topic_name)
        follower = next(n for n in cluster.brokers if n != leaders[0])
        cluster.brokers[follower].kill()
        cluster.wait_until(lambda v: follower not in v.topics[topic_name][0].isr, topics=[topic_name],
                           timeout=FAILOVER_WITHIN_S)
        producer.acked_since(500)  # min.insync.replicas=2: two replicas still take writes
        waited = _back_in_sync(cluster, follower, topic_name, producer)
        print(f"follower {follower} restarted: back in every ISR after {waited:.2f} s")


def test_controller_killed_under_load_another_takes_over_and_nothing_is_lost(cluster_factory, topic_name):
    cluster = cluster_factory()
    with _under_load(cluster, topic_name) as producer:
        controller = cluster.metadata(1, [topic_name]).controller
        cluster.brokers[controller].kill()
        killed = time.monotonic()
        survivor = cluster.alive()[0]
        view, _ = cluster.wait_until(lambda v: v.controller not in (controller, -1), via=survivor,
                                     timeout=FAILOVER_WITHIN_S)
        producer.acked_since(100, timeout=FAILOVER_WITHIN_S + 30)
        print(f"controller {controller} killed: broker {view.controller} took over, producing again after "
              f"{time.monotonic() - killed:.2f} s")
        _back_in_sync(cluster, controller, topic_name, producer)


def test_a_leader_stopped_with_sigterm_hands_over_before_it_exits(cluster_factory, topic_name):
    """Controlled shutdown: the leader leaves the live brokers, the controller moves its partitions
    at once, and it exits only once they are led elsewhere; the producer carries on (librdkafka
    follows the NOT_LEADER_OR_FOLLOWER answers that name the new leader, KIP-951)."""
    cluster = cluster_factory()
    with _under_load(cluster, topic_name) as producer:
        victim = cluster.metadata(1, [topic_name]).leaders(topic_name)[0]
        mark, stopped = producer.mark(), time.monotonic()
        assert cluster.brokers[victim].stop() == 0
        log = cluster.brokers[victim].log()
        assert "controlled shutdown: waiting for" in log and "still name this broker" not in log, log
        resumed = producer.first_ack_after(mark, [0], timeout=30) - stopped
        print(f"leader {victim} stopped with SIGTERM: partition 0 acknowledged again after {resumed:.2f} s")
        assert resumed < SESSION_TIMEOUT_MS / 1000 / 2  # no session expiry was waited for
        _back_in_sync(cluster, victim, topic_name, producer)


def test_paused_leader_acknowledges_nothing_once_deposed(cluster_factory, topic_name):
    cluster = cluster_factory()
    _create(cluster, topic_name)
    zombie = cluster.metadata(1, [topic_name]).leaders(topic_name)[0]
    other = next(n for n in cluster.brokers if n != zombie)
    answer = cluster.produce_to_paused(zombie, topic_name, 0, b"0-zombie",
                                       lambda v: v.leaders(topic_name)[0] not in (zombie, -1), via=other,
                                       timeout=FAILOVER_WITHIN_S)
    assert answer.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER, answer
    deliveries = ConfluentKafka().produce(cluster.bootstrap(other), topic_name,
                                          [Record(0, b"k", b"0-%d" % i) for i in range(50)], acks=-1)
    assert [d.error for d in deliveries if d.error_code] == []
    _wait_in_sync(cluster, topic_name)  # the zombie comes back as a follower, its log cut to the leader's
    _assert_nothing_lost(cluster, topic_name, [Acked(0, d.offset, b"0-%d" % i) for i, d in enumerate(deliveries)])


def test_all_brokers_killed_at_once_keep_every_acknowledged_record(cluster_factory, topic_name):
    cluster = cluster_factory(overrides={"log.flush.interval.messages": "1"})
    _create(cluster, topic_name)
    producer = LoadProducer(cluster.bootstrap_all, topic_name, PARTITIONS).start()
    producer.acked_since(300)
    for broker in cluster.brokers.values():
        broker.kill()
    producer.halt()  # nothing more can be acknowledged now
    acked = list(producer.acked)
    for broker in cluster.brokers.values():
        broker.launch()
    for broker in cluster.brokers.values():
        broker.wait_listening()
    _wait_in_sync(cluster, topic_name, timeout=90)
    producer.stop()
    _assert_nothing_lost(cluster, topic_name, acked)


def test_two_brokers_down_refuses_acks_all_and_still_serves_reads(cluster_factory, topic_name):
    cluster = cluster_factory()
    _create(cluster, topic_name, 1)
    deliveries = ConfluentKafka().produce(cluster.bootstrap(1), topic_name,
                                          [Record(0, b"k", b"0-%d" % i) for i in range(20)], acks=-1)
    leader = cluster.metadata(1, [topic_name]).leaders(topic_name)[0]
    for node in cluster.brokers:
        if node != leader:
            cluster.brokers[node].kill()
    cluster.wait_until(lambda v: v.topics[topic_name][0].isr == (leader,), via=leader, topics=[topic_name],
                       timeout=FAILOVER_WITHIN_S)
    with WireClient(cluster.bootstrap(leader)) as client:
        answer = client.request(PRODUCE, 9, produce_request(topic_name, 0, b"0-refused"))
    assert answer.responses[0].partition_responses[0].error_code == ErrorCode.NOT_ENOUGH_REPLICAS
    received = ConfluentKafka().consume(cluster.bootstrap(leader), topic_name, {0: (0, 20)})
    assert [r.value for r in received] == [b"0-%d" % i for i in range(20)]
    assert [d.offset for d in deliveries] == list(range(20))


def test_group_keeps_consuming_through_its_coordinators_death(cluster_factory, topic_name):
    cluster = cluster_factory(overrides={"group.initial.rebalance.delay.ms": "300"})
    _create(cluster, topic_name)
    group = f"group-{topic_name}"
    fleet = Fleet(cluster.bootstrap_all, topic_name, group)
    try:
        first = ConfluentKafka().produce(cluster.bootstrap(1), topic_name,
                                         [Record(i % PARTITIONS, b"k", b"a%d" % i) for i in range(300)], acks=-1)
        member = fleet.start("confluent-kafka", session_ms=6000)
        fleet.wait_consumed({(d.partition, d.offset) for d in first})
        fleet.wait_for(lambda: sum(member.committed.values()) == 300, 60, "every offset committed")
        view, _ = cluster.wait_until(lambda v: v.fully_led(OFFSETS_TOPIC, 50), topics=[OFFSETS_TOPIC])
        coordinator = view.leaders(OFFSETS_TOPIC)[partition_for(group, 50)]
        cluster.brokers[coordinator].kill()
        survivors = ",".join(cluster.bootstrap(n) for n in cluster.alive())
        second = ConfluentKafka().produce(survivors, topic_name,
                                          [Record(i % PARTITIONS, b"k", b"b%d" % i) for i in range(300)], acks=-1,
                                          timeout=90)
        fleet.wait_consumed({(d.partition, d.offset) for d in second}, timeout=120)
        member.stop()
        resumed = fleet.start("confluent-kafka", session_ms=6000)
        third = ConfluentKafka().produce(survivors, topic_name, [Record(0, b"k", b"c")], acks=-1)
        fleet.wait_for(lambda: any(o == third[0].offset for p, o, _ in resumed.records if p == 0), 60,
                       "the new member reading past the committed offsets")
        assert min(o for p, o, _ in resumed.records) >= min(d.offset for d in second), \
            "offsets committed before the coordinator died were lost"
    finally:
        fleet.stop_all()
