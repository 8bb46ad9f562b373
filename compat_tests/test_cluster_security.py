"""ACLs and client quotas of a 3-broker cluster, kept in ZooKeeper: set through one broker, in force on all.

Each broker has a PLAINTEXT listener (replication and the tests' own admin calls: User:ANONYMOUS
is a super user there, as Kafka needs the inter-broker principal to be) and a SASL_PLAINTEXT one
where alice and bob log in with PLAIN, `authorizer.class.name` set. Bindings are made with
confluent-kafka's AdminClient through one broker and deleted with kafka-python's through another;
alice's producer reaches a partition led by every broker. A producer_byte_rate quota set through
one broker throttles a producer writing to a partition another broker leads. Quota windows are
short (3 samples of 1 s). Every check of a change made elsewhere polls until a deadline: the other
brokers learn of it through their ZooKeeper watches.
"""
from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from kafka.admin import ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType, KafkaAdminClient
from kafka.admin import ResourcePatternFilter
from kafka.admin import ResourceType as KpResourceType

from compat_tests.test_quotas import produce as produce_timed
from kbroker.wire.messages.alter_client_quotas import (
    ALTER_CLIENT_QUOTAS,
    AlterClientQuotasRequest,
    EntityData,
    EntryData,
    OpData,
)
from kbroker.wire.messages.describe_client_quotas import (
    DESCRIBE_CLIENT_QUOTAS,
    ComponentData,
    DescribeClientQuotasRequest,
)
from tests.broker_process import free_port
from tests.cluster_process import ClusterProcesses
from tests.wire_client import WireClient

USERS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}
JAAS = ("org.apache.kafka.common.security.plain.PlainLoginModule required username=\"admin\" "
        "password=\"admin-secret\" " + " ".join(f'user_{u}="{p}"' for u, p in USERS.items()) + ";")
WAIT_S = 15
RATE = 200_000  # producer_byte_rate, bytes per second


