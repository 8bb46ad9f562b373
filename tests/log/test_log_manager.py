"""LogManager: data-dir metadata, topics, checkpoints, clean shutdown, concurrent flushes."""
from __future__ import annotations

import json
import re
import threading
import uuid
from pathlib import Path

import pytest

import kbroker.log.recovery as recovery
from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.checkpoints import uuid_to_base64
from kbroker.log.config import LogConfig
from kbroker.log.data_dir import DataDirError
from kbroker.log.log_manager import CLEAN_SHUTDOWN_MARKER, LogManager
from kbroker.log.topics import TopicInfo, validate_topic_name

from tests.log.conftest import NOW, append

DEFAULTS = LogConfig(segment_bytes=1024, index_interval_bytes=200)


def manager(data_dir: Path, node_id: int = 1) -> LogManager:
    return LogManager(data_dir, DEFAULTS, node_id=node_id).load()


def code(call, *args, **kwargs) -> ErrorCode:
    with pytest.raises(KafkaError) as info:
        call(*args, **kwargs)
    return info.value.code


def test_meta_properties_are_created_once(tmp_path: Path) -> None:
    first = manager(tmp_path)
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", first.cluster_id)
    text = (tmp_path / "meta.properties").read_text()
    assert f"cluster.id={first.cluster_id}" in text and "node.id=1" in text and "version=1" in text
    first.shutdown()
    assert manager(tmp_path).cluster_id == first.cluster_id
    with pytest.raises(DataDirError, match="node.id"):
        manager(tmp_path, node_id=2)


def test_create_topic_lays_out_kafka_dirs(tmp_path: Path) -> None:
    logs = manager(tmp_path)
    topic = logs.create_topic("orders", 3, {"retention.ms": "1000"})
    assert [p.name for p in sorted(tmp_path.glob("orders-*"))] == ["orders-0", "orders-1", "orders-2"]
    metadata = (tmp_path / "orders-1" / "partition.metadata").read_text()
    assert metadata == f"version: 0\ntopic_id: {uuid_to_base64(topic.topic_id)}\n"
    assert (tmp_path / "orders-0" / f"{0:020d}.log").exists()
    assert logs.topic("orders") == topic and logs.topic_by_id(topic.topic_id) == topic
    assert logs.get_log("orders", 2).config.retention_ms == 1000
    assert logs.get_log("orders", 3) is None and logs.topic_names() == ["orders"]
    assert [t.name for t in logs.topics()] == ["orders"] and len(logs.all_logs()) == 3


def test_topic_creation_errors(tmp_path: Path) -> None:
    logs = manager(tmp_path)
    logs.create_topic("a.b", 1, {})
    assert code(logs.create_topic, "a.b", 1, {}) == ErrorCode.TOPIC_ALREADY_EXISTS
    assert code(logs.create_topic, "a_b", 1, {}) == ErrorCode.INVALID_TOPIC_EXCEPTION
    for bad in ("", ".", "..", "x" * 250, "white space", "slash/", "ü"):
        assert code(logs.create_topic, bad, 1, {}) == ErrorCode.INVALID_TOPIC_EXCEPTION
    validate_topic_name("x" * 249)
    assert code(logs.create_topic, "zero", 0, {}) == ErrorCode.INVALID_PARTITIONS
    assert code(logs.create_topic, "cfg", 1, {"segment.bytes": "ten"}) == ErrorCode.INVALID_CONFIG
    assert code(logs.create_topic, "cfg", 1, {"no.such.config": "1"}) == ErrorCode.INVALID_CONFIG
    checked = logs.create_topic("checked", 2, {}, validate_only=True)
    assert checked.partition_count == 2 and logs.topic("checked") is None
    assert not (tmp_path / "checked-0").exists()
    given = uuid.uuid4()
    assert logs.create_topic("given", 1, {}, topic_id=given).topic_id == given


def test_delete_topic_removes_its_dirs(tmp_path: Path) -> None:
    logs = manager(tmp_path)
    logs.create_topic("gone", 2, {})
    append(logs.get_log("gone", 0))
    logs.create_topic("kept", 1, {})
    logs.delete_topic("gone")
    assert not list(tmp_path.glob("gone*")) and logs.topic("gone") is None and logs.get_log("gone", 0) is None
    assert code(logs.delete_topic, "gone") == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    logs.create_topic("gone", 1, {})
    assert logs.get_log("gone", 0).log_end_offset == 0
    logs.shutdown()
    assert manager(tmp_path).topic_names() == ["gone", "kept"]


