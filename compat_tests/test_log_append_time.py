"""A topic with message.timestamp.type=LogAppendTime: the broker's clock stamps the records; and
a CreateTime topic with a timestamp window refuses records stamped outside it.

The producers send explicit timestamps an hour old (kcat: its own CreateTime); every record
must come back stamped by the broker inside the produce call's window, with the timestamp
type LogAppendTime, and where the client reports the Produce response's log_append_time in
its delivery report, that is the timestamp the record is read with. Compressed batches too:
the broker rewrites the batch header (attributes, max timestamp, CRC), not the records.
"""
from __future__ import annotations

import dataclasses

import pytest

from compat_tests.clients import ALL_CLIENTS, AioKafka, ConfluentKafka, KafkaPython, Record, create_topic
from compat_tests.records import assert_delivered, assert_same_records, now_ms, ranges_for, simple_records


@pytest.mark.timeout(120)
@pytest.mark.parametrize("codec", ["none", "zstd"])
@pytest.mark.parametrize("client", ALL_CLIENTS, ids=str)
def test_log_append_time_is_the_brokers(broker, topic_name, client, codec):
    create_topic(client, broker.bootstrap, topic_name, partitions=2,
                 configs={"message.timestamp.type": "LogAppendTime"})
    records = simple_records(client, 400, partitions=2, prefix="lat")

    started = now_ms()
    deliveries = client.produce(broker.bootstrap, topic_name, records, compression=codec, flush_every=100)
    finished = now_ms()
    assert_delivered(deliveries, offsets=client.reports_offsets)

    received = client.consume(broker.bootstrap, topic_name, ranges_for(records))
    unstamped = [dataclasses.replace(r, timestamp=None) for r in records]
    assert_same_records(unstamped, received, deliveries=deliveries, window=(started, finished),
                        timestamp_type="LogAppendTime")
    read_at = {(r.partition, r.offset): r.timestamp for r in received}
    reported = {(d.partition, d.offset): d.timestamp for d in deliveries
                if d.offset is not None and d.timestamp is not None}
    differing = {k: (ts, read_at[k]) for k, ts in reported.items() if read_at[k] != ts}
    assert not differing, f"(partition, offset): (delivery report, read back): {dict(list(differing.items())[:5])}"


INVALID_TIMESTAMP = 32
HOUR_MS = 3_600_000


@pytest.mark.timeout(120)
@pytest.mark.parametrize("codec", ["none", "lz4"])
@pytest.mark.parametrize("client", [KafkaPython(), ConfluentKafka(), AioKafka()], ids=str)
def test_create_time_outside_the_topics_window_is_refused(broker, topic_name, client, codec):
    """KIP-937: with message.timestamp.before.max.ms / after.max.ms a CreateTime record stamped
    further from the broker's clock is refused (INVALID_TIMESTAMP) and nothing of its batch is
    appended; records inside the window are stored as usual."""
    create_topic(client, broker.bootstrap, topic_name, partitions=1,
                 configs={"message.timestamp.before.max.ms": str(HOUR_MS), "message.timestamp.after.max.ms": "60000"})
    now = now_ms()
    for stamp in (now - 2 * HOUR_MS, now + 2 * HOUR_MS):
        refused = client.produce(broker.bootstrap, topic_name, [Record(0, b"k", b"stale", timestamp=stamp)],
                                 compression=codec)
        assert refused[0].error_code == INVALID_TIMESTAMP, refused
    kept = [Record(0, b"k", b"fresh", timestamp=now - HOUR_MS // 2), Record(0, b"k", b"now")]
    deliveries = client.produce(broker.bootstrap, topic_name, kept, compression=codec)
    assert [d.error_code for d in deliveries] == [None, None], deliveries
    received = client.consume(broker.bootstrap, topic_name, {0: (0, 2)})
    assert [r.value for r in received] == [b"fresh", b"now"]  # offset 0: the refused batches took none
