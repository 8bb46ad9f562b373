"""The Produce handler translates: a request into partition-service appends, their results (and
what failed after appending) into per-partition answers. In-process broker, no sockets."""
from __future__ import annotations

import asyncio
import errno
import inspect
import os

import pytest

from kbroker.broker.broker import Broker
from kbroker.broker.dispatch import NO_RESPONSE, RequestContext
from kbroker.broker.handlers.produce import handle_produce
from kbroker.config import build_config
from kbroker.errors import ErrorCode
from kbroker.log.log_manager import LogManager
from kbroker.wire.frames import RequestHeader
from kbroker.wire.messages.produce import PartitionProduceData, ProduceRequest, TopicProduceData
from tests.broker.test_bad_input import batch
from tests.broker.test_dispatch_fuzz import FakeConnection


@pytest.fixture
async def broker(tmp_path):
    config = build_config({"log.dirs": str(tmp_path), "auto.create.topics.enable": "false"})
    logs = LogManager(config.data_dir, config.log_defaults()).load()
    logs.create_topic("plain", 1, {})
    logs.create_topic("durable", 1, {"flush.messages": "1"})
    broker = Broker(config, logs)
    yield broker
    await broker.partitions.close()
    broker.flusher.close()
    logs.shutdown()


def _request(acks: int, *targets: tuple[str, int]) -> ProduceRequest:
    return ProduceRequest(acks=acks, timeout_ms=5000, transactional_id=None, topic_data=[
        TopicProduceData(name=topic, partition_data=[PartitionProduceData(index=partition, records=batch(b"v"))])
        for topic, partition in targets])


async def _produce(broker: Broker, request: ProduceRequest, connection: FakeConnection | None = None):
    ctx = RequestContext(broker, connection or FakeConnection(), RequestHeader(0, 9, 1, "test"))
    answer = handle_produce(ctx, request)
    return await asyncio.wait_for(answer, 5) if inspect.isawaitable(answer) else answer


def _codes(response) -> list[tuple[str, int, int]]:
    return [(topic.name, p.index, p.error_code) for topic in response.responses for p in topic.partition_responses]


async def test_each_partition_is_answered_in_the_request_order(broker):
    response = await _produce(broker, _request(1, ("plain", 0), ("nope", 0), ("durable", 0), ("plain", 7)))
    assert _codes(response) == [("plain", 0, 0), ("nope", 0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
                                ("durable", 0, 0), ("plain", 7, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)]
    assert broker.logs.get_log("durable", 0).recovery_point == 1  # answered after its fsync


async def test_a_failed_fsync_fails_only_its_partition(broker, monkeypatch):
    await _produce(broker, _request(1, ("durable", 0)))  # the first append also syncs its epoch checkpoint
    monkeypatch.setattr(os, "fsync", _fail)
    response = await _produce(broker, _request(1, ("plain", 0), ("durable", 0)))
    assert _codes(response) == [("plain", 0, 0), ("durable", 0, ErrorCode.KAFKA_STORAGE_ERROR)]
    refused = response.responses[1].partition_responses[0]
    assert refused.base_offset == -1 and refused.error_message == "Disk error: injected"
    assert response.responses[0].partition_responses[0].base_offset == 0


async def test_acks_0_has_no_answer_and_a_failure_closes_the_connection(broker):
    connection = FakeConnection()
    assert await _produce(broker, _request(0, ("plain", 0)), connection) is NO_RESPONSE
    assert connection.closed is None
    assert await _produce(broker, _request(0, ("nope", 0)), connection) is NO_RESPONSE
    assert connection.closed is not None


async def test_invalid_acks_append_nothing(broker):
    response = await _produce(broker, _request(2, ("plain", 0)))
    assert _codes(response) == [("plain", 0, ErrorCode.INVALID_REQUIRED_ACKS)]
    assert broker.logs.get_log("plain", 0).log_end_offset == 0


def _fail(fd: int) -> None:
    raise OSError(errno.EIO, "injected")
