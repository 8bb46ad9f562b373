"""The small pieces: topic configs, index files, the leader epoch cache, checkpoint formats."""
from __future__ import annotations

import struct
import uuid
from pathlib import Path

import pytest

from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.checkpoints import (
    MalformedCheckpoint,
    read_epochs,
    read_offsets,
    read_partition_metadata,
    uuid_from_base64,
    uuid_to_base64,
    write_offsets,
    write_partition_metadata,
)
from kbroker.log.config import LONG_MAX, LogConfig
from kbroker.log.files import OpenFiles
from kbroker.log.index import OffsetIndex, TimeIndex
from kbroker.log.leader_epochs import LeaderEpochCache

# -- LogConfig -------------------------------------------------------------------------------------


def test_kafka_defaults() -> None:
    config = LogConfig()
    assert config.topic_configs() == {
        "segment.bytes": "1073741824", "segment.ms": "604800000", "segment.index.bytes": "10485760",
        "index.interval.bytes": "4096", "flush.messages": str(LONG_MAX), "flush.ms": str(LONG_MAX),
        "max.message.bytes": "1048588", "message.timestamp.type": "CreateTime", "retention.ms": "604800000",
        "retention.bytes": "-1", "cleanup.policy": "delete", "delete.retention.ms": "86400000",
        "min.cleanable.dirty.ratio": "0.5", "min.compaction.lag.ms": "0", "max.compaction.lag.ms": str(LONG_MAX),
        # stored, not acted on: described with Kafka's defaults
        "compression.type": "producer", "file.delete.delay.ms": "60000", "follower.replication.throttled.replicas": "",
        "leader.replication.throttled.replicas": "", "local.retention.bytes": "-2", "local.retention.ms": "-2",
        "message.timestamp.after.max.ms": str(LONG_MAX), "message.timestamp.before.max.ms": str(LONG_MAX),
        "min.insync.replicas": "1", "preallocate": "false", "remote.storage.enable": "false", "segment.jitter.ms": "0",
        "unclean.leader.election.enable": "false"}


def test_the_create_time_window_falls_back_to_the_deprecated_difference() -> None:
    """KIP-937 as Kafka's LogConfig: before/after.max.ms, each unset one taken from
    difference.max.ms; no window at all by default or with LogAppendTime."""
    assert LogConfig().create_time_window_ms() is None
    assert LogConfig(message_timestamp_before_max_ms=5).create_time_window_ms() == (5, LONG_MAX)
    assert LogConfig(message_timestamp_difference_max_ms=7,
                     message_timestamp_after_max_ms=3).create_time_window_ms() == (7, 3)
    assert LogConfig(message_timestamp_before_max_ms=5,
                     message_timestamp_type="LogAppendTime").create_time_window_ms() is None
    described = LogConfig.from_topic_configs({"message.timestamp.difference.max.ms": "9"}, LogConfig())
    assert described.topic_configs()["message.timestamp.difference.max.ms"] == "9"


def test_topic_overrides_are_parsed_and_validated() -> None:
    base = LogConfig(retention_ms=1)
    config = LogConfig.from_topic_configs({"segment.bytes": "2048", "flush.ms": "100", "cleanup.policy": "delete,compact",
                                           "message.timestamp.type": "LogAppendTime", "compression.type": "lz4"}, base)
    assert (config.segment_bytes, config.flush_interval_ms, config.retention_ms) == (2048, 100, 1)
    assert config.cleanup_policy == "compact,delete" and config.deletes_old_segments and config.log_append_time
    bad = [("segment.bytes", "13"), ("segment.bytes", str(2**31)), ("retention.ms", "-2"), ("segment.ms", "x"),
           ("message.timestamp.type", "Now"), ("cleanup.policy", "keep"), ("compression.type", "brotli"),
           ("preallocate", "maybe"), ("min.insync.replicas", "0"), ("unknown.config", "1")]
    for name, value in bad:
        with pytest.raises(KafkaError) as info:
            LogConfig.from_topic_configs({name: value}, base)
        assert info.value.code == ErrorCode.INVALID_CONFIG, name


# -- indexes ---------------------------------------------------------------------------------------


def test_offset_index_lookup_truncate_and_reload(tmp_path: Path) -> None:
    index = OffsetIndex(tmp_path / "x.index", 100, 8 * 3, OpenFiles(), create=True)
    assert index.lookup(150) == (100, 0) and index.floor_position(10_000) == 0
    index.append(110, 500)
    index.append(120, 1000)
    assert (tmp_path / "x.index").read_bytes() == struct.pack(">iiii", 10, 500, 20, 1000)
    assert index.lookup(109) == (100, 0) and index.lookup(110) == (110, 500) and index.lookup(999) == (120, 1000)
    assert index.floor_position(999) == 500 and index.last_entry == (120, 1000)
    index.append(130, 1500)
    assert index.is_full
    index.truncate_to(120)
    assert len(index) == 1 and (tmp_path / "x.index").stat().st_size == 8
    index.close()
    reloaded = OffsetIndex(tmp_path / "x.index", 100, 1024, OpenFiles(), create=False)
    assert reloaded.load(log_size=600) is None and reloaded.lookup(200) == (110, 500)
    again = OffsetIndex(tmp_path / "x.index", 100, 1024, OpenFiles(), create=False)
    assert "past the log end" in again.load(log_size=400) and len(again) == 0


