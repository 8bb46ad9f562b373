"""Fetch: whole record batches from the segment files, long-polling until min_bytes.

Record data is never read into Python: the log answers with file slices and the
connection `sendfile`s them between the encoded bytes of the response. Limits follow
KIP-74: `max_bytes` for the response, `partition_max_bytes` per partition, but the first
partition with data returns at least one whole batch so a large record cannot stall a
consumer. read_committed (isolation level 1, the librdkafka and kafkajs default) reads up
to the last stable offset and gets the aborted transactions (producer id, first offset) that
overlap the offsets returned, from the segments' .txnindex: the client drops those producers'
records up to their ABORT markers. The batches themselves stay opaque either way.

A Fetch with a replica id is a follower's (kbroker/cluster/replica_fetcher.py): it reads up to
the log end, not the high watermark, and its fetch offset is that replica's log end, which the
leader's high watermark and ISR follow (member.py).

Fetch sessions (KIP-227): we answer session-less — session id 0 in every reply — which
every client accepts (kafka-python asks for a session with epoch 0 and falls back).
"""
from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Awaitable

from kbroker.broker import authorization, leader_hints
from kbroker.broker.dispatch import RequestContext
from kbroker.broker.throttling import charge, refund
from kbroker.errors import ErrorCode, KafkaError
from kbroker.security.acls import Operation
from kbroker.wire.messages.fetch import (
    AbortedTransaction,
    FetchableTopicResponse,
    FetchRequest,
    FetchResponse,
    PartitionData,
)

READ_COMMITTED = 1
# Fetch v0-3 expect message format v0/v1, which we neither store nor convert to.
FIRST_V2_FORMAT_VERSION = 4


def handle_fetch(ctx: RequestContext, request: FetchRequest) -> FetchResponse | Awaitable[FetchResponse]:
    """Answered at once when there is enough to send (no task, no timer: the common case for a
    busy consumer), else a long poll."""
    session_error = _session_error(request)
    if session_error:
        return FetchResponse(error_code=session_error, session_id=0)
    responses, total, had_error = _read(ctx, request)
    if total >= request.min_bytes or had_error or request.max_wait_ms <= 0:
        return _answer(ctx, request, responses, total, had_error)
    watched = _watched_partitions(ctx, request)
    if not watched:
        return _answer(ctx, request, responses, total, had_error)
    return _long_poll(ctx, request, watched)


async def _long_poll(ctx: RequestContext, request: FetchRequest, watched: list[tuple[str, int]]) -> FetchResponse:
    """Re-read whenever a watched partition's high watermark moves, until min_bytes or max_wait_ms.

    Deleting a watched topic wakes it too: the re-read, before any request could create the
    topic again, finds it unknown and answers at once (Kafka's DelayedFetch), so a consumer
    never reads a new topic of the same name from its old position.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + request.max_wait_ms / 1000
    purgatory = ctx.broker.fetch_waiters
    while True:
        woken = purgatory.watch(watched)
        timer = loop.call_at(deadline, _time_out, woken)
        try:
            timed_out = await woken
        finally:
            timer.cancel()
            purgatory.unwatch(woken, watched)
        responses, total, had_error = _read(ctx, request)
        if total >= request.min_bytes or had_error or timed_out:
            return _answer(ctx, request, responses, total, had_error)


def _answer(ctx: RequestContext, request: FetchRequest, responses: list[FetchableTopicResponse],
            total: int, had_error: bool) -> FetchResponse:
    """The answer, unless it takes a consumer over its consumer_byte_rate: then, as Kafka does, an
    empty answer with the throttle time (and the bytes not counted, as they are not sent). As in
    Kafka, an answer larger than the quota allows over its whole span is never sent: consumers
    with a small quota need fetch.max.bytes below it."""
    quota = ctx.broker.fetch_quota
    replica = request.replica_id if ctx.version <= 14 else request.replica_state.replica_id
    if quota.enforced and replica < 0 and total:
        throttle = charge(ctx, quota, total)
        if throttle:
            refund(ctx, quota, total)
            return FetchResponse(throttle_time_ms=throttle, responses=[])
    response = FetchResponse(responses=responses)
    return leader_hints.hint_fetch_endpoints(ctx, response) if had_error else response


def _time_out(waiter: asyncio.Future[bool | None]) -> None:
    if not waiter.done():
        waiter.set_result(True)  # the purgatory wakes it with None


def _follower_epoch_error(follower_epoch: int, leader_epoch: int) -> int:
    """A follower of another leader epoch is not counted: it follows an older leader (FENCED), or
    this leader has not yet learnt of its own new epoch (UNKNOWN); as Kafka's Partition does."""
    if follower_epoch < 0 or follower_epoch == leader_epoch:
        return 0
    return ErrorCode.FENCED_LEADER_EPOCH if follower_epoch < leader_epoch else ErrorCode.UNKNOWN_LEADER_EPOCH


