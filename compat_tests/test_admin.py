"""Admin flows through the admin clients of kafka-python, confluent-kafka and aiokafka.

What Kafka answers is the reference: error codes (errors.py names), config values and their
sources (DescribeConfigs ConfigSource: DYNAMIC_TOPIC_CONFIG for a topic override,
STATIC_BROKER_CONFIG for a broker setting given at start-up, DEFAULT_CONFIG otherwise), the
partition counts and cluster shape in metadata. kcat has no admin API; its metadata listing
is in test_metadata.py.
"""
from __future__ import annotations

import pytest

from compat_tests.clients import ADMIN_CLIENTS, BY_NAME, ConsumeTimeout, KafkaError, create_topic
from compat_tests.faultproxy import LoseOneProduceResponse
from compat_tests.records import assert_delivered, assert_same_records, ranges_for, simple_records

UNKNOWN_TOPIC_OR_PARTITION = 3
OFFSET_OUT_OF_RANGE = 1
INVALID_TOPIC_EXCEPTION = 17
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_CONFIG = 40

# Kafka's topic-level defaults (TopicConfig / LogConfig) for a broker started without overrides.
TOPIC_DEFAULTS = {
    "cleanup.policy": "delete",
    "retention.ms": "604800000",
    "retention.bytes": "-1",
    "segment.bytes": "1073741824",
    "max.message.bytes": "1048588",
    "message.timestamp.type": "CreateTime",
    "min.insync.replicas": "1",
}

admin_clients = pytest.mark.parametrize("client", ADMIN_CLIENTS, ids=str)


def _entries(configs: dict, keys) -> dict:
    return {k: (configs[k].value, configs[k].source) if k in configs else "missing" for k in keys}


@pytest.mark.timeout(60)
@admin_clients
def test_create_topic_with_configs_and_describe_them(broker, topic_name, client):
    overrides = {"retention.ms": "3600000", "cleanup.policy": "compact",
                 "message.timestamp.type": "LogAppendTime"}
    with client.admin(broker.bootstrap) as admin:
        admin.create_topic(topic_name, partitions=3, configs=overrides)
        assert admin.topics().get(topic_name) == 3
        configs = admin.topic_configs(topic_name)
    expected = {k: (v, "DYNAMIC_TOPIC_CONFIG") for k, v in overrides.items()}
    expected.update({k: (v, "DEFAULT_CONFIG") for k, v in TOPIC_DEFAULTS.items() if k not in overrides})
    assert _entries(configs, expected) == expected


@pytest.mark.timeout(60)
@admin_clients
def test_create_topic_errors(broker, topic_name, client):
    with client.admin(broker.bootstrap) as admin:
        admin.create_topic(topic_name, partitions=1)
        attempts = {
            "replication factor 3 on one broker": (dict(name=f"{topic_name}-rf3", partitions=1, replication_factor=3),
                                                   INVALID_REPLICATION_FACTOR),
            "already exists": (dict(name=topic_name, partitions=1), TOPIC_ALREADY_EXISTS),
            "name with '/'": (dict(name="bad/name", partitions=1), INVALID_TOPIC_EXCEPTION),
            "name '..'": (dict(name="..", partitions=1), INVALID_TOPIC_EXCEPTION),
            "name of 250 characters": (dict(name="x" * 250, partitions=1), INVALID_TOPIC_EXCEPTION),
            "zero partitions": (dict(name=f"{topic_name}-p0", partitions=0), INVALID_PARTITIONS),
            "unknown config": (dict(name=f"{topic_name}-cfg", partitions=1, configs={"no.such.config": "1"}),
                               INVALID_CONFIG),
            "invalid config value": (dict(name=f"{topic_name}-val", partitions=1,
                                          configs={"cleanup.policy": "sometimes"}), INVALID_CONFIG),
        }
        outcome = {}
        for what, (kwargs, _) in attempts.items():
            try:
                admin.create_topic(**kwargs)
                outcome[what] = "created"
            except KafkaError as exc:
                outcome[what] = exc.code
        assert outcome == {what: code for what, (_, code) in attempts.items()}
        listed = admin.topics()
    leaked = [kw["name"] for kw, code in attempts.values() if code != TOPIC_ALREADY_EXISTS and kw["name"] in listed]
    assert not leaked, f"rejected topics were created anyway: {leaked}"


@pytest.mark.timeout(60)
@admin_clients
def test_describe_cluster_and_metadata(broker, topic_name, client):
    with client.admin(broker.bootstrap) as admin:
        admin.create_topic(topic_name, partitions=2)
        first, second = admin.describe_cluster(), admin.describe_cluster()
        topics = admin.topics()
    assert first.cluster_id, f"no cluster id: {first}"
    assert first == second, "the cluster id or the broker list changed between two calls"
    ((node_id, host, port),) = first.brokers
    assert (host, port) == ("127.0.0.1", broker.port)
    assert first.controller_id == node_id
    assert topics.get(topic_name) == 2


