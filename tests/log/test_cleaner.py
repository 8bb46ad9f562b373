"""Log compaction on tmp_path: what a cleaning keeps, how batches are rewritten, when a log is
cleaned, and the crash-safe swap (a crash injected at every step, then a restart)."""
from __future__ import annotations

import dataclasses
import os
import socket
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

from kbroker.log import local_log as local_log_module
from kbroker.log.cleaner import (
    CLEANER_OFFSET_CHECKPOINT,
    CleanerSettings,
    CleaningAborted,
    CleaningJob,
    CorruptSegment,
    LogCleaner,
    SegmentSummary,
    advance,
    cleanable_range,
)
from kbroker.log.config import LogConfig
from kbroker.log.files import OpenFiles
from kbroker.log.partition_log import PartitionLog
from kbroker.log.segment import CLEANED_SUFFIX, LogSegment
from kbroker.wire.records import (
    BatchHeader,
    Compression,
    Record,
    build_batch,
    decode_records,
    validate_produce_batch,
)
from tests.log.conftest import NOW, TOPIC_ID, OpenLog

COMPACT = LogConfig(segment_bytes=2048, index_interval_bytes=256, cleanup_policy="compact",
                    min_cleanable_dirty_ratio=0.0, delete_retention_ms=60_000)
Update = tuple[bytes | None, bytes | None]  # (key, value); value None is a tombstone


def produce(plog: PartitionLog, updates: Sequence[Update], *, per_batch: int = 4, timestamp: int = NOW,
            compression: Compression = Compression.NONE, producer_id: int = -1, sequence: int = 0) -> None:
    for start in range(0, len(updates), per_batch):
        chunk = updates[start:start + per_batch]
        records = [Record(i, timestamp + start + i, key, value) for i, (key, value) in enumerate(chunk)]
        data = bytearray(build_batch(records, compression=compression, producer_id=producer_id,
                                     producer_epoch=0 if producer_id >= 0 else -1,
                                     base_sequence=sequence + start if producer_id >= 0 else -1))
        header = validate_produce_batch(memoryview(data), 10**6)
        plog.append(data, header, leader_epoch=0, now_ms=timestamp)
    plog.update_high_watermark(plog.log_end_offset)


def append_aborted_transaction(plog: PartitionLog, producer_id: int = 5) -> None:
    """One transactional record of `producer_id` (key k), then its ABORT marker."""
    txn = bytearray(build_batch([Record(0, NOW, b"k", b"aborted")], producer_id=producer_id, producer_epoch=0,
                                base_sequence=0, is_transactional=True))
    plog.append(txn, validate_produce_batch(memoryview(txn), 10**6), leader_epoch=0, now_ms=NOW)
    abort = bytearray(build_batch([Record(0, NOW, struct.pack(">hh", 0, 0), struct.pack(">hi", 0, 0))],
                                  producer_id=producer_id, producer_epoch=0, is_transactional=True, is_control=True))
    plog.append(abort, BatchHeader.parse(abort), leader_epoch=0, now_ms=NOW)


def roll(plog: PartitionLog, now_ms: int = NOW) -> None:
    """End the active segment, so everything written so far may be cleaned."""
    active = plog.segments[-1]
    plog.roll_if_idle(max(now_ms, active.created_ms, active.first_batch_timestamp) + plog.config.segment_ms + 1)


def batches(plog: PartitionLog) -> list[bytes]:
    return plog.read_batches(plog.log_start_offset, plog.log_end_offset)


def records(plog: PartitionLog) -> list[Record]:
    return [r for b in batches(plog) for r in decode_records(b)]


def latest(rs: Iterable[Record]) -> dict[bytes | None, Record]:
    out = {}
    for r in rs:
        out[r.key] = r
    return out


def cleaner(plog: PartitionLog, **settings: object) -> LogCleaner:
    return LogCleaner(plog.directory.parent, lambda: [plog], CleanerSettings(**settings))


