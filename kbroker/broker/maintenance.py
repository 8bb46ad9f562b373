"""Periodic log work, on one timer: time-based flushes (`flush.ms`), recovery-point
checkpoints (`log.flush.offset.checkpoint.interval.ms`, so start-up after a crash only
scans what was never synced), and retention (`log.retention.check.interval.ms`), which first
rolls active segments idle for `segment.ms`. Compaction has its own task (log_cleaner.py).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kbroker.broker.broker import Broker

log = logging.getLogger("kbroker.maintenance")

TICK_MS = 100


async def run_maintenance(broker: Broker) -> None:
    config = broker.config
    last_checkpoint = last_retention = time.monotonic() * 1000
    while True:
        await asyncio.sleep(TICK_MS / 1000)
        now = time.monotonic() * 1000
        try:
            await broker.flusher.flush_due(now)
            if now - last_checkpoint >= config.log_flush_offset_checkpoint_interval_ms:
                last_checkpoint = now
                await broker.flusher.checkpoint()
            if now - last_retention >= config.log_retention_check_interval_ms:
                last_retention = now
                broker.logs.roll_idle_segments(broker.now_ms())
                deleted = broker.logs.delete_old_segments(broker.now_ms())
                if deleted:
                    log.info("retention deleted %d segments", deleted)
        except asyncio.CancelledError:
            raise
        except Exception:  # keep maintaining; one failure must not stop retention for good
            log.exception("log maintenance failed")
