"""The Fetch handler translates: a request into partition-service reads within its byte budget,
their results into the answer, and a long poll on the purgatory while there is too little.
In-process, on the service's in-memory twin (partition_twin.py), no sockets; the reads themselves
are tested on the real service in test_partition_contract.py."""
from __future__ import annotations

import asyncio
import uuid

import pytest

from kbroker.broker.handlers.fetch import handle_fetch
from kbroker.errors import ErrorCode
from kbroker.wire.messages.fetch import AbortedTransaction, FetchPartition, FetchRequest, FetchTopic
from tests.broker.partition_twin import answered, context, twin_broker
from tests.broker.test_dispatch_fuzz import FakeConnection
from tests.log.conftest import NOW, batch
from tests.log.test_partition_log import BATCH
from tests.waiting import wait_until_async

FETCH = 1
VERSION = 12  # topics by name; 13+ by id
WAIT_S = 5


@pytest.fixture
async def on_twin(tmp_path):
    async with twin_broker(tmp_path, {"t": 2}) as pair:
        yield pair


def _request(*wanted: tuple[str, int, int], min_bytes: int = 1, max_bytes: int = 1 << 20, max_wait_ms: int = 0,
             isolation_level: int = 0, topic_id: uuid.UUID | None = None, session_id: int = 0) -> FetchRequest:
    """A consumer's Fetch of (topic, partition, fetch offset)s, one topic entry each."""
    return FetchRequest(max_wait_ms=max_wait_ms, min_bytes=min_bytes, max_bytes=max_bytes,
                        isolation_level=isolation_level, session_id=session_id, session_epoch=-1, topics=[
                            FetchTopic(topic=topic, topic_id=topic_id or uuid.UUID(int=0), partitions=[
                                FetchPartition(partition=partition, fetch_offset=offset, partition_max_bytes=1 << 20)])
                            for topic, partition, offset in wanted], forgotten_topics_data=[], rack_id="")


def _fetch(broker, request: FetchRequest, version: int = VERSION):
    return handle_fetch(context(broker, FETCH, version, FakeConnection()), request)


def _produce(twin, partition: int = 0, data: bytearray | None = None) -> None:
    appends = twin.appends(1)
    appends.produce("t", partition, memoryview(batch() if data is None else data), 9, None, NOW)
    assert appends.complete(5000) is None


def _partitions(response) -> list:
    return [p for topic in response.responses for p in topic.partitions]


async def test_each_partition_answers_with_its_records_and_offsets_in_the_request_order(on_twin):
    broker, twin = on_twin
    _produce(twin)
    response = await answered(_fetch(broker, _request(("t", 0, 0), ("t", 5, 0), ("nope", 0, 0), ("t", 0, 9))))
    answers = _partitions(response)
    assert [(p.partition_index, p.error_code) for p in answers] == [
        (0, 0), (5, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION), (0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        (0, ErrorCode.OFFSET_OUT_OF_RANGE)]
    assert answers[0].records == twin.partitions[("t", 0)].batches[0][2]
    assert (answers[0].high_watermark, answers[0].last_stable_offset, answers[0].log_start_offset) == (3, 3, 0)
    assert answers[0].aborted_transactions is None and answers[3].high_watermark == 3
    assert answers[1].high_watermark == -1 and answers[1].records == b""


async def test_the_byte_budget_gives_the_first_partition_a_whole_batch_and_the_next_nothing(on_twin):
    broker, twin = on_twin
    _produce(twin, 0)
    _produce(twin, 1)
    answers = _partitions(await answered(_fetch(broker, _request(("t", 0, 0), ("t", 1, 0), max_bytes=BATCH // 2))))
    assert [(p.error_code, len(p.records)) for p in answers] == [(0, BATCH), (0, 0)]
    answers = _partitions(await answered(_fetch(broker, _request(("t", 0, 0), ("t", 1, 0), max_bytes=2 * BATCH))))
    assert [len(p.records) for p in answers] == [BATCH, BATCH]


async def test_topics_by_id_from_v13(on_twin):
    broker, twin = on_twin
    _produce(twin)
    known = broker.logs.topic("t").topic_id
    answers = _partitions(await answered(_fetch(broker, _request(("", 0, 0), topic_id=known), 13)))
    assert (answers[0].error_code, len(answers[0].records)) == (0, BATCH)
    answers = _partitions(await answered(_fetch(broker, _request(("", 0, 0), topic_id=uuid.uuid4()), 13)))
    assert answers[0].error_code == ErrorCode.UNKNOWN_TOPIC_ID


async def test_versions_before_the_v2_format_get_no_records(on_twin):
    broker, twin = on_twin
    _produce(twin)
    answers = _partitions(await answered(_fetch(broker, _request(("t", 0, 0), ("t", 0, 9)), 3)))
    assert [(p.error_code, p.records, p.high_watermark) for p in answers] == [
        (ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT, b"", 3)] * 2


async def test_read_committed_answers_the_aborted_transactions(on_twin):
    broker, twin = on_twin
    _produce(twin, data=batch(producer_id=7, producer_epoch=0, sequence=0, transactional=True))
    assert await twin.append_markers(7, 0, 0, False, [("t", 0)], NOW) == {("t", 0): ErrorCode.NONE}
    answers = _partitions(await answered(_fetch(broker, _request(("t", 0, 0), isolation_level=1))))
    assert answers[0].aborted_transactions == [AbortedTransaction(producer_id=7, first_offset=0)]
    assert answers[0].last_stable_offset == 4


async def test_a_long_poll_answers_once_a_produce_arrives(on_twin):
    broker, twin = on_twin
    answer = _fetch(broker, _request(("t", 0, 0), ("t", 1, 0), max_wait_ms=30_000))
    poll = asyncio.ensure_future(answer)
    await wait_until_async(lambda: broker.fetch_waiters.waiting("Fetch") == 1, "the poll to park")
    assert not poll.done()
    _produce(twin, 1)
    answers = _partitions(await asyncio.wait_for(poll, WAIT_S))
    assert [len(p.records) for p in answers] == [0, BATCH]
    assert broker.fetch_waiters.waiting("Fetch") == 0


async def test_a_long_poll_ends_empty_at_max_wait(on_twin):
    broker, _ = on_twin
    answers = _partitions(await answered(_fetch(broker, _request(("t", 0, 0), max_wait_ms=10))))
    assert [(p.error_code, p.records) for p in answers] == [(0, b"")]


async def test_an_error_answers_at_once_instead_of_waiting(on_twin):
    broker, twin = on_twin
    twin.led_elsewhere.add(("t", 1))
    answer = _fetch(broker, _request(("t", 0, 0), ("t", 1, 0), max_wait_ms=30_000))
    assert not asyncio.iscoroutine(answer)  # answered without a long poll
    assert [p.error_code for p in _partitions(answer)] == [0, ErrorCode.NOT_LEADER_OR_FOLLOWER]


async def test_a_fetch_session_is_not_found(on_twin):
    broker, _ = on_twin
    response = _fetch(broker, _request(("t", 0, 0), session_id=5))
    assert response.error_code == ErrorCode.FETCH_SESSION_ID_NOT_FOUND and response.responses == []
