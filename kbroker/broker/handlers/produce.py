"""Produce: validate each partition's record batch, append it whole, answer per partition.

The batch is never rewritten: `validate_produce_batch` checks length, magic, CRC-32C, the
header's counts and that the records tile the batch (decompressing a compressed batch as a
stream, up to a ceiling tied to max.message.bytes); the log patches the base offset into the
header and appends the bytes as the producer sent them. With acks=0 there is no answer at all;
if such a request fails we close the connection, as Kafka does, so the client notices and
refreshes its metadata.

On a compacted topic Kafka refuses records without a key (INVALID_RECORD, one record error
each), so there each record is read up to its key as well; a topic with a CreateTime window
(message.timestamp.before/after.max.ms, KIP-937) refuses records stamped outside it the same way
(INVALID_TIMESTAMP). A transactional batch needs the
request's transactional id, and the first one of a transaction on a partition is verified with
the coordinator (txn_verification.py, KIP-890 part 1); it opens the producer's transaction on
the partition, the log checks the rest at batch level as for idempotence (producer_state.py),
and a COMMIT / ABORT marker ends it (txn_markers.py).

Durability: when flush.messages asks for it, the answer waits for the fsync of every partition
written, all of them at once (flusher.py shares each fsync with the other requests waiting for
it). A partition whose append or fsync fails on disk is answered KAFKA_STORAGE_ERROR, which
producers retry; the others in the request are answered normally.

Replication (a cluster, a partition with followers): acks=all needs min.insync.replicas in the
ISR before appending (else NOT_ENOUGH_REPLICAS), and its answer waits until the high watermark,
the smallest log end in the ISR, passes the batch (REQUEST_TIMED_OUT after the request's
timeout; NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below the minimum meanwhile;
NOT_LEADER_OR_FOLLOWER if leadership moved). acks=1 answers after the leader's append.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, NamedTuple

from kbroker.broker import authorization, leader_hints, txn_verification
from kbroker.broker.dispatch import NO_RESPONSE, RequestContext
from kbroker.broker.throttling import charge
from kbroker.broker.replication_wait import Appended, wait_replicated
from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.partition_log import PartitionLog
from kbroker.log.topics import INTERNAL_TOPICS
from kbroker.security.acls import Operation, ResourceType
from kbroker.wire.messages.produce import (
    BatchIndexAndErrorMessage,
    PartitionProduceResponse,
    ProduceRequest,
    ProduceResponse,
    TopicProduceResponse,
)
from kbroker.wire.records import (
    Compression,
    decompressed_limit,
    keyless_record_indexes,
    timestamps_out_of_range,
    validate_produce_batch,
)

log = logging.getLogger("kbroker.produce")

ZSTD_MIN_PRODUCE_VERSION = 7


class _Written(NamedTuple):
    """A partition this request appended to, and where its answers are."""
    partition_log: PartitionLog
    end: int  # the log end after the request's appends
    truncations: int  # the log's truncation count then (flusher.py)
    answers: list[tuple[list[PartitionProduceResponse], int]]


def handle_produce(ctx: RequestContext, request: ProduceRequest) -> Any:
    transactional_id = request.transactional_id
    if transactional_id and not authorization.allowed(ctx, Operation.WRITE, ResourceType.TRANSACTIONAL_ID,
                                                      transactional_id):
        return _refuse_all(request, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    if txn_verification.has_transactional_batch(request):
        if not transactional_id:
            return _refuse_all(request, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        if ctx.broker.config.transaction_partition_verification_enable:
            return _produce_verified(ctx, request)
    return _hinted(ctx, _produce(ctx, request, {}, {}))


def _hinted(ctx: RequestContext, answer: Any) -> Any:
    """Partitions answered NOT_LEADER_OR_FOLLOWER name their new leader (KIP-951, leader_hints.py)."""
    if ctx.broker.cluster is None or answer is NO_RESPONSE:
        return answer
    if asyncio.iscoroutine(answer):
        return _hinted_later(ctx, answer)
    return leader_hints.hint_produce(ctx, answer)


async def _hinted_later(ctx: RequestContext, answer: Awaitable[ProduceResponse]) -> ProduceResponse:
    return leader_hints.hint_produce(ctx, await answer)


def _refuse_all(request: ProduceRequest, code: ErrorCode) -> ProduceResponse:
    return ProduceResponse(responses=[TopicProduceResponse(name=topic.name, partition_responses=[
        _error(data.index, code) for data in topic.partition_data]) for topic in request.topic_data])


async def _produce_verified(ctx: RequestContext, request: ProduceRequest) -> Any:
    """A transaction's first batches on partitions are appended once the coordinator vouched for them."""
    refused, verified = await txn_verification.verify(ctx.broker, request)
    answer = _hinted(ctx, _produce(ctx, request, refused, verified))
    if asyncio.iscoroutine(answer):
        return await answer
    return answer


