"""ListOffsets through each client's own API: by timestamp, earliest and latest.

The records carry explicit CreateTime timestamps, so they are produced by a client that can
set them (kcat cannot; for kcat the topic is filled by confluent-kafka, the other librdkafka
client, and only the lookups go through kcat: `-Q -t topic:partition:ts` and `-o s@ts`).

Kafka's answer for a timestamp is the first offset, in log order, whose record timestamp is
at or after it, or none (-1) when there is no such record. Partition 0 holds 100 records
stamped base, base+10, ..., base+990 in 10 produce requests (10 batches). Partition 1 holds
out-of-order timestamps in two batches: [+1000, +5000, +2000] then [+3000, +4000].
"""
from __future__ import annotations

import time

import pytest

from compat_tests.clients import ALL_CLIENTS, BY_NAME, Kcat, Record, create_topic
from compat_tests.records import assert_delivered

BASE = int(time.time() * 1000) - 3_600_000
P0 = [Record(0, f"k{i}".encode(), f"v{i}".encode(), (), BASE + 10 * i) for i in range(100)]
P1 = [Record(1, f"k{i}".encode(), f"v{i}".encode(), (), BASE + ts)
      for i, ts in enumerate([1000, 5000, 2000, 3000, 4000])]

# (partition, target timestamp) -> (expected offset, timestamp of that record) or None
EXPECTED = {
    (0, BASE - 60_000): (0, BASE),          # before everything: the first record
    (0, BASE): (0, BASE),
    (0, BASE + 255): (26, BASE + 260),      # between two records: the next one
    (0, BASE + 500): (50, BASE + 500),      # a batch boundary
    (0, BASE + 990): (99, BASE + 990),      # the last record
    (0, BASE + 991): None,                  # after everything
    (1, BASE + 1000): (0, BASE + 1000),
    (1, BASE + 1500): (1, BASE + 5000),     # the first in log order at or after, not the closest
    (1, BASE + 4500): (1, BASE + 5000),
    (1, BASE + 5000): (1, BASE + 5000),
    (1, BASE + 5001): None,
}


def _rounds() -> list[dict[int, int]]:
    by_partition: dict[int, list[int]] = {}
    for partition, ts in EXPECTED:
        by_partition.setdefault(partition, []).append(ts)
    depth = max(map(len, by_partition.values()))
    return [{p: tss[i] for p, tss in by_partition.items() if i < len(tss)} for i in range(depth)]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("client", ALL_CLIENTS, ids=str)
def test_offsets_for_times_earliest_and_latest(broker, topic_name, client):
    producer = client if client.explicit_timestamps else BY_NAME["confluent-kafka"]
    create_topic(producer, broker.bootstrap, topic_name, partitions=2)
    assert_delivered(producer.produce(broker.bootstrap, topic_name, P0, flush_every=10), offsets=True)
    assert_delivered(producer.produce(broker.bootstrap, topic_name, P1, flush_every=3), offsets=True)

    assert client.earliest(broker.bootstrap, topic_name, [0, 1]) == {0: 0, 1: 0}
    assert client.latest(broker.bootstrap, topic_name, [0, 1]) == {0: 100, 1: 5}

    wrong = {}
    for targets in _rounds():  # one lookup per partition per request
        answers = client.offsets_for_times(broker.bootstrap, topic_name, targets)
        for partition, ts in targets.items():
            expected, answer = EXPECTED[(partition, ts)], answers[partition]
            if answer is not None and answer[1] is None:  # librdkafka answers the offset only
                answer = (answer[0], expected[1] if expected else None)
            if answer != expected:
                wrong[(partition, ts - BASE)] = (answer, expected)
    assert not wrong, f"(partition, target - base): (answer, expected): {wrong}"

    if isinstance(client, Kcat):
        received = client.consume_from_time(broker.bootstrap, topic_name, 0, BASE + 255, count=5)
        assert [(r.offset, r.timestamp, r.value) for r in received] == \
            [(i, BASE + 10 * i, f"v{i}".encode()) for i in range(26, 31)]
