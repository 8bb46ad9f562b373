"""A broker process started on a damaged data dir cuts what is bad, rebuilds what is derived, and serves.

Records are produced with confluent-kafka (idempotent, so producer snapshots exist), the broker
stops (SIGTERM) or crashes (SIGKILL), and then everything at once is damaged: a batch cut in the
middle, a byte flipped in a last batch, a deleted .index and a garbage .timeindex, leftovers of
an interrupted cleaning and of half-written files, half-written offset checkpoints, topics.json,
meta.properties and a producer snapshot. After the restart a confluent-kafka consumer reads
exactly the records before the damage, the files pass the independent audit, and producing
continues at the right offsets.
"""
from __future__ import annotations

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.broker_process import BrokerProcess
from tests.log_audit import audit_data_dir, problems_in, read_batches

SETTINGS = {"log.segment.bytes": str(64 * 1024)}
PER_PARTITION = 1000


def _value(topic: str, partition: int, i: int) -> bytes:
    return b"%s-%d-%05d-" % (topic.encode(), partition, i) + b"v" * 150


def _produce(bootstrap: str, topic: str, partition: int, start: int, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5,
                         "batch.size": 8192})
    for i in range(start, start + count):
        producer.produce(topic, _value(topic, partition, i), partition=partition)
        producer.poll(0)
    assert producer.flush(30) == 0


def _read(bootstrap: str, topic: str, partition: int) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "damage-reader", "enable.auto.commit": False,
                         "check.crcs": True})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
        consumer.assign([TopicPartition(topic, partition, low)])
        values: list[bytes] = []
        while len(values) < high - low:
            for message in consumer.consume(high - low - len(values), 5.0) or [None]:
                assert message is not None, f"{topic}-{partition}: read {len(values)} of {high - low}"
                assert not message.error(), message.error()
                values.append(message.value())
        return values
    finally:
        consumer.close()


def _last_batch_start(segment) -> tuple[int, int]:
    """(position, base offset) of the last batch of a .log file."""
    batches, problem = read_batches(segment.read_bytes())
    assert problem is None
    return batches[-1].position, batches[-1].base_offset


@pytest.mark.timeout(180)
@pytest.mark.parametrize("shutdown", ["sigterm", "sigkill"])
def test_start_up_on_a_damaged_data_dir_serves_what_survived(tmp_path, shutdown):
    broker = BrokerProcess(tmp_path / "data", SETTINGS).start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        for future in admin.create_topics([NewTopic(t, 2, 1) for t in ("a", "b")]).values():
            future.result(30)
        for topic in ("a", "b"):
            for partition in (0, 1):
                _produce(broker.bootstrap, topic, partition, 0, PER_PARTITION)
    finally:
        broker.stop() if shutdown == "sigterm" else broker.kill()
    data = broker.data_dir

    def segments(name: str) -> list:
        return sorted((data / name).glob("*.log"))

    survivors = {(t, p): PER_PARTITION for t in ("a", "b") for p in (0, 1)}
    # a-0: the last batch cut in the middle; a-1: a byte flipped inside its last batch
    active = segments("a-0")[-1]
    position, base = _last_batch_start(active)
    with open(active, "r+b") as f:
        f.truncate(position + 100)
    survivors["a", 0] = base
    active = segments("a-1")[-1]
    position, base = _last_batch_start(active)
    raw = bytearray(active.read_bytes())
    raw[position + 80] ^= 0x40
    active.write_bytes(raw)
    survivors["a", 1] = base
    # b-0: the first segment's .index deleted, its .timeindex garbage
    first = segments("b-0")[0]
    first.with_suffix(".index").unlink()
    first.with_suffix(".timeindex").write_bytes(b"\x7f" * 30)
    # b-1: leftovers of a cleaning and of half-written files
    first = segments("b-1")[0]
    for debris in (".log.deleted", ".log.cleaned", ".index.swap", ".timeindex.cleaned"):
        first.with_name(first.name[:20] + debris).write_bytes(b"leftover")
    (data / "b-1" / "leader-epoch-checkpoint.tmp").write_text("0\n")
    # a-0: its newest producer snapshot half-written
    snapshots = sorted((data / "a-0").glob("*.snapshot"))
    if snapshots:
        snapshots[-1].write_bytes(snapshots[-1].read_bytes()[:7])
    # the data dir's own files, half-written
    for name in ("recovery-point-offset-checkpoint", "log-start-offset-checkpoint", "topics.json"):
        path = data / name
        if path.exists():
            path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    (data / "meta.properties").write_text("version=1\nnode.id=1\ncluster.id=tr")

    broker = BrokerProcess(data, SETTINGS).start()
    try:
        log = broker.log()
        assert "truncating" in log and "CRC mismatch" in log, log
        assert "rebuilt the registry" in log and "no valid cluster.id" in log, log
        for (topic, partition), count in survivors.items():
            assert _read(broker.bootstrap, topic, partition) == [_value(topic, partition, i) for i in range(count)]
        assert problems_in(audit_data_dir(data)) == []
        assert not [p.name for p in data.rglob("*") if p.name.endswith((".deleted", ".cleaned", ".swap", ".tmp"))]
        # producing continues right after what survived
        _produce(broker.bootstrap, "a", 0, survivors["a", 0], 10)
        assert _read(broker.bootstrap, "a", 0)[-10:] == [_value("a", 0, survivors["a", 0] + i) for i in range(10)]
    finally:
        broker.kill()