def clean(plog: PartitionLog, now_ms: int = NOW, **settings: object) -> CleaningJob | None:
    return cleaner(plog, **settings).clean_now(now_ms)


def updates(count: int, keys: int, *, seed: int = 0) -> list[Update]:
    return [(b"key-%d" % ((i * 7 + seed) % keys), b"value-%d-%d" % (i, seed) * 3) for i in range(count)]


def assert_compacted(before: list[Record], after: list[Record], end_offset: int) -> None:
    """`after` is `before` less superseded records below `end_offset`: offsets and contents kept."""
    by_offset = {r.offset: r for r in before}
    assert [r.offset for r in after] == sorted(r.offset for r in after)
    for r in after:
        assert by_offset[r.offset] == r
    expected = {r.offset for r in latest(r for r in before if r.offset < end_offset).values()
                if r.key is not None and r.value is not None}
    kept = {r.offset for r in after if r.offset < end_offset and r.value is not None}
    assert kept == expected
    assert {k: r.value for k, r in latest(after).items()} == {k: r.value for k, r in latest(before).items()}


# -- what a cleaning keeps ---------------------------------------------------------------------------


def test_latest_value_per_key_survives_at_its_offset(open_log: OpenLog) -> None:
    plog = open_log(COMPACT)
    produce(plog, updates(600, 40))
    roll(plog)
    produce(plog, updates(20, 40, seed=1))  # the active segment is never cleaned
    before = records(plog)
    end = plog.log_end_offset
    size = sum(s.size for s in plog.segments)
    job = clean(plog)
    assert job is not None and job.end_offset == plog.segments[-1].base_offset
    after = records(plog)
    assert_compacted(before, after, job.end_offset)
    assert plog.log_end_offset == end and sum(s.size for s in plog.segments) < size / 5
    assert all(plog.read(r.offset, 1, end, min_one_batch=True).size for r in after)


def test_cleaned_log_reopens_identically(open_log: OpenLog) -> None:
    plog = open_log(COMPACT)
    produce(plog, updates(400, 30), compression=Compression.LZ4)
    roll(plog)
    clean(plog)
    after = records(plog)
    for clean_shutdown in (False, True):
        reopened = open_log(COMPACT, clean_shutdown=clean_shutdown)
        assert records(reopened) == after and reopened.log_end_offset == plog.log_end_offset
    names = os.listdir(plog.directory)
    assert not [n for n in names if n.endswith((".cleaned", ".swap", ".deleted"))]


def test_small_segments_are_grouped_into_one(open_log: OpenLog) -> None:
    plog = open_log(COMPACT)
    produce(plog, updates(400, 10))
    roll(plog)
    clean(plog)  # each segment shrinks to a few batches...
    produce(plog, updates(4, 10, seed=1))
    roll(plog)
    before = len(plog.segments)
    clean(plog)  # ...and the next cleaning merges them
    assert before > 8 and len(plog.segments) <= 3 and len(latest(records(plog))) == 10


def test_tombstone_kept_with_a_delete_horizon_then_removed(open_log: OpenLog) -> None:
    plog = open_log(COMPACT)
    produce(plog, [(b"gone", b"v1"), (b"stays", b"v1"), (b"gone", None)], per_batch=1)
    roll(plog)
    clean(plog, NOW)
    assert [(r.key, r.value) for r in records(plog)] == [(b"stays", b"v1"), (b"gone", None)]
    header = BatchHeader.parse(batches(plog)[-1])
    assert header.has_delete_horizon and header.base_timestamp == NOW + COMPACT.delete_retention_ms

    def clean_again(now_ms: int) -> list[Update]:
        produce(plog, [(b"other", b"x")])
        roll(plog)
        clean(plog, now_ms)
        return [(r.key, r.value) for r in records(plog) if r.key != b"other"]

    assert clean_again(NOW + COMPACT.delete_retention_ms - 1) == [(b"stays", b"v1"), (b"gone", None)]
    assert clean_again(NOW + COMPACT.delete_retention_ms) == [(b"stays", b"v1")]


