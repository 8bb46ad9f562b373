"""DescribeConfigs answers from the config declarations: each key's type (v3+), its
documentation when asked for, and a topic config's broker synonym (kbroker/config.py,
kbroker/log/config.py). Against a real broker subprocess."""
from __future__ import annotations

from kbroker.config import BROKER_CONFIGS
from kbroker.log.config import ConfigType
from kbroker.wire.messages.describe_configs import DescribeConfigsRequest, DescribeConfigsResource
from tests.broker.test_internal_topics import DESCRIBE_CONFIGS, TOPIC_RESOURCE, create_topic
from tests.wire_client import WireClient

BROKER_RESOURCE = 4
STATIC_BROKER_CONFIG, DEFAULT_CONFIG = 4, 5


def describe(client: WireClient, resource_type: int, name: str, documentation: bool, version: int = 4) -> dict:
    response = client.request(DESCRIBE_CONFIGS, version, DescribeConfigsRequest(
        resources=[DescribeConfigsResource(resource_type=resource_type, resource_name=name, configuration_keys=None)],
        include_synonyms=True, include_documentation=documentation))
    assert response.results[0].error_code == 0
    return {entry.name: entry for entry in response.results[0].configs}


def test_types_and_documentation_come_from_the_declarations(broker, topic_name):
    with WireClient(broker.bootstrap) as client:
        create_topic(client, topic_name, {"cleanup.policy": "compact"})
        topic = describe(client, TOPIC_RESOURCE, topic_name, documentation=True)
        node = describe(client, BROKER_RESOURCE, "1", documentation=True)
        plain = describe(client, BROKER_RESOURCE, "1", documentation=False)
    assert {name: ConfigType(topic[name].config_type).name for name in (
        "segment.bytes", "retention.ms", "cleanup.policy", "min.cleanable.dirty.ratio", "preallocate",
        "compression.type")} == {
        "segment.bytes": "INT", "retention.ms": "LONG", "cleanup.policy": "LIST", "min.cleanable.dirty.ratio": "DOUBLE",
        "preallocate": "BOOLEAN", "compression.type": "STRING"}
    assert {name: ConfigType(node[name].config_type).name for name in (
        "num.partitions", "auto.create.topics.enable", "log.cleaner.min.cleanable.ratio", "listeners")} == {
        "num.partitions": "LONG", "auto.create.topics.enable": "BOOLEAN", "log.cleaner.min.cleanable.ratio": "DOUBLE",
        "listeners": "STRING"}
    assert all(entry.documentation for entry in (*topic.values(), *node.values()))
    assert node["log.segment.bytes"].documentation == "The largest size of a log segment file"
    assert all(entry.documentation is None for entry in plain.values())
    # a topic config falls back to its broker synonym, which falls back to the declared default
    assert [(s.name, s.value, s.source) for s in topic["segment.bytes"].synonyms] == [
        ("log.segment.bytes", "1073741824", DEFAULT_CONFIG)]
    assert (topic["segment.bytes"].value, topic["segment.bytes"].config_source) == ("1073741824", DEFAULT_CONFIG)
    assert [s.name for s in topic["cleanup.policy"].synonyms] == ["cleanup.policy", "log.cleanup.policy"]


def test_every_declared_broker_key_is_described(broker):
    with WireClient(broker.bootstrap) as client:
        node = describe(client, BROKER_RESOURCE, "1", documentation=False)
    assert list(node) == [key.name for key in BROKER_CONFIGS]
    assert node["log.dirs"].config_source == STATIC_BROKER_CONFIG  # the test broker sets its data dir
