"""What one client writes, every other client reads back byte for byte.

For each producer and codec (none, and lz4, whose framing differs between client libraries)
a topic is filled once with 300 varied records (test data from records.mixed_records, shaped
to what that producer can send); each of the other clients then reads it from offset 0.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from compat_tests.clients import ALL_CLIENTS, Client, Delivery, Record, create_topic
from compat_tests.records import assert_delivered, assert_same_records, mixed_records, now_ms, ranges_for

CODECS = ("none", "lz4")
PARTITIONS = 2


@dataclass
class Produced:
    producer: Client
    topic: str
    records: list[Record]
    deliveries: list[Delivery]
    window: tuple[int, int]


MATRIX = [(producer, codec, consumer) for producer in ALL_CLIENTS for codec in CODECS
          for consumer in ALL_CLIENTS if consumer is not producer]


@pytest.fixture(scope="module")
def produced(broker):
    """produced(producer, codec): the topic that producer filled with that codec, made once."""
    cache: dict[tuple[str, str], Produced] = {}

    def get(producer: Client, codec: str) -> Produced:
        if (producer.name, codec) not in cache:
            topic = f"cross-{producer.name}-{codec}-{uuid.uuid4().hex[:8]}"
            create_topic(producer, broker.bootstrap, topic, partitions=PARTITIONS)
            records = mixed_records(producer, 300, PARTITIONS, seed=len(cache))
            started = now_ms()
            deliveries = producer.produce(broker.bootstrap, topic, records, compression=codec)
            finished = now_ms()
            assert_delivered(deliveries, offsets=producer.reports_offsets)
            cache[(producer.name, codec)] = Produced(producer, topic, records, deliveries, (started, finished))
        return cache[(producer.name, codec)]
    return get


@pytest.mark.timeout(120)
@pytest.mark.parametrize("producer,codec,consumer", MATRIX, ids=lambda v: str(v))
def test_records_written_by_one_client_are_read_identically_by_another(broker, produced, producer, codec,
                                                                         consumer):
    topic = produced(producer, codec)
    received = consumer.consume(broker.bootstrap, topic.topic, ranges_for(topic.records))
    assert_same_records(topic.records, received, deliveries=topic.deliveries, window=topic.window)
