"""Fetch: whole record batches from the segment files, long-polling until min_bytes.

Record data is never read into Python: the log answers with file slices and the
connection `sendfile`s them between the encoded bytes of the response. Limits follow
KIP-74: `max_bytes` for the response, `partition_max_bytes` per partition, but the first
partition with data returns at least one whole batch so a large record cannot stall a
consumer. read_committed (isolation level 1, the librdkafka and kafkajs default) reads up
to the last stable offset and gets the aborted transactions (producer id, first offset) that
overlap the offsets returned, from the segments' .txnindex: the client drops those producers'
records up to their ABORT markers. The batches themselves stay opaque either way.

Each partition is read by the partition service (partitions.py `read`): leadership, the
offsets that bound the read, a follower's leader epoch and log end (a Fetch with a replica id is a
follower's, kbroker/cluster/replica_fetcher.py: it reads up to the log end, and the leader's high
watermark and ISR follow its fetch offset). Here: the request's topics, authorization, the byte
budget across partitions, sessions, the long poll, the quota and KIP-951 leader hints.

Fetch sessions (KIP-227): we answer session-less — session id 0 in every reply — which
every client accepts (kafka-python asks for a session with epoch 0 and falls back).
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable

from kbroker.broker import authorization, leader_hints
from kbroker.broker.dispatch import RequestContext
from kbroker.broker.throttling import charge, refund
from kbroker.errors import ErrorCode
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
    """Each partition read through the partition service, within the request's byte budget (KIP-74:
    the first partition with data gets at least one whole batch)."""
    broker = ctx.broker
    read = broker.partitions.read
    version = ctx.version
    read_committed = request.isolation_level == READ_COMMITTED
    replica = request.replica_id if version <= 14 else request.replica_state.replica_id
    follower = replica >= 0 and broker.cluster is not None
    # v0-3 read nothing: the service still checks leadership and the offset, the answer is the format.
    convertible = version >= FIRST_V2_FORMAT_VERSION
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
            if name is None or unknown == ErrorCode.TOPIC_AUTHORIZATION_FAILED:
                partitions.append(PartitionData(partition_index=wanted.partition, error_code=unknown,
                                                high_watermark=-1, records=b""))
                had_error = True
                continue
            if convertible and remaining > 0:
                limit = wanted.partition_max_bytes if wanted.partition_max_bytes < remaining else remaining
                error, records, size, high_watermark, last_stable_offset, log_start_offset, aborted = read(
                    name, wanted.partition, wanted.fetch_offset, limit, total == 0, read_committed, replica,
                    wanted.current_leader_epoch)
            else:
                error, records, size, high_watermark, last_stable_offset, log_start_offset, aborted = read(
                    name, wanted.partition, wanted.fetch_offset, 0, False, read_committed, replica,
                    wanted.current_leader_epoch)
            if error:
                had_error = True
                if error == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                    error = unknown
                elif error == ErrorCode.NOT_LEADER_OR_FOLLOWER and (
                        leader := leader_hints.fetch_leader(ctx, name, wanted.partition)) is not None:
                    partitions.append(PartitionData(partition_index=wanted.partition, error_code=error,
                                                    high_watermark=-1, current_leader=leader, records=b""))
                    continue
                elif not convertible and error == ErrorCode.OFFSET_OUT_OF_RANGE:
                    error = ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT
            elif not convertible:
                error = ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT
                had_error = True
            elif size:
                total += size
                remaining -= size
            partitions.append(PartitionData(
                partition_index=wanted.partition, error_code=error, high_watermark=high_watermark,
                last_stable_offset=last_stable_offset, log_start_offset=log_start_offset,
                aborted_transactions=aborted if aborted is None else [
                    AbortedTransaction(producer_id=t.producer_id, first_offset=t.first_offset) for t in aborted],
                records=records))
        responses.append(FetchableTopicResponse(topic=name or "", topic_id=topic.topic_id,
                                                partitions=partitions))
    return responses, total, had_error
