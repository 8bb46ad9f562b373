"""Produce: validate each partition's record batch, append it whole, answer per partition.

The batch is never decoded: `validate_produce_batch` checks length, magic, CRC-32C and the
header's counts; the log patches the base offset into the header and appends the bytes as
the producer sent them. With acks=0 there is no answer at all; if such a request fails we
close the connection, as Kafka does, so the client notices and refreshes its metadata.

The exception: on a compacted topic Kafka refuses records without a key (INVALID_RECORD,
one record error each), so there the records are decompressed and walked up to each key
length (about 0.7 us a record).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from kbroker.broker.dispatch import NO_RESPONSE, RequestContext
from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.partition_log import PartitionLog
from kbroker.log.topics import INTERNAL_TOPICS
from kbroker.wire.messages.produce import (
    BatchIndexAndErrorMessage,
    PartitionProduceResponse,
    ProduceRequest,
    ProduceResponse,
    TopicProduceResponse,
)
from kbroker.wire.records import Compression, keyless_record_indexes, validate_produce_batch

log = logging.getLogger("kbroker.produce")

ZSTD_MIN_PRODUCE_VERSION = 7


def handle_produce(ctx: RequestContext, request: ProduceRequest) -> Any:
    broker = ctx.broker
    acks = request.acks
    to_flush: dict[int, tuple[PartitionLog, int]] = {}
    topics = []
    failed = False
    for topic in request.topic_data:
        partitions = []
        for data in topic.partition_data:
            if acks not in (0, 1, -1):
                result = _error(data.index, ErrorCode.INVALID_REQUIRED_ACKS)
            else:
                result = _append(ctx, topic.name, data.index, data.records, to_flush)
            failed = failed or result.error_code != 0
            partitions.append(result)
        topics.append(TopicProduceResponse(name=topic.name, partition_responses=partitions))
    pending = []  # partitions whose answer waits for an fsync (flush.messages reached)
    for partition_log, end in to_flush.values():
        if broker.flusher.needs_flush(partition_log):
            pending.append((partition_log, end))
        else:
            broker.advance_high_watermark(partition_log, partition_log.log_end_offset)
    if acks == 0:
        if failed:
            ctx.connection.close("Produce with acks=0 failed; closing so the client refreshes metadata")
        if pending:
            asyncio.ensure_future(_flush_all(ctx, pending))
        return NO_RESPONSE
    response = ProduceResponse(responses=topics)
    if pending:
        return _respond_after_flush(ctx, pending, response)
    return response


def _append(ctx: RequestContext, topic: str, partition: int, records: memoryview | None,
            to_flush: dict[int, tuple[PartitionLog, int]]) -> PartitionProduceResponse:
    broker = ctx.broker
    if topic in INTERNAL_TOPICS:
        return _error(partition, ErrorCode.INVALID_TOPIC_EXCEPTION, f"Cannot append to internal topic {topic}")
    try:
        exists = broker.auto_create_topic(topic)
    except KafkaError as exc:  # e.g. an invalid topic name
        return _error(partition, exc.code, exc.message)
    partition_log = broker.logs.get_log(topic, partition) if exists else None
    if partition_log is None:
        return _error(partition, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
    if records is None:
        return _error(partition, ErrorCode.INVALID_RECORD, "no record batch", partition_log)
    try:
        header = validate_produce_batch(records, partition_log.config.max_message_bytes)
        if header.compression == Compression.ZSTD and ctx.version < ZSTD_MIN_PRODUCE_VERSION:
            raise KafkaError(ErrorCode.UNSUPPORTED_COMPRESSION_TYPE, "zstd needs Produce v7 or later (KIP-110)")
        if partition_log.config.compact:
            keyless = keyless_record_indexes(records)
            if keyless:
                return _keyless(partition, f"{topic}-{partition}", keyless, partition_log)
        result = partition_log.append(records, header, leader_epoch=partition_log.leader_epoch,
                                      now_ms=broker.now_ms())
    except KafkaError as exc:
        return _error(partition, exc.code, exc.message, partition_log)
    except OSError as exc:
        log.error("append to %s-%d failed: %s", topic, partition, exc)
        return _error(partition, ErrorCode.KAFKA_STORAGE_ERROR, str(exc), partition_log)
    to_flush[id(partition_log)] = (partition_log, partition_log.log_end_offset)
    return PartitionProduceResponse(
        index=partition, error_code=0, base_offset=result.base_offset,
        log_append_time_ms=result.log_append_time, log_start_offset=partition_log.log_start_offset)


def _error(partition: int, code: ErrorCode, message: str | None = None,
           partition_log: PartitionLog | None = None) -> PartitionProduceResponse:
    return PartitionProduceResponse(
        index=partition, error_code=code, base_offset=-1, error_message=message,
        log_start_offset=partition_log.log_start_offset if partition_log else -1)


def _keyless(partition: int, name: str, indexes: list[int], partition_log: PartitionLog) -> PartitionProduceResponse:
    """Kafka's LogValidator answer to records without a key on a compacted topic."""
    message = f"Compacted topic cannot accept message without key in topic partition {name}"
    shown = ", ".join(f"RecordError(batchIndex={i}, message='{message}')" for i in indexes[:3])
    return PartitionProduceResponse(
        index=partition, error_code=ErrorCode.INVALID_RECORD, base_offset=-1,
        record_errors=[BatchIndexAndErrorMessage(batch_index=i, batch_index_error_message=message) for i in indexes],
        error_message=f"One or more records have been rejected due to {len(indexes)} record errors in total, "
                      f"and only showing the first three errors at most: [{shown}]",
        log_start_offset=partition_log.log_start_offset)


async def _flush_all(ctx: RequestContext, pending: list[tuple[PartitionLog, int]]) -> None:
    broker = ctx.broker
    for partition_log, end in pending:
        await broker.flusher.flush_through(partition_log, end)
        broker.advance_high_watermark(partition_log, min(partition_log.recovery_point, partition_log.log_end_offset))


async def _respond_after_flush(ctx: RequestContext, pending: list[tuple[PartitionLog, int]],
                               response: ProduceResponse) -> ProduceResponse:
    await _flush_all(ctx, pending)
    return response