def _session_error(request: FetchRequest) -> int:
    if request.session_id != 0:
        return ErrorCode.FETCH_SESSION_ID_NOT_FOUND
    if request.session_epoch not in (0, -1):
        return ErrorCode.INVALID_FETCH_SESSION_EPOCH
    return 0


def _topic_name(ctx: RequestContext, topic: Any) -> str | None:
    if ctx.version >= 13:
        info = ctx.broker.logs.topic_by_id(topic.topic_id)
        return info.name if info else None
    return topic.topic


def _watched_partitions(ctx: RequestContext, request: FetchRequest) -> list[tuple[str, int]]:
    watched = []
    for topic in request.topics:
        name = _topic_name(ctx, topic)
        if name is not None:
            watched.extend((name, p.partition) for p in topic.partitions)
    return watched


def _read(ctx: RequestContext, request: FetchRequest) -> tuple[list[FetchableTopicResponse], int, bool]:
    broker = ctx.broker
    version = ctx.version
    read_committed = request.isolation_level == READ_COMMITTED
    replica = request.replica_id if version <= 14 else request.replica_state.replica_id
    follower = replica >= 0 and broker.cluster is not None
    remaining = request.max_bytes
    total = 0
    had_error = False
    responses = []
    for topic in request.topics:
        name = _topic_name(ctx, topic)
        unknown = ErrorCode.UNKNOWN_TOPIC_ID if version >= 13 else ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        if name is not None and not (authorization.on_cluster(ctx, Operation.CLUSTER_ACTION) if follower
                                     else authorization.on_topic(ctx, Operation.READ, name)):
            unknown = ErrorCode.TOPIC_AUTHORIZATION_FAILED
        partitions = []
        for wanted in topic.partitions:
            partition_log = (broker.partitions.leader_log(name, wanted.partition)
                             if name is not None and unknown != ErrorCode.TOPIC_AUTHORIZATION_FAILED else unknown)
            if isinstance(partition_log, ErrorCode):
                code = unknown if partition_log == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION else partition_log
                answer = PartitionData(partition_index=wanted.partition, error_code=code, high_watermark=-1,
                                       records=b"")
                if code == ErrorCode.NOT_LEADER_OR_FOLLOWER and (
                        leader := leader_hints.fetch_leader(ctx, name, wanted.partition)) is not None:
                    answer = dataclasses.replace(answer, current_leader=leader)
                partitions.append(answer)
                had_error = True
                continue
            if follower:
                epoch_error = _follower_epoch_error(wanted.current_leader_epoch, partition_log.leader_epoch)
                if epoch_error:
                    partitions.append(PartitionData(partition_index=wanted.partition, error_code=epoch_error,
                                                    high_watermark=-1, records=b""))
                    had_error = True
                    continue
                broker.cluster.on_follower_fetch(name, wanted.partition, replica, wanted.fetch_offset)
                upper = partition_log.log_end_offset
            else:
                upper = partition_log.last_stable_offset if read_committed else partition_log.high_watermark
            error = 0
            records: Any = b""
            aborted = [] if read_committed else None
            if version < FIRST_V2_FORMAT_VERSION:
                error = ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT
            elif not partition_log.log_start_offset <= wanted.fetch_offset <= partition_log.log_end_offset:
                error = ErrorCode.OFFSET_OUT_OF_RANGE
            elif wanted.fetch_offset < upper and remaining > 0:
                limit = min(wanted.partition_max_bytes, remaining)
                try:
                    if read_committed and not follower:
                        data, txns = partition_log.read_committed(wanted.fetch_offset, limit, upper,
                                                                  min_one_batch=total == 0)
                        aborted = [AbortedTransaction(producer_id=t.producer_id, first_offset=t.first_offset)
                                   for t in txns]
                    else:
                        data = partition_log.read(wanted.fetch_offset, limit, upper, min_one_batch=total == 0)
                except KafkaError as exc:
                    error = exc.code
                else:
                    if data.size:
                        records = data
                        total += data.size
                        remaining -= data.size
            had_error = had_error or error != 0
            partitions.append(PartitionData(
                partition_index=wanted.partition, error_code=error,
                high_watermark=partition_log.high_watermark,
                last_stable_offset=partition_log.last_stable_offset,
                log_start_offset=partition_log.log_start_offset,
                aborted_transactions=aborted,
                records=records))
        responses.append(FetchableTopicResponse(topic=name or "", topic_id=topic.topic_id,
                                                partitions=partitions))
    return responses, total, had_error
