"""The coordinators' append for tests without a broker: what the partition service does on a
single node without flush.messages (appended, and under the high watermark at once)."""
from __future__ import annotations

from kbroker.log.partition_log import AppendResult, PartitionLog
from kbroker.wire.records import BatchHeader


async def append_at_once(partition_log: PartitionLog, batch: bytes, header: BatchHeader,
                         now_ms: int) -> AppendResult:
    result = partition_log.append(batch, header, leader_epoch=partition_log.leader_epoch, now_ms=now_ms)
    partition_log.update_high_watermark(partition_log.log_end_offset)
    return result
