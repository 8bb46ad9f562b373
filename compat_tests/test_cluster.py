"""A cluster of three kbroker processes on a real ZooKeeper, driven by real clients.

Topics spread over the brokers; clients given one broker's address reach every leader; groups
are coordinated by the leader of their `__consumer_offsets` partition; admin requests sent to
any broker take effect on all; a SIGKILLed broker's partitions go offline (replication factor 1)
and come back with everything after a restart; a killed controller is replaced; a paused broker
does not act on stale state. Every wait is on what the cluster reports (Metadata), never a sleep.
"""
from __future__ import annotations

import subprocess
import time
from collections import Counter

import pytest

from compat_tests.clients import ADMIN_CLIENTS, AioKafka, ConfluentKafka, KafkaPython, Record
from compat_tests.group_fleet import Fleet
from kbroker.coordinator.records import OFFSETS_TOPIC, partition_for
from kbroker.errors import ErrorCode
from kbroker.wire.messages.fetch import FetchPartition, FetchRequest, FetchTopic
from kbroker.wire.messages.find_coordinator import FindCoordinatorRequest
from kbroker.wire.messages.init_producer_id import InitProducerIdRequest
from kbroker.wire.messages.metadata import MetadataRequest, MetadataRequestTopic
from tests.broker_process import BrokerProcess, free_port
from tests.cluster_process import SESSION_TIMEOUT_MS, ClusterProcesses
from tests.scale_harness import _produce as produce_request
from tests.wire_client import WireClient
from tests.zookeeper_process import ZooKeeperProcess

pytestmark = pytest.mark.timeout(240)

DATA_CLIENTS = (KafkaPython(), ConfluentKafka(), AioKafka())
PARTITIONS = 12
PRODUCE, FETCH, METADATA, FIND_COORDINATOR, INIT_PRODUCER_ID = 0, 1, 3, 10, 22
FAST_GROUPS = {"group.initial.rebalance.delay.ms": "300"}
# After a broker vanishes its partitions lose their leader once ZooKeeper expires its session.
OFFLINE_WITHIN_S = SESSION_TIMEOUT_MS / 1000 + 4


@pytest.fixture(scope="module")
def cluster(zookeeper, tmp_path_factory):
    """One three-broker cluster for the tests that leave it as they found it."""
    processes = ClusterProcesses(zookeeper, tmp_path_factory.mktemp("cluster"), overrides=FAST_GROUPS).start()
    yield processes
    processes.stop()


def _records(partitions: int, per_partition: int, tag: str = "") -> list[Record]:
    return [Record(p, f"k{p}-{i}".encode(), f"{tag}v{p}-{i}".encode())
            for p in range(partitions) for i in range(per_partition)]


def _create(cluster: ClusterProcesses, topic: str, partitions: int = PARTITIONS, via: int = 2) -> dict[int, int]:
    """Create `topic` through broker `via`; its leaders once every broker sees them all."""
    with ConfluentKafka().admin(cluster.bootstrap(via)) as admin:
        admin.create_topic(topic, partitions)
    for node in cluster.alive():
        view, _ = cluster.wait_until(lambda v: v.fully_led(topic, partitions), via=node, topics=[topic])
    return view.leaders(topic)


def test_kcat_lists_every_broker_and_the_controller(cluster):
    listing = subprocess.run(["kcat", "-b", cluster.bootstrap(1), "-L"], capture_output=True, text=True,
                             timeout=30, check=True).stdout
    assert " 3 brokers:" in listing
    for node in cluster.brokers:
        assert f"broker {node} at {cluster.bootstrap(node)}" in listing
    assert listing.count("(controller)") == 1


