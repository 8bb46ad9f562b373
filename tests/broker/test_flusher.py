"""Group commit: concurrent produces share fsyncs, a finished flush is never re-awaited, a failed one
acknowledges nothing; flush.ms counts from each partition's last flush on the monotonic clock."""
from __future__ import annotations

import asyncio

import pytest

from kbroker.broker.flusher import Flusher
from kbroker.clock import MonotonicClock, monotonic_ms
from kbroker.config import build_config
from kbroker.log.log_manager import LogManager
from kbroker.wire.records import validate_produce_batch
from tests.log.conftest import NOW, append, batch, fail_next_fsync


def open_logs(tmp_path, monotonic: MonotonicClock = monotonic_ms, **topic_configs: str) -> tuple[Flusher, LogManager]:
    config = build_config({"log.dirs": str(tmp_path)})
    logs = LogManager(config.data_dir, config.log_defaults()).load()
    logs.create_topic("t", 1, topic_configs)
    return Flusher(config, logs, monotonic), logs


async def test_a_stale_finished_flush_does_not_spin_the_loop(tmp_path):
    flusher, logs = open_logs(tmp_path)
    partition_log = logs.get_log("t", 0)
    append(partition_log)
    # A flush that finished before this append, whose done-callback has not run yet.
    stale = asyncio.get_running_loop().create_future()
    stale.set_result(None)
    flusher._in_flight[id(partition_log)] = stale
    await asyncio.wait_for(flusher.flush_through(partition_log, partition_log.log_end_offset), 5)
    assert partition_log.recovery_point == partition_log.log_end_offset
    flusher.close()
    logs.shutdown()


async def test_concurrent_waiters_share_flushes(tmp_path):
    flusher, logs = open_logs(tmp_path)
    partition_log = logs.get_log("t", 0)
    calls = 0
    real_flush = partition_log.flush

    def counting_flush(up_to=None):
        nonlocal calls
        calls += 1
        real_flush(up_to)

    partition_log.flush = counting_flush
    waiters = []
    for _ in range(20):
        append(partition_log)
        waiters.append(asyncio.ensure_future(flusher.flush_through(partition_log, partition_log.log_end_offset)))
    await asyncio.wait_for(asyncio.gather(*waiters), 10)
    assert partition_log.recovery_point == partition_log.log_end_offset
    assert calls < 20  # appends that arrived while a flush ran shared the next one
    flusher.close()
    logs.shutdown()


async def test_a_failed_fsync_fails_every_waiter_and_drops_what_it_covered(tmp_path, monkeypatch):
    flusher, logs = open_logs(tmp_path)
    partition_log = logs.get_log("t", 0)
    append(partition_log)
    await flusher.flush_through(partition_log, partition_log.log_end_offset)
    synced = partition_log.log_end_offset
    waiters = []
    for _ in range(3):
        partition_log.append(*_unacknowledged_batch(), leader_epoch=0, now_ms=NOW)
        waiters.append((partition_log.log_end_offset, partition_log.truncations))
    fail_next_fsync(monkeypatch)
    outcomes = await asyncio.gather(*(flusher.flush_through(partition_log, end, cuts) for end, cuts in waiters),
                                    return_exceptions=True)
    assert all(isinstance(o, OSError) for o in outcomes)
    assert partition_log.log_end_offset == synced == partition_log.recovery_point  # cut back, nothing acknowledged
    # the records come again (a producer's retry) and are synced and acknowledged this time
    partition_log.append(*_unacknowledged_batch(), leader_epoch=0, now_ms=NOW)
    await flusher.flush_through(partition_log, partition_log.log_end_offset)
    assert partition_log.recovery_point == synced + 3
    flusher.close()
    logs.shutdown()


async def test_a_waiter_that_starts_after_the_cut_is_not_acknowledged(tmp_path):
    flusher, logs = open_logs(tmp_path)
    partition_log = logs.get_log("t", 0)
    partition_log.append(*_unacknowledged_batch(), leader_epoch=0, now_ms=NOW)
    end, cuts = partition_log.log_end_offset, partition_log.truncations
    partition_log.truncate_to(0)  # what recover_from_failed_sync does before the waiter ran
    partition_log.append(*_unacknowledged_batch(), leader_epoch=0, now_ms=NOW)  # other records, same offsets
    partition_log.flush()
    with pytest.raises(OSError):
        await flusher.flush_through(partition_log, end, cuts)
    flusher.close()
    logs.shutdown()


async def test_flush_ms_counts_from_the_last_flush_on_the_monotonic_clock(tmp_path):
    start = 10**12  # far from the real monotonic clock, whichever way it is
    now = [start]
    flusher, logs = open_logs(tmp_path, lambda: now[0], **{"flush.ms": "1000"})
    partition_log = logs.get_log("t", 0)
    append(partition_log)
    await flusher.flush_through(partition_log, partition_log.log_end_offset)  # an acks=all flush at `start`
    for last_flush in (start, start + 1000):
        append(partition_log)
        now[0] = last_flush + 999
        await flusher.flush_due(now[0])
        assert partition_log.recovery_point < partition_log.log_end_offset
        now[0] = last_flush + 1000
        await flusher.flush_due(now[0])
        assert partition_log.recovery_point == partition_log.log_end_offset
    flusher.close()
    logs.shutdown()


def _unacknowledged_batch():
    data = batch()
    return data, validate_produce_batch(memoryview(data), 1 << 20)