@pytest.mark.timeout(60)
@admin_clients
def test_describe_cluster_shows_the_advertised_listener(broker_factory, client):
    """advertised.listeners is what metadata names, not the listening address: here a forwarding
    proxy on another port, which the clients then use for everything after bootstrap."""
    proxy = LoseOneProduceResponse(cut_produce_number=None)
    broker = broker_factory({"advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy.port}"})
    proxy.start(broker.port)
    try:
        with client.admin(broker.bootstrap) as admin:
            cluster = admin.describe_cluster()
        assert [(host, port) for _, host, port in cluster.brokers] == [("127.0.0.1", proxy.port)]
    finally:
        proxy.stop()


@pytest.mark.timeout(60)
@admin_clients
def test_describe_broker_configs(broker, client):
    with client.admin(broker.bootstrap) as admin:
        ((node_id, _, _),) = admin.describe_cluster().brokers
        configs = admin.broker_configs(node_id)
    expected = {
        "message.max.bytes": ("1048588", "DEFAULT_CONFIG"),
        "num.partitions": ("1", "DEFAULT_CONFIG"),
        "log.segment.bytes": ("1073741824", "DEFAULT_CONFIG"),
        "log.retention.hours": ("168", "DEFAULT_CONFIG"),
        "log.retention.ms": (None, "DEFAULT_CONFIG"),  # Kafka: no default, log.retention.hours rules
        "auto.create.topics.enable": ("true", "DEFAULT_CONFIG"),
        "log.dirs": (str(broker.data_dir), "STATIC_BROKER_CONFIG"),
    }
    assert _entries(configs, expected) == expected


@pytest.mark.timeout(90)
@pytest.mark.parametrize("client", [BY_NAME["kafka-python"], BY_NAME["confluent-kafka"]], ids=str)
def test_broker_settings_given_at_start_are_static_and_inherited(broker_factory, topic_name, client):
    """A broker started with -o num.partitions=3 -o log.retention.ms=7200000: describe shows them
    as STATIC_BROKER_CONFIG, a topic created without a partition count gets 3 partitions
    (CreateTopics v4+ with -1, KIP-464) and inherits retention.ms from the broker.
    aiokafka is left out: it sends CreateTopics v3, which cannot ask for the broker's default."""
    broker = broker_factory({"num.partitions": "3", "log.retention.ms": "7200000"})
    with client.admin(broker.bootstrap) as admin:
        ((node_id, _, _),) = admin.describe_cluster().brokers
        broker_configs = admin.broker_configs(node_id)
        admin.create_topic(topic_name, partitions=-1, replication_factor=-1)
        topics = admin.topics()
        topic_configs = admin.topic_configs(topic_name)
    assert _entries(broker_configs, ["num.partitions", "log.retention.ms"]) == {
        "num.partitions": ("3", "STATIC_BROKER_CONFIG"), "log.retention.ms": ("7200000", "STATIC_BROKER_CONFIG")}
    assert topics.get(topic_name) == 3
    assert _entries(topic_configs, ["retention.ms"]) == {"retention.ms": ("7200000", "STATIC_BROKER_CONFIG")}


@pytest.mark.timeout(60)
@admin_clients
def test_alter_configs_then_describe(broker, topic_name, client):
    """Incremental alter (kafka-python, confluent-kafka) touches only the keys it names;
    aiokafka's AlterConfigs replaces the topic's whole override set, as Kafka defines it."""
    with client.admin(broker.bootstrap) as admin:
        admin.create_topic(topic_name, partitions=1, configs={
            "retention.ms": "3600000", "cleanup.policy": "compact", "segment.bytes": "1048576"})
        if admin.incremental_alter:
            admin.alter_topic_configs(topic_name, {"retention.ms": "7200000"}, delete=["cleanup.policy"])
            expected = {"retention.ms": ("7200000", "DYNAMIC_TOPIC_CONFIG"),
                        "cleanup.policy": ("delete", "DEFAULT_CONFIG"),
                        "segment.bytes": ("1048576", "DYNAMIC_TOPIC_CONFIG")}
        else:
            admin.alter_topic_configs(topic_name, {"retention.ms": "7200000"})
            expected = {"retention.ms": ("7200000", "DYNAMIC_TOPIC_CONFIG"),
                        "cleanup.policy": ("delete", "DEFAULT_CONFIG"),
                        "segment.bytes": ("1073741824", "DEFAULT_CONFIG")}
        assert _entries(admin.topic_configs(topic_name), expected) == expected

        with pytest.raises(KafkaError) as bad_value:
            admin.alter_topic_configs(topic_name, {"retention.ms": "soon"})
        assert bad_value.value.code == INVALID_CONFIG
        with pytest.raises(KafkaError) as unknown_topic:
            admin.alter_topic_configs(f"{topic_name}-missing", {"retention.ms": "1000"})
        assert unknown_topic.value.code == UNKNOWN_TOPIC_OR_PARTITION
        assert _entries(admin.topic_configs(topic_name), expected) == expected