class SecureCluster:
    def __init__(self, processes: ClusterProcesses, sasl_ports: dict[int, int]) -> None:
        self.processes = processes
        self.sasl_ports = sasl_ports

    def sasl(self, node: int, user: str) -> dict:
        return {"bootstrap.servers": f"127.0.0.1:{self.sasl_ports[node]}", "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "PLAIN", "sasl.username": user, "sasl.password": USERS[user]}

    def admin(self, node: int) -> AdminClient:
        return AdminClient(self.sasl(node, "admin"))

    def leaders(self, topic: str, partitions: int) -> dict[int, int]:
        view, _ = self.processes.wait_until(lambda v: v.fully_led(topic, partitions), topics=[topic], timeout=WAIT_S)
        return view.leaders(topic)


@pytest.fixture(scope="module")
def cluster(zookeeper, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureCluster]:
    processes = ClusterProcesses(zookeeper, tmp_path_factory.mktemp("cluster-security"), 3, {
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
        "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
        "super.users": "User:admin;User:ANONYMOUS",
        "quota.window.num": "3", "quota.window.size.seconds": "1",
        "group.initial.rebalance.delay.ms": "0"})
    sasl_ports = {}
    for node, broker in processes.brokers.items():
        sasl_ports[node] = free_port()
        broker.overrides["listeners"] = (f"PLAINTEXT://127.0.0.1:{broker.port},"
                                         f"SASL_PLAINTEXT://127.0.0.1:{sasl_ports[node]}")
    processes.start()
    yield SecureCluster(processes, sasl_ports)
    processes.stop()


def new_topic(cluster: SecureCluster, partitions: int) -> str:
    name = f"secured-{uuid.uuid4().hex[:8]}"
    admin = cluster.admin(1)  # held while its futures are pending: a dropped handle fails them
    admin.create_topics([NewTopic(name, partitions, 3)])[name].result(WAIT_S)
    cluster.leaders(name, partitions)
    return name


def produce(cluster: SecureCluster, via: int, user: str, topic: str, partitions: range) -> list:
    """One record to each partition (bootstrapping through `via`); the delivery error of each, None if written."""
    errors: list = []
    producer = Producer({**cluster.sasl(via, user), "message.timeout.ms": 5000, "retries": 0})
    for partition in partitions:
        producer.produce(topic, value=b"%s-%d" % (user.encode(), partition), partition=partition,
                         on_delivery=lambda err, _m: errors.append(err and err.code()))
    producer.flush(15)
    return errors


def eventually(what: str, attempt: Callable[[], object], expected: object) -> None:
    """Until `attempt()` returns `expected` (a change made through another broker has reached this one)."""
    deadline = time.monotonic() + WAIT_S
    while (got := attempt()) != expected:
        assert time.monotonic() < deadline, f"{what}: still {got!r}"


def consume(cluster: SecureCluster, via: int, user: str, topic: str, group: str, expected: set[bytes]) -> set[bytes]:
    """The values read until every expected one was (or the deadline)."""
    consumer = Consumer({**cluster.sasl(via, user), "group.id": group, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    values: set[bytes] = set()
    deadline = time.monotonic() + WAIT_S
    while not values >= expected and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None:
            assert not message.error(), message.error()
            values.add(message.value())
    consumer.close()
    return values


def binding(topic: str, user: str, operation: AclOperation,
            permission: AclPermissionType = AclPermissionType.ALLOW) -> AclBinding:
    return AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, f"User:{user}", "*", operation,
                      permission)


def create_acls(cluster: SecureCluster, via: int, bindings: list[AclBinding]) -> None:
    admin = cluster.admin(via)
    for future in admin.create_acls(bindings).values():
        assert future.result(WAIT_S) is None


def describe_acls(cluster: SecureCluster, via: int, topic: str) -> list[AclBinding]:
    admin = cluster.admin(via)
    return admin.describe_acls(AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.ANY, None, None,
                                                AclOperation.ANY, AclPermissionType.ANY)).result(WAIT_S)


def test_acls_made_through_one_broker_decide_on_every_broker(cluster):
    topic = new_topic(cluster, 3)
    partitions = range(3)
    assert set(cluster.leaders(topic, 3).values()) == {1, 2, 3}  # alice's records go to every broker
    refused = [KafkaError.TOPIC_AUTHORIZATION_FAILED] * 3
    assert produce(cluster, 1, "alice", topic, partitions) == refused

    create_acls(cluster, 1, [binding(topic, "alice", AclOperation.WRITE), binding(topic, "alice", AclOperation.READ),
                             AclBinding(ResourceType.GROUP, "alice-", ResourcePatternType.PREFIXED, "User:alice", "*",
                                        AclOperation.READ, AclPermissionType.ALLOW)])
    for via in (3, 2, 1):  # each bootstrap: alice's producer then writes to the leaders on all three
        eventually(f"alice writing via broker {via}", lambda: produce(cluster, via, "alice", topic, partitions),
                   [None] * 3)
    written = {b"alice-%d" % p for p in partitions}  # (a retried attempt may have written some twice)
    assert consume(cluster, 2, "alice", topic, "alice-readers", written) == written
    assert produce(cluster, 3, "bob", topic, partitions) == refused

    # A deny made through broker 2 refuses alice on broker 3's partition.
    create_acls(cluster, 2, [binding(topic, "alice", AclOperation.WRITE, AclPermissionType.DENY)])
    on_3 = next(p for p, leader in cluster.leaders(topic, 3).items() if leader == 3)
    eventually("the deny on broker 3", lambda: produce(cluster, 3, "alice", topic, range(on_3, on_3 + 1)),
               [KafkaError.TOPIC_AUTHORIZATION_FAILED])
    assert len(describe_acls(cluster, 3, topic)) == 3

    # Deleted through broker 3 with kafka-python: the deny, then the allow, on every broker.
    admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{cluster.sasl_ports[3]}", security_protocol="SASL_PLAINTEXT",
                             sasl_mechanism="PLAIN", sasl_plain_username="admin",
                             sasl_plain_password=USERS["admin"])
    try:
        def delete(permission: ACLPermissionType) -> None:
            [(_, matched, error)] = admin.delete_acls([ACLFilter(
                "User:alice", "*", ACLOperation.WRITE, permission,
                ResourcePatternFilter(KpResourceType.TOPIC, topic, ACLResourcePatternType.LITERAL))])
            assert error.errno == 0 and len(matched) == 1, (matched, error)
        delete(ACLPermissionType.DENY)
        eventually("the deny gone on broker 1", lambda: produce(cluster, 1, "alice", topic, partitions), [None] * 3)
        delete(ACLPermissionType.ALLOW)
        for via in (1, 2):
            eventually(f"the allow gone via broker {via}", lambda: produce(cluster, via, "alice", topic, partitions),
                       refused)
    finally:
        admin.close()


