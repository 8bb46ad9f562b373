"""ACLs with real clients: principals from SASL PLAIN logins, bindings made by admin clients.

One broker, one SASL_PLAINTEXT listener, `authorizer.class.name` set and `User:admin` a super
user; alice, bob and carol log in with PLAIN. The admin creates bindings with confluent-kafka's
AdminClient and lists and deletes them with kafka-python's; alice, allowed to write and read
`orders` and to read groups prefixed `billing-`, produces and consumes with confluent-kafka,
kafka-python and aiokafka; bob may only describe `orders`, carol has no binding at all. Each
refusal must reach the client as Kafka's error, a DENY must win over an ALLOW, and the bindings
must survive a restart.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest
from aiokafka import AIOKafkaConsumer
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicCollection
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
from kafka import KafkaProducer
from kafka.admin import ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType, KafkaAdminClient
from kafka.admin import ResourcePatternFilter
from kafka.admin import ResourceType as KpResourceType

from tests.broker_process import BrokerProcess, free_port

USERS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"}
JAAS = ("org.apache.kafka.common.security.plain.PlainLoginModule required username=\"admin\" "
        "password=\"admin-secret\" " + " ".join(f'user_{u}="{p}"' for u, p in USERS.items()) + ";")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    port = free_port()
    process = BrokerProcess(tmp_path_factory.mktemp("acls") / "data", {
        "listeners": f"SASL_PLAINTEXT://127.0.0.1:{port}",
        "sasl.enabled.mechanisms": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": JAAS,
        "authorizer.class.name": "kafka.security.authorizer.AclAuthorizer",
        "super.users": "User:admin",
        "group.initial.rebalance.delay.ms": "0",
    }, port=port).start()
    yield process
    process.stop()


def login(user: str) -> dict:
    return {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN", "sasl.username": user,
            "sasl.password": USERS[user]}


def kp_login(user: str) -> dict:
    return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_plain_username": user,
            "sasl_plain_password": USERS[user]}


def produce(broker: BrokerProcess, user: str, topic: str, n: int = 5) -> list:
    """The delivery errors (None for each record delivered)."""
    errors = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 10000, **login(user)})
    for i in range(n):
        producer.produce(topic, value=b"%s-%d" % (user.encode(), i), on_delivery=lambda err, _m: errors.append(err))
    producer.flush(30)
    return errors


def consume(broker: BrokerProcess, user: str, topic: str, group: str, n: int) -> tuple[list[bytes], list]:
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                         **login(user)})
    consumer.subscribe([topic])
    values, errors = [], []
    deadline = time.monotonic() + 20
    while len(values) < n and not errors and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error():
            errors.append(message.error().code())
        else:
            values.append(message.value())
    consumer.close()
    return values, errors


def binding(kind: ResourceType, name: str, pattern: ResourcePatternType, user: str, operation: AclOperation,
            permission: AclPermissionType = AclPermissionType.ALLOW) -> AclBinding:
    return AclBinding(kind, name, pattern, f"User:{user}", "*", operation, permission)


def test_acls_decide_what_each_principal_may_do(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, **login("admin")})
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    created = admin.create_acls([
        binding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "alice", AclOperation.WRITE),
        binding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "alice", AclOperation.READ),
        binding(ResourceType.GROUP, "billing-", ResourcePatternType.PREFIXED, "alice", AclOperation.READ),
        binding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "bob", AclOperation.DESCRIBE),
    ])
    for future in created.values():
        assert future.result(30) is None

    # alice writes and reads, with three clients.
    assert produce(broker, "alice", topic) == [None] * 5
    kp = KafkaProducer(bootstrap_servers=broker.bootstrap, **kp_login("alice"))
    kp.send(topic, b"alice-kafka-python").get(30)
    kp.close()
    values, errors = consume(broker, "alice", topic, "billing-1", 6)
    assert errors == [] and sorted(values) == sorted([b"alice-%d" % i for i in range(5)] + [b"alice-kafka-python"])

    async def aiokafka_read() -> int:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id="billing-2",
                                    auto_offset_reset="earliest", **kp_login("alice"))
        await consumer.start()
        try:
            batches = await consumer.getmany(timeout_ms=10000, max_records=6)
            return sum(len(records) for records in batches.values())
        finally:
            await consumer.stop()
    assert asyncio.run(aiokafka_read()) == 6

    # authorized_operations: what alice may do with the topic, what the super user may do with the cluster.
    alice = AdminClient({"bootstrap.servers": broker.bootstrap, **login("alice")})
    [described] = alice.describe_topics(TopicCollection([topic]), include_authorized_operations=True).values()
    assert set(described.result(30).authorized_operations) == {AclOperation.READ, AclOperation.WRITE,
                                                               AclOperation.DESCRIBE}
    cluster = admin.describe_cluster(include_authorized_operations=True).result(30)
    assert len(cluster.authorized_operations) == 7  # every operation a cluster supports

    # A group outside alice's prefix; bob may describe but not write; carol may do nothing.
    assert consume(broker, "alice", topic, "other-group", 1)[1] == [KafkaError.GROUP_AUTHORIZATION_FAILED]
    assert {e.code() for e in produce(broker, "bob", topic)} == {KafkaError.TOPIC_AUTHORIZATION_FAILED}
    bob = AdminClient({"bootstrap.servers": broker.bootstrap, **login("bob")})
    assert topic in bob.list_topics(timeout=10).topics
    carol = AdminClient({"bootstrap.servers": broker.bootstrap, **login("carol")})
    assert topic not in carol.list_topics(timeout=10).topics  # not even listed
    [carols_own] = carol.create_acls([binding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "carol",
                                              AclOperation.ALL)]).values()
    with pytest.raises(KafkaException) as refused:
        carols_own.result(30)
    assert refused.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED

    # Transactions: alice may use the transactional id she was given, not another.
    [granted] = admin.create_acls([binding(ResourceType.TRANSACTIONAL_ID, "alice-tx", ResourcePatternType.LITERAL,
                                           "alice", AclOperation.WRITE)]).values()
    assert granted.result(30) is None
    transactional = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "alice-tx", **login("alice")})
    transactional.init_transactions(30)
    transactional.begin_transaction()
    transactional.produce(topic, value=b"alice-in-a-transaction")
    transactional.commit_transaction(30)
    stranger = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "bobs-tx", **login("alice")})
    with pytest.raises(KafkaException) as refused_txn:
        stranger.init_transactions(30)
    assert refused_txn.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED

    # A DENY wins over alice's ALLOW.
    [deny] = admin.create_acls([binding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "alice",
                                        AclOperation.WRITE, AclPermissionType.DENY)]).values()
    assert deny.result(30) is None
    assert {e.code() for e in produce(broker, "alice", topic)} == {KafkaError.TOPIC_AUTHORIZATION_FAILED}

    # kafka-python's admin lists and deletes; the bindings outlive a restart.
    kp_admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap, **kp_login("admin"))
    any_of_topic = ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                             permission_type=ACLPermissionType.ANY,
                             resource_pattern=ResourcePatternFilter(KpResourceType.TOPIC, topic,
                                                                    ACLResourcePatternType.LITERAL))
    listed, error = kp_admin.describe_acls(any_of_topic)
    assert error.errno == 0 and len(listed) == 4  # alice's WRITE, READ and DENY WRITE, bob's DESCRIBE
    bob_filter = ACLFilter(principal="User:bob", host=None, operation=ACLOperation.ANY,
                           permission_type=ACLPermissionType.ANY,
                           resource_pattern=ResourcePatternFilter(KpResourceType.ANY, None, ACLResourcePatternType.ANY))
    [(_, deleted, delete_error)] = kp_admin.delete_acls([bob_filter])
    assert delete_error.errno == 0 and [acl.principal for acl in deleted] == ["User:bob"]
    kp_admin.close()

    broker.restart()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, **login("admin")})
    remaining = admin.describe_acls(
        AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                         AclPermissionType.ANY)).result(30)
    assert sorted((b.principal, b.operation, b.permission_type) for b in remaining) == sorted([
        ("User:alice", AclOperation.WRITE, AclPermissionType.ALLOW),
        ("User:alice", AclOperation.READ, AclPermissionType.ALLOW),
        ("User:alice", AclOperation.READ, AclPermissionType.ALLOW),
        ("User:alice", AclOperation.WRITE, AclPermissionType.DENY),
        ("User:alice", AclOperation.WRITE, AclPermissionType.ALLOW)])  # the transactional id's
    assert {e.code() for e in produce(broker, "bob", topic)} == {KafkaError.TOPIC_AUTHORIZATION_FAILED}
