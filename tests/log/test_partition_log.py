"""PartitionLog: append, read, offsets by time, deletion, truncation, retention, epochs."""
from __future__ import annotations

import os
import struct

import pytest
from kafka.record.default_records import DefaultRecordBatch

from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.config import LogConfig
from kbroker.log.local_log import FetchSlices
from kbroker.log.partition_log import PartitionLog
from kbroker.wire.records import BatchHeader, Compression, Record, TimestampType, build_batch, compute_crc, decode_records

from tests.log.conftest import NOW, SMALL, OpenLog, append, batch

BATCH = len(batch())  # 3 records of 20-byte values: 148 bytes


def slice_bytes(found: FetchSlices) -> bytes:
    return b"".join(os.pread(s.file.fileno(), s.length, s.position) for s in found.slices)


def offsets_in(data: bytes) -> list[int]:
    out, position = [], 0
    while position < len(data):
        header = BatchHeader.parse(data, position)
        out += [r.offset for r in decode_records(data[position:position + header.size])]
        position += header.size
    return out


def filled(open_log: OpenLog, batches: int = 20, config: LogConfig = SMALL) -> PartitionLog:
    log = open_log(config)
    for i in range(batches):
        append(log, timestamp=NOW + 10 * i)
    return log


def test_append_assigns_offsets_and_rolls_segments(open_log: OpenLog) -> None:
    log = open_log()
    results = [append(log, timestamp=NOW + 10 * i) for i in range(20)]
    assert [(r.base_offset, r.last_offset) for r in results[:3]] == [(0, 2), (3, 5), (6, 8)]
    assert all(r.log_append_time == -1 and not r.duplicate for r in results)
    assert log.log_end_offset == 60 == log.high_watermark
    per_segment = SMALL.segment_bytes // BATCH  # 6 batches fit in 1024 bytes
    names = sorted(p.name for p in log.directory.iterdir() if p.suffix == ".log")
    assert names == [f"{3 * per_segment * i:020d}.log" for i in range(4)]
    found = log.read(0, 1 << 20, log.high_watermark, min_one_batch=False)
    assert len(found.slices) == 4 and found.size == 20 * BATCH
    assert offsets_in(slice_bytes(found)) == list(range(60))


def test_index_entries_follow_kafka_format_and_interval(open_log: OpenLog) -> None:
    log = filled(open_log, 7)
    # index.interval.bytes=200: an entry when more than 200 bytes were appended since the last one,
    # naming the appended batch's last offset and its position: batches 2 and 4 of the first segment.
    index = (log.directory / f"{0:020d}.index").read_bytes()
    assert index == struct.pack(">ii", 8, 2 * BATCH) + struct.pack(">ii", 14, 4 * BATCH)
    # time index: (largest timestamp so far, last offset of the batch that reached it), at the same
    # moments, plus a final entry when the segment rolled (batch 5: NOW + 50 + 2 at offset 17)
    times = (log.directory / f"{0:020d}.timeindex").read_bytes()
    assert times == (struct.pack(">qi", NOW + 22, 8) + struct.pack(">qi", NOW + 42, 14)
                     + struct.pack(">qi", NOW + 52, 17))
    assert (log.directory / f"{18:020d}.index").read_bytes() == b""


def test_read_from_the_middle_of_a_batch_returns_the_whole_batch(open_log: OpenLog) -> None:
    log = filled(open_log)
    for offset in (4, 40, 59):
        found = log.read(offset, BATCH, log.high_watermark, min_one_batch=False)
        assert found.size == BATCH
        assert offsets_in(slice_bytes(found)) == [offset - offset % 3 + i for i in range(3)]


def test_max_bytes_and_min_one_batch(open_log: OpenLog) -> None:
    log = filled(open_log)
    hw = log.high_watermark
    assert log.read(0, 2 * BATCH, hw, False).size == 2 * BATCH
    assert log.read(0, 2 * BATCH - 1, hw, False).size == BATCH
    assert log.read(0, BATCH - 1, hw, True).size == BATCH
    assert log.read(0, BATCH - 1, hw, False) == FetchSlices((), 0)
    # crossing a segment boundary: batches 4..7 sit in two segments
    found = log.read(12, 4 * BATCH, hw, False)
    assert [(s.position, s.length) for s in found.slices] == [(4 * BATCH, 2 * BATCH), (0, 2 * BATCH)]
    assert offsets_in(slice_bytes(found)) == list(range(12, 24))


def test_max_offset_bound(open_log: OpenLog) -> None:
    log = filled(open_log)
    assert offsets_in(slice_bytes(log.read(0, 1 << 20, 7, False))) == list(range(6))
    assert offsets_in(slice_bytes(log.read(0, 1 << 20, 6, False))) == list(range(6))
    assert offsets_in(slice_bytes(log.read(0, 1 << 20, 5, False))) == list(range(3))
    assert log.read(6, 1 << 20, 6, True).size == 0
    assert offsets_in(slice_bytes(log.read(16, 1 << 20, 21, True))) == list(range(15, 21))
    log.update_high_watermark(30)
    assert log.read(30, 1 << 20, log.high_watermark, True).size == 0
    assert log.read(log.log_end_offset, 1 << 20, log.log_end_offset, True).size == 0