@pytest.mark.parametrize("client", DATA_CLIENTS, ids=str)
def test_partitions_spread_and_one_bootstrap_reaches_every_leader(cluster, client, topic_name):
    with client.admin(cluster.bootstrap(2)) as admin:
        admin.create_topic(topic_name, PARTITIONS)
    views = [cluster.wait_until(lambda v: v.fully_led(topic_name, PARTITIONS), via=n, topics=[topic_name])[0]
             for n in cluster.brokers]
    leaders = views[0].leaders(topic_name)
    assert all(view.leaders(topic_name) == leaders for view in views), "brokers disagree on the leaders"
    assert Counter(leaders.values()) == {1: 4, 2: 4, 3: 4}
    for partition, view in views[0].topics[topic_name].items():
        assert view.replicas == (leaders[partition],) and view.isr == (leaders[partition],)

    records = _records(PARTITIONS, 20)
    deliveries = client.produce(cluster.bootstrap(1), topic_name, records, acks=-1)
    assert [d.error_code for d in deliveries if d.error_code] == []
    received = client.consume(cluster.bootstrap(3), topic_name, {p: (0, 20) for p in range(PARTITIONS)})
    assert sorted((r.partition, r.key, r.value) for r in received) == \
        sorted((r.partition, r.key, r.value) for r in records)
    for node, expected in Counter(leaders.values()).items():  # each broker holds only what it leads
        hosted = [p for p in range(PARTITIONS) if (cluster.brokers[node].data_dir / f"{topic_name}-{p}").is_dir()]
        assert len(hosted) == expected and all(leaders[p] == node for p in hosted)


def test_producer_ids_are_unique_across_brokers(cluster):
    """Two producers with one id writing to one partition would have each other's records dropped
    as duplicates: every broker hands out ids from its own block claimed in ZooKeeper."""
    ids = []
    for node in cluster.brokers:
        with WireClient(cluster.bootstrap(node)) as client:
            for _ in range(3):
                answer = client.request(INIT_PRODUCER_ID, 4, InitProducerIdRequest(
                    transactional_id=None, transaction_timeout_ms=60000, producer_id=-1, producer_epoch=-1))
                assert answer.error_code == 0
                ids.append(answer.producer_id)
    assert len(set(ids)) == len(ids), ids


def test_not_leader_answers_name_the_leader_kip_951(cluster, topic_name):
    """Produce v10+ and Fetch v12+ sent to a broker that does not lead the partition: the answer
    names the leader and its epoch, and (Produce v10+, Fetch v16+) where to reach it, so a client
    moves at once instead of refreshing its metadata; older versions carry no hint."""
    leaders = _create(cluster, topic_name, 3)
    partition, leader = next(iter(leaders.items()))
    other = next(n for n in cluster.brokers if n != leader)
    epoch = cluster.metadata(other, [topic_name]).topics[topic_name][partition].leader_epoch
    with WireClient(cluster.bootstrap(other)) as client:
        topic_id = client.request(METADATA, 12, MetadataRequest(topics=[MetadataRequestTopic(name=topic_name)],
                                                                allow_auto_topic_creation=False)).topics[0].topic_id
        produced = client.request(PRODUCE, 10, produce_request(topic_name, partition, b"v"))
        answer = produced.responses[0].partition_responses[0]
        assert answer.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
        assert (answer.current_leader.leader_id, answer.current_leader.leader_epoch) == (leader, epoch)
        assert [(e.node_id, e.host, e.port) for e in produced.node_endpoints] == \
            [(leader, "127.0.0.1", cluster.brokers[leader].port)]
        fetched = client.request(FETCH, 16, FetchRequest(max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, topics=[
            FetchTopic(topic_id=topic_id, partitions=[FetchPartition(partition=partition, fetch_offset=0,
                                                                     partition_max_bytes=1 << 20)])]))
        answer = fetched.responses[0].partitions[0]
        assert answer.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER
        assert (answer.current_leader.leader_id, answer.current_leader.leader_epoch) == (leader, epoch)
        assert [(e.node_id, e.port) for e in fetched.node_endpoints] == [(leader, cluster.brokers[leader].port)]
        old = client.request(PRODUCE, 9, produce_request(topic_name, partition, b"v"))
        assert old.responses[0].partition_responses[0].error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER


def test_sigterm_leaves_the_cluster_at_once(cluster_factory, topic_name):
    cluster = cluster_factory()
    leaders = _create(cluster, topic_name)
    assert cluster.brokers[2].stop() == 0
    gone = {p for p, leader in leaders.items() if leader == 2}
    _, waited = cluster.wait_until(
        lambda v: 2 not in v.brokers and {p for p, l in v.leaders(topic_name).items() if l == -1} == gone,
        via=1, topics=[topic_name], timeout=SESSION_TIMEOUT_MS / 1000 / 2)  # well before a session expiry
    print(f"broker 2 stopped with SIGTERM: its partitions without a leader after {waited:.2f} s")
    cluster.brokers[2].start()
    cluster.wait_until(lambda v: v.fully_led(topic_name, PARTITIONS), via=1, topics=[topic_name])


def _group_led_by_another_broker(cluster: ClusterProcesses, avoid: int, prefix: str) -> tuple[str, int]:
    """A group id whose coordinator is not broker `avoid` (creating __consumer_offsets if needed)."""
    with WireClient(cluster.bootstrap(avoid)) as client:
        deadline = time.monotonic() + 30
        while True:
            found = client.request(FIND_COORDINATOR, 1, FindCoordinatorRequest(key=prefix, key_type=0))
            if found.error_code == 0:
                break
            assert found.error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE and time.monotonic() < deadline, found
            time.sleep(0.1)
    view, _ = cluster.wait_until(lambda v: v.fully_led(OFFSETS_TOPIC, 50), topics=[OFFSETS_TOPIC])
    leaders = view.leaders(OFFSETS_TOPIC)
    for i in range(1000):
        group = f"{prefix}-{i}"
        if leaders[partition_for(group, 50)] != avoid:
            return group, leaders[partition_for(group, 50)]
    raise AssertionError("no group id maps to another broker")


@pytest.mark.parametrize("client", ("kafka-python", "confluent-kafka", "aiokafka"))
def test_group_coordinated_by_another_broker_consumes_and_resumes(cluster, client, topic_name):
    _create(cluster, topic_name, 6)
    group, coordinator = _group_led_by_another_broker(cluster, avoid=1, prefix=f"group-{topic_name}")
    first = ConfluentKafka().produce(cluster.bootstrap(1), topic_name, _records(6, 10, "a"), acks=-1)
    fleet = Fleet(cluster.bootstrap(1), topic_name, group)
    try:
        member = fleet.start(client, session_ms=6000)
        fleet.wait_consumed({(d.partition, d.offset) for d in first})
        fleet.wait_for(lambda: sum(member.committed.values()) == 60, 60, "all 60 offsets committed")
        member.stop()
        second = ConfluentKafka().produce(cluster.bootstrap(1), topic_name, _records(6, 5, "b"), acks=-1)
        resumed = fleet.start(client, session_ms=6000)
        fleet.wait_for(lambda: {(p, o) for p, o, _ in resumed.records} >= {(d.partition, d.offset) for d in second},
                       60, "the records produced after the commit")
        assert all(o >= 10 for _, o, _ in resumed.records), "the resumed member re-read committed records"
    finally:
        fleet.stop_all()
    assert coordinator != 1


@pytest.mark.parametrize("client", ADMIN_CLIENTS, ids=str)
def test_admin_requests_to_any_broker_take_effect_on_all(cluster, client, topic_name):
    with client.admin(cluster.bootstrap(1)) as admin:
        admin.create_topic(topic_name, 3)
    for node in cluster.brokers:
        cluster.wait_until(lambda v: v.fully_led(topic_name, 3), via=node, topics=[topic_name])
    with client.admin(cluster.bootstrap(2)) as admin:
        admin.create_partitions(topic_name, 6)
    for node in cluster.brokers:
        cluster.wait_until(lambda v: v.fully_led(topic_name, 6), via=node, topics=[topic_name])
    with client.admin(cluster.bootstrap(3)) as admin:
        admin.alter_topic_configs(topic_name, {"retention.ms": "3600000"})
    for node in cluster.brokers:
        with client.admin(cluster.bootstrap(node)) as admin:
            assert admin.topic_configs(topic_name)["retention.ms"].value == "3600000"
    records = _records(6, 3)
    assert not [d for d in ConfluentKafka().produce(cluster.bootstrap(3), topic_name, records) if d.error_code]
    with client.admin(cluster.bootstrap(2)) as admin:
        admin.delete_topic(topic_name)
    for node in cluster.brokers:
        cluster.wait_until(lambda v: topic_name not in v.topics, via=node, topics=[topic_name])
    # Each broker renames the partition directories (`-delete`) at once and removes them off the loop.
    deadline = time.monotonic() + 30
    while left := [d for broker in cluster.brokers.values() for d in broker.data_dir.iterdir()
                   if d.name.startswith(f"{topic_name}-")]:
        assert time.monotonic() < deadline, left
        time.sleep(0.05)


