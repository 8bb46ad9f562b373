"""Compaction seen by real clients (cleanup.policy=compact).

confluent-kafka (the fastest producer) writes 100,000 updates over 1,000 keys into two partitions,
lz4-compressed, then tombstones for 100 of the keys. The broker cleans every 100 ms when a log
is dirty enough (log.cleaner.backoff.ms) and rolls segments idle for segment.ms=1000
(checked every log.retention.check.interval.ms=200), so every record ends up in a cleanable
segment. The test waits until the cleaner's checkpoint (`cleaner-offset-checkpoint` in the data
dir, the first dirty offset of each partition) reaches the log end: everything was cleaned.

A tombstone survives its first cleaning, stamped with a delete horizon of delete.retention.ms=500;
1,000 more updates written after that cleaning are cleaned at least segment.ms (1000) later, past
the horizon, and that cleaning drops the tombstones. Then each client reads both partitions from the
start: exactly one record per live key, its latest value, at the offset it was written, and none
of the deleted keys. The log files must have shrunk to a few percent of the data written.
"""
from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from compat_tests.clients import ALL_CLIENTS, CODECS, ConfluentKafka, KafkaPython, Record, create_topic
from tests.broker_process import BrokerProcess
from tests.waiting import wait_until

PARTITIONS = 2
KEYS = 1000
UPDATES = 100_000
DELETED = range(0, KEYS, 10)  # every tenth key gets a tombstone
INVALID_RECORD = 87

TOPIC_CONFIGS = {"cleanup.policy": "compact", "segment.bytes": str(256 * 1024), "segment.ms": "1000",
                 "min.cleanable.dirty.ratio": "0.05", "delete.retention.ms": "500"}
BROKER_SETTINGS = {"log.cleaner.backoff.ms": "100", "log.retention.check.interval.ms": "200"}


def key(k: int) -> bytes:
    return b"key-%04d" % k


def partition_of(k: int) -> int:
    return k % PARTITIONS


def cleaner_checkpoint(data_dir: Path) -> dict[tuple[str, int], int]:
    path = data_dir / "cleaner-offset-checkpoint"
    if not path.exists():
        return {}
    lines = path.read_text().splitlines()[2:]
    return {(topic, int(partition)): int(offset) for topic, partition, offset in (line.split() for line in lines)}


def wait_until_cleaned(broker: BrokerProcess, topic: str, ends: dict[int, int], timeout: float = 120) -> None:
    def cleaned() -> bool:
        checkpoint = cleaner_checkpoint(broker.data_dir)
        return all(checkpoint.get((topic, p), -1) >= end for p, end in ends.items())
    wait_until(cleaned, lambda: f"cleaned to {ends}: {cleaner_checkpoint(broker.data_dir)}\n{broker.log()}",
               timeout, poll=0.1)


def log_bytes(data_dir: Path, topic: str) -> int:
    return sum(f.stat().st_size for p in range(PARTITIONS) for f in (data_dir / f"{topic}-{p}").glob("*.log"))


def produce(records: list[Record], bootstrap: str, topic: str, expected: dict[int, dict]) -> None:
    """Write `records`; fold them into `expected`: {partition: {key: (offset, value)}} of live keys."""
    deliveries = ConfluentKafka().produce(bootstrap, topic, records, compression="lz4")
    assert all(d.error_code is None for d in deliveries), [d for d in deliveries if d.error_code is not None][:3]
    for r, d in sorted(zip(records, deliveries), key=lambda rd: rd[1].offset):
        if r.value is None:
            expected[r.partition].pop(r.key, None)
        else:
            expected[r.partition][r.key] = (d.offset, r.value)


