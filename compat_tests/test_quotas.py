"""Client quotas with confluent-kafka: a producer and a consumer held to their byte rates.

Quotas are set with AlterClientQuotas (our wire client: none of the three Python clients has an
admin call for it) on client ids, over short quota windows (3 samples of 1 s) so a test lasts
seconds. librdkafka reports each throttle_time_ms it is answered with through `throttle_cb`; the
throttled client must take at least as long as its quota allows, lose nothing, and a client
without a quota must not be throttled. In a cluster: compat_tests/test_cluster_security.py.
"""
from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

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
from kbroker.blocking_client import BlockingClient
from kbroker.wire.messages.metadata import METADATA, MetadataRequest
from tests.broker_process import BrokerProcess
from tests.wire_client import WireClient

RATE = 200_000  # bytes per second
RECORDS, SIZE = 1_000, 1_000  # 1 MB: ~5 s at the quota, well under 1 s without one


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path_factory.mktemp("quotas") / "data",
                            {"quota.window.num": "3", "quota.window.size.seconds": "1"}).start()
    with WireClient(process.bootstrap) as client:
        answer = client.request(ALTER_CLIENT_QUOTAS.key, 1, AlterClientQuotasRequest(entries=[
            EntryData(entity=[EntityData(entity_type="client-id", entity_name="slow-producer")],
                      ops=[OpData(key="producer_byte_rate", value=RATE, remove=False)]),
            EntryData(entity=[EntityData(entity_type="client-id", entity_name="slow-consumer")],
                      ops=[OpData(key="consumer_byte_rate", value=RATE, remove=False)]),
        ], validate_only=False))
        assert [e.error_code for e in answer.entries] == [0, 0]
    yield process
    process.stop()


def produce(broker: BrokerProcess, topic: str, client_id: str, records: int = RECORDS,
            **config) -> tuple[list[float], list[int]]:
    """When each record was acknowledged (seconds since the first send), and the throttle times."""
    throttles: list[int] = []
    acked: list[float] = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "client.id": client_id, "linger.ms": 5,
                         "throttle_cb": lambda event: throttles.append(event.throttle_time), **config})
    started = time.monotonic()
    for i in range(records):
        producer.produce(topic, value=b"%06d" % i + b"x" * (SIZE - 6),
                         on_delivery=lambda err, _m: acked.append(time.monotonic() - started))
        producer.poll(0)
    assert producer.flush(60) == 0 and len(acked) == records
    return acked, throttles


def test_a_producer_is_held_to_its_byte_rate(broker, topic_name):
    # Batches of 20 KB: the broker can only hold a producer back between its requests.
    fast_acked, fast_throttles = produce(broker, f"{topic_name}-fast", "fast-producer", **{"batch.size": 20_000})
    slow_acked, slow_throttles = produce(broker, topic_name, "slow-producer", 3 * RECORDS, **{"batch.size": 20_000})
    assert fast_throttles == [] and slow_throttles and max(slow_throttles) > 0
    # A first span's worth (2 s at the quota) may go at once; once past it the rate is the quota's.
    steady = slow_acked[len(slow_acked) * 3 // 10:]
    rate = (len(steady) - 1) * SIZE / (steady[-1] - steady[0])
    assert abs(rate - RATE) <= 0.1 * RATE, rate
    assert fast_acked[-1] < slow_acked[-1] / 3  # the unthrottled producer keeps its own speed


def test_a_consumer_is_held_to_its_byte_rate_and_reads_everything(broker, topic_name):
    produce(broker, topic_name, "fast-producer", **{"batch.size": 50_000})  # a Fetch returns at least one batch
    throttles: list[int] = []
    # Fetches of at most 100 KB: a throttled Fetch is answered empty, so one larger than the
    # quota allows over its whole span (400 KB here) would never be sent (as in Kafka).
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "client.id": "slow-consumer",
                         "group.id": f"{topic_name}-g", "enable.auto.commit": False, "message.max.bytes": 100_000,
                         "fetch.max.bytes": 100_000, "max.partition.fetch.bytes": 100_000,
                         "throttle_cb": lambda event: throttles.append(event.throttle_time)})
    consumer.assign([TopicPartition(topic_name, 0, 0)])
    seen = []
    started = time.monotonic()
    while len(seen) < RECORDS and time.monotonic() - started < 60:
        for message in consumer.consume(500, 0.5):
            assert not message.error(), message.error()
            seen.append(int(message.value()[:6]))
    elapsed = time.monotonic() - started
    consumer.close()
    assert seen == list(range(RECORDS))  # in order, nothing lost or repeated
    assert throttles and max(throttles) > 0
    assert elapsed >= (RECORDS * SIZE - 2 * RATE) / RATE * 0.8, elapsed


def test_quotas_are_described_and_removed(broker):
    with WireClient(broker.bootstrap) as client:
        described = client.request(DESCRIBE_CLIENT_QUOTAS.key, 1, DescribeClientQuotasRequest(
            components=[ComponentData(entity_type="client-id", match_type=2, match=None)], strict=False))
        assert described.error_code == 0
        found = {e.entity[0].entity_name: {v.key: v.value for v in e.values} for e in described.entries}
        assert found["slow-producer"] == {"producer_byte_rate": RATE}
        refused = client.request(ALTER_CLIENT_QUOTAS.key, 1, AlterClientQuotasRequest(entries=[
            EntryData(entity=[EntityData(entity_type="client-id", entity_name="x")],
                      ops=[OpData(key="controller_mutation_rate", value=50, remove=False)])], validate_only=False))
        assert refused.entries[0].error_code == 42  # INVALID_REQUEST: not enforced, so not accepted


def metadata_throttles(broker: BrokerProcess, client_id: str, requests: int) -> tuple[list[int], float]:
    """The throttle_time_ms of up to `requests` Metadata answers, stopping one answer after the first
    throttled one; and how long that next answer took (s)."""
    throttles: list[int] = []
    with BlockingClient("127.0.0.1", broker.port, client_id=client_id) as client:
        for _ in range(requests):
            sent = time.monotonic()
            throttles.append(client.request(METADATA, 12, MetadataRequest(topics=None)).throttle_time_ms)
            if len(throttles) > 1 and throttles[-2] > 0:
                return throttles, time.monotonic() - sent
    return throttles, 0.0


def test_a_client_over_its_request_percentage_is_throttled(broker):
    with WireClient(broker.bootstrap) as client:
        answer = client.request(ALTER_CLIENT_QUOTAS.key, 1, AlterClientQuotasRequest(entries=[
            EntryData(entity=[EntityData(entity_type="client-id", entity_name="busy")],
                      ops=[OpData(key="request_percentage", value=0.5, remove=False)])], validate_only=False))
        assert answer.entries[0].error_code == 0
    free, _ = metadata_throttles(broker, "idle", 300)
    busy, waited = metadata_throttles(broker, "busy", 5000)  # 0.5 %: 10 ms of the broker's time per 2 s
    assert set(free) == {0}
    assert busy[-2] > 0 and busy.index(busy[-2]) > 0  # within the quota at first, then throttled
    # The connection was muted for the throttle time: the next answer waited for it.
    assert waited >= busy[-2] / 1000 * 0.9, (waited, busy[-2])