def _produce(ctx: RequestContext, request: ProduceRequest, refused: dict[tuple[str, int], ErrorCode],
             verified: dict[tuple[str, int], txn_verification.Verified]) -> Any:
    broker = ctx.broker
    acks = request.acks
    throttle = charge(ctx, broker.produce_quota, sum(len(data.records) for topic in request.topic_data
                                                     for data in topic.partition_data if data.records is not None)
                      ) if broker.produce_quota.enforced else 0
    written: dict[int, _Written] = {}
    topics = []
    failed = False
    for topic in request.topic_data:
        partitions: list[PartitionProduceResponse] = []
        for data in topic.partition_data:
            partition_log = None
            if acks not in (0, 1, -1):
                result = _error(data.index, ErrorCode.INVALID_REQUIRED_ACKS)
            elif (topic.name, data.index) in refused:
                result = _error(data.index, refused[topic.name, data.index])
            else:
                result, partition_log = _append(ctx, topic.name, data.index, data.records, acks,
                                                verified.get((topic.name, data.index)))
            failed = failed or result.error_code != 0
            if partition_log is not None:
                earlier = written.get(id(partition_log))
                answers = earlier.answers if earlier else []
                answers.append((partitions, len(partitions)))
                written[id(partition_log)] = _Written(partition_log, partition_log.log_end_offset,
                                                      earlier.truncations if earlier else partition_log.truncations,
                                                      answers)
            partitions.append(result)
        topics.append(TopicProduceResponse(name=topic.name, partition_responses=partitions))
    pending = []  # partitions whose answer waits for an fsync (flush.messages reached)
    for entry in written.values():
        if broker.flusher.needs_flush(entry.partition_log):
            pending.append(entry)
        else:
            broker.advance_high_watermark(entry.partition_log, entry.partition_log.log_end_offset)
    if acks == 0:
        if failed:
            ctx.connection.close("Produce with acks=0 failed; closing so the client refreshes metadata")
        if pending:
            asyncio.ensure_future(_flush_all(ctx, pending))
        return NO_RESPONSE
    response = ProduceResponse(responses=topics, throttle_time_ms=throttle)
    replicated = [] if acks != -1 or broker.cluster is None else [
        entry for entry in written.values()
        if broker.cluster.replicas_of(entry.partition_log.topic, entry.partition_log.partition) is not None]
    if replicated:
        return _respond_after_replication(ctx, pending, replicated, response, request.timeout_ms)
    if pending:
        return _respond_after_flush(ctx, pending, response)
    return response


def _append(ctx: RequestContext, topic: str, partition: int, records: memoryview | None, acks: int,
            verified: txn_verification.Verified | None) -> tuple[PartitionProduceResponse, PartitionLog | None]:
    """Append one partition's batch: its answer, and its log if something was appended (or was a retry)."""
    broker = ctx.broker
    if not authorization.on_topic(ctx, Operation.WRITE, topic):
        return _error(partition, ErrorCode.TOPIC_AUTHORIZATION_FAILED), None
    if topic in INTERNAL_TOPICS:
        return _error(partition, ErrorCode.INVALID_TOPIC_EXCEPTION, f"Cannot append to internal topic {topic}"), None
    try:
        exists = (broker.auto_create_topic(topic) if authorization.may_create_topic(ctx, topic)
                  else broker.topic_exists(topic))
    except KafkaError as exc:  # e.g. an invalid topic name
        return _error(partition, exc.code, exc.message), None
    partition_log = broker.leader_log(topic, partition) if exists else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    if isinstance(partition_log, ErrorCode):
        return _error(partition, partition_log), None
    if records is None:
        return _error(partition, ErrorCode.INVALID_RECORD, "no record batch", partition_log), None
    if acks == -1 and broker.cluster is not None and _too_few_in_sync(ctx, topic, partition):
        return _error(partition, ErrorCode.NOT_ENOUGH_REPLICAS, "The size of the current ISR is below "
                      "min.insync.replicas", partition_log), None
    try:
        max_message_bytes = partition_log.config.max_message_bytes
        header = validate_produce_batch(records, max_message_bytes)
        if header.compression == Compression.ZSTD and ctx.version < ZSTD_MIN_PRODUCE_VERSION:
            raise KafkaError(ErrorCode.UNSUPPORTED_COMPRESSION_TYPE, "zstd needs Produce v7 or later (KIP-110)")
        if verified is not None and not txn_verification.still_open_to(partition_log, verified):
            raise KafkaError(ErrorCode.INVALID_TXN_STATE, "the transaction ended while its partition was verified")
        if partition_log.config.compact:
            keyless = keyless_record_indexes(records, decompressed_limit(max_message_bytes))
            if keyless:
                message = f"Compacted topic cannot accept message without key in topic partition {topic}-{partition}"
                return _record_errors(partition, ErrorCode.INVALID_RECORD, {i: message for i in keyless},
                                      partition_log), None
        window = partition_log.config.create_time_window_ms()
        if window is not None:
            now = broker.now_ms()
            low, high = now - window[0], now + window[1]
            late = timestamps_out_of_range(records, decompressed_limit(max_message_bytes), low, high)
            if late:
                return _record_errors(partition, ErrorCode.INVALID_TIMESTAMP, {
                    i: f"Timestamp {t} of message with offset {i} is out of range. The timestamp should be within "
                       f"[{low}, {high}]" for i, t in late}, partition_log), None
        result = partition_log.append(records, header, leader_epoch=partition_log.leader_epoch,
                                      now_ms=broker.now_ms())
    except KafkaError as exc:
        return _error(partition, exc.code, exc.message, partition_log), None
    except OSError as exc:  # nothing was written; the log reports the failure (once) and the recovery
        log.debug("append to %s-%d failed: %s", topic, partition, exc)
        return _storage_error(partition, exc, partition_log), None
    return PartitionProduceResponse(
        index=partition, error_code=0, base_offset=result.base_offset,
        log_append_time_ms=result.log_append_time, log_start_offset=partition_log.log_start_offset), partition_log