def test_sigkilled_broker_goes_offline_and_comes_back_with_everything(cluster_factory, topic_name):
    cluster = cluster_factory()
    leaders = _create(cluster, topic_name)
    client = ConfluentKafka()
    before = _records(PARTITIONS, 10, "before")
    assert not [d for d in client.produce(cluster.bootstrap(1), topic_name, before, acks=-1) if d.error_code]

    victim = 3
    cluster.brokers[victim].kill()
    victims = {p for p, leader in leaders.items() if leader == victim}
    view, waited = cluster.wait_until(
        lambda v: {p for p, leader in v.leaders(topic_name).items() if leader == -1} == victims and
        victim not in v.brokers, via=1, topics=[topic_name], timeout=OFFLINE_WITHIN_S)
    print(f"broker {victim} killed: its partitions without a leader after {waited:.2f} s")
    assert all(view.topics[topic_name][p].error_code == ErrorCode.LEADER_NOT_AVAILABLE for p in victims)

    survivors = [p for p in range(PARTITIONS) if p not in victims]  # the rest keep working meanwhile
    during = [Record(p, b"k", f"during-{p}".encode()) for p in survivors]
    assert not [d for d in client.produce(cluster.bootstrap(2), topic_name, during, acks=-1) if d.error_code]

    cluster.brokers[victim].start()
    cluster.wait_until(lambda v: v.fully_led(topic_name, PARTITIONS), via=1, topics=[topic_name])
    received = client.consume(cluster.bootstrap(1), topic_name,
                              {p: (0, 10 + (p in survivors)) for p in range(PARTITIONS)})
    assert sorted((r.partition, r.value) for r in received) == sorted((r.partition, r.value) for r in before + during)


def test_controller_killed_another_takes_over(cluster_factory, topic_name):
    cluster = cluster_factory()
    controller = cluster.metadata(1).controller
    assert controller in cluster.brokers
    cluster.brokers[controller].kill()
    survivor = next(n for n in cluster.brokers if n != controller)
    view, waited = cluster.wait_until(lambda v: v.controller not in (controller, -1), via=survivor,
                                      timeout=OFFLINE_WITHIN_S)
    print(f"controller {controller} killed: broker {view.controller} took over after {waited:.2f} s")
    leaders = _create(cluster, topic_name, 6, via=survivor)  # the new controller elects leaders
    assert set(leaders.values()) <= set(cluster.alive())


def test_paused_broker_answers_not_leader_before_acting_on_stale_state(cluster_factory, topic_name):
    cluster = cluster_factory()
    leaders = _create(cluster, topic_name)
    paused = 3
    partition = next(p for p, leader in leaders.items() if leader == paused)
    answer = cluster.produce_to_paused(paused, topic_name, partition, b"from-a-stale-leader",
                                       lambda v: v.leaders(topic_name)[partition] == -1, via=1,
                                       timeout=OFFLINE_WITHIN_S)
    assert answer.error_code == ErrorCode.NOT_LEADER_OR_FOLLOWER, answer
    # It registers again and, the only replica in the ISR, leads its partitions again.
    cluster.wait_until(lambda v: v.fully_led(topic_name, PARTITIONS) and paused in v.brokers, via=1,
                       topics=[topic_name])
    assert ConfluentKafka().latest(cluster.bootstrap(1), topic_name, [partition]) == {partition: 0}


