"""Transactional batches are checked before they are appended (Kafka's KafkaApis and KIP-890 part 1).

- A Produce request carrying a transactional batch without a transactional id is refused whole
  with TRANSACTIONAL_ID_AUTHORIZATION_FAILED, as Kafka does.
- A transaction's first batch on a partition (its producer has no transaction open there) is
  verified with the transaction coordinator: the partition must be in the producer's ongoing
  transaction, else INVALID_TXN_STATE. Without this, a batch sent outside any transaction (or
  after it ended) would open one that no marker ever closes, and read_committed consumers would
  stop at it for good. The coordinator is asked in place when this broker is it, otherwise with
  AddPartitionsToTxn v4 `verify_only` (the marker channel). Later batches of the transaction skip
  the check: the open transaction on the partition vouches for them.
- Between the answer and the append a marker may end the transaction: the partition's
  verification guard (producer_state.py), which the partition service gives, must be unchanged
  when the service appends the batch (Appends.produce).

A coordinator that cannot answer (moving, loading, unreachable) makes the partition's answer
NOT_ENOUGH_REPLICAS, which producers retry, as Kafka maps it for clients that do not know the
coordinator errors on Produce.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, NamedTuple

from kbroker.cluster.image import NO_LEADER
from kbroker.coordinator.txn_records import TRANSACTION_STATE_TOPIC
from kbroker.errors import ErrorCode
from kbroker.wire.records import HEADER_SIZE, BatchHeader

if TYPE_CHECKING:
    from kbroker.broker.broker import Broker
    from kbroker.wire.messages.produce import ProduceRequest

TopicPartition = tuple[str, int]

_TRANSACTIONAL_ATTRIBUTE_BYTE = 22  # the low byte of the int16 attributes at offset 21
_TRANSACTIONAL_BIT = 0x10
# The coordinator could not answer now: the producer retries the batch.
_RETRIABLE = {ErrorCode.COORDINATOR_NOT_AVAILABLE, ErrorCode.NOT_COORDINATOR, ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
              ErrorCode.CONCURRENT_TRANSACTIONS, ErrorCode.REQUEST_TIMED_OUT, ErrorCode.NOT_LEADER_OR_FOLLOWER}


class Verified(NamedTuple):
    """A transactional batch the coordinator vouched for, and the guard it was verified under."""
    producer_id: int
    guard: int


def has_transactional_batch(request: ProduceRequest) -> bool:
    """Cheap on the hot path: one attribute byte per partition (a malformed batch is refused later)."""
    return any(data.records is not None and len(data.records) > _TRANSACTIONAL_ATTRIBUTE_BYTE
               and data.records[_TRANSACTIONAL_ATTRIBUTE_BYTE] & _TRANSACTIONAL_BIT
               for topic in request.topic_data for data in topic.partition_data)


def _first_batches(broker: Broker, request: ProduceRequest) -> dict[TopicPartition, tuple[BatchHeader, int]]:
    """The transactional batches this broker leads that would open a transaction: header, guard."""
    first = {}
    for topic in request.topic_data:
        for data in topic.partition_data:
            records = data.records
            if records is None or len(records) < HEADER_SIZE:
                continue
            header = BatchHeader.parse(records)
            if not header.is_transactional or not header.has_producer_id:
                continue
            guard = broker.partitions.verification_guard(topic.name, data.index, header.producer_id)
            if guard is not None:
                first[(topic.name, data.index)] = (header, guard)
    return first


async def verify(broker: Broker, request: ProduceRequest) -> tuple[dict[TopicPartition, ErrorCode],
                                                                   dict[TopicPartition, Verified]]:
    """Ask the coordinator about the transaction's first batches: refusals, and what was vouched for."""
    first = _first_batches(broker, request)
    if not first:
        return {}, {}
    transactional_id = request.transactional_id
    by_producer: dict[tuple[int, int], list[TopicPartition]] = {}
    for tp, (header, _) in first.items():
        by_producer.setdefault((header.producer_id, header.producer_epoch), []).append(tp)
    answers: dict[TopicPartition, ErrorCode] = {}
    for (producer_id, epoch), partitions in by_producer.items():
        answers.update(await _ask_coordinator(broker, transactional_id, producer_id, epoch, partitions))
    refused = {tp: _produce_error(code) for tp, code in answers.items() if code != ErrorCode.NONE}
    verified = {tp: Verified(header.producer_id, guard) for tp, (header, guard) in first.items()
                if tp not in refused}
    return refused, verified


def _produce_error(code: ErrorCode) -> ErrorCode:
    if code in _RETRIABLE:
        return ErrorCode.NOT_ENOUGH_REPLICAS
    return ErrorCode.INVALID_PRODUCER_EPOCH if code == ErrorCode.PRODUCER_FENCED else code


async def _ask_coordinator(broker: Broker, transactional_id: str, producer_id: int, epoch: int,
                           partitions: Iterable[TopicPartition]) -> dict[TopicPartition, ErrorCode]:
    partitions = list(partitions)
    coordinator = broker.transactions
    if coordinator.coordinator_error(transactional_id) != ErrorCode.NOT_COORDINATOR or broker.cluster is None:
        return coordinator.verify_partitions(transactional_id, producer_id, epoch, partitions)
    leader = broker.cluster.image.leader_of(TRANSACTION_STATE_TOPIC, coordinator.partition_for(transactional_id))
    if leader == NO_LEADER:
        return dict.fromkeys(partitions, ErrorCode.COORDINATOR_NOT_AVAILABLE)
    return await broker.markers.verify(leader, transactional_id, producer_id, epoch, partitions)

