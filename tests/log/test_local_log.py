"""LocalLog on its own: the segments, their rolls, reads, truncations and recovery point, with no
producer or epoch state around them (PartitionLog's tests cover the two together)."""
from __future__ import annotations

from pathlib import Path

from kbroker.log.files import OpenFiles
from kbroker.log.local_log import LocalLog
from kbroker.log.segment import LogSegment
from kbroker.wire.records import BatchHeader, assign_offsets

from tests.log.conftest import NOW, SMALL, batch


def local_log(tmp_path: Path, rolls: list[int]) -> LocalLog:
    files = OpenFiles()
    segments = [LogSegment.create(tmp_path, 0, SMALL, NOW, files)]
    return LocalLog(tmp_path, "t-0", SMALL, segments, recovery_point=0, before_roll=rolls.append, files=files)


def write(local: LocalLog, count: int) -> None:
    for _ in range(count):
        data = batch()
        assign_offsets(data, local.log_end_offset, 0)
        local.append(data, BatchHeader.parse(data), NOW)


def test_a_full_segment_rolls_after_telling_the_partition_where_the_new_one_starts(tmp_path: Path) -> None:
    rolls: list[int] = []
    local = local_log(tmp_path, rolls)
    write(local, 20)  # 148-byte batches in 1 KiB segments: 6 per segment
    assert local.log_end_offset == 60
    assert rolls == [s.base_offset for s in local.segments[1:]] == [18, 36, 54]
    assert local.active_segment is local.segments[-1]


def test_reads_cross_segments_and_say_where_they_end(tmp_path: Path) -> None:
    local = local_log(tmp_path, [])
    write(local, 20)
    data, segment, end = local.read(15, 10_000, local.log_end_offset, min_one_batch=False)
    assert data.size == sum(piece.length for piece in data.slices) == 15 * 148  # the batches 15..17 to 57..59
    assert segment is local.segments[-1] and end == segment.size
    nothing, segment, _ = local.read(30, 10_000, 30, min_one_batch=True)
    assert nothing.size == 0 and segment is None


def test_truncation_lowers_the_end_and_the_recovery_point_and_counts(tmp_path: Path) -> None:
    local = local_log(tmp_path, [])
    write(local, 20)
    local.flush()
    assert local.recovery_point == 60
    local.truncate_to(40)  # the batch holding 40 (39..41) goes whole
    assert (local.log_end_offset, local.recovery_point, local.truncations) == (39, 39, 1)
    assert [s.base_offset for s in local.segments] == [0, 18, 36]
    local.truncate_fully_and_start_at(100, NOW)
    assert (local.log_end_offset, local.truncations) == (100, 2)
    assert [s.base_offset for s in local.segments] == [100]


def test_segments_below_a_new_log_start_go_but_never_the_active_one(tmp_path: Path) -> None:
    local = local_log(tmp_path, [])
    write(local, 20)
    local.delete_segments_below(40)
    assert [s.base_offset for s in local.segments] == [36, 54]
    local.delete_segments_below(10**6)
    assert [s.base_offset for s in local.segments] == [54]