def test_keyless_records_do_not_survive(open_log: OpenLog) -> None:
    plog = open_log(dataclasses.replace(COMPACT, cleanup_policy="delete"))  # written before it became compacted
    produce(plog, [(None, b"a"), (b"k", b"b"), (None, b"c")], per_batch=3)
    plog.config = COMPACT
    roll(plog)
    clean(plog)
    assert [(r.key, r.value) for r in records(plog)] == [(b"k", b"b")]


@pytest.mark.parametrize("codec", list(Compression), ids=lambda c: c.name)
def test_each_batch_keeps_its_codec(open_log: OpenLog, codec: Compression) -> None:
    plog = open_log(COMPACT)
    produce(plog, updates(120, 15), per_batch=6, compression=codec)
    produce(plog, updates(30, 15, seed=2), per_batch=6, compression=Compression.NONE)
    roll(plog)
    before = {BatchHeader.parse(b).base_offset: BatchHeader.parse(b).compression for b in batches(plog)}
    original = records(plog)
    job = clean(plog)
    assert job is not None and job.stats.batches_rebuilt > 0
    for b in batches(plog):
        header = BatchHeader.parse(b)
        assert header.compression == (before[header.base_offset] if header.record_count else 0)
    assert_compacted(original, records(plog), job.end_offset)


def test_untouched_batches_are_copied_byte_for_byte(open_log: OpenLog) -> None:
    plog = open_log(COMPACT)
    produce(plog, [(b"unique-%d" % i, b"v" * 30) for i in range(40)], compression=Compression.GZIP)
    produce(plog, updates(80, 5))
    roll(plog)
    original = {BatchHeader.parse(b).base_offset: b for b in batches(plog)}
    job = clean(plog)
    assert job is not None and job.stats.batches_copied >= 10
    unique = [b for b in batches(plog) if decode_records(b) and decode_records(b)[0].key.startswith(b"unique")]
    assert len(unique) == 10 and all(b == original[BatchHeader.parse(b).base_offset] for b in unique)


def test_producer_last_batch_stays_as_an_empty_batch(open_log: OpenLog) -> None:
    plog = open_log(COMPACT)
    produce(plog, [(b"k", b"from-producer-7")], producer_id=7, sequence=0)
    produce(plog, [(b"k", b"later")])
    roll(plog)
    clean(plog)
    kept = [BatchHeader.parse(b) for b in batches(plog)]
    assert [(h.producer_id, h.record_count, h.last_offset) for h in kept] == [(7, 0, 0), (-1, 1, 1)]
    reopened = open_log(COMPACT)
    assert reopened.producer_last_offsets() == {7: 0}


def test_aborted_transactions_go_and_markers_stay(open_log: OpenLog) -> None:
    plog = open_log(COMPACT)
    produce(plog, [(b"k", b"committed-before")])
    append_aborted_transaction(plog)
    produce(plog, [(b"other", b"x")])
    roll(plog)
    clean(plog)
    kept = [(BatchHeader.parse(b), decode_records(b)) for b in batches(plog)]
    assert [(r.key, r.value) for _, rs in kept for r in rs if r.key in (b"k", b"other")] == \
        [(b"k", b"committed-before"), (b"other", b"x")]
    assert [h.is_control for h, _ in kept].count(True) == 1
    aborted = [(t.producer_id, t.first_offset, t.last_offset) for t in plog.aborted_transactions(0, 100)]
    assert aborted == [(5, 1, 2)]  # the cleaned segment took over the .txnindex entry
    (cleaned,) = plog.directory.glob("*.txnindex")
    reopened = open_log(COMPACT, clean_shutdown=True, recovery_point=plog.log_end_offset)
    assert [(t.producer_id, t.first_offset, t.last_offset) for t in reopened.aborted_transactions(0, 100)] == aborted


