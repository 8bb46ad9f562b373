"""A broker whose data dir fills up: KAFKA_STORAGE_ERROR, reads go on, writes come back without a restart.

The data dir is a small tmpfs mounted by the test (CI runs as root); where mounting is not
allowed the test is skipped and says why. Producing until the file system is full must give
producers KAFKA_STORAGE_ERROR (retriable) and never leave a half-written batch or a log end
past the data; fetches and metadata keep working; once space is freed — by retention, then by
deleting a topic — produce works again in the same broker process.
"""
from __future__ import annotations

import errno
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kbroker.errors import ErrorCode
from tests.broker.test_bad_input import batch, produce
from tests.broker_process import BrokerProcess
from tests.log_audit import audit_data_dir, problems_in
from tests.wire_client import WireClient

FS_SIZE = 8 << 20
SETTINGS = {
    "log.segment.bytes": str(1 << 20),
    "log.flush.interval.messages": "1",
    "log.retention.check.interval.ms": "300",
}
RETENTION_MS = 6000
BIG = b"x" * 60_000
# Refused for sure once BIG is: "full" is fuzzy by a few pages (a refused append whose index entry
# found no page gives its batch's pages back; a file's last page may have room for small records).
HUGE = b"y" * 500_000


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "small-fs"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={FS_SIZE}", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs for the disk-full test: {mounted.stderr.strip() or mounted.returncode}"
        print(reason)
        pytest.skip(reason)
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def _batch(value: bytes) -> bytearray:
    return batch(value, timestamp=int(time.time() * 1000))  # retention.ms counts from the record timestamps


def _fill(client: WireClient, topic: str) -> int:
    """Produce big batches until the disk is full; return how many were acknowledged."""
    first = None
    for acknowledged in range(4 * FS_SIZE // len(BIG)):
        answer = produce(client, topic, 0, _batch(BIG))
        if answer.error_code == ErrorCode.KAFKA_STORAGE_ERROR:
            return acknowledged
        first = answer.base_offset if first is None else first
        assert answer.error_code == 0 and answer.base_offset == first + acknowledged, answer
    raise AssertionError("the file system never filled up")


def _read_values(bootstrap: str, topic: str) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "disk-full-reader", "check.crcs": True,
                         "enable.auto.commit": False})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
        consumer.assign([TopicPartition(topic, 0, low)])
        values: list[bytes] = []
        while len(values) < high - low:
            messages = consumer.consume(high - low - len(values), 10.0)
            assert messages, f"{topic}: read {len(values)} of {high - low}"
            for message in messages:
                assert not message.error(), message.error()
                values.append(message.value())
        return values
    finally:
        consumer.close()


def _confluent_produce_error(bootstrap: str, topic: str, value: bytes = b"probe") -> KafkaError | None:
    """One record with confluent-kafka, no retries: the error its delivery report carries."""
    reports: list[KafkaError | None] = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "retries": 0,
                         "enable.idempotence": False, "message.timeout.ms": 10_000, "log_level": 0})
    producer.produce(topic, value, partition=0, on_delivery=lambda err, _msg: reports.append(err))
    assert producer.flush(15) == 0
    return reports[0]


@pytest.mark.timeout(180)
def test_a_full_disk_refuses_writes_keeps_reads_and_recovers_without_a_restart(small_fs: Path):
    broker = BrokerProcess(small_fs / "data", SETTINGS)
    broker.log_path = small_fs.parent / "broker.log"  # not on the small file system
    broker.start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap})
        created = admin.create_topics([NewTopic("keep", 1, 1),
                                       NewTopic("fill", 1, 1, config={"retention.ms": str(RETENTION_MS)})])
        for future in created.values():
            future.result(30)
        with WireClient(broker.bootstrap) as client:
            kept = [b"kept-%d" % i for i in range(20)]
            for value in kept:
                assert produce(client, "keep", 0, _batch(value)).error_code == 0

            filled = _fill(client, "fill")
            # every later attempt is refused as well, and nothing of them lands in the log
            for _ in range(3):
                assert produce(client, "fill", 0, _batch(BIG)).error_code == ErrorCode.KAFKA_STORAGE_ERROR
            error = _confluent_produce_error(broker.bootstrap, "keep", HUGE)
            assert error is not None and error.code() == KafkaError.KAFKA_STORAGE_ERROR
            # with its default retries librdkafka keeps trying (the error is retriable) ...
            retried: list[KafkaError | None] = []
            patient = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "enable.idempotence": True,
                                "retry.backoff.ms": 200, "log_level": 0})
            patient.produce("keep", HUGE, partition=0, on_delivery=lambda err, _msg: retried.append(err))
            assert patient.flush(1.5) == 1 and retried == [], retried
            assert problems_in(audit_data_dir(small_fs / "data")) == []
            # reads and metadata go on
            assert _read_values(broker.bootstrap, "keep") == kept
            fill_values = _read_values(broker.bootstrap, "fill")
            assert len(fill_values) == filled and set(fill_values) == {BIG}
            assert {"keep", "fill"} <= set(admin.list_topics(timeout=10).topics)

            # ... until retention frees the rolled segments of "fill": writes work again, same process
            assert patient.flush(RETENTION_MS / 1000 + 20) == 0 and retried == [None]
            assert produce(client, "keep", 0, _batch(b"after")).base_offset == len(kept) + 1

            # full again; this time deleting the topic frees the space
            _fill(client, "fill")
            assert produce(client, "keep", 0, _batch(HUGE)).error_code == ErrorCode.KAFKA_STORAGE_ERROR
            admin.delete_topics(["fill"])["fill"].result(30)
            assert produce(client, "keep", 0, _batch(b"after delete")).error_code == 0
            assert _confluent_produce_error(broker.bootstrap, "keep") is None
        assert problems_in(audit_data_dir(small_fs / "data")) == []
        assert "appends work again" in broker.log()
        broker.stop()
        broker.start()  # and the data dir is sound for a restart
        assert _read_values(broker.bootstrap, "keep") == [*kept, HUGE, b"after", b"after delete", b"probe"]
    finally:
        broker.kill()


def test_the_small_file_system_really_fills(small_fs: Path):
    """The premise of the test above: writes on the tmpfs fail with ENOSPC at FS_SIZE."""
    with pytest.raises(OSError) as info:
        with open(small_fs / "blob", "wb") as f:
            for _ in range(2 * FS_SIZE // len(BIG)):
                f.write(BIG)
                f.flush()
    assert info.value.errno == errno.ENOSPC