def test_interrupted_delete_is_finished_at_start_up(tmp_path: Path) -> None:
    logs = manager(tmp_path)
    topic = logs.create_topic("doomed", 2, {})
    logs.shutdown()
    # crash after the first rename (the commit point), before the registry was rewritten
    (tmp_path / "doomed-0").rename(tmp_path / f"doomed-0.{topic.topic_id.hex}-delete")
    logs = manager(tmp_path)
    assert logs.topic("doomed") is None
    assert not list(tmp_path.glob("doomed*"))  # doomed-1 too: its partition.metadata names the topic


def test_unknown_partition_dirs_are_set_aside_not_deleted(tmp_path: Path) -> None:
    logs = manager(tmp_path)
    logs.create_topic("t", 1, {})
    logs.shutdown()
    stray = tmp_path / "ghost-0"
    stray.mkdir()
    (stray / f"{0:020d}.log").write_bytes(b"")
    (tmp_path / "not-a-partition").mkdir()
    manager(tmp_path)
    assert not stray.exists() and len(list(tmp_path.glob("ghost-0.*-stray"))) == 1
    assert (tmp_path / "not-a-partition").exists()


def test_create_partitions(tmp_path: Path) -> None:
    logs = manager(tmp_path)
    logs.create_topic("grow", 2, {})
    assert code(logs.create_partitions, "grow", 2) == ErrorCode.INVALID_PARTITIONS
    assert code(logs.create_partitions, "grow", 1) == ErrorCode.INVALID_PARTITIONS
    assert code(logs.create_partitions, "nope", 3) == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    assert logs.create_partitions("grow", 4).partition_count == 4
    assert logs.get_log("grow", 3) is not None
    logs.shutdown()
    assert manager(tmp_path).topic("grow").partition_count == 4


def test_topic_configs_persist_and_apply(tmp_path: Path) -> None:
    logs = manager(tmp_path)
    logs.create_topic("conf", 2, {"message.timestamp.type": "LogAppendTime", "min.insync.replicas": "2"})
    logs.alter_topic_configs("conf", {"retention.bytes": "5000", "segment.bytes": "2048"})
    assert logs.get_log("conf", 1).config.segment_bytes == 2048
    assert not logs.get_log("conf", 1).config.log_append_time  # the whole override set was replaced
    assert code(logs.alter_topic_configs, "conf", {"retention.ms": "-5"}) == ErrorCode.INVALID_CONFIG
    registry = json.loads((tmp_path / "topics.json").read_text())
    assert registry["topics"][0]["configs"] == {"retention.bytes": "5000", "segment.bytes": "2048"}
    logs.shutdown()
    again = manager(tmp_path)
    assert dict(again.topic("conf").configs) == {"retention.bytes": "5000", "segment.bytes": "2048"}
    assert again.get_log("conf", 0).config.retention_bytes == 5000
    assert again.get_log("conf", 0).config.segment_ms == DEFAULTS.segment_ms


def test_checkpoints_and_clean_shutdown_marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    logs = manager(tmp_path)
    assert not (tmp_path / CLEAN_SHUTDOWN_MARKER).exists()
    logs.create_topic("cp", 2, {})
    log0 = logs.get_log("cp", 0)
    for i in range(8):
        append(log0, timestamp=NOW + i)
    logs.checkpoint()  # fsyncs the rolled segment (as Kafka does on roll), not the active one
    assert log0.recovery_point == 18
    assert (tmp_path / "recovery-point-offset-checkpoint").read_text() == "0\n2\ncp 0 18\ncp 1 0\n"
    log0.delete_records_before(20)
    assert (tmp_path / "log-start-offset-checkpoint").read_text() == "0\n2\ncp 0 20\ncp 1 0\n"
    logs.shutdown()
    assert (tmp_path / CLEAN_SHUTDOWN_MARKER).exists()
    assert (tmp_path / "recovery-point-offset-checkpoint").read_text() == "0\n2\ncp 0 24\ncp 1 0\n"
    scans = []
    monkeypatch.setattr(recovery, "recover_segment", lambda segment, **kw: scans.append(segment) or 0)
    logs = manager(tmp_path)
    assert scans == [] and not (tmp_path / CLEAN_SHUTDOWN_MARKER).exists()
    assert logs.get_log("cp", 0).log_start_offset == 20 and logs.get_log("cp", 0).log_end_offset == 24


