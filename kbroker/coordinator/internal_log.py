"""Appending a coordinator's own records to its internal topic, durably.

Both coordinators (`__consumer_offsets`, `__transaction_state`) write the same way: one batch of
(key, value) records for the partition that owns the key, handed to the broker's
`append(log, batch, header, now_ms)` (the partition service: append, fsync as
`log.flush.interval.messages` asks, high watermark, and in a cluster the ISR's acknowledgement)
before the caller answers. A failure is `AppendFailed` with the log's error code, which each
coordinator maps to what its clients expect.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from kbroker.errors import ErrorCode, KafkaError
from kbroker.wire.records import BatchHeader, Record, build_batch

if TYPE_CHECKING:
    from kbroker.log.partition_log import AppendResult, PartitionLog

log = logging.getLogger("kbroker.coordinator")

# Appends a built batch and returns once it is durable (and replicated); KafkaError or OSError if not.
AppendBatch = Callable[["PartitionLog", bytes, BatchHeader, int], Awaitable["AppendResult"]]


class AppendFailed(Exception):
    def __init__(self, code: ErrorCode) -> None:
        super().__init__(code.name)
        self.code = code


async def append_durably(partition_log: PartitionLog, records: Sequence[tuple[bytes, bytes | None]], now_ms: int,
                         append: AppendBatch, *, producer_id: int = -1, producer_epoch: int = -1,
                         base_sequence: int = -1, transactional: bool = False) -> int:
    """Append one batch of `records` and wait until it is durable; the offset of its first record.
    A transactional batch carries its producer's id, epoch and sequence (TxnOffsetCommit)."""
    try:
        batch = build_batch([Record(i, now_ms, key, value) for i, (key, value) in enumerate(records)],
                            producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=base_sequence,
                            is_transactional=transactional)
        if len(batch) > partition_log.config.max_message_bytes:
            raise AppendFailed(ErrorCode.RECORD_LIST_TOO_LARGE)
        result = await append(partition_log, batch, BatchHeader.parse(batch), now_ms)
    except KafkaError as exc:  # refused, or in a cluster not replicated (the leader moved, a timeout)
        raise AppendFailed(exc.code) from exc
    except OSError as exc:
        log.error("append to %s-%d failed: %s", partition_log.topic, partition_log.partition, exc)
        raise AppendFailed(ErrorCode.KAFKA_STORAGE_ERROR) from exc
    return result.base_offset
