"""Dynamic broker configs (KIP-226) through the config handlers, in-process: a BROKER resource's
dynamic key is checked, persisted and in force at once (the topics without their own override
follow it), a read-only key is refused as Kafka refuses it, and DescribeConfigs shows read_only,
the source and the synonyms in Kafka's order."""
from __future__ import annotations

import asyncio
import inspect
import json

import pytest

from kbroker.broker.broker import Broker
from kbroker.broker.dispatch import RequestContext
from kbroker.broker.dynamic_config import DYNAMIC_CONFIGS_FILE, DynamicBrokerConfig, load_dynamic
from kbroker.broker.handlers.configs import (
    handle_alter_configs,
    handle_describe_configs,
    handle_incremental_alter_configs,
)
from kbroker.broker.connection_quotas import peer_address
from kbroker.broker.server import Acceptor
from kbroker.cluster.config_entities import DEFAULT_ENTITY
from kbroker.config import build_config
from kbroker.errors import ErrorCode
from kbroker.log.log_manager import LogManager
from kbroker.wire.frames import RequestHeader
from kbroker.wire.messages.alter_configs import AlterableConfig, AlterConfigsRequest, AlterConfigsResource
from kbroker.wire.messages.describe_configs import DescribeConfigsRequest, DescribeConfigsResource
from kbroker.wire.messages.produce import PartitionProduceData, ProduceRequest, TopicProduceData
from kbroker.wire.messages.incremental_alter_configs import (
    AlterableConfig as IncrementalConfig,
    AlterConfigsResource as IncrementalResource,
    IncrementalAlterConfigsRequest,
)
from tests.broker.test_bad_input import batch
from tests.broker.test_dispatch_fuzz import FakeConnection
from tests.broker.test_produce_handler import _codes, _produce
from tests.cluster.memory_store import MemoryMetaStore, MemoryZooKeeper

TOPIC, BROKER = 2, 4
SET, DELETE = 0, 1
DYNAMIC_BROKER, DYNAMIC_DEFAULT, STATIC, DEFAULT = 2, 3, 4, 5
SETTINGS = {"auto.create.topics.enable": "false", "message.max.bytes": "900000"}


def _open(data_dir) -> Broker:
    config = load_dynamic(build_config({"log.dirs": str(data_dir), **SETTINGS}))
    return Broker(config, LogManager(config.data_dir, config.log_defaults()).load())


async def _close(broker: Broker) -> None:
    await broker.partitions.close()
    broker.flusher.close()
    broker.logs.shutdown()


@pytest.fixture
async def broker(tmp_path):
    broker = _open(tmp_path)
    broker.logs.create_topic("plain", 1, {})
    broker.logs.create_topic("own", 1, {"max.message.bytes": "2000000"})
    yield broker
    await _close(broker)


async def _call(broker: Broker, handler, request):
    answer = handler(RequestContext(broker, FakeConnection(), RequestHeader(0, 0, 1, "test")), request)
    return await asyncio.wait_for(answer, 5) if inspect.isawaitable(answer) else answer


async def alter(broker: Broker, name: str, changes: dict[str, str | None], validate_only: bool = False):
    """IncrementalAlterConfigs on BROKER `name`: SET each key, DELETE those given None; the answer's (code, message)."""
    response = await _call(broker, handle_incremental_alter_configs, IncrementalAlterConfigsRequest(
        validate_only=validate_only, resources=[IncrementalResource(resource_type=BROKER, resource_name=name, configs=[
            IncrementalConfig(name=k, config_operation=SET if v is not None else DELETE, value=v)
            for k, v in changes.items()])]))
    (answer,) = response.responses
    return answer.error_code, answer.error_message


async def describe(broker: Broker, resource_type: int, name: str) -> dict:
    response = await _call(broker, handle_describe_configs, DescribeConfigsRequest(
        resources=[DescribeConfigsResource(resource_type=resource_type, resource_name=name, configuration_keys=None)],
        include_synonyms=True, include_documentation=False))
    (result,) = response.results
    assert result.error_code == 0, result.error_message
    return {entry.name: entry for entry in result.configs}


def produce(broker: Broker, value: bytes, *topics: str):
    """One batch of one record to partition 0 of each topic; the answers' (topic, partition, code)."""
    request = ProduceRequest(acks=1, timeout_ms=5000, transactional_id=None, topic_data=[
        TopicProduceData(name=topic, partition_data=[PartitionProduceData(index=0, records=batch(value, timestamp=broker.now_ms()))])
        for topic in topics])
    return _produce(broker, request)


def _chain(entry) -> list[tuple[str, str | None, int]]:
    return [(s.name, s.value, s.source) for s in entry.synonyms]