@pytest.mark.timeout(90)
@admin_clients
def test_create_partitions_then_use_them(broker, topic_name, client):
    with client.admin(broker.bootstrap) as admin:
        admin.create_topic(topic_name, partitions=2)
        admin.create_partitions(topic_name, 5)
        assert admin.topics().get(topic_name) == 5
        with pytest.raises(KafkaError) as fewer:
            admin.create_partitions(topic_name, 3)
        assert fewer.value.code == INVALID_PARTITIONS
        assert admin.topics().get(topic_name) == 5
    records = simple_records(client, 100, partitions=5, prefix="grown")
    deliveries = client.produce(broker.bootstrap, topic_name, records)
    assert_delivered(deliveries, offsets=True)
    assert_same_records(records, client.consume(broker.bootstrap, topic_name, ranges_for(records)),
                        deliveries=deliveries)


@pytest.mark.timeout(90)
@admin_clients
def test_delete_records_moves_the_log_start(broker, topic_name, client):
    create_topic(client, broker.bootstrap, topic_name, partitions=2)
    records = simple_records(client, 40, partitions=2, prefix="dr")  # 20 per partition, offsets 0-19
    assert_delivered(client.produce(broker.bootstrap, topic_name, records), offsets=True)
    with client.admin(broker.bootstrap) as admin:
        assert admin.delete_records(topic_name, {0: 15, 1: 20}) == {0: 15, 1: 20}
        with pytest.raises(KafkaError) as beyond:
            admin.delete_records(topic_name, {0: 21})
        assert beyond.value.code == OFFSET_OUT_OF_RANGE
    assert client.earliest(broker.bootstrap, topic_name, [0, 1]) == {0: 15, 1: 20}
    assert client.latest(broker.bootstrap, topic_name, [0, 1]) == {0: 20, 1: 20}
    tail = [r for r in records if r.partition == 0][15:]
    assert_same_records(tail, client.consume(broker.bootstrap, topic_name, {0: (15, 20)}), start_offsets={0: 15})


@pytest.mark.timeout(90)
@admin_clients
def test_delete_topic_removes_its_data(broker, topic_name, client):
    create_topic(client, broker.bootstrap, topic_name, partitions=2)
    old = simple_records(client, 50, partitions=2, prefix="old")
    assert_delivered(client.produce(broker.bootstrap, topic_name, old), offsets=True)
    with client.admin(broker.bootstrap) as admin:
        admin.delete_topic(topic_name)
        assert topic_name not in admin.topics()
        with pytest.raises(KafkaError) as again:
            admin.delete_topic(topic_name)
        assert again.value.code == UNKNOWN_TOPIC_OR_PARTITION
        # The same name again is a new, empty topic: nothing of the old log may come back.
        admin.create_topic(topic_name, partitions=2)
    assert client.latest(broker.bootstrap, topic_name, [0, 1]) == {0: 0, 1: 0}
    new = simple_records(client, 10, partitions=2, prefix="new")
    deliveries = client.produce(broker.bootstrap, topic_name, new)
    assert_delivered(deliveries, offsets=True)
    assert_same_records(new, client.consume(broker.bootstrap, topic_name, ranges_for(new)), deliveries=deliveries)


@pytest.mark.timeout(90)
@admin_clients
def test_a_deleted_topic_cannot_be_read(broker, topic_name, client):
    create_topic(client, broker.bootstrap, topic_name, partitions=1)
    old = simple_records(client, 20, partitions=1, prefix="gone")
    assert_delivered(client.produce(broker.bootstrap, topic_name, old), offsets=True)
    with client.admin(broker.bootstrap) as admin:
        admin.delete_topic(topic_name)
    try:
        received = client.consume(broker.bootstrap, topic_name, {0: (0, 1)}, timeout=5)
    except ConsumeTimeout as nothing:
        received = nothing.received
    except KafkaError as refused:
        assert refused.code == UNKNOWN_TOPIC_OR_PARTITION, refused
        received = []
    assert received == [], f"read {len(received)} records of a deleted topic, first {received[0]}"