def test_offset_out_of_range(open_log: OpenLog) -> None:
    log = filled(open_log)
    with pytest.raises(KafkaError) as info:
        log.read(61, 100, 100, True)
    assert info.value.code == ErrorCode.OFFSET_OUT_OF_RANGE
    log.delete_records_before(20)
    with pytest.raises(KafkaError) as info:
        log.read(19, 100, 100, True)
    assert info.value.code == ErrorCode.OFFSET_OUT_OF_RANGE
    assert offsets_in(slice_bytes(log.read(20, BATCH, 100, True))) == [18, 19, 20]


def test_offset_for_timestamp_across_segments(open_log: OpenLog) -> None:
    log = filled(open_log)  # batch i holds offsets 3i..3i+2 with timestamps NOW+10i+0..2
    assert log.offset_for_timestamp(NOW + 25) == (9, NOW + 30, 0)
    assert log.offset_for_timestamp(NOW + 101) == (31, NOW + 101, 0)
    assert log.offset_for_timestamp(NOW + 192) == (59, NOW + 192, 0)
    assert log.offset_for_timestamp(0) == (0, NOW, 0)
    assert log.offset_for_timestamp(NOW + 193) is None
    log.delete_records_before(20)  # the answer never lies below the log start
    assert log.offset_for_timestamp(0) == (20, NOW + 62, 0)


def test_max_timestamp_offset(open_log: OpenLog) -> None:
    log = open_log()
    assert log.max_timestamp_offset() is None
    for i in range(12):
        append(log, timestamp=NOW + (1000 if i in (5, 9) else i))
    assert log.max_timestamp_offset() == (17, NOW + 1002, 0)  # the first record with the largest timestamp


def test_log_append_time_sets_the_time_and_a_valid_crc(open_log: OpenLog) -> None:
    log = open_log(LogConfig(message_timestamp_type="LogAppendTime"))
    result = append(log, batch(3, timestamp=5, compression=Compression.GZIP), now_ms=NOW + 7)
    assert result.log_append_time == NOW + 7
    stored = slice_bytes(log.read(0, 1 << 20, log.high_watermark, True))
    header = BatchHeader.parse(stored)
    assert header.timestamp_type is TimestampType.LOG_APPEND_TIME and header.max_timestamp == NOW + 7
    assert header.crc == compute_crc(stored) and DefaultRecordBatch(stored).validate_crc()
    assert {r.timestamp for r in decode_records(stored)} == {NOW + 7}
    assert log.offset_for_timestamp(NOW + 7) == (0, NOW + 7, 0)
    producer_set = bytearray(build_batch([Record(0, 1, None, b"x")], timestamp_type=TimestampType.LOG_APPEND_TIME))
    with pytest.raises(KafkaError) as info:
        append(log, producer_set)
    assert info.value.code == ErrorCode.INVALID_TIMESTAMP


def test_append_copies_a_read_only_buffer(open_log: OpenLog) -> None:
    log = open_log()
    append(log)
    data = bytes(batch())
    header = BatchHeader.parse(data)
    assert log.append(memoryview(data), header, leader_epoch=0, now_ms=NOW).base_offset == 3
    assert BatchHeader.parse(data).base_offset == 0


def test_batch_larger_than_a_segment_is_refused(open_log: OpenLog) -> None:
    log = open_log(LogConfig(segment_bytes=100))
    with pytest.raises(KafkaError) as info:
        append(log)
    assert info.value.code == ErrorCode.RECORD_LIST_TOO_LARGE


def test_segment_ms_rolls_by_record_timestamps(open_log: OpenLog) -> None:
    log = open_log(LogConfig(segment_ms=1000))
    append(log, timestamp=NOW)
    append(log, timestamp=NOW + 500)
    assert log.active_segment_base == 0
    append(log, timestamp=NOW + 1500)
    assert log.active_segment_base == 6


def test_delete_records_before_deletes_whole_segments(open_log: OpenLog) -> None:
    calls = []
    log = filled(open_log)
    log._on_log_start_change = lambda: calls.append(log.log_start_offset)
    assert log.delete_records_before(20) == 20 and calls == [20]
    assert not (log.directory / f"{0:020d}.log").exists()
    assert (log.directory / f"{18:020d}.log").exists()
    assert log.delete_records_before(10) == 20  # never backwards
    with pytest.raises(KafkaError) as info:
        log.delete_records_before(61)
    assert info.value.code == ErrorCode.OFFSET_OUT_OF_RANGE
    assert log.delete_records_before(60) == 60  # the active segment stays, unreadable below 60
    assert log.read(60, 100, 60, True).size == 0
    assert append(log).base_offset == 60


