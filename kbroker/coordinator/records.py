"""The records of `__consumer_offsets`: Kafka's own key and value schemas, declared as data.

Every record key and value starts with an int16 version; the rest is the schema of that version
(Kafka's `group-coordinator/src/main/resources/common/message/*Key.json` and `*Value.json`).
The key version says what the record is, so a Kafka tool (kafka-console-consumer with
`OffsetsMessageFormatter`, kafka-dump-log `--offsets-decoder`) can read our topic:

    key version  key                                      value (version we write)
    0, 1         OffsetCommitKey(group, topic, partition)   OffsetCommitValue (3; 1 with an expire timestamp)
    2            GroupMetadataKey(group)                    GroupMetadataValue (3): a classic group
    3            ConsumerGroupMetadataKey(group_id)         ConsumerGroupMetadataValue (0): group epoch
    5            ConsumerGroupMemberMetadataKey(group, m)   ConsumerGroupMemberMetadataValue (0)
    6            ConsumerGroupTargetAssignmentMetadataKey   ConsumerGroupTargetAssignmentMetadataValue (0)
    7            ConsumerGroupTargetAssignmentMemberKey     ConsumerGroupTargetAssignmentMemberValue (0)
    8            ConsumerGroupCurrentMemberAssignmentKey    ConsumerGroupCurrentMemberAssignmentValue (0)

Keys are never flexible. OffsetCommitValue and GroupMetadataValue are flexible from version 4,
the KIP-848 values from version 0. A null value is a tombstone: the key's state is gone (an
offset deleted or expired, a group deleted, a member removed). The topic is compacted, so only
the latest record per key needs to survive, and replaying the records in order rebuilds the
coordinator's state.

A group's records all live in one partition: `abs(java_string_hashcode(group_id)) % partitions`,
with Java's `String.hashCode` over UTF-16 code units and Kafka's `Utils.abs` (MIN_VALUE -> 0), so
the same group maps to the same partition number as on a Kafka broker.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from kbroker.wire import codec
from kbroker.wire.primitives import DecodeError
from kbroker.wire.schema import BYTES, INT8, INT32, INT64, STRING, UUID, Field, array, struct as declare

OFFSETS_TOPIC = "__consumer_offsets"

INT32_MIN = -(2**31)


def java_string_hashcode(text: str) -> int:
    """Java's `String.hashCode`: s[0]*31^(n-1) + ... + s[n-1] over UTF-16 code units, as an int32."""
    h = 0
    data = text.encode("utf-16-be")
    for (unit,) in struct.iter_unpack(">H", data):
        h = (31 * h + unit) & 0xFFFFFFFF
    return h - 2**32 if h >= 2**31 else h


def kafka_abs(n: int) -> int:
    """Kafka's `Utils.abs`: the absolute value, except that MIN_VALUE maps to 0."""
    return 0 if n == INT32_MIN else abs(n)


def partition_for(group_id: str, partitions: int) -> int:
    """The `__consumer_offsets` partition that holds (and coordinates) a group."""
    return kafka_abs(java_string_hashcode(group_id)) % partitions


# -- schemas ------------------------------------------------------------------------------------

OffsetCommitKey = declare("OffsetCommitKey",
    Field("group", STRING),
    Field("topic", STRING),
    Field("partition", INT32),
)
OffsetCommitValue = declare("OffsetCommitValue",
    Field("offset", INT64),
    Field("leader_epoch", INT32, "3+", default=-1),
    Field("metadata", STRING),
    Field("commit_timestamp", INT64),
    Field("expire_timestamp", INT64, "1", default=-1),
)

GroupMetadataKey = declare("GroupMetadataKey",
    Field("group", STRING),
)
MemberMetadata = declare("MemberMetadata",
    Field("member_id", STRING),
    Field("group_instance_id", STRING, "3+", nullable="3+"),
    Field("client_id", STRING),
    Field("client_host", STRING),
    Field("rebalance_timeout", INT32, "1+", default=-1),
    Field("session_timeout", INT32),
    Field("subscription", BYTES),
    Field("assignment", BYTES),
)
GroupMetadataValue = declare("GroupMetadataValue",
    Field("protocol_type", STRING),
    Field("generation", INT32),
    Field("protocol", STRING, nullable="0+"),
    Field("leader", STRING, nullable="0+"),
    Field("current_state_timestamp", INT64, "2+", default=-1),
    Field("members", array(MemberMetadata)),
)

