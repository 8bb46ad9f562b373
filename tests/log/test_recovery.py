"""Start-up: trusting files after a clean shutdown, CRC recovery after a crash, index rebuilds."""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest

import kbroker.log.recovery as recovery
from kbroker.log.log_manager import LogManager
from kbroker.log.partition_log import PartitionLog
from kbroker.log.segment import LogSegment

from tests.log.conftest import NOW, SMALL, OpenLog, append, batch

BATCH = len(batch())


def name(base: int, suffix: str = ".log") -> str:
    return f"{base:020d}{suffix}"


@pytest.fixture
def scanned(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(base offset, bytes) of every segment CRC-scanned from now on."""
    calls: list[tuple[int, int]] = []
    real: Callable[..., int] = recovery.recover_segment

    def counting(segment: LogSegment, **kwargs: object) -> int:
        calls.append((segment.base_offset, segment.size))
        return real(segment, **kwargs)

    monkeypatch.setattr(recovery, "recover_segment", counting)
    return calls


def crashed(log: PartitionLog) -> Path:
    """Drop the log without closing it cleanly (what survives is what os.write put in the files)."""
    directory = log.directory
    for segment in log.segments:
        segment.close()
    return directory


def fill(open_log: OpenLog, batches: int = 20) -> PartitionLog:
    log = open_log()
    for i in range(batches):
        append(log, timestamp=NOW + 10 * i)
    return log


def test_clean_restart_trusts_the_files(open_log: OpenLog, scanned: list) -> None:
    log = fill(open_log)
    log.close()
    indexes = {p.name: p.read_bytes() for p in log.directory.iterdir() if p.suffix in (".index", ".timeindex")}
    log = open_log(clean_shutdown=True, recovery_point=60)
    assert scanned == []
    assert log.log_end_offset == 60 == log.recovery_point == log.high_watermark
    assert {p.name: p.read_bytes() for p in log.directory.iterdir() if p.suffix in (".index", ".timeindex")} == indexes
    assert log.offset_for_timestamp(NOW + 101) == (31, NOW + 101, 0)
    assert log.max_timestamp_offset() == (59, NOW + 192, 0)
    assert append(log, timestamp=NOW + 500).base_offset == 60
    # index entries keep coming at the same intervals as if the log had never been reopened
    log.close()
    rebuilt_from = {p.name: p.read_bytes() for p in log.directory.iterdir() if p.suffix == ".index"}
    for p in log.directory.glob("*.index"):
        p.unlink()
    log = open_log(clean_shutdown=True, recovery_point=63)
    assert {p.name: p.read_bytes() for p in log.directory.iterdir() if p.suffix == ".index"} == rebuilt_from


def test_unclean_restart_scans_only_above_the_recovery_point(open_log: OpenLog, scanned: list) -> None:
    log = fill(open_log)
    log.flush(36)
    directory = crashed(log)
    log = open_log(recovery_point=36)
    assert [base for base, _ in scanned] == [36, 54]
    assert log.log_end_offset == 60 and log.recovery_point == 36
    scanned.clear()
    crashed(log)
    open_log(recovery_point=0)
    assert [base for base, _ in scanned] == [0, 18, 36, 54]
    assert sum(size for _, size in scanned) == 20 * BATCH
    assert directory.exists()


def test_torn_tail_is_truncated(open_log: OpenLog, caplog: pytest.LogCaptureFixture) -> None:
    log = fill(open_log)
    directory = crashed(log)
    active = directory / name(54)
    os.truncate(active, active.stat().st_size - 10)
    with caplog.at_level(logging.WARNING, logger="kbroker.log"):
        log = open_log()
    assert log.log_end_offset == 57 and active.stat().st_size == BATCH
    assert any("torn batch" in r.message and "truncating" in r.message for r in caplog.records)
    assert append(log).base_offset == 57


def test_flipped_byte_in_the_last_batch_is_truncated(open_log: OpenLog, caplog: pytest.LogCaptureFixture) -> None:
    log = fill(open_log)
    directory = crashed(log)
    active = directory / name(54)
    data = bytearray(active.read_bytes())
    data[-5] ^= 0x01
    active.write_bytes(data)
    with caplog.at_level(logging.WARNING, logger="kbroker.log"):
        log = open_log()
    assert log.log_end_offset == 57
    assert any("CRC mismatch" in r.message for r in caplog.records)


def test_corruption_in_an_older_segment_drops_everything_after_it(open_log: OpenLog) -> None:
    log = fill(open_log)
    directory = crashed(log)
    middle = directory / name(18)
    data = bytearray(middle.read_bytes())
    data[2 * BATCH + 70] ^= 0xFF  # inside the third batch of segment 18 (offsets 24..26)
    middle.write_bytes(data)
    log = open_log(recovery_point=0)
    assert log.log_end_offset == 24
    assert sorted(p.name for p in directory.glob("*.log")) == [name(0), name(18)]
    assert not (directory / name(36, ".index")).exists()


def test_torn_tail_is_caught_even_after_a_clean_shutdown(open_log: OpenLog, scanned: list) -> None:
    log = fill(open_log)
    log.close()
    active = log.directory / name(54)
    os.truncate(active, active.stat().st_size - 1)
    log = open_log(clean_shutdown=True, recovery_point=60)
    assert [base for base, _ in scanned] == [54]
    assert log.log_end_offset == 57


@pytest.mark.parametrize("damage", ["deleted", "garbage", "out of order", "past the log"])
def test_bad_index_is_rebuilt_after_a_clean_shutdown(open_log: OpenLog, damage: str, scanned: list,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    log = fill(open_log)
    log.close()
    index = log.directory / name(0, ".index")
    original = index.read_bytes()
    if damage == "deleted":
        index.unlink()
    elif damage == "garbage":
        index.write_bytes(b"\x01\x02\x03")
    elif damage == "out of order":
        index.write_bytes(original[8:16] + original[:8])
    else:
        index.write_bytes(original + (20).to_bytes(4, "big") + (5000).to_bytes(4, "big"))
    with caplog.at_level(logging.WARNING, logger="kbroker.log"):
        log = open_log(clean_shutdown=True, recovery_point=60)
    assert [base for base, _ in scanned] == [0]
    assert index.read_bytes() == original
    assert any("recovering segment 0" in r.message for r in caplog.records)
    assert log.read(10, BATCH, 60, True).slices[0].position == 3 * BATCH


def test_index_inconsistent_with_the_log_is_rebuilt(open_log: OpenLog, scanned: list) -> None:
    log = fill(open_log)
    log.close()
    index = log.directory / name(0, ".index")
    original = index.read_bytes()
    # the last entry names offset 15 for the batch at its position, which ends at 14
    index.write_bytes(original[:8] + (15).to_bytes(4, "big") + original[12:])
    open_log(clean_shutdown=True, recovery_point=60)
    assert [base for base, _ in scanned] == [0]
    assert index.read_bytes() == original


def test_debris_is_removed(open_log: OpenLog) -> None:
    log = fill(open_log, 3)
    log.close()
    directory = log.directory
    for debris in ("leader-epoch-checkpoint.tmp", name(0, ".log.deleted"), name(0, ".cleaned"),
                   name(99, ".index"), name(99, ".timeindex")):
        (directory / debris).write_bytes(b"x")
    open_log(clean_shutdown=True, recovery_point=9)
    leftovers = {p.name for p in directory.iterdir()}
    assert leftovers == {name(0), name(0, ".index"), name(0, ".timeindex"), name(9, ".snapshot"),
                         "leader-epoch-checkpoint", "partition.metadata"}


def test_empty_directory_starts_at_the_log_start(open_log: OpenLog) -> None:
    log = open_log(log_start_offset=42)
    assert log.log_start_offset == log.log_end_offset == 42 == log.active_segment_base
    assert append(log).base_offset == 42


# -- injected damage: what a crash, a bad disk or a careless hand can leave ------------------------


@pytest.mark.parametrize("cut", [1, 8, 30, 61, 70, BATCH - 1], ids=lambda c: f"first-{c}-bytes-kept")
def test_a_batch_cut_anywhere_is_dropped_whole(open_log: OpenLog, cut: int, caplog: pytest.LogCaptureFixture) -> None:
    log = fill(open_log)
    directory = crashed(log)
    active = directory / name(54)
    os.truncate(active, BATCH + cut)  # the second and last batch of the active segment (offsets 57..59) is torn
    with caplog.at_level(logging.WARNING, logger="kbroker.log"):
        log = open_log(recovery_point=54)
    assert log.log_end_offset == 57 and active.stat().st_size == BATCH
    dropped = [r.message for r in caplog.records if "truncating" in r.message]
    assert dropped and f"truncating {cut} bytes at position {BATCH} (offsets from 57 on)" in dropped[0]
    assert append(log).base_offset == 57


def test_a_zero_filled_tail_is_cut(open_log: OpenLog, caplog: pytest.LogCaptureFixture) -> None:
    """What some file systems show after a power cut: the file grew, its new blocks never written."""
    log = fill(open_log)
    directory = crashed(log)
    with open(directory / name(54), "ab") as f:
        f.write(bytes(4096))
    with caplog.at_level(logging.WARNING, logger="kbroker.log"):
        log = open_log(recovery_point=54)
    assert log.log_end_offset == 60 and (directory / name(54)).stat().st_size == 2 * BATCH
    assert any("magic 0" in r.message for r in caplog.records)


def test_a_flipped_byte_in_the_first_batch_empties_the_segment(open_log: OpenLog) -> None:
    log = fill(open_log)
    directory = crashed(log)
    active = directory / name(54)
    data = bytearray(active.read_bytes())
    data[40] ^= 0x10  # inside the CRC-covered part of the batch at offsets 54..56
    active.write_bytes(data)
    log = open_log(recovery_point=54)
    assert log.log_end_offset == 54 == log.active_segment_base and active.stat().st_size == 0
    assert append(log).base_offset == 54


@pytest.mark.parametrize("clean", [True, False], ids=["clean", "unclean"])
@pytest.mark.parametrize("damage", ["deleted", "garbage", "truncated entry", "both deleted"])
def test_damaged_time_index_is_rebuilt(open_log: OpenLog, damage: str, clean: bool) -> None:
    log = fill(open_log)
    log.close() if clean else crashed(log)
    directory = log.directory
    time_index, offset_index = directory / name(0, ".timeindex"), directory / name(0, ".index")
    original = time_index.read_bytes(), offset_index.read_bytes()
    if damage == "deleted":
        time_index.unlink()
    elif damage == "garbage":
        time_index.write_bytes(os.urandom(len(original[0])))
    elif damage == "truncated entry":
        time_index.write_bytes(original[0][:-5])
    else:
        time_index.unlink()
        offset_index.unlink()
    log = open_log(clean_shutdown=clean, recovery_point=60 if clean else 0)
    assert (time_index.read_bytes(), offset_index.read_bytes()) == original
    assert log.offset_for_timestamp(NOW + 101) == (31, NOW + 101, 0)
    assert log.log_end_offset == 60


def test_a_half_written_producer_snapshot_is_skipped_for_an_older_one(open_log: OpenLog,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    log = open_log()
    for i in range(30):
        append(log, producer_id=7, producer_epoch=0, sequence=3 * i)
    log.close()
    snapshots = sorted(log.directory.glob("*.snapshot"))
    assert len(snapshots) == 2
    snapshots[-1].write_bytes(snapshots[-1].read_bytes()[:len(snapshots[-1].read_bytes()) // 2])
    with caplog.at_level(logging.WARNING, logger="kbroker.log"):
        log = open_log(clean_shutdown=True, recovery_point=90)
    assert any("unreadable" in r.message for r in caplog.records)
    # the replay from the older snapshot knows the last five batches: a retry is recognised
    assert append(log, producer_id=7, producer_epoch=0, sequence=87).duplicate
    assert append(log, producer_id=7, producer_epoch=0, sequence=90).base_offset == 90


def test_a_half_written_leader_epoch_checkpoint_is_ignored(open_log: OpenLog, caplog: pytest.LogCaptureFixture) -> None:
    log = fill(open_log, 3)
    log.close()
    checkpoint = log.directory / "leader-epoch-checkpoint"
    checkpoint.write_text("0\n1\n")
    with caplog.at_level(logging.WARNING, logger="kbroker.log"):
        log = open_log(clean_shutdown=True, recovery_point=9)
    assert any("ignoring" in r.message for r in caplog.records)
    assert append(log).base_offset == 9


def test_a_half_written_partition_metadata_is_rewritten(open_log: OpenLog) -> None:
    log = fill(open_log, 3)
    log.close()
    metadata = log.directory / "partition.metadata"
    original = metadata.read_bytes()
    metadata.write_bytes(original[:20])
    log = open_log(clean_shutdown=True, recovery_point=9)
    assert metadata.read_bytes() == original and log.log_end_offset == 9


def test_a_flipped_byte_in_the_last_batch_is_caught_after_a_clean_shutdown(open_log: OpenLog, scanned: list,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    log = fill(open_log)
    log.close()
    active = log.directory / name(54)
    data = bytearray(active.read_bytes())
    data[-5] ^= 0x01
    active.write_bytes(data)
    with caplog.at_level(logging.WARNING, logger="kbroker.log"):
        log = open_log(clean_shutdown=True, recovery_point=60)
    assert [base for base, _ in scanned] == [54] and log.log_end_offset == 57
    assert any("CRC mismatch" in r.message and "recovering segment 54" in r.message for r in caplog.records)


# -- damaged data-dir metadata (the log manager) ---------------------------------------------------


def _manager_with_data(data_dir: Path) -> LogManager:
    logs = LogManager(data_dir, SMALL).load()
    logs.create_topic("orders", 2, {"retention.ms": "1000"})
    logs.create_topic("__consumer_offsets", 1, {"cleanup.policy": "compact"})
    for partition in (0, 1):
        for _ in range(10):  # two segments: offsets 0..17 and 18..29
            append(logs.get_log("orders", partition))
    return logs


@pytest.mark.parametrize("damage", ["half-written", "garbage", "wrong shape"])
def test_a_damaged_topics_json_is_rebuilt_from_the_partition_dirs(tmp_path: Path, damage: str,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    logs = _manager_with_data(tmp_path)
    ids = {t.name: t.topic_id for t in logs.topics()}
    logs.shutdown()
    registry = tmp_path / "topics.json"
    text = registry.read_text()
    registry.write_text({"half-written": text[:len(text) // 2], "garbage": "\x00\x01{",
                         "wrong shape": '{"version": 1, "topics": [{"name": "orders"}]}'}[damage])
    with caplog.at_level(logging.WARNING, logger="kbroker.log"):
        logs = LogManager(tmp_path, SMALL).load()
    assert {t.name: t.topic_id for t in logs.topics()} == ids
    assert logs.topic("orders").partition_count == 2 and logs.topic("orders").configs == {}
    assert logs.topic("__consumer_offsets").configs == {"cleanup.policy": "compact"}
    assert [logs.get_log("orders", p).log_end_offset for p in (0, 1)] == [30, 30]
    assert (tmp_path / "topics.json.damaged").exists() and json.loads(registry.read_text())["version"] == 1
    assert any("rebuilt the registry" in r.message and "orders (2 partitions)" in r.message for r in caplog.records)
    assert not list(tmp_path.glob("*-stray"))


def test_meta_properties_without_a_cluster_id_get_a_new_one(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    logs = _manager_with_data(tmp_path)
    old_id = logs.cluster_id
    logs.shutdown()
    (tmp_path / "meta.properties").write_text("version=1\nnode.id=1\ncluster.id=abc")
    with caplog.at_level(logging.WARNING, logger="kbroker.log"):
        logs = LogManager(tmp_path, SMALL).load()
    assert logs.cluster_id != old_id and f"cluster.id={logs.cluster_id}" in (tmp_path / "meta.properties").read_text()
    assert any("no valid cluster.id" in r.message for r in caplog.records)
    assert logs.get_log("orders", 0).log_end_offset == 30


@pytest.mark.parametrize("name", ["recovery-point-offset-checkpoint", "log-start-offset-checkpoint"])
def test_a_half_written_offset_checkpoint_is_ignored(tmp_path: Path, name: str, scanned: list,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    logs = _manager_with_data(tmp_path)
    logs.checkpoint()
    checkpoint = tmp_path / name
    checkpoint.write_bytes(checkpoint.read_bytes()[:12])  # as if a crash tore it (write_atomically avoids that)
    with caplog.at_level(logging.WARNING, logger="kbroker.log"):
        logs = LogManager(tmp_path, SMALL).load()  # no clean-shutdown marker: a crash
    assert any(f"ignoring {checkpoint}" in r.message for r in caplog.records)
    assert [logs.get_log("orders", p).log_end_offset for p in (0, 1)] == [30, 30]
    # the rolled segments are scanned only when the recovery points are lost
    assert sorted(scanned) == ([(0, 0), (0, 888), (0, 888)] if name.startswith("recovery") else [(0, 0)]) + [
        (18, 592), (18, 592)]