async def test_describe_marks_the_static_keys_read_only(broker):
    node = await describe(broker, BROKER, "1")
    assert {name for name, entry in node.items() if not entry.read_only} >= {"message.max.bytes", "log.retention.ms"}
    assert node["node.id"].read_only and node["log.dirs"].read_only and node["log.retention.hours"].read_only
    assert (node["message.max.bytes"].value, node["message.max.bytes"].config_source) == ("900000", STATIC)
    assert await describe(broker, BROKER, "") == {}  # the cluster default sets nothing yet


async def test_a_read_only_key_is_refused_as_kafka_refuses_it(broker):
    code, message = await alter(broker, "1", {"num.partitions": "3", "message.max.bytes": "1000"})
    assert code == ErrorCode.INVALID_REQUEST
    assert message == ("Invalid config value for resource ConfigResource(type=BROKER, name='1'): "
                       "Cannot update these configs dynamically: Set(num.partitions)")
    code, message = await alter(broker, "1", {"message.max.bytes": "lots"})
    assert code == ErrorCode.INVALID_REQUEST and "message.max.bytes='lots'" in message
    assert (await alter(broker, "2", {"message.max.bytes": "1000"}))[0] == ErrorCode.INVALID_REQUEST  # not this broker
    assert broker.config.message_max_bytes == 900000  # nothing applied
    assert not (broker.config.data_dir / DYNAMIC_CONFIGS_FILE).exists()


async def test_a_lowered_message_max_bytes_refuses_a_larger_batch_at_once(broker):
    assert _codes(await produce(broker, b"v" * 2000, "plain")) == [("plain", 0, 0)]
    assert await alter(broker, "1", {"message.max.bytes": "1000"}, validate_only=True) == (0, None)
    assert broker.config.message_max_bytes == 900000  # validate_only changes nothing
    assert await alter(broker, "1", {"message.max.bytes": "1000"}) == (0, None)
    # the topic with its own max.message.bytes keeps it; the other follows the broker
    assert _codes(await produce(broker, b"v" * 2000, "plain", "own")) == [
        ("plain", 0, ErrorCode.MESSAGE_TOO_LARGE), ("own", 0, 0)]
    topic = await describe(broker, TOPIC, "plain")
    assert (topic["max.message.bytes"].value, topic["max.message.bytes"].config_source) == ("1000", DYNAMIC_BROKER)


async def test_synonyms_come_in_kafkas_order_and_deleting_falls_back(broker):
    assert await alter(broker, "", {"message.max.bytes": "5000", "log.retention.ms": "3600000"}) == (0, None)
    assert await alter(broker, "1", {"message.max.bytes": "4000"}) == (0, None)
    node = await describe(broker, BROKER, "1")
    assert _chain(node["message.max.bytes"]) == [
        ("message.max.bytes", "4000", DYNAMIC_BROKER), ("message.max.bytes", "5000", DYNAMIC_DEFAULT),
        ("message.max.bytes", "900000", STATIC), ("message.max.bytes", "1048588", DEFAULT)]
    assert (node["log.retention.ms"].value, node["log.retention.ms"].config_source) == ("3600000", DYNAMIC_DEFAULT)
    topic = await describe(broker, TOPIC, "plain")
    assert topic["retention.ms"].value == "3600000"
    assert _chain(topic["retention.ms"]) == [("log.retention.ms", "3600000", DYNAMIC_DEFAULT),
                                             ("log.retention.hours", "168", DEFAULT)]
    default = await describe(broker, BROKER, "")
    assert {name: (e.value, e.config_source) for name, e in default.items()} == {
        "message.max.bytes": ("5000", DYNAMIC_DEFAULT), "log.retention.ms": ("3600000", DYNAMIC_DEFAULT)}
    assert _chain(default["message.max.bytes"])[0] == ("message.max.bytes", "5000", DYNAMIC_DEFAULT)

    assert await alter(broker, "1", {"message.max.bytes": None}) == (0, None)
    assert broker.config.message_max_bytes == 5000
    assert broker.logs.get_log("plain", 0).config.max_message_bytes == 5000


async def test_alter_configs_replaces_the_entitys_whole_set(broker):
    """AlterConfigs (not incremental): the keys not given go back to their static values."""
    assert await alter(broker, "1", {"log.retention.bytes": "1000", "message.max.bytes": "4000"}) == (0, None)
    response = await _call(broker, handle_alter_configs, AlterConfigsRequest(validate_only=False, resources=[
        AlterConfigsResource(resource_type=BROKER, resource_name="1",
                             configs=[AlterableConfig(name="log.retention.bytes", value="2000")])]))
    assert response.responses[0].error_code == 0
    assert (broker.config.log_retention_bytes, broker.config.message_max_bytes) == (2000, 900000)


