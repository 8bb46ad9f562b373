"""The bounded set of open segment files (files.py): evicted files reopen, held handles stay valid.

Each test uses its own small `OpenFiles`; the last ones run real logs on a handful of files, and
two log managers in one process on budgets of their own.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from kbroker.log import files
from kbroker.log.files import MIN_CAPACITY, OpenFiles, SegmentFile, capacity_for

from .conftest import NOW, SMALL, TOPIC_ID, append


def open_fds(directory: Path) -> int:
    """Descriptors of this process open on files under `directory`."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith(str(directory))
        except OSError:
            pass
    return count


def make(tmp_path: Path, count: int, cache: OpenFiles) -> list[SegmentFile]:
    out = []
    for i in range(count):
        file = SegmentFile(tmp_path / f"{i:05d}.log", cache)
        file.write_all(b"file %d;" % i)
        out.append(file)
    return out


def test_at_most_capacity_files_stay_open_and_evicted_ones_reopen(tmp_path):
    cache = OpenFiles(8)
    segment_files = make(tmp_path, 100, cache)
    assert len(cache) == 8 and sum(f.is_open for f in segment_files) == 8
    assert open_fds(tmp_path) == 8
    for i, file in enumerate(segment_files):  # every one readable and appendable again
        file.write_all(b"more")
        assert file.pread(100, 0) == b"file %d;more" % i
    assert open_fds(tmp_path) == 8
    assert cache.evicted >= 92 + 92


def test_recently_used_files_get_a_second_chance(tmp_path):
    cache = OpenFiles(4)
    hot = SegmentFile(tmp_path / "hot", cache)
    cold = [SegmentFile(tmp_path / f"cold{i}", cache) for i in range(3)]
    new = []
    for i in range(20):
        hot.pread(4, 0)  # used between every new open: never the one evicted
        new.append(SegmentFile(tmp_path / f"new{i}", cache))
        assert hot.is_open
    assert not any(file.is_open for file in cold)


def test_a_held_handle_outlives_eviction(tmp_path):
    cache = OpenFiles(2)
    first, *_ = make(tmp_path, 2, cache)
    handle = first.handle()
    others = [SegmentFile(tmp_path / f"other{i}", cache) for i in range(5)]
    assert not first.is_open  # evicted from the set...
    assert os.pread(handle.fileno(), 7, 0) == b"file 0;"  # ...but the holder's descriptor is intact
    del others


def test_a_reopen_never_recreates_a_vanished_file(tmp_path):
    cache = OpenFiles(1)
    first, second = make(tmp_path, 2, cache)
    assert not first.is_open
    os.unlink(first.path)
    with pytest.raises(FileNotFoundError):
        first.pread(1, 0)
    assert not first.path.exists()


def test_renamed_files_reopen_under_their_new_name(tmp_path):
    cache = OpenFiles(1)
    first, _ = make(tmp_path, 2, cache)
    first.rename(tmp_path / "moved.log")
    SegmentFile(tmp_path / "evicts", cache)
    assert not first.is_open
    assert first.pread(7, 0) == b"file 0;"
    assert first.path == tmp_path / "moved.log"


def test_a_deleted_file_stays_readable_and_leaves_the_set(tmp_path):
    cache = OpenFiles(1)
    first, second = make(tmp_path, 2, cache)
    assert not first.is_open
    first.delete()  # opened once more so that readers of the old segment list can still read it
    assert not first.path.exists() and first.is_open
    assert first.pread(7, 0) == b"file 0;"
    assert len(cache) == 1 and second.is_open


def test_a_closed_file_refuses_io(tmp_path):
    cache = OpenFiles(4)
    first, = make(tmp_path, 1, cache)
    first.close()
    assert len(cache) == 0
    with pytest.raises(ValueError):
        first.pread(1, 0)


def test_dropped_segment_files_close_their_descriptors(tmp_path):
    cache = OpenFiles(100)
    segment_files = make(tmp_path, 10, cache)
    assert open_fds(tmp_path) == 10
    del segment_files
    assert open_fds(tmp_path) == 0
    make(tmp_path, 200, cache)  # the dead entries go at eviction
    assert len(cache) <= 100


def test_capacity_follows_the_descriptor_limit():
    assert capacity_for(1024) == 256
    assert capacity_for(20_000) == files.DEFAULT_CAPACITY
    assert capacity_for(10) == files.MIN_CAPACITY


def test_threads_reading_while_others_evict(tmp_path):
    cache = OpenFiles(4)
    segment_files = make(tmp_path, 40, cache)
    errors: list[BaseException] = []

    def reader(offset: int) -> None:
        try:
            for round_ in range(300):
                i = (offset + round_) % len(segment_files)
                assert segment_files[i].pread(100, 0) == b"file %d;" % i
                segment_files[i].sync()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(n * 7,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(cache) <= 4


def test_partition_logs_work_with_a_handful_of_open_files(tmp_path):
    from kbroker.log.partition_log import PartitionLog
    cache = OpenFiles(5)
    logs = [PartitionLog.open(tmp_path / f"t-{p}", "t", p, TOPIC_ID, SMALL, now_ms=NOW, files=cache) for p in range(10)]
    for round_ in range(30):  # SMALL rolls a 1 KiB segment every few batches: many segments each
        for log in logs:
            append(log, value_size=50 + round_)
    slices = [log.read(0, 10_000_000, log.log_end_offset, min_one_batch=True) for log in logs]
    for log in logs:
        log.flush(log.log_end_offset)
    assert len(cache) <= 5 and cache.evicted > 100
    for log, found in zip(logs, slices):  # held slices read whole, whatever was evicted meanwhile
        data = b"".join(os.pread(s.file.fileno(), s.length, s.position) for s in found.slices)
        assert data == b"".join(log.read_batches(0, log.log_end_offset))
        log.close()
    reopened = PartitionLog.open(tmp_path / "t-3", "t", 3, TOPIC_ID, SMALL, now_ms=NOW, files=cache)
    assert reopened.log_end_offset == logs[3].log_end_offset
    reopened.close()


def test_two_log_managers_in_one_process_keep_their_own_budgets(tmp_path):
    from kbroker.log.log_manager import LogManager
    small, large = OpenFiles(MIN_CAPACITY), OpenFiles()
    busy = LogManager(tmp_path / "busy", SMALL, files=small).load()
    quiet = LogManager(tmp_path / "quiet", SMALL, files=large).load()
    busy.create_topic("many", 20, {})
    quiet.create_topic("few", 2, {})
    for partition in range(20):  # 20 partitions x 3 files: more than the busy broker's budget
        append(busy.get_log("many", partition))
    for partition in range(2):
        append(quiet.get_log("few", partition))
    assert len(small) <= MIN_CAPACITY and small.evicted > 0
    assert all(log.files is large for log in quiet.all_logs())
    assert len(large) == 2 * 3 and large.evicted == 0  # .log, .index, .timeindex of each: none closed
    busy.shutdown()
    quiet.shutdown()