def test_a_marker_goes_once_its_transaction_is_gone_and_its_horizon_passed(open_log: OpenLog) -> None:
    """Kafka's KIP-534 for control batches: the cleaning that removes the aborted records keeps the
    marker; the next one, finding no record of that transaction, gives it a delete horizon; one
    after the horizon drops it, and its .txnindex entry with it."""
    plog = open_log(COMPACT)
    append_aborted_transaction(plog)
    produce(plog, [(b"k", b"later")], producer_id=5, sequence=1)  # the producer goes on: its state is later
    roll(plog)

    def markers() -> list[BatchHeader]:
        return [h for h in map(BatchHeader.parse, batches(plog)) if h.is_control]

    clean(plog, NOW)  # removes the aborted record, keeps the marker as it is
    assert [(m.base_offset, m.has_delete_horizon) for m in markers()] == [(1, False)]
    produce(plog, [(b"other", b"x")])
    roll(plog)
    clean(plog, NOW)  # nothing of the transaction is left: the marker gets its horizon
    (marker,) = markers()
    assert marker.has_delete_horizon and marker.base_timestamp == NOW + COMPACT.delete_retention_ms
    assert [(t.producer_id, t.last_offset) for t in plog.aborted_transactions(0, 100)] == [(5, 1)]
    produce(plog, [(b"other", b"y")])
    roll(plog)
    clean(plog, NOW + COMPACT.delete_retention_ms)
    assert markers() == [] and plog.aborted_transactions(0, 100) == []
    assert [(r.key, r.value) for r in records(plog)] == [(b"k", b"later"), (b"other", b"y")]
    reopened = open_log(COMPACT, clean_shutdown=True, recovery_point=plog.log_end_offset)
    assert reopened.aborted_transactions(0, 100) == [] and reopened.last_stable_offset == reopened.log_end_offset


def test_a_producers_last_marker_stays(open_log: OpenLog) -> None:
    """Without a later batch of its producer the marker is all that tells a replay its transaction
    ended: it stays however many cleanings pass."""
    plog = open_log(COMPACT)
    append_aborted_transaction(plog)
    for round_ in range(3):
        produce(plog, [(b"other", b"%d" % round_)])
        roll(plog)
        clean(plog, NOW + round_ * COMPACT.delete_retention_ms)
    assert [h.base_offset for h in map(BatchHeader.parse, batches(plog)) if h.is_control] == [1]


def test_compact_delete_also_applies_retention(tmp_path: Path) -> None:
    for policy in ("compact", "compact,delete"):
        config = dataclasses.replace(COMPACT, cleanup_policy=policy, retention_ms=1000)
        plog = PartitionLog.open(tmp_path / policy / "t-0", "t", 0, TOPIC_ID, config, now_ms=NOW, files=OpenFiles())
        produce(plog, [(b"k%d" % i, b"v" * 500) for i in range(12)], per_batch=1)
        assert len(plog.segments) == 4
        deleted = plog.delete_old_segments(NOW + 5000)
        assert (deleted, plog.log_start_offset) == ((0, 0) if policy == "compact" else (4, 12))


# -- when a log is cleaned ---------------------------------------------------------------------------


def test_min_cleanable_dirty_ratio(open_log: OpenLog) -> None:
    plog = open_log(dataclasses.replace(COMPACT, min_cleanable_dirty_ratio=0.5))
    produce(plog, updates(400, 200))
    roll(plog)
    log_cleaner = cleaner(plog)
    assert log_cleaner.clean_now(NOW) is not None  # all dirty
    produce(plog, updates(8, 200, seed=3))
    roll(plog)
    assert log_cleaner.grab_filthiest(NOW) is None and 0 < log_cleaner.max_dirty_ratio < 0.5
    produce(plog, updates(600, 200, seed=4))
    roll(plog)
    assert log_cleaner.grab_filthiest(NOW) is not None


