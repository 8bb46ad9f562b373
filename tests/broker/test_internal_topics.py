"""Internal topics are the broker's: clients cannot create them with the broker defaults,
append to them, or delete their records (Kafka's AutoTopicCreationManager and ReplicaManager).

Each case talks to a real broker subprocess over a socket.
"""
from __future__ import annotations

import pytest

from kbroker.errors import ErrorCode
from kbroker.wire.messages.create_topics import CreatableTopic, CreatableTopicConfig, CreateTopicsRequest
from kbroker.wire.messages.delete_records import DeleteRecordsPartition, DeleteRecordsRequest, DeleteRecordsTopic
from kbroker.wire.messages.describe_configs import DescribeConfigsRequest, DescribeConfigsResource
from kbroker.wire.messages.metadata import MetadataRequest, MetadataRequestTopic
from kbroker.wire.messages.produce import PartitionProduceData, ProduceRequest, TopicProduceData
from kbroker.wire.records import Record, build_batch
from tests.wire_client import WireClient

PRODUCE, METADATA, CREATE_TOPICS, DELETE_RECORDS, DESCRIBE_CONFIGS = 0, 3, 19, 21, 32
TOPIC_RESOURCE = 2


def metadata(client: WireClient, name: str, allow_auto_create: bool = True):
    return client.request(METADATA, 12, MetadataRequest(
        topics=[MetadataRequestTopic(name=name)], allow_auto_topic_creation=allow_auto_create)).topics[0]


def topic_configs(client: WireClient, name: str) -> dict[str, str]:
    result = client.request(DESCRIBE_CONFIGS, 4, DescribeConfigsRequest(
        resources=[DescribeConfigsResource(resource_type=TOPIC_RESOURCE, resource_name=name, configuration_keys=None)]))
    return {c.name: c.value for c in result.results[0].configs}


def create_topic(client: WireClient, name: str, configs: dict[str, str] | None = None) -> None:
    response = client.request(CREATE_TOPICS, 7, CreateTopicsRequest(topics=[CreatableTopic(
        name=name, num_partitions=1, replication_factor=1,
        configs=[CreatableTopicConfig(name=k, value=v) for k, v in (configs or {}).items()])], timeout_ms=5000))
    assert response.topics[0].error_code == 0


def delete_records(client: WireClient, name: str, offset: int = -1):
    response = client.request(DELETE_RECORDS, 2, DeleteRecordsRequest(topics=[DeleteRecordsTopic(
        name=name, partitions=[DeleteRecordsPartition(partition_index=0, offset=offset)])], timeout_ms=5000))
    return response.topics[0].partitions[0]


def test_metadata_auto_creates_the_offsets_topic_with_the_coordinators_settings(broker):
    with WireClient(broker.bootstrap) as client:
        topic = metadata(client, "__consumer_offsets")
        assert topic.error_code == 0 and topic.is_internal
        assert len(topic.partitions) == 50  # offsets.topic.num.partitions, not num.partitions
        configs = topic_configs(client, "__consumer_offsets")
    assert configs["cleanup.policy"] == "compact"
    assert configs["segment.bytes"] == str(100 * 1024 * 1024)  # offsets.topic.segment.bytes


def test_metadata_does_not_create_the_transaction_state_topic(broker):
    """Nothing here owns __transaction_state, so nothing may create it with the broker defaults."""
    with WireClient(broker.bootstrap) as client:
        assert metadata(client, "__transaction_state").error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        assert metadata(client, "__transaction_state").error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION


def test_produce_to_the_offsets_topic_is_refused(broker):
    batch = build_batch([Record(0, 1_700_000_000_000, b"k", b"v")])
    with WireClient(broker.bootstrap) as client:
        response = client.request(PRODUCE, 9, ProduceRequest(acks=-1, timeout_ms=5000, topic_data=[TopicProduceData(
            name="__consumer_offsets", partition_data=[PartitionProduceData(index=0, records=batch)])]))
    result = response.responses[0].partition_responses[0]
    assert result.error_code == ErrorCode.INVALID_TOPIC_EXCEPTION


def test_delete_records_of_the_offsets_topic_is_refused(broker):
    with WireClient(broker.bootstrap) as client:
        metadata(client, "__consumer_offsets")
        result = delete_records(client, "__consumer_offsets")
    assert (result.error_code, result.low_watermark) == (ErrorCode.INVALID_TOPIC_EXCEPTION, -1)


def test_delete_records_of_a_compacted_topic_is_a_policy_violation(broker, topic_name):
    with WireClient(broker.bootstrap) as client:
        create_topic(client, topic_name, {"cleanup.policy": "compact"})
        assert delete_records(client, topic_name).error_code == ErrorCode.POLICY_VIOLATION


@pytest.mark.parametrize("offset", [-2, 1])
def test_delete_records_outside_the_log_is_out_of_range(broker, topic_name, offset):
    with WireClient(broker.bootstrap) as client:
        create_topic(client, topic_name)
        assert delete_records(client, topic_name, offset).error_code == ErrorCode.OFFSET_OUT_OF_RANGE


def test_auto_creating_a_colliding_name_is_answered_per_topic(broker, topic_name):
    """`a_b` while `a.b` exists: Kafka refuses the creation; the answer says so, the connection stays."""
    dotted = topic_name.replace("-", ".")
    with WireClient(broker.bootstrap) as client:
        create_topic(client, dotted)
        assert metadata(client, dotted.replace(".", "_")).error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
        assert metadata(client, dotted).error_code == 0
