"""The Produce handler translates: a request into partition-service appends, their results (and
what failed after appending) into per-partition answers. In-process, on the service's in-memory
twin (partition_twin.py), no sockets; the service itself is tested in test_partitions.py."""
from __future__ import annotations

import pytest

from kbroker.broker.broker import Broker
from kbroker.broker.dispatch import NO_RESPONSE
from kbroker.broker.handlers.produce import handle_produce
from kbroker.broker.partitions import AppendError
from kbroker.errors import ErrorCode
from kbroker.wire.messages.produce import PartitionProduceData, ProduceRequest, TopicProduceData
from tests.broker.partition_twin import answered, context, twin_broker
from tests.broker.test_bad_input import batch
from tests.broker.test_dispatch_fuzz import FakeConnection

PRODUCE = 0


@pytest.fixture
async def on_twin(tmp_path):
    async with twin_broker(tmp_path, {"plain": 1, "other": 1}) as pair:
        yield pair


def _request(acks: int, *targets: tuple[str, int]) -> ProduceRequest:
    return ProduceRequest(acks=acks, timeout_ms=5000, transactional_id=None, topic_data=[
        TopicProduceData(name=topic, partition_data=[PartitionProduceData(index=partition, records=batch(b"v"))])
        for topic, partition in targets])


async def _produce(broker: Broker, request: ProduceRequest, connection: FakeConnection | None = None):
    return await answered(handle_produce(context(broker, PRODUCE, 9, connection or FakeConnection()), request))


def _codes(response) -> list[tuple[str, int, int]]:
    return [(topic.name, p.index, p.error_code) for topic in response.responses for p in topic.partition_responses]


async def test_each_partition_is_answered_in_the_request_order(on_twin):
    broker, twin = on_twin
    response = await _produce(broker, _request(1, ("plain", 0), ("nope", 0), ("other", 0), ("plain", 7),
                                               ("plain", 0)))
    assert _codes(response) == [("plain", 0, 0), ("nope", 0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
                                ("other", 0, 0), ("plain", 7, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION), ("plain", 0, 0)]
    assert [p.base_offset for topic in response.responses for p in topic.partition_responses] == [0, -1, 0, -1, 1]
    assert twin.partitions[("plain", 0)].high_watermark == 2


async def test_a_failure_after_the_append_fails_only_its_partition(on_twin):
    broker, twin = on_twin
    twin.fail_after_append[("other", 0)] = AppendError(ErrorCode.KAFKA_STORAGE_ERROR, "Disk error: injected", 0)
    response = await _produce(broker, _request(1, ("plain", 0), ("other", 0)))
    assert _codes(response) == [("plain", 0, 0), ("other", 0, ErrorCode.KAFKA_STORAGE_ERROR)]
    refused = response.responses[1].partition_responses[0]
    assert refused.base_offset == -1 and refused.error_message == "Disk error: injected"
    assert response.responses[0].partition_responses[0].base_offset == 0


async def test_acks_0_has_no_answer_and_a_failure_closes_the_connection(on_twin):
    broker, twin = on_twin
    connection = FakeConnection()
    assert await _produce(broker, _request(0, ("plain", 0)), connection) is NO_RESPONSE
    assert connection.closed is None and twin.partitions[("plain", 0)].log_end_offset == 1
    assert await _produce(broker, _request(0, ("nope", 0)), connection) is NO_RESPONSE
    assert connection.closed is not None


async def test_invalid_acks_append_nothing(on_twin):
    broker, twin = on_twin
    response = await _produce(broker, _request(2, ("plain", 0)))
    assert _codes(response) == [("plain", 0, ErrorCode.INVALID_REQUIRED_ACKS)]
    assert twin.partitions[("plain", 0)].log_end_offset == 0
