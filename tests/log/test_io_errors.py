"""I/O errors injected into the log: ENOSPC and EIO on writes, truncations, fsyncs and metadata files.

`Faults` wraps os.write / os.fsync / os.ftruncate / os.open: a rule names a file-name suffix, an
errno and how many calls fail; a failing write may be preceded by a short one that puts part of
the bytes on disk (what a file system about to be full does). After each failure the files must still read back as
whole valid batches (`tests/log_audit.py`) and the log's offsets must match them.
"""
from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

import kbroker.log.segment as segment_module
from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.checkpoints import write_atomically
from kbroker.log.config import LogConfig
from kbroker.log.log_manager import CLEAN_SHUTDOWN_MARKER, LogManager
from kbroker.log.partition_log import PartitionLog

from kbroker.wire.records import validate_produce_batch

from tests.log.conftest import NOW, OpenLog, append, batch
from tests.log_audit import audit_partition

BATCH = len(batch())


@dataclass
class Rule:
    call: str
    suffix: str
    code: int
    times: int
    partial: int = 0  # bytes a short write puts on disk before the failing call


class Faults:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rules: list[Rule] = []
        self.hits = 0
        real = {name: getattr(os, name) for name in ("write", "fsync", "ftruncate")}

        def path_of(fd: int) -> str:
            try:
                return os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                return ""

        def rule_for(call: str, fd: int) -> Rule | None:
            if not self.rules:
                return None
            path = path_of(fd)
            for rule in self.rules:
                if rule.call == call and rule.times and path.endswith(rule.suffix):
                    if not rule.partial:
                        rule.times -= 1
                        self.hits += 1
                    return rule
            return None

        def write(fd: int, data) -> int:
            rule = rule_for("write", fd)
            if rule is None:
                return real["write"](fd, data)
            if rule.partial:  # a short write: part of the bytes, then the next call fails
                written = real["write"](fd, bytes(memoryview(data)[:rule.partial]))
                rule.partial = 0
                return written
            raise OSError(rule.code, os.strerror(rule.code))

        def fsync(fd: int) -> None:
            if rule_for("fsync", fd) is None:
                return real["fsync"](fd)
            raise OSError(errno.EIO, os.strerror(errno.EIO))

        def ftruncate(fd: int, size: int) -> None:
            rule = rule_for("ftruncate", fd)
            if rule is None:
                return real["ftruncate"](fd, size)
            raise OSError(rule.code, os.strerror(rule.code))

        monkeypatch.setattr(os, "write", write)
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "ftruncate", ftruncate)

    def add(self, call: str, suffix: str, code: int = errno.ENOSPC, times: int = 1, partial: int = 0) -> Rule:
        rule = Rule(call, suffix, code, times, partial)
        self.rules.append(rule)
        return rule


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> Faults:
    return Faults(monkeypatch)


def assert_consistent(log: PartitionLog) -> None:
    """The files hold exactly the batches the log's offsets say, and its indexes agree."""
    audit = audit_partition(log.directory)
    assert audit.problems == []
    assert (audit.next_offset or log.log_start_offset) == log.log_end_offset
    assert sum(s.size for s in log.segments) == sum(p.stat().st_size for p in log.directory.glob("*.log"))


