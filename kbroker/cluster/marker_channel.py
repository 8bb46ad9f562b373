"""Transaction markers for partitions led by other brokers: WriteTxnMarkers (API 27) to their leaders.

As Kafka's TransactionMarkerChannelManager: the transaction coordinator writes the markers of the
partitions it leads itself and sends the others to their leaders, one request per leader. Each
leader gets one connection here, one request at a time, reopened after a failure (a new
registration of the broker, or a lost connection). A partition without a live leader, or one
whose leader does not answer, gets NOT_LEADER_OR_FOLLOWER, which the coordinator retries.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from kbroker.cluster.broker_client import BrokerConnection, InterBrokerLink, InterBrokerLoginError
from kbroker.cluster.image import BrokerRegistration, ClusterImage
from kbroker.errors import ErrorCode
from kbroker.wire.messages.write_txn_markers import (
    WRITE_TXN_MARKERS,
    WritableTxnMarker,
    WritableTxnMarkerTopic,
    WriteTxnMarkersRequest,
)

log = logging.getLogger("kbroker.cluster")

TopicPartition = tuple[str, int]
REQUEST_TIMEOUT_S = 30.0
VERSION = 1


class MarkerChannel:
    def __init__(self, broker_id: int, image: Callable[[], ClusterImage], link: InterBrokerLink) -> None:
        self._client_id = f"kbroker-txn-markers-{broker_id}"
        self._image = image
        self._link = link
        self._refusals: dict[int, str] = {}  # broker -> the login refusal last logged (logged once, not per retry)
        self._connections: dict[int, tuple[BrokerRegistration, BrokerConnection, asyncio.Lock]] = {}

    def _connection(self, registration: BrokerRegistration) -> tuple[BrokerConnection, asyncio.Lock]:
        known = self._connections.get(registration.broker_id)
        if known is None or known[0] != registration:
            if known is not None:
                known[1].close()
            known = (registration, self._link.connection(registration, self._client_id), asyncio.Lock())
            self._connections[registration.broker_id] = known
        return known[1], known[2]

    async def send(self, leader: int, producer_id: int, producer_epoch: int, coordinator_epoch: int, commit: bool,
                   partitions: Sequence[TopicPartition]) -> dict[TopicPartition, ErrorCode]:
        """Have broker `leader` write the marker on `partitions`: an error code per partition."""
        registration = self._image().brokers.get(leader)
        if registration is None:
            return {tp: ErrorCode.NOT_LEADER_OR_FOLLOWER for tp in partitions}
        by_topic: dict[str, list[int]] = {}
        for topic, partition in partitions:
            by_topic.setdefault(topic, []).append(partition)
        request = WriteTxnMarkersRequest(markers=[WritableTxnMarker(
            producer_id=producer_id, producer_epoch=producer_epoch, transaction_result=commit,
            coordinator_epoch=coordinator_epoch,
            topics=[WritableTxnMarkerTopic(name=t, partition_indexes=p) for t, p in by_topic.items()])])
        connection, lock = self._connection(registration)
        try:
            async with lock:
                answer = await connection.request(WRITE_TXN_MARKERS, VERSION, request, REQUEST_TIMEOUT_S)
        except InterBrokerLoginError as exc:
            if self._refusals.get(leader) != str(exc):
                log.error("cannot send transaction markers to broker %d: %s", leader, exc)
                self._refusals[leader] = str(exc)
            return {tp: ErrorCode.NOT_LEADER_OR_FOLLOWER for tp in partitions}
        except OSError as exc:
            log.warning("WriteTxnMarkers to broker %d failed: %s", leader, exc)
            return {tp: ErrorCode.NOT_LEADER_OR_FOLLOWER for tp in partitions}
        self._refusals.pop(leader, None)
        results = {(t.name, p.partition_index): ErrorCode(p.error_code)
                   for marker in answer.markers for t in marker.topics for p in t.partitions}
        return {tp: results.get(tp, ErrorCode.NOT_LEADER_OR_FOLLOWER) for tp in partitions}

    def close(self) -> None:
        for _, connection, _ in self._connections.values():
            connection.close()
        self._connections.clear()
