"""The cleaner's asyncio task (broker/log_cleaner.py) on a real LogManager, in this process:
it cleans in its worker thread while the loop keeps appending, stops promptly on close, a
cleaning cut short by close leaves a log that reopens whole, and it judges the records' age by
the LogManager's clock."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

from kbroker.broker.log_cleaner import LogCleanerService
from kbroker.clock import Clock, wall_clock_ms
from kbroker.config import build_config
from kbroker.log.log_manager import LogManager
from kbroker.wire.records import Record, build_batch, decode_records, validate_produce_batch

from tests.waiting import wait_until_async

TOPIC_CONFIGS = {"cleanup.policy": "compact", "segment.bytes": "65536", "min.cleanable.dirty.ratio": "0.01"}


def setup(data_dir: Path, clock: Clock = wall_clock_ms, topic_configs: dict[str, str] = TOPIC_CONFIGS,
          **settings: str):
    config = build_config({"log.dirs": str(data_dir), "log.cleaner.backoff.ms": "20", **settings})
    logs = LogManager(data_dir, config.log_defaults(), clock=clock).load()
    logs.create_topic("t", 1, topic_configs)
    return config, logs, logs.get_log("t", 0)


def write(plog, first: int, count: int, keys: int) -> None:
    now = int(time.time() * 1000)
    for n in range(first, first + count):
        batch = bytearray(build_batch([Record(i, now, b"key-%d" % ((n * 10 + i) % keys), b"v%d" % n * 20)
                                       for i in range(10)]))
        plog.append(batch, validate_produce_batch(memoryview(batch), 10**6), leader_epoch=0, now_ms=now)
    plog.update_high_watermark(plog.log_end_offset)


def latest(plog) -> dict[bytes, bytes]:
    out = {}
    for batch in plog.read_batches(plog.log_start_offset, plog.log_end_offset):
        out.update((r.key, r.value) for r in decode_records(batch))
    return out


async def test_cleans_in_the_background_while_the_loop_appends(tmp_path: Path) -> None:
    config, logs, plog = setup(tmp_path)
    service = LogCleanerService(config, logs)
    service.start()
    try:
        for round_ in range(20):
            write(plog, round_ * 50, 50, keys=100)
            await asyncio.sleep(0.01)  # the scenario: appends keep coming while the cleaner works
        expected = latest(plog)
        active = plog.segments[-1].base_offset
        await wait_until_async(lambda: (service.cleaner.first_dirty_offset("t", 0) or 0) >= active,
                               "the cleaner to reach the active segment", 20)
    finally:
        service.close()
    assert latest(plog) == expected
    assert sum(s.size for s in plog.segments[:-1]) < 100 * 40 * 3  # about 100 live keys left
    logs.shutdown()


async def test_close_stops_a_cleaning_and_the_log_reopens_whole(tmp_path: Path) -> None:
    config, logs, plog = setup(tmp_path, **{"log.cleaner.io.buffer.size": "4096"})
    write(plog, 0, 4000, keys=40_000)
    plog.roll_if_idle(int(time.time() * 1000) + 10**12)
    expected = latest(plog)
    service = LogCleanerService(config, logs)
    service.start()
    await wait_until_async(lambda: any(plog.directory.glob("*.cleaned")), "the cleaner to write a cleaned segment")
    started = time.monotonic()
    service.close()
    assert time.monotonic() - started < 2
    assert service.cleaner.last_stats is None  # it was cut short
    logs.shutdown()
    reopened = LogManager(tmp_path, config.log_defaults()).load()
    assert latest(reopened.get_log("t", 0)) == expected
    reopened.shutdown()


async def test_records_are_old_enough_to_clean_by_the_log_managers_clock(tmp_path: Path) -> None:
    """min.compaction.lag.ms: records younger than it stay dirty, by the clock the broker passes
    in; the cleaner takes the log once that clock (not the real one) has passed the lag."""
    now = [wall_clock_ms()]
    config, logs, plog = setup(tmp_path, lambda: now[0], {**TOPIC_CONFIGS, "min.compaction.lag.ms": "3600000"})
    write(plog, 0, 300, keys=50)  # stamped with the real time: a few segments
    service = LogCleanerService(config, logs)
    grabs: list[tuple[int, object]] = []
    grab = service.cleaner.grab_filthiest

    def watched_grab(now_ms: int):
        job = grab(now_ms)
        grabs.append((now_ms, job))
        return job

    service.cleaner.grab_filthiest = watched_grab
    service.start()
    try:
        await wait_until_async(lambda: len(grabs) >= 3, "the cleaner to look three times")
        assert all(job is None and at == now[0] for at, job in grabs)  # all younger than the lag
        now[0] += 3_600_000 + 1000
        await wait_until_async(lambda: service.cleaner.first_dirty_offset("t", 0) is not None,
                               "the cleaner to clean t-0")
        assert service.cleaner.first_dirty_offset("t", 0) == plog.segments[-1].base_offset
    finally:
        service.close()
    logs.shutdown()
