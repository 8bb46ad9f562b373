"""Transaction traffic to other brokers: markers to partition leaders, verification to coordinators.

As Kafka's TransactionMarkerChannelManager: the transaction coordinator writes the markers of the
partitions it leads itself and sends the others to their leaders, one request per leader. Each
leader gets one connection here, one request at a time, reopened after a failure (a new
registration of the broker, or a lost connection). A partition without a live leader, or one
whose leader does not answer, gets NOT_LEADER_OR_FOLLOWER, which the coordinator retries.

A partition leader asks a transaction's coordinator on another broker whether partitions are in
the transaction (AddPartitionsToTxn v4 `verify_only`, KIP-890) over the same connections.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from kbroker.cluster.broker_client import BrokerConnection, InterBrokerLink, InterBrokerLoginError
from kbroker.cluster.image import BrokerRegistration, ClusterImage
from kbroker.errors import ErrorCode
from kbroker.wire.messages.add_partitions_to_txn import (
    ADD_PARTITIONS_TO_TXN,
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnTopic,
    AddPartitionsToTxnTransaction,
)
from kbroker.wire.schema import Api
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
VERIFY_VERSION = 4


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

    async def _request(self, broker_id: int, api: Api, version: int, request: object, purpose: str) -> Any:
        """One request to `broker_id`, or None if it is not registered or did not answer."""
        registration = self._image().brokers.get(broker_id)
        if registration is None:
            return None
        connection, lock = self._connection(registration)
        try:
            async with lock:
                answer = await connection.request(api, version, request, REQUEST_TIMEOUT_S)
        except InterBrokerLoginError as exc:
            if self._refusals.get(broker_id) != str(exc):
                log.error("cannot send %s to broker %d: %s", purpose, broker_id, exc)
                self._refusals[broker_id] = str(exc)
            return None
        except OSError as exc:
            log.warning("%s to broker %d failed: %s", api.name, broker_id, exc)
            return None
        self._refusals.pop(broker_id, None)
        return answer

    async def send(self, leader: int, producer_id: int, producer_epoch: int, coordinator_epoch: int, commit: bool,
                   partitions: Sequence[TopicPartition]) -> dict[TopicPartition, ErrorCode]:
        """Have broker `leader` write the marker on `partitions`: an error code per partition."""
        request = WriteTxnMarkersRequest(markers=[WritableTxnMarker(
            producer_id=producer_id, producer_epoch=producer_epoch, transaction_result=commit,
            coordinator_epoch=coordinator_epoch,
            topics=[WritableTxnMarkerTopic(name=t, partition_indexes=p) for t, p in _by_topic(partitions).items()])])
        answer = await self._request(leader, WRITE_TXN_MARKERS, VERSION, request, "transaction markers")
        if answer is None:
            return {tp: ErrorCode.NOT_LEADER_OR_FOLLOWER for tp in partitions}
        results = {(t.name, p.partition_index): ErrorCode(p.error_code)
                   for marker in answer.markers for t in marker.topics for p in t.partitions}
        return {tp: results.get(tp, ErrorCode.NOT_LEADER_OR_FOLLOWER) for tp in partitions}

    async def verify(self, coordinator: int, transactional_id: str, producer_id: int, producer_epoch: int,
                     partitions: Sequence[TopicPartition]) -> dict[TopicPartition, ErrorCode]:
        """Ask broker `coordinator` whether `partitions` are in the producer's ongoing transaction."""
        request = AddPartitionsToTxnRequest(transactions=[AddPartitionsToTxnTransaction(
            transactional_id=transactional_id, producer_id=producer_id, producer_epoch=producer_epoch,
            verify_only=True, topics=[AddPartitionsToTxnTopic(name=t, partitions=p)
                                      for t, p in _by_topic(partitions).items()])])
        answer = await self._request(coordinator, ADD_PARTITIONS_TO_TXN, VERIFY_VERSION, request,
                                     "a transaction verification")
        if answer is None:
            return dict.fromkeys(partitions, ErrorCode.COORDINATOR_NOT_AVAILABLE)
        results = {(t.name, p.partition_index): ErrorCode(p.partition_error_code)
                   for txn in answer.results_by_transaction for t in txn.topic_results
                   for p in t.results_by_partition}
        return {tp: results.get(tp, ErrorCode.COORDINATOR_NOT_AVAILABLE) for tp in partitions}

    def close(self) -> None:
        for _, connection, _ in self._connections.values():
            connection.close()
        self._connections.clear()


def _by_topic(partitions: Sequence[TopicPartition]) -> dict[str, list[int]]:
    by_topic: dict[str, list[int]] = {}
    for topic, partition in partitions:
        by_topic.setdefault(topic, []).append(partition)
    return by_topic