def alter_quota(cluster: SecureCluster, via: int, client_id: str, rate: float | None) -> None:
    with WireClient(cluster.processes.bootstrap(via)) as client:  # PLAINTEXT: the super user
        answer = client.request(ALTER_CLIENT_QUOTAS.key, 1, AlterClientQuotasRequest(entries=[EntryData(
            entity=[EntityData(entity_type="client-id", entity_name=client_id)],
            ops=[OpData(key="producer_byte_rate", value=rate or 0.0, remove=rate is None)])], validate_only=False))
    assert [e.error_code for e in answer.entries] == [0]


def described_quotas(cluster: SecureCluster, via: int, client_id: str) -> dict[str, float]:
    with WireClient(cluster.processes.bootstrap(via)) as client:
        answer = client.request(DESCRIBE_CLIENT_QUOTAS.key, 1, DescribeClientQuotasRequest(components=[ComponentData(
            entity_type="client-id", match_type=0, match=client_id)], strict=False))
    assert answer.error_code == 0
    return {value.key: value.value for entry in answer.entries for value in entry.values}


def test_a_quota_set_through_one_broker_throttles_on_another(cluster):
    topic = new_topic(cluster, 1)
    leader = cluster.leaders(topic, 1)[0]
    asked = next(node for node in (1, 2, 3) if node != leader)
    client_id = f"slow-{uuid.uuid4().hex[:6]}"
    alter_quota(cluster, asked, client_id, RATE)
    for via in (1, 2, 3):  # DescribeClientQuotas on any broker answers the same
        eventually(f"the quota described by broker {via}", lambda: described_quotas(cluster, via, client_id),
                   {"producer_byte_rate": RATE})
    leader_broker = cluster.processes.brokers[leader]  # PLAINTEXT: the quota is on the client id alone
    _, fast_throttles = produce_timed(leader_broker, topic, "fast-producer", 600, **{"batch.size": 20_000})
    slow_acked, slow_throttles = produce_timed(leader_broker, topic, client_id, 600, **{"batch.size": 20_000})
    # 600 kB: the first 2 s' worth at the quota may go at once, the rest not faster than the quota.
    assert fast_throttles == [] and slow_throttles and max(slow_throttles) > 0
    assert slow_acked[-1] >= 0.8 * (600_000 - 2 * RATE) / RATE
    alter_quota(cluster, leader, client_id, None)
    eventually("the quota removed on every broker", lambda: [described_quotas(cluster, via, client_id)
                                                             for via in (1, 2, 3)], [{}] * 3)


def test_bindings_and_quotas_survive_a_broker_restart(cluster):
    topic = new_topic(cluster, 1)
    create_acls(cluster, 1, [binding(topic, "bob", AclOperation.DESCRIBE)])
    alter_quota(cluster, 1, "restarted", RATE)
    broker = cluster.processes.brokers[3]
    broker.restart()
    cluster.processes.wait_until(lambda v: len(v.brokers) == 3, via=3, timeout=WAIT_S)
    assert [(b.principal, b.operation) for b in describe_acls(cluster, 3, topic)] == [
        ("User:bob", AclOperation.DESCRIBE)]
    assert described_quotas(cluster, 3, "restarted") == {"producer_byte_rate": RATE}
