"""The "consumer" protocol type's opaque bytes: what a classic consumer puts in JoinGroup metadata
(its subscription) and what its leader hands out in SyncGroup (an assignment).

The broker never needs them to run a classic group, only to know which topics a Stable group
consumes (committed offsets of other topics may expire) and to build assignments itself for
KIP-848 members. Kafka's `ConsumerProtocolSubscription.json` / `ConsumerProtocolAssignment.json`
(non-flexible, an int16 version first); every version starts with the version-0 fields, so
reading version 0's layout works for all of them, as Kafka does.
"""
from __future__ import annotations

import struct

from kbroker.wire import codec
from kbroker.wire.primitives import DecodeError
from kbroker.wire.schema import BYTES, INT32, STRING, Field, array, struct as declare

Subscription = declare("ConsumerProtocolSubscription",
    Field("topics", array(STRING)),
    Field("user_data", BYTES, nullable="0+"),
)
AssignedTopic = declare("ConsumerProtocolTopicPartition",
    Field("topic", STRING),
    Field("partitions", array(INT32)),
)
Assignment = declare("ConsumerProtocolAssignment",
    Field("assigned_partitions", array(AssignedTopic)),
    Field("user_data", BYTES, nullable="0+"),
)

_VERSION = struct.Struct(">h")


def subscription_topics(metadata: bytes) -> list[str] | None:
    """The topics of a consumer subscription, or None if the bytes are not one."""
    view = memoryview(metadata)
    if len(view) < 2 or _VERSION.unpack_from(view)[0] < 0:
        return None
    try:
        value, _ = codec.decode(Subscription, 0, False, view, 2)
    except DecodeError:
        return None
    return list(value.topics)


def assignment_partitions(data: bytes) -> dict[str, list[int]] | None:
    """The partitions of a consumer assignment by topic, or None if the bytes are not one."""
    view = memoryview(data)
    if len(view) < 2 or _VERSION.unpack_from(view)[0] < 0:
        return None
    try:
        value, _ = codec.decode(Assignment, 0, False, view, 2)
    except DecodeError:
        return None
    return {t.topic: list(t.partitions) for t in value.assigned_partitions}


def encode_assignment(partitions: dict[str, list[int]], user_data: bytes | None = None, version: int = 0) -> bytes:
    value = Assignment([AssignedTopic(t, p) for t, p in partitions.items()], user_data)
    return _VERSION.pack(version) + bytes(codec.encode(Assignment, 0, False, value).buf)