@pytest.fixture(scope="module")
def compacted(tmp_path_factory):
    """The topic, cleaned; per partition its end offset, and {key: (offset, value)} of live keys."""
    broker = BrokerProcess(tmp_path_factory.mktemp("compaction") / "data", BROKER_SETTINGS).start()
    topic = "compacted"
    try:
        create_topic(ConfluentKafka(), broker.bootstrap, topic, PARTITIONS, configs=TOPIC_CONFIGS)
        rng = random.Random(4)
        updates = [(rng.randrange(KEYS), i) for i in range(UPDATES)]
        records = [Record(partition_of(k), key(k), b"value-%06d-" % i + b"x" * 40) for k, i in updates]
        records += [Record(partition_of(k), key(k), None) for k in DELETED]
        expected: dict[int, dict[bytes, tuple[int, bytes]]] = {p: {} for p in range(PARTITIONS)}
        produce(records, broker.bootstrap, topic, expected)
        ends = ConfluentKafka().latest(broker.bootstrap, topic, range(PARTITIONS))
        wait_until_cleaned(broker, topic, ends)

        live = [k for k in range(KEYS) if k not in DELETED]
        more = [Record(partition_of(k), key(k), b"later-%06d" % i) for i, k in enumerate(rng.choices(live, k=1000))]
        produce(more, broker.bootstrap, topic, expected)
        ends = ConfluentKafka().latest(broker.bootstrap, topic, range(PARTITIONS))
        wait_until_cleaned(broker, topic, ends)
        assert log_bytes(broker.data_dir, topic) < 64 * KEYS  # from several MB of records

        speeds = re.findall(r"cleaned up to offset \d+ in [\d.]+ s: ([\d.]+) MB read \(([\d.]+) MB/s\)", broker.log())
        print(f"\ncleanings: {len(speeds)}, MB read / MB/s each: {speeds[-6:]}")
        yield broker, topic, ends, expected
    finally:
        broker.stop()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("client", ALL_CLIENTS, ids=str)
def test_new_consumer_reads_the_latest_value_of_each_live_key_once(compacted, client):
    broker, topic, ends, expected = compacted
    ranges = {p: (0, end) for p, end in ends.items()}
    received = client.consume(broker.bootstrap, topic, ranges, compacted=True)
    for p in range(PARTITIONS):
        got = [(r.key, (r.offset, r.value)) for r in received if r.partition == p]
        assert len(got) == len(expected[p]), f"p{p}: {len(got)} records for {len(expected[p])} live keys"
        assert dict(got) == expected[p]
        assert [offset for _, (offset, _) in got] == sorted(offset for offset, _ in expected[p].values())


@pytest.mark.timeout(120)
@pytest.mark.parametrize("client", [KafkaPython(), ConfluentKafka()], ids=str)
def test_a_record_without_a_key_is_refused(broker, topic_name, client):
    """INVALID_RECORD, as Kafka answers (aiokafka 0.14 has no class for code 87: UnknownError)."""
    create_topic(client, broker.bootstrap, topic_name, 1, configs={"cleanup.policy": "compact"})
    deliveries = client.produce(broker.bootstrap, topic_name, [Record(0, b"k", b"kept")])
    assert deliveries[0].error_code is None
    deliveries = client.produce(broker.bootstrap, topic_name, [Record(0, None, b"no key")])
    assert deliveries[0].error_code == INVALID_RECORD, deliveries


@pytest.mark.timeout(120)
@pytest.mark.parametrize("codec", CODECS)
def test_every_codec_passes_the_record_walk_and_the_key_check(broker, topic_name, codec):
    """librdkafka's batches of each codec pass the produce walk (every record boundary, decompressed
    as a stream) and, on a compacted topic, the key check, and read back byte for byte."""
    client = ConfluentKafka()
    create_topic(client, broker.bootstrap, topic_name, 1, configs={"cleanup.policy": "compact"})
    records = [Record(0, b"key-%d" % i, b"value-%d-" % i + b"x" * (i % 700), (("h", b"%d" % i),))
               for i in range(5000)]
    deliveries = client.produce(broker.bootstrap, topic_name, records, compression=codec)
    assert all(d.error_code is None for d in deliveries), [d for d in deliveries if d.error_code][:3]
    received = client.consume(broker.bootstrap, topic_name, {0: (0, len(records))}, compacted=True)
    assert [(r.key, r.value, tuple(r.headers)) for r in received] == [(r.key, r.value, r.headers) for r in records]
