"""The log cleaner's schedule and threads (the cleaning itself is `kbroker.log.cleaner`).

One asyncio task picks the filthiest compacted log on the event loop, then advances its cleaning
(`clean_steps`) in a single worker thread: reading, the offset map, writing and fsyncing the new
segments, renames. Each cleaned segment comes back to the loop for the swap into its log's segment
list, which is a list replacement and takes no I/O. With nothing worth cleaning the task sleeps
log.cleaner.backoff.ms; after a cleaning it looks again at once, as Kafka's cleaner thread does.

`close` (shutdown, before the logs close) stops a cleaning at its next batch and waits for the
worker: the logs' files must not close under it. A cleaning cut short leaves at most a committed
`.swap` segment, which start-up finishes.
"""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from kbroker.log.cleaner import CleanerSettings, CleaningJob, LogCleaner, advance

if TYPE_CHECKING:
    from kbroker.config import Config
    from kbroker.log.log_manager import LogManager

log = logging.getLogger("kbroker.cleaner")


def cleaner_settings(config: Config) -> CleanerSettings:
    return CleanerSettings(enable=config.log_cleaner_enable, backoff_ms=config.log_cleaner_backoff_ms,
                           dedupe_buffer_size=config.log_cleaner_dedupe_buffer_size,
                           io_buffer_size=max(config.log_cleaner_io_buffer_size, 4096),
                           io_buffer_load_factor=config.log_cleaner_io_buffer_load_factor)


class LogCleanerService:
    def __init__(self, config: Config, logs: LogManager) -> None:
        self.cleaner = LogCleaner(config.data_dir, logs.all_logs, cleaner_settings(config))
        self._clock = logs.clock  # wall time: compaction lags compare it with record timestamps
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kbroker-cleaner")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.cleaner.settings.enable:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def close(self) -> None:
        """Stop cleaning and wait for the worker thread (call before the logs close)."""
        self.cleaner.stop()
        if self._task is not None:
            self._task.cancel()
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        backoff = self.cleaner.settings.backoff_ms / 1000
        while True:
            try:
                job = self.cleaner.grab_filthiest(self._clock())
            except Exception:
                log.exception("choosing a log to clean failed")
                job = None
            if job is None:
                await asyncio.sleep(backoff)
                continue
            await self._clean(job)

    async def _clean(self, job: CleaningJob) -> None:
        loop = asyncio.get_running_loop()
        steps = self.cleaner.clean_steps(job)
        try:
            request = await loop.run_in_executor(self._executor, advance, steps, None)
            while request is not None:
                swapped = job.log.replace_segments(*request)
                request = await loop.run_in_executor(self._executor, advance, steps, swapped)
            await loop.run_in_executor(self._executor, self.cleaner.done, job)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.cleaner.failed(job, e)
            await asyncio.sleep(self.cleaner.settings.backoff_ms / 1000)
