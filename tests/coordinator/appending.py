"""The coordinators' append for tests without a broker: what the partition service does on a
single node without flush.messages (appended, and under the high watermark at once)."""
from __future__ import annotations

import asyncio

from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.partition_log import AppendResult, PartitionLog
from kbroker.wire.records import BatchHeader


async def append_at_once(partition_log: PartitionLog, batch: bytes, header: BatchHeader,
                         now_ms: int) -> AppendResult:
    result = partition_log.append(batch, header, leader_epoch=partition_log.leader_epoch, now_ms=now_ms)
    partition_log.update_high_watermark(partition_log.log_end_offset)
    return result


class ControlledAppend:
    """`append_at_once` that a test makes fail with a log's error (`fail_with`: what a cluster's
    append raises when the leader moved or the ISR did not acknowledge in time) or hold until
    `gate` is set (a write not yet durable)."""

    def __init__(self) -> None:
        self.fail_with: ErrorCode | None = None
        self.gate: asyncio.Event | None = None
        self.calls = 0

    async def __call__(self, partition_log: PartitionLog, batch: bytes, header: BatchHeader,
                       now_ms: int) -> AppendResult:
        self.calls += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise KafkaError(self.fail_with)
        return await append_at_once(partition_log, batch, header, now_ms)
