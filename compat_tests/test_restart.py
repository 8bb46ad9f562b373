"""The log survives the broker: a clean restart (SIGTERM) and a crash (SIGKILL).

Each client produces with acks=all (the broker answers after the append), the broker goes
down, a new broker process starts on the same data directory (on a new port), and the same
client reads everything back byte for byte; new records then continue at the offsets where
the old ones ended. Topic configs and the cluster id are kept across the restart too.

The crash case runs the broker with log.flush.interval.messages=1 (fsync after every
append, so an acknowledged record is on disk) and 1 MiB segments (several per partition, so
recovery handles rolled segments and their indexes); it is killed right after the
producer's flush returned, with no chance to write checkpoints.
"""
from __future__ import annotations

import dataclasses

import pytest

from compat_tests.clients import ALL_CLIENTS, Record, admin_for, create_topic
from compat_tests.logfiles import segment_counts
from compat_tests.records import (assert_delivered, assert_same_records, mixed_records, now_ms, ranges_for,
                                  simple_records)

PARTITIONS = 3


def _ends(ranges: dict[int, tuple[int, int]]) -> dict[int, int]:
    return {p: stop for p, (_, stop) in ranges.items()}


def _produce_and_read_more(client, broker, topic, previous_ends, seed):
    """New records land right after the old ones, and read back identically."""
    more = mixed_records(client, 600, PARTITIONS, seed=seed)
    started = now_ms()
    deliveries = client.produce(broker.bootstrap, topic, more, acks="all")
    finished = now_ms()
    assert_delivered(deliveries, offsets=client.reports_offsets)
    ranges = ranges_for(more, start_offsets=previous_ends)
    received = client.consume(broker.bootstrap, topic, ranges)
    assert_same_records(more, received, start_offsets=previous_ends, deliveries=deliveries,
                        window=(started, finished))
    assert client.latest(broker.bootstrap, topic, ranges) == _ends(ranges)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("client", ALL_CLIENTS, ids=str)
def test_clean_restart_keeps_records_configs_and_cluster_id(broker_factory, topic_name, client):
    broker = broker_factory()
    create_topic(client, broker.bootstrap, topic_name, PARTITIONS, configs={"retention.ms": "86400000"})
    with admin_for(client, broker.bootstrap) as admin:
        cluster_id = admin.describe_cluster().cluster_id
    records = mixed_records(client, 3000, PARTITIONS, seed=11)
    started = now_ms()
    deliveries = client.produce(broker.bootstrap, topic_name, records, acks="all", flush_every=500)
    finished = now_ms()
    assert_delivered(deliveries, offsets=client.reports_offsets)

    exit_code = broker.stop()
    assert exit_code == 0, f"SIGTERM should shut the broker down cleanly, it exited {exit_code}:\n{broker.log()}"
    broker = broker_factory(data_dir=broker.data_dir)

    ranges = ranges_for(records)
    received = client.consume(broker.bootstrap, topic_name, ranges)
    assert_same_records(records, received, deliveries=deliveries, window=(started, finished))
    assert client.latest(broker.bootstrap, topic_name, ranges) == _ends(ranges)
    with admin_for(client, broker.bootstrap) as admin:
        assert admin.describe_cluster().cluster_id == cluster_id
        assert admin.topics().get(topic_name) == PARTITIONS
        retention = admin.topic_configs(topic_name)["retention.ms"]
        assert (retention.value, retention.source) == ("86400000", "DYNAMIC_TOPIC_CONFIG")
    _produce_and_read_more(client, broker, topic_name, _ends(ranges), seed=12)


def _bulk(client, n: int, partitions: int) -> list[Record]:
    """n records of 3 KiB, enough to roll 1 MiB segments."""
    return [dataclasses.replace(r, value=r.value * (3072 // len(r.value) + 1))
            for r in simple_records(client, n, partitions, prefix="bulk")]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("client", ALL_CLIENTS, ids=str)
def test_nothing_acknowledged_is_lost_when_the_broker_is_killed(broker_factory, topic_name, client):
    # Segments of 1 MiB: smaller ones would be below librdkafka's batch.size (1,000,000), and a
    # batch larger than segment.bytes is refused (RECORD_BATCH_TOO_LARGE), as Kafka does.
    settings = {"log.flush.interval.messages": "1", "log.segment.bytes": "1048576"}
    broker = broker_factory(settings)
    create_topic(client, broker.bootstrap, topic_name, PARTITIONS)
    records = mixed_records(client, 2000, PARTITIONS, seed=21) + _bulk(client, 1500, PARTITIONS)
    started = now_ms()
    deliveries = client.produce(broker.bootstrap, topic_name, records, acks="all", flush_every=500)
    finished = now_ms()
    assert_delivered(deliveries, offsets=client.reports_offsets)

    broker.kill()
    segments = segment_counts(broker.data_dir, topic_name)
    broker = broker_factory(settings, data_dir=broker.data_dir)

    ranges = ranges_for(records)
    received = client.consume(broker.bootstrap, topic_name, ranges)
    assert_same_records(records, received, deliveries=deliveries, window=(started, finished))
    assert client.latest(broker.bootstrap, topic_name, ranges) == _ends(ranges)
    _produce_and_read_more(client, broker, topic_name, _ends(ranges), seed=22)
    # The scenario covered rolled segments (about 1.8 MB per partition in 1 MiB segments).
    assert len(segments) == PARTITIONS and all(n >= 2 for n in segments.values()), segments
