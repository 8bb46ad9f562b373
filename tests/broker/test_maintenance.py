"""The maintenance cadence (broker/maintenance.py) on a real Broker with both clocks stood in: the
recovery-point checkpoint and the retention check come due on the monotonic clock, and what
retention deletes is decided by the wall clock. `tick` is called directly: no timer, no sleeps."""
from __future__ import annotations

import pytest

from kbroker.broker.broker import Broker
from kbroker.broker.maintenance import LogMaintenance
from kbroker.config import build_config
from kbroker.log.log_manager import LogManager
from tests.log.conftest import NOW, append

CHECKPOINT_MS = 60_000
RETENTION_CHECK_MS = 300_000
START = 10**9  # the monotonic clock's zero is arbitrary


class Clocks:
    def __init__(self) -> None:
        self.wall = NOW
        self.monotonic = START


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
async def broker(tmp_path, clocks):
    config = build_config({"log.dirs": str(tmp_path), "log.retention.check.interval.ms": str(RETENTION_CHECK_MS),
                           "log.flush.offset.checkpoint.interval.ms": str(CHECKPOINT_MS)})
    logs = LogManager(config.data_dir, config.log_defaults(), clock=lambda: clocks.wall).load()
    logs.create_topic("t", 1, {"retention.ms": "1000", "segment.bytes": "1024"})
    for _ in range(6):  # about 700 bytes a batch: a segment each
        append(logs.get_log("t", 0), value_size=200)
    broker = Broker(config, logs, monotonic=lambda: clocks.monotonic)
    yield broker
    await broker.partitions.close()
    broker.flusher.close()
    logs.shutdown()


async def test_checkpoints_come_due_on_the_monotonic_clock(broker, clocks) -> None:
    maintenance = LogMaintenance(broker)
    partition_log = broker.logs.get_log("t", 0)
    assert len(partition_log.segments) > 1 and partition_log.recovery_point == 0
    clocks.wall += 10**9  # the wall clock jumping ahead brings nothing due
    clocks.monotonic += CHECKPOINT_MS - 1
    await maintenance.tick()
    assert partition_log.recovery_point == 0
    clocks.monotonic += 1
    await maintenance.tick()  # the checkpoint syncs the rolled segments
    assert partition_log.recovery_point == partition_log.segments[-1].base_offset > 0


async def test_retention_is_checked_on_the_monotonic_clock_and_decides_by_the_wall_clock(broker, clocks) -> None:
    maintenance = LogMaintenance(broker)
    partition_log = broker.logs.get_log("t", 0)
    segments = len(partition_log.segments)
    clocks.monotonic += RETENTION_CHECK_MS
    await maintenance.tick()  # due, but by the wall clock nothing is older than retention.ms yet
    assert len(partition_log.segments) == segments and partition_log.log_start_offset == 0
    clocks.wall += 10_000
    clocks.monotonic += RETENTION_CHECK_MS - 1
    await maintenance.tick()  # old enough now, but the next check is not due
    assert len(partition_log.segments) == segments
    clocks.monotonic += 1
    await maintenance.tick()
    assert partition_log.log_start_offset == partition_log.log_end_offset  # every batch was older than 1 s