def test_unclean_start_recovers_above_the_checkpointed_recovery_point(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    logs = manager(tmp_path)
    logs.create_topic("crash", 1, {})
    log = logs.get_log("crash", 0)
    for i in range(14):
        append(log, timestamp=NOW + i)
    logs.checkpoint()  # recovery point 36: segments 0 and 18 are synced
    scans = []
    real = recovery.recover_segment
    monkeypatch.setattr(recovery, "recover_segment", lambda segment, **kw: scans.append(segment.base_offset)
                        or real(segment, **kw))
    again = manager(tmp_path)  # no shutdown: the marker is absent
    assert scans == [36] and again.get_log("crash", 0).log_end_offset == 42


def test_retention_across_logs(tmp_path: Path) -> None:
    logs = manager(tmp_path)
    logs.create_topic("old", 1, {"retention.ms": "100"})
    for i in range(8):
        append(logs.get_log("old", 0), timestamp=NOW)
    assert logs.delete_old_segments(NOW + 102) == 0
    assert logs.delete_old_segments(NOW + 103) == 2  # both segments, the active one after a roll
    assert logs.get_log("old", 0).log_start_offset == 24


def test_flush_from_another_thread_while_appending(tmp_path: Path) -> None:
    logs = LogManager(tmp_path, LogConfig(segment_bytes=4096, index_interval_bytes=100)).load()
    logs.create_topic("busy", 1, {})
    log = logs.get_log("busy", 0)
    stop = threading.Event()
    failures: list[BaseException] = []
    seen: list[int] = []

    def flusher() -> None:
        try:
            while not stop.is_set():
                log.flush()
                seen.append(log.recovery_point)
                logs.checkpoint()
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            failures.append(e)

    threads = [threading.Thread(target=flusher) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(600):
        append(log, timestamp=NOW + i)
        if i % 150 == 149:
            log.delete_records_before(log.high_watermark - 30)  # deletes segments under the flushers
    stop.set()
    for t in threads:
        t.join()
    assert failures == [] and seen
    assert all(point <= 1800 for point in seen)
    log.flush()
    assert log.recovery_point == log.log_end_offset == 1800
    logs.shutdown()
    again = manager(tmp_path)
    assert again.get_log("busy", 0).log_end_offset == 1800


def test_a_partition_moved_away_is_deleted_alone_and_stays_gone(tmp_path: Path) -> None:
    """Cluster: a replica reassigned to other brokers goes, its topic's other partitions stay; a
    deletion cut short (the directory renamed aside) is finished at start-up, the topic kept."""
    def cluster_manager() -> LogManager:
        return LogManager(tmp_path, DEFAULTS, node_id=1, cluster_id="c" * 22, hosts_every_partition=False).load()

    logs = cluster_manager()
    info = TopicInfo.of("t", uuid.uuid4(), 3, {})
    logs.host_partitions(info, [0, 1, 2])
    append(logs.get_log("t", 0))
    logs.delete_partition("t", 1)
    assert logs.get_log("t", 1) is None and not (tmp_path / "t-1").exists()
    end = logs.get_log("t", 0).log_end_offset
    assert end > 0 and logs.topic("t") == info
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("t-1")]
    (tmp_path / "t-2").rename(tmp_path / f"t-2.{info.topic_id.hex}-removed")  # a crash after the rename
    logs.shutdown()
    again = cluster_manager()
    assert again.get_log("t", 1) is None and again.get_log("t", 2) is None
    assert again.get_log("t", 0).log_end_offset == end and again.topic("t") == info
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("t-")) == ["t-0"]
    again.shutdown()


def test_segments_are_created_at_the_time_of_the_clock_given(tmp_path: Path) -> None:
    """segment.ms counts an idle segment's age from its creation (its records are stamped long ago
    here): the log manager and a truncation take that time from the injected clock."""
    clock = [NOW]
    logs = LogManager(tmp_path, DEFAULTS, clock=lambda: clock[0]).load()
    logs.create_topic("t", 1, {"segment.ms": "1000"})
    log = logs.get_log("t", 0)
    append(log, timestamp=NOW - 10**9)
    assert not log.roll_if_idle(NOW + 1000)
    assert log.roll_if_idle(NOW + 1001)
    clock[0] = NOW + 5000
    log.truncate_to(0)  # back to one new, empty segment, created now
    append(log, timestamp=NOW - 10**9)
    assert not log.roll_if_idle(NOW + 6000) and log.roll_if_idle(NOW + 6001)
    logs.shutdown()
