"""Getting log data to disk without blocking the event loop.

By default Kafka leaves flushing to the OS and so do we. When `log.flush.interval.messages`
is reached, the producer's answer (and the high watermark) waits for an fsync of that
partition. fsync runs in a worker thread, and requests that arrive while one is running
share the next one (group commit): at most one flush per partition is in flight, and each
covers everything appended before it started.

A failed fsync is an OSError for every waiter (the producer gets KAFKA_STORAGE_ERROR and
retries), and the log then drops what was not synced (`PartitionLog.recover_from_failed_sync`).
A waiter whose records went with it must not be answered by a later flush of other records at
the same offsets, so waiters carry the log's truncation count from when they appended: a cut
since then fails them too.

`flush_due` (flush.ms) and `checkpoint` run from `kbroker.broker.maintenance`.
"""
from __future__ import annotations

import asyncio
import errno
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Callable

from kbroker.clock import MonotonicClock, monotonic_ms

if TYPE_CHECKING:
    from kbroker.config import Config
    from kbroker.log.log_manager import LogManager
    from kbroker.log.partition_log import PartitionLog

log = logging.getLogger("kbroker.flusher")


class Flusher:
    def __init__(self, config: Config, logs: LogManager, monotonic: MonotonicClock = monotonic_ms) -> None:
        self._config = config
        self._logs = logs
        self._monotonic = monotonic  # flush.ms counts from each partition's last flush on this clock
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kbroker-fsync")
        self._in_flight: dict[int, asyncio.Future[float]] = {}
        self._last_flush_ms: dict[int, int] = {}
        self.on_fsync: Callable[[float], None] | None = None  # seconds each fsync took (the metrics), on the loop

    def needs_flush(self, partition_log: PartitionLog) -> bool:
        interval = partition_log.config.flush_interval_messages
        return partition_log.unflushed_messages >= interval

    async def flush_through(self, partition_log: PartitionLog, offset: int, truncations: int | None = None) -> None:
        """Return once everything below `offset` is fsynced (sharing flushes in flight).

        `truncations` is the log's truncation count when the caller appended (default: now).
        Raises OSError if a flush fails or the log was cut back meanwhile (see the header).
        """
        key = id(partition_log)
        if truncations is None:
            truncations = partition_log.truncations
        while True:
            if partition_log.truncations != truncations:
                raise OSError(errno.EIO, f"{partition_log.topic}-{partition_log.partition}: the log was cut back "
                                         "after a failed fsync; these records were not kept")
            if partition_log.recovery_point >= offset:
                break
            running = self._in_flight.get(key)
            # A finished flush may still be registered (its done-callback has not run yet);
            # awaiting it again would not yield to the loop, so start the next one instead.
            if running is None or running.done():
                running = asyncio.get_running_loop().run_in_executor(self._executor, self._flush, partition_log)
                self._in_flight[key] = running
                running.add_done_callback(lambda done, key=key: self._forget(key, done))
            try:
                await asyncio.shield(running)
            except OSError:
                partition_log.recover_from_failed_sync()
                raise
        self._last_flush_ms[key] = self._monotonic()

    @staticmethod
    def _flush(partition_log: PartitionLog) -> float:
        """In the worker thread: fsync; the seconds it took."""
        started = time.perf_counter()
        partition_log.flush()
        return time.perf_counter() - started

    def _forget(self, key: int, done: asyncio.Future[float]) -> None:
        if self._in_flight.get(key) is done:
            del self._in_flight[key]
        if self.on_fsync is not None and not done.cancelled() and done.exception() is None:
            self.on_fsync(done.result())

    async def flush_due(self, now_ms: int) -> None:
        """Flush the partitions whose `flush.ms` has passed since their last flush (`now_ms` on the monotonic clock)."""
        for partition_log in self._logs.all_logs():
            interval = partition_log.config.flush_interval_ms
            if interval is None or partition_log.recovery_point >= partition_log.log_end_offset:
                continue
            if now_ms - self._last_flush_ms.get(id(partition_log), 0) >= interval:
                try:
                    await self.flush_through(partition_log, partition_log.log_end_offset)
                except OSError:
                    log.exception("background flush of %s-%d failed", partition_log.topic, partition_log.partition)

    async def checkpoint(self) -> None:
        """Sync rolled segments and write the recovery-point and log-start checkpoints."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._logs.checkpoint)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