ConsumerGroupMetadataKey = declare("ConsumerGroupMetadataKey",
    Field("group_id", STRING),
)
ConsumerGroupMetadataValue = declare("ConsumerGroupMetadataValue",
    Field("epoch", INT32),
    Field("metadata_hash", INT64, tag=0, default=0),
    Field("creation_time_ms", INT64, tag=1, default=-1),
)
ConsumerGroupMemberKey = declare("ConsumerGroupMemberKey",
    Field("group_id", STRING),
    Field("member_id", STRING),
)
ClassicProtocol = declare("ClassicProtocol",
    Field("name", STRING),
    Field("metadata", BYTES),
)
ClassicMemberMetadata = declare("ClassicMemberMetadata",
    Field("supported_protocols", array(ClassicProtocol)),
)
ConsumerGroupMemberMetadataValue = declare("ConsumerGroupMemberMetadataValue",
    Field("instance_id", STRING, nullable="0+"),
    Field("rack_id", STRING, nullable="0+"),
    Field("client_id", STRING),
    Field("client_host", STRING),
    Field("subscribed_topic_names", array(STRING)),
    Field("subscribed_topic_regex", STRING, nullable="0+"),
    Field("rebalance_timeout_ms", INT32, default=-1),
    Field("server_assignor", STRING, nullable="0+"),
    Field("classic_member_metadata", ClassicMemberMetadata, nullable="0+", tag=0),
)
ConsumerGroupTargetAssignmentMetadataValue = declare("ConsumerGroupTargetAssignmentMetadataValue",
    Field("assignment_epoch", INT32),
    Field("assignment_timestamp", INT64, tag=0, default=0),
)
TargetTopicPartition = declare("TargetTopicPartition",
    Field("topic_id", UUID),
    Field("partitions", array(INT32)),
)
ConsumerGroupTargetAssignmentMemberValue = declare("ConsumerGroupTargetAssignmentMemberValue",
    Field("topic_partitions", array(TargetTopicPartition)),
)
AssignedTopicPartitions = declare("AssignedTopicPartitions",
    Field("topic_id", UUID),
    Field("partitions", array(INT32)),
    Field("assignment_epochs", array(INT32), nullable="0+", tag=0),
)
ConsumerGroupCurrentMemberAssignmentValue = declare("ConsumerGroupCurrentMemberAssignmentValue",
    Field("member_epoch", INT32),
    Field("previous_member_epoch", INT32),
    Field("state", INT8),
    Field("assigned_partitions", array(AssignedTopicPartitions)),
    Field("partitions_pending_revocation", array(AssignedTopicPartitions)),
)


@dataclass(frozen=True, slots=True)
class RecordType:
    key_version: int
    key: type
    value: type
    value_version: int  # the version we write
    value_flexible_from: int


OFFSET_COMMIT = RecordType(1, OffsetCommitKey, OffsetCommitValue, 3, 4)
GROUP_METADATA = RecordType(2, GroupMetadataKey, GroupMetadataValue, 3, 4)
CONSUMER_GROUP_METADATA = RecordType(3, ConsumerGroupMetadataKey, ConsumerGroupMetadataValue, 0, 0)
CONSUMER_GROUP_MEMBER_METADATA = RecordType(5, ConsumerGroupMemberKey, ConsumerGroupMemberMetadataValue, 0, 0)
CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA = RecordType(
    6, ConsumerGroupMetadataKey, ConsumerGroupTargetAssignmentMetadataValue, 0, 0)
CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER = RecordType(
    7, ConsumerGroupMemberKey, ConsumerGroupTargetAssignmentMemberValue, 0, 0)
CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT = RecordType(
    8, ConsumerGroupMemberKey, ConsumerGroupCurrentMemberAssignmentValue, 0, 0)

_BY_KEY_VERSION = {0: OFFSET_COMMIT, 1: OFFSET_COMMIT, 2: GROUP_METADATA, 3: CONSUMER_GROUP_METADATA,
                   5: CONSUMER_GROUP_MEMBER_METADATA, 6: CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA,
                   7: CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER, 8: CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT}