def test_compaction_lags(open_log: OpenLog) -> None:
    lagged = dataclasses.replace(COMPACT, min_compaction_lag_ms=10_000)
    plog = open_log(lagged)
    produce(plog, updates(100, 10), timestamp=NOW)
    roll(plog)
    produce(plog, updates(100, 10, seed=1), timestamp=NOW + 20_000)
    roll(plog, NOW + 20_000)
    job = clean(plog, NOW + 25_000)  # only the first part is 10 s old
    assert job is not None and job.end_offset == 100
    offsets = [r.offset for r in records(plog)]
    assert (sum(o < 100 for o in offsets), sum(o >= 100 for o in offsets)) == (10, 100)

    plog.config = dataclasses.replace(COMPACT, min_cleanable_dirty_ratio=0.99, max_compaction_lag_ms=60_000)
    log_cleaner = cleaner(plog)
    assert log_cleaner.grab_filthiest(NOW + 25_000) is None  # a ratio of 0.99 is never reached...
    assert 0.5 < log_cleaner.max_dirty_ratio < 0.99
    assert log_cleaner.clean_now(NOW + 81_000) is not None  # ...but the first dirty batch is 60 s old


def test_cleanable_range() -> None:
    segments = [SegmentSummary(0, 100, NOW, NOW), SegmentSummary(10, 100, NOW + 50, NOW + 40),
                SegmentSummary(20, 100, NOW + 90, NOW + 80), SegmentSummary(30, 7, NOW + 95, NOW + 95)]
    found = cleanable_range(segments, COMPACT, first_dirty=10, log_start_offset=0, log_end_offset=33,
                            last_stable_offset=33, now_ms=NOW + 100)
    assert (found.first_dirty_offset, found.first_uncleanable_offset, found.clean_bytes, found.cleanable_bytes,
            found.needs_compaction_now) == (10, 30, 100, 200, False)
    lag = dataclasses.replace(COMPACT, min_compaction_lag_ms=30, max_compaction_lag_ms=55)
    found = cleanable_range(segments, lag, first_dirty=99, log_start_offset=0, log_end_offset=33,
                            last_stable_offset=25, now_ms=NOW + 100)
    assert (found.first_dirty_offset, found.first_uncleanable_offset, found.needs_compaction_now) == (0, 20, True)
    found = cleanable_range(segments, COMPACT, first_dirty=0, log_start_offset=0, log_end_offset=33,
                            last_stable_offset=15, now_ms=NOW)
    assert found.first_uncleanable_offset == 10 and found.cleanable_ratio == 1.0


def test_checkpoint_lets_a_restarted_cleaner_resume(open_log: OpenLog, tmp_path: Path) -> None:
    plog = open_log(COMPACT)
    produce(plog, updates(200, 10))
    roll(plog)
    job = clean(plog)
    assert (tmp_path / CLEANER_OFFSET_CHECKPOINT).read_text() == f"0\n1\nt 0 {job.end_offset}\n"
    assert cleaner(plog).grab_filthiest(NOW) is None


def test_a_small_offset_map_cleans_in_rounds(open_log: OpenLog) -> None:
    plog = open_log(COMPACT)
    produce(plog, updates(500, 60))
    roll(plog)
    before = records(plog)
    rounds = 0
    while clean(plog, dedupe_buffer_size=50 * 136, io_buffer_load_factor=1.0) is not None:
        rounds += 1
        assert rounds < 20
    assert rounds > 2
    assert_compacted(before, records(plog), plog.segments[-1].base_offset)