def test_truncate_to(open_log: OpenLog) -> None:
    log = filled(open_log)
    log.truncate_to(40)  # inside batch 39..41: the batch goes whole
    assert log.log_end_offset == 39 and log.high_watermark == 39
    assert offsets_in(slice_bytes(log.read(30, 1 << 20, 39, True))) == list(range(30, 39))
    assert sorted(p.name for p in log.directory.iterdir() if p.suffix == ".log")[-1] == f"{36:020d}.log"
    assert append(log).base_offset == 39
    log.truncate_to(18)  # a segment boundary: the segment based at 18 stays, empty
    assert log.log_end_offset == 18 and log.active_segment_base == 18
    assert offsets_in(slice_bytes(log.read(0, 1 << 20, 18, True))) == list(range(18))


def test_retention_by_bytes_and_time(open_log: OpenLog) -> None:
    log = filled(open_log, 20, LogConfig(segment_bytes=1024, retention_bytes=2000, retention_ms=-1))
    assert log.delete_old_segments(NOW) == 1  # 2960 bytes in 888+888+888+296: one segment can go
    assert log.log_start_offset == 18
    log.config = LogConfig(segment_bytes=1024, retention_ms=1000)
    assert log.delete_old_segments(NOW + 1000) == 0
    assert log.delete_old_segments(NOW + 150) == 0  # 18..35 has timestamps up to NOW + 112
    assert log.delete_old_segments(NOW + 1150) == 1
    assert log.log_start_offset == 36
    assert log.delete_old_segments(NOW + 10_000) == 2  # everything expired: roll, then delete
    assert log.log_start_offset == log.log_end_offset == 60 == log.active_segment_base
    log.config = LogConfig(cleanup_policy="compact", retention_ms=0)
    append(log)
    assert log.delete_old_segments(NOW + 10**9) == 0


def test_retention_keeps_what_is_above_the_high_watermark(open_log: OpenLog) -> None:
    log = filled(open_log, 20, LogConfig(segment_bytes=1024, retention_ms=0))
    log.update_high_watermark(20)
    assert log.delete_old_segments(NOW + 10**9) == 1 and log.log_start_offset == 18


def test_leader_epochs(open_log: OpenLog) -> None:
    log = open_log()
    assert log.end_offset_for_epoch(0) == (-1, -1) and log.leader_epoch == 0
    append(log, leader_epoch=0)
    append(log, leader_epoch=0)
    append(log, leader_epoch=2)
    append(log, leader_epoch=2)
    assert log.leader_epoch == 2
    assert log.end_offset_for_epoch(0) == (0, 6)
    assert log.end_offset_for_epoch(1) == (0, 6)
    assert log.end_offset_for_epoch(2) == (2, 12)
    assert log.end_offset_for_epoch(3) == (-1, -1)
    assert (log.directory / "leader-epoch-checkpoint").read_text() == "0\n2\n0 0\n2 6\n"
    assert BatchHeader.parse(slice_bytes(log.read(6, BATCH, 12, True))).partition_leader_epoch == 2
    assert log.earliest_offset() == (0, -1, 0)
    log.truncate_to(6)
    assert log.end_offset_for_epoch(0) == (0, 6)
    assert (log.directory / "leader-epoch-checkpoint").read_text() == "0\n1\n0 0\n"


def test_high_watermark_stays_within_the_log(open_log: OpenLog) -> None:
    log = open_log()
    append(log)
    log.update_high_watermark(2)
    assert log.high_watermark == 2 == log.last_stable_offset
    with pytest.raises(ValueError):
        log.update_high_watermark(4)


def test_recovery_point_and_flush(open_log: OpenLog) -> None:
    log = filled(open_log, 8)
    assert log.recovery_point == 0 and log.unflushed_messages == 24
    log.flush(18)
    assert log.recovery_point == 18
    log.flush()
    assert log.recovery_point == 24 and log.unflushed_messages == 0
    log.truncate_to(10)
    assert log.recovery_point == 9


def test_read_batches_returns_whole_batches_as_bytes(open_log: OpenLog) -> None:
    log = filled(open_log)
    batches = log.read_batches(16, 25)
    assert [BatchHeader.parse(b).base_offset for b in batches] == [15, 18, 21]
    assert all(len(b) == BATCH and compute_crc(b) == BatchHeader.parse(b).crc for b in batches)
    log.delete_records_before(20)
    assert log.earliest_offset() == (20, -1, 0)


def test_an_idle_active_segment_rolls_after_segment_ms(open_log: OpenLog) -> None:
    log = open_log(LogConfig(segment_ms=1000))
    assert not log.roll_if_idle(NOW + 10_000)  # empty: nothing to roll
    append(log, timestamp=NOW)  # its first batch's largest timestamp is NOW + 2
    assert not log.roll_if_idle(NOW + 1002) and log.roll_if_idle(NOW + 1003)
    assert [s.base_offset for s in log.segments] == [0, 3] and log.segments[-1].size == 0
    append(log, timestamp=NOW - 10**9, now_ms=NOW + 2000)  # stamped long ago: counts from the roll
    assert not log.roll_if_idle(NOW + 2003) and log.roll_if_idle(NOW + 2004)
    append(log, timestamp=NOW + 10**9, now_ms=NOW + 3000)  # stamped in the future: waits for that time
    assert not log.roll_if_idle(NOW + 10**6)
