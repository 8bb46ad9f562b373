"""Produce: translate the request into partition-service appends and their results into answers.

What a batch goes through — validation (framing, CRC-32C, zstd on old versions, the
transaction still open, keys on a compacted topic, the CreateTime window), the append, flush.messages, the high
watermark and the acks=all wait for the ISR — is the partition service's (partitions.py). Here
are the request-level parts, as in Kafka's KafkaApis: the transactional id's authorization (a
transactional batch without one is refused whole with TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
verifying a transaction's first batch on a partition with its coordinator
(txn_verification.py, KIP-890 part 1), the quota, WRITE on each topic, no client appends to an
internal topic, auto-creation, and acks itself.

With acks=0 there is no answer at all; if such a request fails we close the connection, as
Kafka does, so the client notices and refreshes its metadata. Otherwise the answer goes out
once the service says the appends are safe (at once unless flush.messages or acks=all with
followers holds it); a partition that failed after its append (a failed fsync:
KAFKA_STORAGE_ERROR; not replicated: REQUEST_TIMED_OUT, NOT_ENOUGH_REPLICAS_AFTER_APPEND,
NOT_LEADER_OR_FOLLOWER) is answered with that error and the others normally. In a cluster a
partition answered NOT_LEADER_OR_FOLLOWER names its new leader (KIP-951).
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from kbroker.broker import authorization, leader_hints, txn_verification
from kbroker.broker.connection import CloseReason
from kbroker.broker.dispatch import NO_RESPONSE, RequestContext
from kbroker.broker.partitions import AppendError, TopicPartition
from kbroker.broker.throttling import charge
from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.partition_log import AppendResult
from kbroker.log.topics import INTERNAL_TOPICS
from kbroker.security.acls import Operation, ResourceType
from kbroker.wire.messages.produce import (
    BatchIndexAndErrorMessage,
    PartitionProduceResponse,
    ProduceRequest,
    ProduceResponse,
    TopicProduceResponse,
)

Outcome = AppendResult | AppendError


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
        _answer(data.index, AppendError(code)) for data in topic.partition_data]) for topic in request.topic_data])


async def _produce_verified(ctx: RequestContext, request: ProduceRequest) -> Any:
    """A transaction's first batches on partitions are appended once the coordinator vouched for them."""
    refused, verified = await txn_verification.verify(ctx.broker, request)
    answer = _hinted(ctx, _produce(ctx, request, refused, verified))
    if asyncio.iscoroutine(answer):
        return await answer
    return answer


def _produce(ctx: RequestContext, request: ProduceRequest, refused: dict[TopicPartition, ErrorCode],
             verified: dict[TopicPartition, txn_verification.Verified]) -> Any:
    broker = ctx.broker
    acks = request.acks
    throttle = charge(ctx, broker.produce_quota, sum(len(data.records) for topic in request.topic_data
                                                     for data in topic.partition_data if data.records is not None)
                      ) if broker.produce_quota.enforced else 0
    appends = broker.partitions.appends(acks)
    outcomes: list[Outcome] = []  # one per partition, in the request's order
    failed = False
    for topic in request.topic_data:
        for data in topic.partition_data:
            if acks not in (0, 1, -1):
                outcome: Outcome = AppendError(ErrorCode.INVALID_REQUIRED_ACKS)
            elif refused and (topic.name, data.index) in refused:
                outcome = AppendError(refused[topic.name, data.index])
            else:
                outcome = _refusal(ctx, topic.name) or appends.produce(
                    topic.name, data.index, data.records, ctx.version,
                    verified.get((topic.name, data.index)) if verified else None, broker.now_ms())
            failed = failed or outcome.__class__ is AppendError
            outcomes.append(outcome)
    pending = appends.complete(request.timeout_ms)
    if acks == 0:
        if failed:
            ctx.connection.close(CloseReason.UNANSWERED_ERROR,
                                 "Produce with acks=0 failed: the client refreshes metadata")
        return NO_RESPONSE
    if pending is None:
        return _response(request, outcomes, None, throttle)
    return _respond_when_safe(request, outcomes, pending, throttle)


def _refusal(ctx: RequestContext, topic: str) -> AppendError | None:
    """Why this request may not write to `topic` at all (None: it may; the topic exists now)."""
    if not authorization.on_topic(ctx, Operation.WRITE, topic):
        return AppendError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
    if topic in INTERNAL_TOPICS:
        return AppendError(ErrorCode.INVALID_TOPIC_EXCEPTION, f"Cannot append to internal topic {topic}")
    broker = ctx.broker
    try:
        exists = (broker.auto_create_topic(topic) if authorization.may_create_topic(ctx, topic)
                  else broker.topic_exists(topic))
    except KafkaError as exc:  # e.g. an invalid topic name
        return AppendError(exc.code, exc.message)
    return None if exists else AppendError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)


async def _respond_when_safe(request: ProduceRequest, outcomes: list[Outcome],
                             pending: Awaitable[dict[TopicPartition, AppendError]], throttle: int) -> ProduceResponse:
    return _response(request, outcomes, await pending, throttle)


def _response(request: ProduceRequest, outcomes: list[Outcome], failures: dict[TopicPartition, AppendError] | None,
              throttle: int) -> ProduceResponse:
    """The answer: each partition's outcome, unless what it appended failed afterwards (`failures`)."""
    answers = iter(outcomes)
    topics = []
    for topic in request.topic_data:
        partitions = []
        for data in topic.partition_data:
            outcome = next(answers)
            if failures and outcome.__class__ is AppendResult:
                outcome = failures.get((topic.name, data.index), outcome)
            partitions.append(_answer(data.index, outcome))
        topics.append(TopicProduceResponse(name=topic.name, partition_responses=partitions))
    return ProduceResponse(responses=topics, throttle_time_ms=throttle)


def _answer(index: int, outcome: Outcome) -> PartitionProduceResponse:
    if outcome.__class__ is AppendResult:
        return PartitionProduceResponse(index=index, error_code=0, base_offset=outcome.base_offset,
                                        log_append_time_ms=outcome.log_append_time,
                                        log_start_offset=outcome.log_start_offset)
    if outcome.record_errors:
        return PartitionProduceResponse(
            index=index, error_code=outcome.code, base_offset=-1, error_message=outcome.message,
            record_errors=[BatchIndexAndErrorMessage(batch_index=i, batch_index_error_message=message)
                           for i, message in outcome.record_errors],
            log_start_offset=outcome.log_start_offset)
    return PartitionProduceResponse(index=index, error_code=outcome.code, base_offset=-1,
                                    error_message=outcome.message, log_start_offset=outcome.log_start_offset)
