"""Dynamic broker configs (KIP-226) with the admin clients of kafka-python, confluent-kafka
(IncrementalAlterConfigs) and aiokafka (AlterConfigs): a dynamic key set on ConfigResource(BROKER,
"<id>") is in force at once and after a restart, DescribeConfigs shows where each value comes from
and which keys are read-only, and a read-only key is refused with INVALID_REQUEST as Kafka refuses
it. The cluster default (BROKER, "") is tested with the wire client
(tests/broker/test_dynamic_broker_config.py): these three clients refuse an empty broker name
before sending anything."""
from __future__ import annotations

import json

import pytest
from kazoo.client import KazooClient

from compat_tests.clients import ADMIN_CLIENTS, BY_NAME, KafkaError, Record, create_topic
from kbroker.wire.messages.describe_configs import DescribeConfigsRequest, DescribeConfigsResource
from kbroker.wire.messages.incremental_alter_configs import (
    AlterableConfig as IncrementalConfig,
    AlterConfigsResource as IncrementalResource,
    IncrementalAlterConfigsRequest,
)
from tests.waiting import wait_until
from tests.wire_client import WireClient

INVALID_REQUEST = 42
MESSAGE_TOO_LARGE = 10
BROKER = 4
DESCRIBE_CONFIGS, INCREMENTAL_ALTER_CONFIGS = 32, 44
DYNAMIC_BROKER, DYNAMIC_DEFAULT, DEFAULT = 2, 3, 5

incremental_clients = pytest.mark.parametrize("client", [BY_NAME["kafka-python"], BY_NAME["confluent-kafka"]],
                                              ids=str)


def _source(configs: dict, key: str) -> tuple[str | None, str]:
    return configs[key].value, configs[key].source


@pytest.mark.timeout(90)
@incremental_clients
def test_a_dynamic_key_is_in_force_at_once_and_described(broker_factory, topic_name, client):
    broker = broker_factory()
    create_topic(client, broker.bootstrap, topic_name, partitions=1)
    with client.admin(broker.bootstrap) as admin:
        admin.alter_broker_configs(1, {"message.max.bytes": "2000", "log.retention.ms": "3600000"})
        node = admin.broker_configs(1)
        topic = admin.topic_configs(topic_name)
    assert _source(node, "message.max.bytes") == ("2000", "DYNAMIC_BROKER_CONFIG")
    assert not node["message.max.bytes"].read_only and node["num.partitions"].read_only
    # the topic has no override of its own: it follows the broker
    assert _source(topic, "max.message.bytes") == ("2000", "DYNAMIC_BROKER_CONFIG")
    assert _source(topic, "retention.ms") == ("3600000", "DYNAMIC_BROKER_CONFIG")
    (rejected,) = client.produce(broker.bootstrap, topic_name, [Record(0, None, b"x" * 2500)])
    assert rejected.error_code == MESSAGE_TOO_LARGE, f"the client reported {rejected}"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("client", ADMIN_CLIENTS, ids=str)
def test_a_read_only_key_is_invalid_request(broker, client):
    with client.admin(broker.bootstrap) as admin:
        with pytest.raises(KafkaError) as refused:
            admin.alter_broker_configs(1, {"num.partitions": "3"})
        assert refused.value.code == INVALID_REQUEST
        assert "Cannot update these configs dynamically: Set(num.partitions)" in refused.value.text
        assert _source(admin.broker_configs(1), "num.partitions") == ("1", "DEFAULT_CONFIG")


@pytest.mark.timeout(90)
def test_dynamic_configs_survive_a_restart(broker_factory, topic_name):
    client = BY_NAME["confluent-kafka"]
    broker = broker_factory({"message.max.bytes": "900000"})
    with client.admin(broker.bootstrap) as admin:
        admin.alter_broker_configs(1, {"message.max.bytes": "2000"})
    broker.restart()
    create_topic(client, broker.bootstrap, topic_name, partitions=1)
    with client.admin(broker.bootstrap) as admin:
        assert _source(admin.broker_configs(1), "message.max.bytes") == ("2000", "DYNAMIC_BROKER_CONFIG")
        admin.alter_broker_configs(1, {}, delete=["message.max.bytes"])
        assert _source(admin.broker_configs(1), "message.max.bytes") == ("900000", "STATIC_BROKER_CONFIG")
    assert client.produce(broker.bootstrap, topic_name, [Record(0, None, b"x" * 2500)])[0].error_code is None


