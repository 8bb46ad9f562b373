"""Produce and consume with each real client: every codec, the largest record, every acks.

Each client produces with its own default settings into a topic it created (kcat: created by
confluent-kafka, kcat has no admin API) and reads back with manual assignment from offset 0.
Records are compared whole: key, value, headers (order, duplicates, empty and null values),
timestamp and type, partition, offset, per-partition order and count.
"""
from __future__ import annotations

import os

import pytest

from compat_tests.clients import ALL_CLIENTS, CODECS, Kcat, Record, admin_for, create_topic
from compat_tests.logfiles import stored_codecs
from compat_tests.records import (assert_delivered, assert_same_records, mixed_records, now_ms, ranges_for,
                                  simple_records)

PARTITIONS = 3
RECORDS_PER_CODEC = 10_000

# Kafka's default message.max.bytes is 1048588 and it bounds a whole record batch (log overhead
# included). One uncompressed record with a null key, no headers and value length v makes a
# batch of v + 72 bytes (61-byte batch header, 3-byte record length, 8 bytes of record fields),
# so the largest value the broker takes with its defaults is 1048516 bytes: a 1 MiB record.
BROKER_MESSAGE_MAX_BYTES = 1048588
LARGEST_VALUE = BROKER_MESSAGE_MAX_BYTES - 72
# The clients refuse requests above 1 MiB (kafka-python/aiokafka max_request_size, librdkafka
# message.max.bytes): a client-side limit, raised so that the broker is the one to judge.
CLIENT_MAX_REQUEST = 4 * 1024 * 1024


def _value_for(client, size: int) -> bytes:
    value = os.urandom(size)
    if isinstance(client, Kcat):  # kcat reads records from delimited input
        value = value.translate(bytes(0x20 if b in (0x1d, 0x1e, 0x1f) else b for b in range(256)))
    return value


@pytest.mark.timeout(300)
@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize("client", ALL_CLIENTS, ids=str)
def test_ten_thousand_records_round_trip_byte_for_byte(broker, topic_name, client, codec):
    create_topic(client, broker.bootstrap, topic_name, partitions=PARTITIONS)
    records = mixed_records(client, RECORDS_PER_CODEC, PARTITIONS, seed=CODECS.index(codec))

    started = now_ms()
    deliveries = client.produce(broker.bootstrap, topic_name, records, compression=codec)
    finished = now_ms()
    assert_delivered(deliveries, offsets=client.reports_offsets)

    received = client.consume(broker.bootstrap, topic_name, ranges_for(records), timeout=120)
    assert_same_records(records, received, deliveries=deliveries, window=(started, finished))
    ends = {p: stop for p, (_, stop) in ranges_for(records).items()}
    assert client.latest(broker.bootstrap, topic_name, ends) == ends
    # The codec really was used: the broker stores the client's batches as they came. (kafka-python
    # and aiokafka send a batch uncompressed when compressing does not make it smaller.)
    stored = stored_codecs(broker.data_dir, topic_name)
    assert codec in stored and stored <= {codec, "none"}, f"batches stored with codecs {stored}"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("client", ALL_CLIENTS, ids=str)
def test_one_mebibyte_record_is_stored_and_one_byte_more_is_message_too_large(broker, topic_name, client):
    create_topic(client, broker.bootstrap, topic_name, partitions=1)
    largest = Record(0, None, _value_for(client, LARGEST_VALUE))
    deliveries = client.produce(broker.bootstrap, topic_name, [largest], max_request_size=CLIENT_MAX_REQUEST)
    assert_delivered(deliveries)

    too_large = Record(0, None, _value_for(client, LARGEST_VALUE + 1))
    (rejected,) = client.produce(broker.bootstrap, topic_name, [too_large], max_request_size=CLIENT_MAX_REQUEST)
    assert rejected.error_code == 10, f"expected MESSAGE_TOO_LARGE (10), the client reported {rejected}"

    # The reader uses its default fetch sizes (1 MiB per partition): a batch larger than that
    # still comes back whole because it is the first one in the fetch (KIP-74).
    received = client.consume(broker.bootstrap, topic_name, {0: (0, 1)})
    assert_same_records([largest], received)
    assert client.latest(broker.bootstrap, topic_name, [0]) == {0: 1}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("acks", [0, 1, "all"], ids=lambda a: f"acks={a}")
@pytest.mark.parametrize("client", ALL_CLIENTS, ids=str)
def test_acks(broker, topic_name, client, acks):
    """acks=1/all: every record is acknowledged with its offset; acks=0: the producer completes
    without answers and the records arrive all the same."""
    create_topic(client, broker.bootstrap, topic_name, partitions=2)
    records = simple_records(client, 600, partitions=2, prefix=f"acks{acks}")

    deliveries = client.produce(broker.bootstrap, topic_name, records, acks=acks, flush_every=200)
    assert_delivered(deliveries, offsets=acks != 0 and client.reports_offsets)

    received = client.consume(broker.bootstrap, topic_name, ranges_for(records))
    assert_same_records(records, received, deliveries=deliveries if acks != 0 else None)
    ends = {p: stop for p, (_, stop) in ranges_for(records).items()}
    assert client.latest(broker.bootstrap, topic_name, ends) == ends


@pytest.mark.timeout(120)
@pytest.mark.parametrize("client", ALL_CLIENTS, ids=str)
def test_producing_to_an_unknown_topic_creates_it(broker, topic_name, client):
    """auto.create.topics.enable defaults to true: a producer's Metadata request (which asks for
    auto-creation) creates the topic with num.partitions (1), as log shippers expect."""
    records = simple_records(client, 50, partitions=1, prefix="auto")
    deliveries = client.produce(broker.bootstrap, topic_name, records)
    assert_delivered(deliveries, offsets=client.reports_offsets)
    with admin_for(client, broker.bootstrap) as admin:
        assert admin.topics().get(topic_name) == 1
    assert_same_records(records, client.consume(broker.bootstrap, topic_name, ranges_for(records)),
                        deliveries=deliveries)
