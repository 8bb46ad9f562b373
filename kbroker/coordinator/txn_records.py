"""The records of `__transaction_state`: Kafka's TransactionLogKey / TransactionLogValue.

    key   int16 version 0, then transactional_id (string)
    value int16 version, then (version 0, not flexible; version 1 flexible, with tagged fields)
          producer_id int64, producer_epoch int16, transaction_timeout_ms int32,
          transaction_status int8 (TxnState), transaction_partitions [topic, [partition]] (nullable),
          last_update_timestamp_ms int64, start_timestamp_ms int64

We write value version 0, which every Kafka version reads (`kafka-console-consumer` with
`TransactionLogMessageFormatter` shows our topic). A null value is a tombstone: the
transactional id expired (`transactional.id.expiration.ms`). The topic is compacted; replaying
the latest record per key rebuilds the coordinator. A transactional id lives in partition
`abs(java_string_hashcode(id)) % partitions`, as groups do in `__consumer_offsets`.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from kbroker.coordinator.records import RecordFormatError
from kbroker.wire import codec
from kbroker.wire.primitives import DecodeError
from kbroker.wire.schema import INT8, INT16, INT32, INT64, STRING, Field, array, struct as declare

TRANSACTION_STATE_TOPIC = "__transaction_state"

TransactionLogKey = declare("TransactionLogKey",
    Field("transactional_id", STRING),
)
PartitionsSchema = declare("PartitionsSchema",
    Field("topic", STRING),
    Field("partition_ids", array(INT32)),
)
TransactionLogValue = declare("TransactionLogValue",
    Field("producer_id", INT64),
    Field("previous_producer_id", INT64, tag=0, tagged="1+", default=-1),
    Field("next_producer_id", INT64, tag=1, tagged="1+", default=-1),
    Field("producer_epoch", INT16),
    Field("transaction_timeout_ms", INT32),
    Field("transaction_status", INT8),
    Field("transaction_partitions", array(PartitionsSchema), nullable="0+"),
    Field("transaction_last_update_timestamp_ms", INT64),
    Field("transaction_start_timestamp_ms", INT64),
    Field("client_transaction_version", INT16, tag=2, tagged="1+", default=0),
)

_VERSION = struct.Struct(">h")
KEY_VERSION = 0
VALUE_VERSION = 0


@dataclass(frozen=True, slots=True)
class TxnLogEntry:
    """One decoded value: what the coordinator knew of a transactional id when it wrote it."""
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: int
    partitions: frozenset[tuple[str, int]]
    last_update_ms: int
    start_ms: int


def encode_key(transactional_id: str) -> bytes:
    return _VERSION.pack(KEY_VERSION) + bytes(
        codec.encode(TransactionLogKey, 0, False, TransactionLogKey(transactional_id=transactional_id)).buf)


def encode_value(entry: TxnLogEntry) -> bytes:
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(entry.partitions):
        by_topic.setdefault(topic, []).append(partition)
    value = TransactionLogValue(
        producer_id=entry.producer_id, producer_epoch=entry.producer_epoch,
        transaction_timeout_ms=entry.timeout_ms, transaction_status=entry.state,
        transaction_partitions=[PartitionsSchema(topic=t, partition_ids=p) for t, p in by_topic.items()],
        transaction_last_update_timestamp_ms=entry.last_update_ms,
        transaction_start_timestamp_ms=entry.start_ms)
    return _VERSION.pack(VALUE_VERSION) + bytes(codec.encode(TransactionLogValue, VALUE_VERSION, False, value).buf)


def decode_key(key: bytes | memoryview) -> str:
    view = memoryview(key)
    if len(view) < 2:
        raise RecordFormatError("record key shorter than its version")
    (version,) = _VERSION.unpack_from(view)
    if version != KEY_VERSION:
        raise RecordFormatError(f"unknown transaction log key version {version}")
    try:
        decoded, end = codec.decode(TransactionLogKey, 0, False, view, 2)
    except DecodeError as exc:
        raise RecordFormatError(str(exc)) from None
    if end != len(view):
        raise RecordFormatError(f"{len(view) - end} bytes left after a TransactionLogKey")
    return decoded.transactional_id


def decode_value(value: bytes | memoryview) -> TxnLogEntry:
    view = memoryview(value)
    if len(view) < 2:
        raise RecordFormatError("record value shorter than its version")
    (version,) = _VERSION.unpack_from(view)
    if version not in (0, 1):
        raise RecordFormatError(f"unknown transaction log value version {version}")
    try:
        decoded, _ = codec.decode(TransactionLogValue, version, version >= 1, view, 2)
    except DecodeError as exc:
        raise RecordFormatError(str(exc)) from None
    partitions = frozenset((p.topic, i) for p in decoded.transaction_partitions or () for i in p.partition_ids)
    return TxnLogEntry(decoded.producer_id, decoded.producer_epoch, decoded.transaction_timeout_ms,
                       decoded.transaction_status, partitions, decoded.transaction_last_update_timestamp_ms,
                       decoded.transaction_start_timestamp_ms)