def _error(partition: int, code: ErrorCode, message: str | None = None,
           partition_log: PartitionLog | None = None) -> PartitionProduceResponse:
    return PartitionProduceResponse(
        index=partition, error_code=code, base_offset=-1, error_message=message,
        log_start_offset=partition_log.log_start_offset if partition_log else -1)


def _storage_error(partition: int, exc: OSError, partition_log: PartitionLog) -> PartitionProduceResponse:
    return _error(partition, ErrorCode.KAFKA_STORAGE_ERROR, f"Disk error: {exc.strerror or exc}", partition_log)


def _record_errors(partition: int, code: ErrorCode, messages: dict[int, str],
                   partition_log: PartitionLog) -> PartitionProduceResponse:
    """Kafka's LogValidator answer to records it refuses one by one (the batch is not appended)."""
    shown = ", ".join(f"RecordError(batchIndex={i}, message='{m}')" for i, m in list(messages.items())[:3])
    return PartitionProduceResponse(
        index=partition, error_code=code, base_offset=-1,
        record_errors=[BatchIndexAndErrorMessage(batch_index=i, batch_index_error_message=m)
                       for i, m in messages.items()],
        error_message=f"One or more records have been rejected due to {len(messages)} record errors in total, "
                      f"and only showing the first three errors at most: [{shown}]",
        log_start_offset=partition_log.log_start_offset)


def _too_few_in_sync(ctx: RequestContext, topic: str, partition: int) -> bool:
    """A replicated partition whose ISR is below min.insync.replicas (acks=all checks before appending)."""
    replicas = ctx.broker.cluster.replicas_of(topic, partition)
    return replicas is not None and len(replicas.isr) < ctx.broker.cluster.min_insync_replicas(topic)


async def _respond_after_replication(ctx: RequestContext, pending: list[_Written], replicated: list[_Written],
                                     response: ProduceResponse, timeout_ms: int) -> ProduceResponse:
    """acks=all with followers: answer each replicated partition once its high watermark passes
    what this request appended (after the fsyncs flush.messages asks for)."""
    if pending:
        await _respond_after_flush(ctx, pending, response)
    waiting = {(e.partition_log.topic, e.partition_log.partition): e for e in replicated
               if all(partitions[i].error_code == 0 for partitions, i in e.answers)}
    outcomes = await wait_replicated(ctx.broker, {key: Appended(e.partition_log, e.end, e.truncations)
                                                  for key, e in waiting.items()}, timeout_ms)
    for key, code in outcomes.items():
        if code != ErrorCode.NONE:
            entry = waiting[key]
            for partitions, i in entry.answers:
                partitions[i] = _error(partitions[i].index, code, None, entry.partition_log)
    return response


async def _flush_all(ctx: RequestContext, pending: list[_Written]) -> list[tuple[_Written, OSError]]:
    """fsync the partitions, all at once; expose what was synced; return the ones that failed."""
    broker = ctx.broker
    outcomes = await asyncio.gather(
        *(broker.flusher.flush_through(w.partition_log, w.end, w.truncations) for w in pending),
        return_exceptions=True)
    failures = []
    for entry, outcome in zip(pending, outcomes):
        if isinstance(outcome, OSError):
            failures.append((entry, outcome))
        elif isinstance(outcome, BaseException):
            raise outcome
        else:
            partition_log = entry.partition_log
            broker.advance_high_watermark(partition_log, min(partition_log.recovery_point, partition_log.log_end_offset))
    return failures


async def _respond_after_flush(ctx: RequestContext, pending: list[_Written],
                               response: ProduceResponse) -> ProduceResponse:
    for entry, exc in await _flush_all(ctx, pending):
        for partitions, i in entry.answers:  # not durable: not acknowledged
            partitions[i] = _storage_error(partitions[i].index, exc, entry.partition_log)
    return response