def test_zookeeper_unreachable_at_start_up_is_a_clear_error(tmp_path):
    broker = BrokerProcess(tmp_path / "data", {"zookeeper.connect": f"127.0.0.1:{free_port()}",
                                               "zookeeper.connection.timeout.ms": "1500"})
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="broker exited with 1") as failure:
        broker.start(timeout=20)
    assert time.monotonic() - started < 15
    assert "cannot connect to ZooKeeper" in str(failure.value)
    assert "Traceback" not in broker.log()


def test_second_broker_with_the_same_id_refuses_to_start(cluster_factory, tmp_path):
    cluster = cluster_factory(size=1)
    twin = BrokerProcess(tmp_path / "twin", dict(cluster.brokers[1].overrides))
    assert twin.launch().process.wait(30) == 1  # it binds its port before it registers: wait for the exit
    assert "broker id 1 is already registered" in twin.log()
    assert "Traceback" not in twin.log()
    assert cluster.metadata(1).brokers == (1,)


def test_corrupted_znodes_are_logged_and_ignored(cluster_factory, topic_name):
    from kazoo.client import KazooClient

    cluster = cluster_factory()
    _create(cluster, topic_name, 3)
    zk = KazooClient(hosts=cluster.zookeeper.connect + cluster.chroot)
    zk.start(timeout=10)
    try:
        zk.create("/brokers/topics/garbage-topic", b"{not json")
        zk.set(f"/brokers/topics/{topic_name}/partitions/0/state", b"[1, 2")
        zk.create("/brokers/ids/not-a-number", b"", ephemeral=True)
        cluster.wait_until(lambda v: len(v.brokers) == 3 and "garbage-topic" not in v.topics, topics=None)
        # That held before the brokers saw the new znodes too: wait until broker 1 has read them.
        deadline = time.monotonic() + 30
        while "ignoring topic garbage-topic" not in cluster.brokers[1].log():
            assert time.monotonic() < deadline, cluster.brokers[1].log()
            time.sleep(0.1)  # polling the broker's log file
    finally:
        zk.stop()
        zk.close()
    for node, broker in cluster.brokers.items():
        assert broker.process.poll() is None, f"broker {node} died:\n{broker.log()}"
        assert "Traceback" not in broker.log()
    _create(cluster, f"{topic_name}-after", 3)  # the cluster goes on


def test_sigterm_stops_a_broker_cut_off_from_zookeeper(cluster_factory, tmp_path, topic_name):
    """The controlled shutdown cannot reach ZooKeeper: the broker gives it up and still stops
    cleanly, at once when its session is no longer confirmed, else after the shutdown's bound."""
    own = ZooKeeperProcess(tmp_path / "zookeeper").start()
    try:
        cluster = cluster_factory(zookeeper_process=own)
        _create(cluster, topic_name, 3)
    finally:
        own.stop()
    for node in cluster.brokers:
        started = time.monotonic()
        assert cluster.brokers[node].stop() == 0
        print(f"broker {node} stopped {time.monotonic() - started:.2f} s after SIGTERM without ZooKeeper")
        log = cluster.brokers[node].log()
        assert "controlled shutdown skipped" in log or "could not leave the live brokers" in log, log


def test_brokers_ride_out_a_zookeeper_restart(cluster_factory, tmp_path, topic_name):
    own = ZooKeeperProcess(tmp_path / "zookeeper").start()
    try:
        cluster = cluster_factory(zookeeper_process=own)
        _create(cluster, topic_name, 3)
        own.stop()
        # Down for longer than a session lasts: the sessions expire and every broker registers again.
        time.sleep(SESSION_TIMEOUT_MS / 1000 + 1)
        own.start()
        cluster.wait_until(lambda v: len(v.brokers) == 3 and v.controller in cluster.brokers and
                           v.fully_led(topic_name, 3), topics=[topic_name], timeout=60)
        _create(cluster, f"{topic_name}-after", 3)
        records = _records(3, 5)
        assert not [d for d in ConfluentKafka().produce(cluster.bootstrap(1), topic_name, records) if d.error_code]
    finally:
        own.stop()
