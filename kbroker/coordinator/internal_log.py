"""Appending a coordinator's own records to its internal topic, durably.

Both coordinators (`__consumer_offsets`, `__transaction_state`) write the same way: one batch of
(key, value) records, appended to the partition that owns the key, then made durable by the
broker's `durable(log, end_offset)` (high watermark, fsync as `log.flush.interval.messages`
asks, and in a cluster the ISR's acknowledgement) before the caller answers. A failure is `AppendFailed` with the log's error code, which
each coordinator maps to what its clients expect.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from kbroker.errors import ErrorCode, KafkaError
from kbroker.wire.records import BatchHeader, Record, build_batch

if TYPE_CHECKING:
    from kbroker.log.partition_log import PartitionLog

log = logging.getLogger("kbroker.coordinator")

Durable = Callable[["PartitionLog", int], Awaitable[None]]


class AppendFailed(Exception):
    def __init__(self, code: ErrorCode) -> None:
        super().__init__(code.name)
        self.code = code


async def append_durably(partition_log: PartitionLog, records: Sequence[tuple[bytes, bytes | None]], now_ms: int,
                         durable: Durable, *, producer_id: int = -1, producer_epoch: int = -1,
                         base_sequence: int = -1, transactional: bool = False) -> int:
    """Append one batch of `records` and wait until it is durable; the offset of its first record.
    A transactional batch carries its producer's id, epoch and sequence (TxnOffsetCommit)."""
    try:
        batch = build_batch([Record(i, now_ms, key, value) for i, (key, value) in enumerate(records)],
                            producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=base_sequence,
                            is_transactional=transactional)
        if len(batch) > partition_log.config.max_message_bytes:
            raise AppendFailed(ErrorCode.RECORD_LIST_TOO_LARGE)
        result = partition_log.append(batch, BatchHeader.parse(batch), leader_epoch=partition_log.leader_epoch,
                                      now_ms=now_ms)
        end = partition_log.log_end_offset
    except KafkaError as exc:
        raise AppendFailed(exc.code) from exc
    except OSError as exc:
        log.error("append to %s-%d failed: %s", partition_log.topic, partition_log.partition, exc)
        raise AppendFailed(ErrorCode.KAFKA_STORAGE_ERROR) from exc
    try:
        await durable(partition_log, end)
    except OSError as exc:
        log.error("flushing %s-%d failed: %s", partition_log.topic, partition_log.partition, exc)
        raise AppendFailed(ErrorCode.KAFKA_STORAGE_ERROR) from exc
    except KafkaError as exc:  # in a cluster: the followers did not all get it (the leader moved, a timeout)
        raise AppendFailed(exc.code) from exc
    return result.base_offset