def test_a_fetch_slice_taken_before_the_swap_sends_the_old_bytes(open_log: OpenLog) -> None:
    plog = open_log(COMPACT)
    produce(plog, updates(300, 10))
    roll(plog)
    taken = plog.read(0, 10**6, plog.log_end_offset, min_one_batch=True)
    expected = b"".join(os.pread(s.file.fileno(), s.length, s.position) for s in taken.slices)
    clean(plog)
    assert sum(s.size for s in plog.segments) < len(expected) / 3
    assert all(os.fstat(s.file.fileno()).st_nlink == 0 for s in taken.slices)  # unlinked...
    sender, receiver = socket.socketpair()
    with sender, receiver:
        receiver.settimeout(5)
        for piece in taken.slices:  # ...and still send what the fetch saw
            sent = 0
            while sent < piece.length:
                sent += os.sendfile(sender.fileno(), piece.file.fileno(), piece.position + sent, piece.length - sent)
        got = bytearray()
        while len(got) < len(expected):
            got += receiver.recv(1 << 16)
    assert bytes(got) == expected


# -- crash safety ------------------------------------------------------------------------------------


class Crash(Exception):
    pass


class CrashAt:
    """Raise Crash at the n-th file-system step of the cleaner's commit, swap and cleanup."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, n: int) -> None:
        self.n, self.count = n, 0
        real_rename, real_fsync_dir, real_delete = os.rename, local_log_module.fsync_dir, LogSegment.delete

        def step(action, *args):
            self.count += 1
            if self.count == self.n:
                raise Crash(f"crash at step {self.n}")
            return action(*args)

        monkeypatch.setattr(os, "rename", lambda a, b: step(real_rename, a, b))
        monkeypatch.setattr(local_log_module, "fsync_dir", lambda d: step(real_fsync_dir, d))
        monkeypatch.setattr(LogSegment, "delete", lambda segment: step(real_delete, segment))


def _crash_scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int | None, name: str):
    directory = tmp_path / name
    plog = PartitionLog.open(directory / "t-0", "t", 0, TOPIC_ID, COMPACT, now_ms=NOW, files=OpenFiles())
    produce(plog, updates(110, 12) + [(b"key-3", None)], compression=Compression.SNAPPY)
    roll(plog)
    produce(plog, updates(10, 12, seed=5))
    before = records(plog)
    with monkeypatch.context() as patch:
        crash = CrashAt(patch, n if n is not None else 10**9)
        try:
            LogCleaner(directory, lambda: [plog], CleanerSettings()).clean_now(NOW)
            crashed = False
        except Crash:
            crashed = True
    return directory, plog, before, crash.count, crashed


def test_crash_at_every_step_of_the_swap_then_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    *_, steps, crashed = _crash_scenario(tmp_path, monkeypatch, None, "count")
    assert not crashed and steps > 15
    for n in range(1, steps + 1):
        directory, plog, before, _, crashed = _crash_scenario(tmp_path, monkeypatch, n, f"crash-{n}")
        assert crashed
        # The process dies here: nothing is closed or checkpointed. Start again on the same files.
        reopened = PartitionLog.open(directory / "t-0", "t", 0, TOPIC_ID, COMPACT, now_ms=NOW, files=OpenFiles())
        debris = [p for p in os.listdir(directory / "t-0") if p.endswith((".cleaned", ".swap", ".deleted"))]
        assert debris == [], n
        after = records(reopened)
        assert reopened.log_end_offset == plog.log_end_offset, n
        assert_compacted(before, after, 0)  # whatever was or wasn't cleaned, nothing is lost or invented
        for segment in reopened.segments:
            for position, header in segment.headers(0):
                assert segment.find(header.last_offset) == (position, header), n
        assert LogCleaner(directory, lambda: [reopened], CleanerSettings()).clean_now(NOW) is not None
        assert_compacted(before, records(reopened), reopened.segments[-1].base_offset)


def test_leftovers_of_an_uncommitted_cleaning_are_removed(open_log: OpenLog) -> None:
    plog = open_log(COMPACT)
    produce(plog, updates(100, 10))
    before = records(plog)
    stray = LogSegment.create(plog.directory, 0, COMPACT, NOW, plog.files, suffix=CLEANED_SUFFIX)
    stray.append(bytearray(build_batch([Record(0, NOW, b"x", b"y")])), BatchHeader.parse(build_batch([Record(0, NOW, b"x", b"y")])))
    stray.close()
    (plog.directory / "00000000000000000000.index.swap").write_bytes(b"")
    reopened = open_log(COMPACT)
    assert records(reopened) == before
    assert not [n for n in os.listdir(plog.directory) if n.endswith((".cleaned", ".swap"))]


# -- __consumer_offsets ------------------------------------------------------------------------------


def test_consumer_offsets_replay_the_same_after_cleaning(open_log: OpenLog) -> None:
    """The group coordinator's records (binary keys, version-prefixed, many of them 16 bytes or
    longer, so mapped by digest) replay to the same state from the cleaned log."""
    from kbroker.coordinator.loader import latest_values
    from kbroker.coordinator.records import OffsetCommitValue, group_metadata, offset_commit

    plog = open_log(COMPACT)
    writes: list[Update] = []
    for n in range(300):
        group = "group-%d" % (n % 7)
        value = OffsetCommitValue(offset=n, leader_epoch=0, metadata="", commit_timestamp=NOW + n)
        writes.append(offset_commit(group, "orders-%d" % (n % 3), n % 4, value).encode())
        if n % 50 == 49:
            writes.append(offset_commit(group, "orders-0", 0, None).encode())  # an expired offset
            writes.append(group_metadata(group, None).encode())  # a deleted group
    produce(plog, writes)
    roll(plog)

    def replayed() -> dict[bytes, bytes]:
        *_, latest = latest_values(plog)
        return {key: value for key, value in latest.items() if value is not None}

    before = replayed()
    clean(plog, NOW)
    produce(plog, [(b"\x00\x02" + b"x" * 20, b"later")])  # something dirty for the next round
    roll(plog)
    clean(plog, NOW + COMPACT.delete_retention_ms)  # the tombstones' horizon has passed
    assert replayed() == {**before, b"\x00\x02" + b"x" * 20: b"later"}
    assert all(r.value is not None for r in records(plog))
    assert len(records(plog)) == len(before) + 1


# -- the log changing under a cleaning, and failures -------------------------------------------------


@pytest.mark.parametrize("change", ["delete_records", "truncate"])
def test_a_swap_rolls_back_when_its_segments_went_meanwhile(open_log: OpenLog, change: str) -> None:
    plog = open_log(COMPACT)
    produce(plog, updates(300, 10))
    roll(plog)
    produce(plog, updates(10, 10, seed=1))
    log_cleaner = cleaner(plog)
    job = log_cleaner.grab_filthiest(NOW)
    steps = log_cleaner.clean_steps(job)
    new, old = advance(steps, None)  # the first group is committed as .swap, not yet swapped in
    if change == "delete_records":
        plog.delete_records_before(old[-1].next_offset + 1)  # retention or DeleteRecords took them
    else:
        plog.truncate_to(old[-1].base_offset)
    survivors = records(plog)
    with pytest.raises(CleaningAborted):
        advance(steps, plog.replace_segments(new, old))
    assert records(plog) == survivors
    assert not [n for n in os.listdir(plog.directory) if n.endswith((".cleaned", ".swap", ".deleted"))]
    assert records(open_log(COMPACT)) == survivors


def test_a_corrupt_segment_is_left_alone_and_not_retried(open_log: OpenLog) -> None:
    plog = open_log(COMPACT)
    produce(plog, updates(200, 10))
    roll(plog)
    segment = plog.segments[1]
    with open(segment.log_path, "r+b") as f:  # a flipped bit in the middle of a batch
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 1]))
    sizes = [s.size for s in plog.segments]
    log_cleaner = cleaner(plog)
    with pytest.raises(CorruptSegment):
        log_cleaner.clean_now(NOW)
    assert [s.size for s in plog.segments] == sizes
    assert log_cleaner.grab_filthiest(NOW) is None