@pytest.mark.timeout(60)
def test_aiokafka_alter_configs_sets_the_brokers_whole_dynamic_set(broker_factory):
    client = BY_NAME["aiokafka"]
    broker = broker_factory()
    with client.admin(broker.bootstrap) as admin:
        admin.alter_broker_configs(1, {"message.max.bytes": "2000", "log.retention.bytes": "1000000"})
        admin.alter_broker_configs(1, {"log.retention.bytes": "5000000"})
        configs = admin.broker_configs(1)
    assert _source(configs, "log.retention.bytes") == ("5000000", "DYNAMIC_BROKER_CONFIG")
    assert _source(configs, "message.max.bytes") == ("1048588", "DEFAULT_CONFIG")


def _describe_broker(bootstrap: str, name: str) -> dict[str, tuple[str | None, int]]:
    with WireClient(bootstrap) as wire:
        return _describe_broker_via(wire, name)


def _describe_broker_via(wire: WireClient, name: str) -> dict[str, tuple[str | None, int]]:
    (result,) = wire.request(DESCRIBE_CONFIGS, 4, DescribeConfigsRequest(resources=[DescribeConfigsResource(
        resource_type=BROKER, resource_name=name, configuration_keys=None)])).results
    return {entry.name: (entry.value, entry.config_source) for entry in result.configs}


@pytest.mark.timeout(120)
def test_a_cluster_default_set_through_one_broker_is_in_force_on_every_broker(cluster_factory):
    """Kafka's znodes: /config/brokers/<default> for the cluster default (sent with an empty broker
    name, which only the wire client here can send), /config/brokers/<id> for one broker's own;
    every broker follows the default, and a broker restarted reads both back."""
    cluster = cluster_factory(2)
    with WireClient(cluster.bootstrap(1)) as wire:
        (answer,) = wire.request(INCREMENTAL_ALTER_CONFIGS, 1, IncrementalAlterConfigsRequest(
            validate_only=False, resources=[IncrementalResource(resource_type=BROKER, resource_name="", configs=[
                IncrementalConfig(name="message.max.bytes", config_operation=0, value="2000")])])).responses
    assert answer.error_code == 0, answer.error_message
    with BY_NAME["confluent-kafka"].admin(cluster.bootstrap(2)) as admin:
        admin.alter_broker_configs(2, {"log.retention.ms": "3600000"})
    for node in (1, 2):
        wait_until(lambda: _describe_broker(cluster.bootstrap(node), str(node))["message.max.bytes"] == (
            "2000", DYNAMIC_DEFAULT), f"broker {node} to follow the cluster default")
    assert _describe_broker(cluster.bootstrap(1), "1")["log.retention.ms"] == (None, DEFAULT)
    assert _describe_broker(cluster.bootstrap(2), "2")["log.retention.ms"] == ("3600000", DYNAMIC_BROKER)
    assert _describe_broker(cluster.bootstrap(2), "") == {"message.max.bytes": ("2000", DYNAMIC_DEFAULT)}

    zk = KazooClient(hosts=cluster.zookeeper.connect + cluster.chroot)
    zk.start()
    try:
        znodes = {name: json.loads(zk.get(f"/config/brokers/{name}")[0]) for name in ("<default>", "2")}
    finally:
        zk.stop()
        zk.close()
    assert znodes == {"<default>": {"version": 1, "config": {"message.max.bytes": "2000"}},
                      "2": {"version": 1, "config": {"log.retention.ms": "3600000"}}}

    cluster.brokers[2].restart()
    wait_until(lambda: _describe_broker(cluster.bootstrap(2), "2")["log.retention.ms"] == ("3600000", DYNAMIC_BROKER),
               "the restarted broker to read its dynamic configs back")
    assert _describe_broker(cluster.bootstrap(2), "2")["message.max.bytes"] == ("2000", DYNAMIC_DEFAULT)


@pytest.mark.timeout(60)
def test_a_lowered_connection_limit_refuses_new_connections_only(broker_factory):
    """max.connections.per.ip.overrides set at run time: the admin's open connection stays, a new
    one from the same address is closed at once; removing the override admits it again."""
    broker = broker_factory()
    with BY_NAME["kafka-python"].admin(broker.bootstrap) as admin:
        admin.alter_broker_configs(1, {"max.connections.per.ip.overrides": "127.0.0.1:1"})
        with WireClient(broker.bootstrap) as refused:
            assert refused.is_closed_by_peer()
        admin.alter_broker_configs(1, {}, delete=["max.connections.per.ip.overrides"])
        with WireClient(broker.bootstrap) as admitted:
            assert _describe_broker_via(admitted, "1")["max.connections.per.ip.overrides"] == ("", DEFAULT)