def test_a_short_write_then_enospc_leaves_no_partial_batch(open_log: OpenLog, faults: Faults) -> None:
    log = open_log()
    for _ in range(4):
        append(log)
    faults.add("write", ".log", partial=BATCH // 2)
    with pytest.raises(OSError) as info:
        append(log)
    assert info.value.errno == errno.ENOSPC and faults.hits == 1
    assert log.log_end_offset == 12
    assert_consistent(log)
    assert append(log).base_offset == 12  # the disk has room again: the same offsets, no hole
    assert_consistent(log)


def test_a_failed_index_entry_undoes_the_whole_append(open_log: OpenLog, faults: Faults) -> None:
    log = open_log()
    append(log)
    append(log)  # more than index.interval.bytes (200) since the last entry: the next append writes one
    index_bytes = log.segments[-1].index_sizes[0]
    for suffix in (".index", ".timeindex"):
        faults.add("write", suffix, partial=3)
        with pytest.raises(OSError):
            append(log)
        assert log.log_end_offset == 6 and log.segments[-1].index_sizes[0] == index_bytes
        assert_consistent(log)
    assert append(log).base_offset == 6
    assert log.segments[-1].index_sizes[0] == index_bytes + 8  # one entry
    assert_consistent(log)
    log.close()
    assert open_log(clean_shutdown=True, recovery_point=9).log_end_offset == 9


def test_an_undo_that_fails_is_repaired_before_the_next_append(open_log: OpenLog, faults: Faults) -> None:
    log = open_log()
    append(log)
    append(log)
    faults.add("write", ".index")
    faults.add("ftruncate", ".log", code=errno.EIO)
    with pytest.raises(OSError):
        append(log)
    segment = log.segments[-1]
    assert segment.needs_repair and (log.directory / f"{0:020d}.log").stat().st_size == 3 * BATCH
    # reads stop at what the log knows: the stray batch is invisible
    assert log.read(0, 10_000, 100, True).size == 2 * BATCH
    assert append(log).base_offset == 6 and not segment.needs_repair
    assert_consistent(log)


def test_a_roll_that_cannot_create_its_segment_leaves_nothing(open_log: OpenLog, faults: Faults,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    log = open_log()
    for _ in range(6):
        append(log)  # the 1024-byte segment is full: the next append rolls
    def no_inode_left(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as patched:  # the .log and .index are made, the .timeindex is not
        patched.setattr(segment_module, "TimeIndex", no_inode_left)
        with pytest.raises(OSError):
            append(log)
    assert [s.base_offset for s in log.segments] == [0] and log.log_end_offset == 18
    assert not (log.directory / f"{18:020d}.log").exists() and not (log.directory / f"{18:020d}.index").exists()
    assert append(log).base_offset == 18 and [s.base_offset for s in log.segments] == [0, 18]
    assert_consistent(log)


def test_appends_fail_and_recover_with_one_log_line_each(open_log: OpenLog, faults: Faults,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    log = open_log()
    faults.add("write", ".log", times=5)
    with caplog.at_level(logging.INFO, logger="kbroker.log"):
        for _ in range(5):
            with pytest.raises(OSError):
                append(log)
        append(log)
    messages = [r.message for r in caplog.records]
    assert sum("append at offset 0 failed" in m for m in messages) == 1
    assert sum("appends work again" in m for m in messages) == 1


def test_a_failed_fsync_is_never_trusted(open_log: OpenLog, faults: Faults) -> None:
    log = open_log()
    for i in range(3):
        append(log, producer_id=9, producer_epoch=0, sequence=3 * i)
    log.flush()
    for i in range(3, 5):  # offsets 9..14, written, not yet synced nor visible: their producer waits
        data = batch(producer_id=9, producer_epoch=0, sequence=3 * i)
        log.append(data, validate_produce_batch(memoryview(data), 1 << 20), leader_epoch=0, now_ms=NOW)
    faults.add("fsync", ".log")
    with pytest.raises(OSError):
        log.flush()
    assert log.recovery_point == 9
    with pytest.raises(OSError):  # the error was reported once; a second fsync must not pass for it
        log.flush()
    assert log.recovery_point == 9
    log.recover_from_failed_sync()
    assert log.log_end_offset == 9 and log.recovery_point == 9 and log.high_watermark == 9
    # the producer resends: its sequence continues after what survived, not a duplicate
    result = append(log, producer_id=9, producer_epoch=0, sequence=9)
    assert not result.duplicate and result.base_offset == 9
    log.flush()
    assert log.recovery_point == 12
    assert_consistent(log)


def test_a_failed_fsync_keeps_what_consumers_already_saw(open_log: OpenLog, faults: Faults) -> None:
    log = open_log()
    for _ in range(3):
        append(log)  # the high watermark follows the log end (no flush.messages)
    faults.add("fsync", ".log")
    with pytest.raises(OSError):
        log.flush()
    assert append(log).base_offset == 9  # the append first settles the failed sync: nothing to drop
    assert log.log_end_offset == 12
    log.flush()
    assert log.recovery_point == 12


def test_snapshot_and_epoch_checkpoint_failures_do_not_fail_appends(open_log: OpenLog, faults: Faults,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    log = open_log()
    faults.add("write", "leader-epoch-checkpoint.tmp")
    with caplog.at_level(logging.WARNING, logger="kbroker.log"):
        for i in range(6):
            append(log, producer_id=3, producer_epoch=0, sequence=3 * i)
        faults.add("write", ".snapshot")
        append(log, producer_id=3, producer_epoch=0, sequence=18)  # rolls: the snapshot fails
    assert log.log_end_offset == 21 and [s.base_offset for s in log.segments] == [0, 18]
    assert not list(log.directory.glob("*.snapshot")) and not list(log.directory.glob("*.tmp"))
    assert sum("could not write" in r.message for r in caplog.records) == 2
    log.close()
    log = open_log(clean_shutdown=True, recovery_point=21)
    assert append(log, producer_id=3, producer_epoch=0, sequence=18).duplicate


def test_write_atomically_keeps_the_old_file_and_no_tmp(tmp_path: Path, faults: Faults) -> None:
    path = tmp_path / "checkpoint"
    write_atomically(path, b"old\n")
    faults.add("write", "checkpoint.tmp", partial=2)
    with pytest.raises(OSError):
        write_atomically(path, b"new contents\n")
    assert path.read_bytes() == b"old\n" and [p.name for p in tmp_path.iterdir()] == ["checkpoint"]


# -- the log manager ------------------------------------------------------------------------------

DEFAULTS = LogConfig(segment_bytes=1024, index_interval_bytes=200)


def test_topic_changes_that_fail_on_disk_answer_storage_errors(tmp_path: Path, faults: Faults,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    logs = LogManager(tmp_path, DEFAULTS).load()
    logs.create_topic("kept", 1, {})
    faults.add("write", "topics.json.tmp")
    with pytest.raises(KafkaError) as info:
        logs.create_topic("new", 2, {})
    assert info.value.code == ErrorCode.KAFKA_STORAGE_ERROR
    assert logs.topic_names() == ["kept"] and not list(tmp_path.glob("new-*"))
    faults.add("write", "partition.metadata.tmp")
    with pytest.raises(KafkaError) as info:
        logs.create_topic("new", 2, {})
    assert info.value.code == ErrorCode.KAFKA_STORAGE_ERROR
    assert logs.topic_names() == ["kept"] and not list(tmp_path.glob("new-*"))
    assert LogManager(tmp_path, DEFAULTS).load().topic_names() == ["kept"]


def test_deleting_a_topic_frees_its_files_before_rewriting_the_registry(tmp_path: Path, faults: Faults) -> None:
    logs = LogManager(tmp_path, DEFAULTS).load()
    logs.create_topic("big", 2, {})
    for _ in range(10):
        append(logs.get_log("big", 0))
    faults.add("write", "topics.json.tmp")  # the registry cannot be rewritten yet
    logs.delete_topic("big")
    assert logs.topic_names() == []
    doomed = sorted(tmp_path.glob("big-*-delete"))
    assert len(doomed) == 2 and all(not list(d.iterdir()) for d in doomed)  # the space is back
    logs = LogManager(tmp_path, DEFAULTS).load()  # start-up finishes the deletion
    assert logs.topic_names() == [] and not list(tmp_path.glob("big-*"))


def test_a_shutdown_that_cannot_sync_is_not_clean(tmp_path: Path, faults: Faults) -> None:
    logs = LogManager(tmp_path, DEFAULTS).load()
    logs.create_topic("a", 1, {})
    logs.create_topic("b", 1, {})
    append(logs.get_log("a", 0))
    append(logs.get_log("b", 0))
    faults.add("fsync", "a-0/00000000000000000000.log")
    logs.shutdown()
    assert not (tmp_path / CLEAN_SHUTDOWN_MARKER).exists()
    logs = LogManager(tmp_path, DEFAULTS).load()
    assert logs.get_log("a", 0).log_end_offset == 3 and logs.get_log("b", 0).log_end_offset == 3


def test_checkpoints_that_cannot_be_written_are_logged_not_raised(tmp_path: Path, faults: Faults,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    logs = LogManager(tmp_path, DEFAULTS).load()
    logs.create_topic("a", 1, {})
    faults.add("write", "recovery-point-offset-checkpoint.tmp")
    with caplog.at_level(logging.WARNING, logger="kbroker.log"):
        logs.checkpoint()
    assert any("could not write the offset checkpoints" in r.message for r in caplog.records)