def test_time_index_only_grows(tmp_path: Path) -> None:
    index = TimeIndex(tmp_path / "x.timeindex", 100, 1024, OpenFiles(), create=True)
    assert index.lookup(5) == (-1, 100) and index.last_entry == (-1, 100)
    index.maybe_append(-1, 100)  # no timestamp yet: nothing to index
    index.maybe_append(1000, 105)
    index.maybe_append(1000, 110)
    index.maybe_append(900, 115)
    index.maybe_append(2000, 120)
    assert (tmp_path / "x.timeindex").read_bytes() == struct.pack(">qiqi", 1000, 5, 2000, 20)
    assert index.lookup(999) == (-1, 100) and index.lookup(1500) == (1000, 105) and index.lookup(2000) == (2000, 120)
    index.truncate_to(120)
    assert index.last_entry == (1000, 105)
    (tmp_path / "y.timeindex").write_bytes(struct.pack(">qiqi", 2000, 5, 1000, 20))
    assert "out of order" in TimeIndex(tmp_path / "y.timeindex", 100, 1024, OpenFiles(), create=False).load()


# -- leader epochs ---------------------------------------------------------------------------------


def test_leader_epoch_cache(tmp_path: Path) -> None:
    path = tmp_path / "leader-epoch-checkpoint"
    cache = LeaderEpochCache(path)
    assert cache.latest_epoch == -1 and cache.end_offset_for(0, 10) == (-1, -1)
    cache.assign(1, 10)
    cache.assign(1, 20)  # same epoch: no new entry
    cache.assign(3, 30)
    cache.assign(5, 50)
    assert path.read_text() == "0\n3\n1 10\n3 30\n5 50\n"
    assert cache.end_offset_for(0, 99) == (0, 10)
    assert cache.end_offset_for(2, 99) == (1, 30) and cache.end_offset_for(5, 99) == (5, 99)
    assert cache.end_offset_for(6, 99) == (-1, -1) and cache.end_offset_for(-1, 99) == (-1, -1)
    assert [cache.epoch_for_offset(o) for o in (5, 10, 29, 30, 1000)] == [-1, 1, 1, 3, 5]
    cache.truncate_from_start(35)
    assert cache.entries == [(3, 35), (5, 50)]
    cache.truncate_from_end(50)
    assert cache.entries == [(3, 35)] and LeaderEpochCache(path).entries == [(3, 35)]
    cache.assign(2, 60)  # an older epoch wins only by removing what contradicts it
    assert cache.entries == [(2, 60)]
    path.write_text("garbage")
    assert LeaderEpochCache(path).entries == []


# -- checkpoint files ------------------------------------------------------------------------------


def test_offset_checkpoint_format(tmp_path: Path) -> None:
    path = tmp_path / "recovery-point-offset-checkpoint"
    assert read_offsets(path) == {}
    write_offsets(path, {("b", 1): 7, ("a.x", 0): 3})
    assert path.read_text() == "0\n2\na.x 0 3\nb 1 7\n"
    assert read_offsets(path) == {("a.x", 0): 3, ("b", 1): 7}
    assert not (tmp_path / "recovery-point-offset-checkpoint.tmp").exists()
    for broken in ("1\n0\n", "0\n2\na 0 1\n", "0\n1\na 0\n", "0\n1\na x 1\n"):
        path.write_text(broken)
        with pytest.raises(MalformedCheckpoint):
            read_offsets(path)
    path.write_text("0\n1\n5 6 7\n")
    with pytest.raises(MalformedCheckpoint):
        read_epochs(path)


def test_partition_metadata_and_kafka_uuid_text(tmp_path: Path) -> None:
    topic_id = uuid.UUID("b5a1ca4e-1b4a-4a43-8e58-61a2d2b7c1f0")
    text = uuid_to_base64(topic_id)
    assert len(text) == 22 and uuid_from_base64(text) == topic_id
    write_partition_metadata(tmp_path, topic_id)
    assert (tmp_path / "partition.metadata").read_text() == f"version: 0\ntopic_id: {text}\n"
    assert read_partition_metadata(tmp_path) == topic_id
    (tmp_path / "partition.metadata").write_text("version: 1\ntopic_id: x\n")
    assert read_partition_metadata(tmp_path) is None
