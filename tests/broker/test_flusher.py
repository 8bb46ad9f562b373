"""Group commit: concurrent produces share fsyncs, and a finished flush is never re-awaited."""
from __future__ import annotations

import asyncio

from kbroker.broker.flusher import Flusher
from kbroker.config import build_config
from kbroker.log.log_manager import LogManager
from tests.log.conftest import append


def open_logs(tmp_path) -> tuple[Flusher, LogManager]:
    config = build_config({"log.dirs": str(tmp_path)})
    logs = LogManager(config.data_dir, config.log_defaults()).load()
    logs.create_topic("t", 1, {})
    return Flusher(config, logs), logs


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
