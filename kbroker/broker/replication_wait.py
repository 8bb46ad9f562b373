"""Waiting for followers: an acks=all append is answered once the high watermark passes it.

Used by Produce with acks=all and by WriteTxnMarkers (Kafka appends markers with acks=all, so the
transaction coordinator counts a marker written only once the ISR has it: a new leader then has
it too). The high watermark, the smallest log end in the ISR, moves as followers fetch
(`Broker._replicas_moved`), which wakes the waiters through the fetch purgatory.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, NamedTuple

from kbroker.errors import ErrorCode

if TYPE_CHECKING:
    from kbroker.broker.broker import Broker
    from kbroker.log.partition_log import PartitionLog

TopicPartition = tuple[str, int]
PURGATORY = "Produce"  # the metrics' name for these waits; Kafka's marker appends wait in its produce purgatory too


class Appended(NamedTuple):
    partition_log: PartitionLog
    end: int  # the log end after the append
    truncations: int  # the log's truncation count before it (a later cut means it is gone)


async def wait_replicated(broker: Broker, appended: dict[TopicPartition, Appended],
                          timeout_ms: int) -> dict[TopicPartition, ErrorCode]:
    """Each partition's outcome: NONE once the high watermark passes its append; NOT_LEADER_OR_FOLLOWER
    if leadership moved or the log was cut; NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR fell below
    min.insync.replicas; REQUEST_TIMED_OUT after `timeout_ms`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(timeout_ms, 0) / 1000
    outcomes: dict[TopicPartition, ErrorCode] = {}
    waiting = dict(appended)
    while waiting:
        for key, entry in list(waiting.items()):
            code = _outcome(broker, entry)
            if code is not None:
                del waiting[key]
                outcomes[key] = code
        if not waiting:
            break
        woken = broker.fetch_waiters.watch(waiting, PURGATORY)
        timer = loop.call_at(deadline, _time_out, woken)
        try:
            timed_out = await woken
        finally:
            timer.cancel()
            broker.fetch_waiters.unwatch(woken, waiting, PURGATORY)
        if timed_out:
            outcomes.update((key, ErrorCode.REQUEST_TIMED_OUT) for key in waiting)
            break
    return outcomes


def _outcome(broker: Broker, entry: Appended) -> ErrorCode | None:
    """NONE once replicated, an error once it cannot be, None while it may still be."""
    partition_log = entry.partition_log
    if broker.leader_log(partition_log.topic, partition_log.partition) is not partition_log:
        return ErrorCode.NOT_LEADER_OR_FOLLOWER
    if partition_log.truncations != entry.truncations:  # cut back (a new leader): not replicated
        return ErrorCode.NOT_LEADER_OR_FOLLOWER
    if partition_log.high_watermark >= entry.end:
        return ErrorCode.NONE
    replicas = broker.cluster.replicas_of(partition_log.topic, partition_log.partition)
    if replicas is None:
        return ErrorCode.NOT_LEADER_OR_FOLLOWER
    if len(replicas.isr) < broker.cluster.min_insync_replicas(partition_log.topic):
        return ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND
    return None


def _time_out(waiter: asyncio.Future[bool | None]) -> None:
    if not waiter.done():
        waiter.set_result(True)  # the purgatory wakes it with None