async def test_retention_follows_a_changed_default(broker):
    broker.logs.create_topic("small", 1, {"segment.bytes": "200"})
    for _ in range(6):
        assert _codes(await produce(broker, b"v" * 100, "small")) == [("small", 0, 0)]
    plog = broker.logs.get_log("small", 0)
    segments = len(plog.segments)
    assert segments > 2 and broker.logs.delete_old_segments(broker.now_ms()) == 0
    assert await alter(broker, "", {"log.retention.bytes": "300"}) == (0, None)
    assert broker.logs.delete_old_segments(broker.now_ms()) > 0
    assert plog.log_start_offset > 0 and len(plog.segments) < segments


async def test_dynamic_settings_survive_a_restart(tmp_path):
    broker = _open(tmp_path)
    try:
        assert await alter(broker, "1", {"message.max.bytes": "4000"}) == (0, None)
        assert await alter(broker, "", {"log.retention.ms": "3600000"}) == (0, None)
    finally:
        await _close(broker)
    assert json.loads((tmp_path / DYNAMIC_CONFIGS_FILE).read_text()) == {
        "1": {"message.max.bytes": "4000"}, "<default>": {"log.retention.ms": "3600000"}}
    broker = _open(tmp_path)
    try:
        assert (broker.config.message_max_bytes, broker.logs.defaults.retention_ms) == (4000, 3600000)
        node = await describe(broker, BROKER, "1")
        assert node["message.max.bytes"].config_source == DYNAMIC_BROKER
    finally:
        await _close(broker)


@pytest.mark.parametrize("stored", [json.dumps({"1": {"num.partitions": "3"}}), "{not json", "[1, 2]"])
async def test_stored_settings_that_do_not_apply_do_not_stop_the_start(tmp_path, caplog, stored):
    (tmp_path / DYNAMIC_CONFIGS_FILE).write_text(stored)
    broker = _open(tmp_path)
    try:
        assert broker.config.num_partitions == 1 and broker.config.dynamic_broker == {}
        assert "not applied" in caplog.text
    finally:
        await _close(broker)


async def test_connection_limits_change_for_new_connections(broker):
    acceptor = Acceptor(broker.config, broker.dispatcher)
    broker.dynamic_config.subscribe(acceptor.reconfigure)
    assert await alter(broker, "", {"max.connections": "5", "max.connections.per.ip": "2",
                                    "max.connections.per.ip.overrides": "127.0.0.1:7"}) == (0, None)
    quotas, local, other = acceptor.quotas, peer_address("127.0.0.1"), peer_address("10.0.0.1")
    assert (quotas.limit_for(local), quotas.limit_for(other)) == (7, 2)
    assert [quotas.admit(other) for _ in range(3)] == [True, True, False]
    assert all(quotas.admit(local) for _ in range(3)) and not quotas.slot_available()


async def test_a_cluster_broker_follows_the_store_and_logs_a_refusal_once(tmp_path, caplog):
    """Two brokers on one (in-memory) ZooKeeper: a default written through one is in force on the
    other at its next refresh (its store watch); another broker's own entity is not its business."""
    zookeeper = MemoryZooKeeper()
    one, two = (DynamicBrokerConfig(build_config({"log.dirs": str(tmp_path / str(n)), "node.id": str(n)}),
                                    MemoryMetaStore(zookeeper)) for n in (1, 2))
    seen: list[int] = []
    two.subscribe(lambda config: seen.append(config.message_max_bytes))
    await one.alter(DEFAULT_ENTITY, lambda _old: {"message.max.bytes": "2000"}, validate_only=False)
    await one.alter("1", lambda _old: {"log.retention.ms": "3600000"}, validate_only=False)
    two.refresh()
    two.refresh()  # nothing new: no second notification
    assert seen == [2000]
    assert (two.current.dynamic_default, two.current.dynamic_broker) == ({"message.max.bytes": "2000"}, {})
    assert two.current.log_retention_ms is None
    await MemoryMetaStore(zookeeper).alter_entity_configs("brokers/<default>", {"num.partitions": "7"})
    for _ in range(3):
        two.refresh()
    assert two.current.message_max_bytes == 2000 and caplog.text.count("not applied") == 1


async def test_a_lowered_segment_size_rolls_the_next_append(broker):
    """log.segment.bytes reaches the local log that rolls, not only the partition's copy."""
    plog = broker.logs.get_log("plain", 0)
    for _ in range(3):
        assert _codes(await produce(broker, b"v" * 100, "plain")) == [("plain", 0, 0)]
    assert len(plog.segments) == 1
    assert await alter(broker, "1", {"log.segment.bytes": "200"}) == (0, None)
    for _ in range(3):
        assert _codes(await produce(broker, b"v" * 100, "plain")) == [("plain", 0, 0)]
    assert len(plog.segments) >= 3
