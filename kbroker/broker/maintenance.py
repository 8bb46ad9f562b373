"""Periodic log work, on one timer: time-based flushes (`flush.ms`), recovery-point
checkpoints (`log.flush.offset.checkpoint.interval.ms`, so start-up after a crash only
scans what was never synced), and retention (`log.retention.check.interval.ms`), which first
rolls active segments idle for `segment.ms`. Compaction has its own task (log_cleaner.py).

The cadence runs on the broker's monotonic clock (setting the wall clock neither skips nor
repeats a check); what retention and rolls decide by is wall time, the LogManager's clock.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kbroker.broker.broker import Broker

log = logging.getLogger("kbroker.maintenance")

TICK_MS = 100


class LogMaintenance:
    """What is due at each tick; `run_maintenance` ticks it, tests call `tick` with the clocks set."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._last_checkpoint = self._last_retention = broker.monotonic_ms()

    async def tick(self) -> None:
        broker = self._broker
        config = broker.config  # not kept: the broker's config may be replaced while it runs
        now = broker.monotonic_ms()
        await broker.flusher.flush_due(now)
        if now - self._last_checkpoint >= config.log_flush_offset_checkpoint_interval_ms:
            self._last_checkpoint = now
            await broker.flusher.checkpoint()
        if now - self._last_retention >= config.log_retention_check_interval_ms:
            self._last_retention = now
            broker.logs.roll_idle_segments(broker.now_ms())
            deleted = broker.logs.delete_old_segments(broker.now_ms())
            if deleted:
                log.info("retention deleted %d segments", deleted)


async def run_maintenance(broker: Broker) -> None:
    maintenance = LogMaintenance(broker)
    while True:
        await asyncio.sleep(TICK_MS / 1000)
        try:
            await maintenance.tick()
        except asyncio.CancelledError:
            raise
        except Exception:  # keep maintaining; one failure must not stop retention for good
            log.exception("log maintenance failed")