# Record types we skip on replay: partition metadata (4, deprecated by Kafka 4.1), regular
# expressions, share and streams groups. Kafka ignores unknown types the same way.
IGNORED_KEY_VERSIONS = frozenset(range(9, 2**15)) | {4}

_VALUE_VERSIONS = {OFFSET_COMMIT.key_version: range(0, 5), GROUP_METADATA.key_version: range(0, 5)}


class RecordFormatError(ValueError):
    """A key or value that does not parse: a corrupt `__consumer_offsets` record."""


# -- encoding -----------------------------------------------------------------------------------

_VERSION = struct.Struct(">h")


def encode_key(kind: RecordType, key: Any) -> bytes:
    out = codec.encode(kind.key, 0, False, key)
    return _VERSION.pack(kind.key_version) + bytes(out.buf)


def encode_value(kind: RecordType, value: Any, version: int | None = None) -> bytes:
    version = kind.value_version if version is None else version
    out = codec.encode(kind.value, version, version >= kind.value_flexible_from, value)
    return _VERSION.pack(version) + bytes(out.buf)


@dataclass(frozen=True, slots=True)
class CoordinatorRecord:
    """One record of `__consumer_offsets`, typed (Kafka's CoordinatorRecord): what a coordinator's
    step writes and what a replay reads back. A None value is the key's tombstone."""
    kind: RecordType
    key: Any
    value: Any | None

    def encode(self) -> tuple[bytes, bytes | None]:
        key = encode_key(self.kind, self.key)
        if self.value is None:
            return key, None
        # Kafka writes version 1 when the commit carries its own expiry (OffsetCommit v2-4 retention).
        version = 1 if self.kind is OFFSET_COMMIT and self.value.expire_timestamp >= 0 else None
        return key, encode_value(self.kind, self.value, version)


def offset_commit(group: str, topic: str, partition: int, value: Any | None) -> CoordinatorRecord:
    """An OffsetCommitValue for the group's partition, or (None) its tombstone."""
    return CoordinatorRecord(OFFSET_COMMIT, OffsetCommitKey(group=group, topic=topic, partition=partition), value)


def group_metadata(group: str, value: Any | None) -> CoordinatorRecord:
    """A classic group's GroupMetadataValue, or (None) its tombstone."""
    return CoordinatorRecord(GROUP_METADATA, GroupMetadataKey(group=group), value)


# -- decoding -----------------------------------------------------------------------------------

def decode_record(key: bytes | memoryview, value: bytes | memoryview | None) -> CoordinatorRecord | None:
    """Parse one `__consumer_offsets` record; None for record types we do not keep."""
    view = memoryview(key)
    if len(view) < 2:
        raise RecordFormatError("record key shorter than its version")
    (key_version,) = _VERSION.unpack_from(view)
    kind = _BY_KEY_VERSION.get(key_version)
    if kind is None:
        if key_version in IGNORED_KEY_VERSIONS:
            return None
        raise RecordFormatError(f"unknown record key version {key_version}")
    try:
        decoded_key, end = codec.decode(kind.key, 0, False, view, 2)
        if end != len(view):
            raise RecordFormatError(f"{len(view) - end} bytes left after a {kind.key.__name__}")
        if value is None:
            return CoordinatorRecord(kind, decoded_key, None)
        value_view = memoryview(value)
        if len(value_view) < 2:
            raise RecordFormatError("record value shorter than its version")
        (version,) = _VERSION.unpack_from(value_view)
        allowed = _VALUE_VERSIONS.get(kind.key_version)
        if version < 0 or (allowed is not None and version not in allowed):
            raise RecordFormatError(f"unknown {kind.value.__name__} version {version}")
        # Newer versions than we know keep their prefix compatible (KIP-915); read what we know.
        read_as = version if allowed is not None else min(version, kind.value_version)
        decoded_value, _ = codec.decode(kind.value, read_as, read_as >= kind.value_flexible_from, value_view, 2)
    except DecodeError as exc:
        raise RecordFormatError(str(exc)) from None
    return CoordinatorRecord(kind, decoded_key, decoded_value)
