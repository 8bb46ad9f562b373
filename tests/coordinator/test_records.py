"""`__consumer_offsets` record formats, group partitioning and the start-up scan."""
from __future__ import annotations

import struct
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kbroker.coordinator import records as rec
from kbroker.coordinator.loader import scan_chunk
from kbroker.wire.records import Compression, Record, build_batch, decode_records


# Known values of Java's String.hashCode; the last two worked out by hand over UTF-16 code units
# (233*31 + 116)*31 + 233, and the surrogate pair of U+1F600: 0xD83D*31 + 0xDE00.
@pytest.mark.parametrize("text,expected", [
    ("", 0), ("a", 97), ("hello", 99162322), ("Aa", 2112), ("BB", 2112),
    ("polygenelubricants", -2147483648),  # Integer.MIN_VALUE: Utils.abs maps it to 0
    ("\u00e9t\u00e9", 227742), ("\U0001F600", 1772899),
])
def test_java_string_hashcode(text, expected):
    assert rec.java_string_hashcode(text) == expected


def test_partition_for_uses_kafka_abs():
    assert rec.partition_for("polygenelubricants", 50) == 0
    assert rec.partition_for("hello", 50) == 99162322 % 50
    assert rec.partition_for("my-group", 50) == abs(rec.java_string_hashcode("my-group")) % 50
    assert all(0 <= rec.partition_for(f"g{i}", 7) < 7 for i in range(100))


def _offset_commit(group: str, topic: str, partition: int, offset: int, commit_timestamp: int, *,
                   leader_epoch: int = 0, metadata: str = "", expire_timestamp: int = -1) -> tuple[bytes, bytes]:
    """An OffsetCommit record as it is written: encoded key and value."""
    value = rec.OffsetCommitValue(offset=offset, leader_epoch=leader_epoch, metadata=metadata,
                                  commit_timestamp=commit_timestamp, expire_timestamp=expire_timestamp)
    key, encoded = rec.offset_commit(group, topic, partition, value).encode()
    assert encoded is not None
    return key, encoded


def test_offset_commit_record_layout_is_kafkas():
    key, value = _offset_commit("g", "t", 3, 42, 1234, leader_epoch=5, metadata="meta")
    # key: version 1, group, topic, partition (OffsetCommitKey)
    assert key == struct.pack(">h", 1) + b"\x00\x01g" + b"\x00\x01t" + struct.pack(">i", 3)
    # value v3: offset, leader epoch, metadata, commit timestamp
    assert value == struct.pack(">hqi", 3, 42, 5) + b"\x00\x04meta" + struct.pack(">q", 1234)
    decoded = rec.decode_record(key, value)
    assert decoded.kind is rec.OFFSET_COMMIT and decoded.key.partition == 3
    assert (decoded.value.offset, decoded.value.leader_epoch, decoded.value.metadata) == (42, 5, "meta")


def test_offset_commit_with_expiry_is_value_version_1():
    key, value = _offset_commit("g", "t", 0, 7, 100, leader_epoch=5, expire_timestamp=200)
    assert struct.unpack_from(">h", value)[0] == 1
    decoded = rec.decode_record(key, value).value
    assert (decoded.offset, decoded.commit_timestamp, decoded.expire_timestamp, decoded.leader_epoch) == (7, 100, 200, -1)


def test_group_metadata_round_trip_and_tombstone():
    member = rec.MemberMetadata(member_id="m-1", group_instance_id="i-1", client_id="c", client_host="/127.0.0.1",
                                rebalance_timeout=30000, session_timeout=10000, subscription=b"sub",
                                assignment=b"asg")
    value = rec.GroupMetadataValue(protocol_type="consumer", generation=4, protocol="range", leader="m-1",
                                   current_state_timestamp=99, members=[member])
    key = rec.group_metadata("group", None).encode()[0]
    encoded = rec.encode_value(rec.GROUP_METADATA, value)
    assert struct.unpack_from(">h", key)[0] == 2 and struct.unpack_from(">h", encoded)[0] == 3
    decoded = rec.decode_record(key, encoded)
    assert decoded.key.group == "group" and decoded.value == value
    assert rec.decode_record(key, None).value is None


@pytest.mark.parametrize("version", [0, 1, 2, 3, 4])
def test_group_metadata_values_of_every_version_decode(version):
    value = rec.GroupMetadataValue(protocol_type="consumer", generation=1, protocol=None, leader=None, members=[])
    decoded = rec.decode_record(rec.group_metadata("g", None).encode()[0], rec.encode_value(rec.GROUP_METADATA, value, version))
    assert decoded.value.generation == 1 and decoded.value.protocol is None


def test_consumer_group_records_round_trip():
    topic_id = uuid.uuid4()
    member_key = rec.ConsumerGroupMemberKey(group_id="g", member_id="m")
    cases = [
        (rec.CONSUMER_GROUP_METADATA, rec.ConsumerGroupMetadataKey(group_id="g"),
         rec.ConsumerGroupMetadataValue(epoch=7)),
        (rec.CONSUMER_GROUP_MEMBER_METADATA, member_key,
         rec.ConsumerGroupMemberMetadataValue(instance_id=None, rack_id="r", client_id="c", client_host="/h",
                                              subscribed_topic_names=["a", "b"], subscribed_topic_regex=None,
                                              rebalance_timeout_ms=300000, server_assignor="uniform")),
        (rec.CONSUMER_GROUP_TARGET_ASSIGNMENT_METADATA, rec.ConsumerGroupMetadataKey(group_id="g"),
         rec.ConsumerGroupTargetAssignmentMetadataValue(assignment_epoch=7)),
        (rec.CONSUMER_GROUP_TARGET_ASSIGNMENT_MEMBER, member_key,
         rec.ConsumerGroupTargetAssignmentMemberValue(
             topic_partitions=[rec.TargetTopicPartition(topic_id=topic_id, partitions=[0, 2])])),
        (rec.CONSUMER_GROUP_CURRENT_MEMBER_ASSIGNMENT, member_key,
         rec.ConsumerGroupCurrentMemberAssignmentValue(
             member_epoch=7, previous_member_epoch=6, state=1,
             assigned_partitions=[rec.AssignedTopicPartitions(topic_id=topic_id, partitions=[0])],
             partitions_pending_revocation=[rec.AssignedTopicPartitions(topic_id=topic_id, partitions=[1])])),
    ]
    for kind, key, value in cases:
        encoded_key = rec.encode_key(kind, key)
        assert struct.unpack_from(">h", encoded_key)[0] == kind.key_version
        decoded = rec.decode_record(encoded_key, rec.encode_value(kind, value))
        assert decoded.kind is kind and decoded.key == key and decoded.value == value


def test_unknown_and_corrupt_records():
    assert rec.decode_record(struct.pack(">h", 4) + b"\x00\x01g", b"\x00\x00") is None  # partition metadata: skipped
    assert rec.decode_record(struct.pack(">h", 11) + b"anything", None) is None  # share/streams groups
    with pytest.raises(rec.RecordFormatError):
        rec.decode_record(b"\x00", b"")
    with pytest.raises(rec.RecordFormatError):
        rec.decode_record(struct.pack(">h", 1) + b"\x00\x05g", b"")  # truncated key
    key = rec.offset_commit("g", "t", 0, None).encode()[0]
    with pytest.raises(rec.RecordFormatError):
        rec.decode_record(key, struct.pack(">h", 9) + bytes(30))  # unknown value version
    with pytest.raises(rec.RecordFormatError):
        rec.decode_record(key, struct.pack(">h", 3) + bytes(5))  # truncated value


def _commit(i: int, group: str = "g", partition: int = 0) -> tuple[bytes, bytes]:
    return _offset_commit(group, "topic", partition, i, 1000 + i)


def test_scan_keeps_the_latest_value_per_key_and_forgets_tombstones():
    k0, v1 = _commit(1)
    _, v2 = _commit(2)
    k1, v3 = _commit(3, partition=1)
    batches = (build_batch([Record(0, 1, k0, v1), Record(1, 1, k1, v3)])
               + build_batch([Record(2, 1, k0, v2), Record(3, 1, None, b"keyless")])
               + build_batch([Record(4, 1, k1, None)]))
    latest: dict = {}
    assert scan_chunk(batches, latest) == 5
    assert latest == {k0: v2, k1: None}


def test_scan_reads_compressed_and_skips_control_batches():
    k0, v1 = _commit(1)
    compressed = build_batch([Record(10, 1, k0, v1)], compression=Compression.ZSTD)
    control = build_batch([Record(11, 1, b"\x00\x00\x00\x01", b"\x00\x00\x00\x00\x00\x00")], is_control=True,
                          producer_id=5, producer_epoch=0)
    latest: dict = {}
    assert scan_chunk(compressed + control, latest) == 12
    assert latest == {k0: v1}


@given(st.lists(st.tuples(st.integers(0, 5), st.one_of(st.none(), st.binary(max_size=300))), min_size=1,
                max_size=40),
       st.sampled_from([Compression.NONE, Compression.GZIP]))
def test_scan_matches_the_record_decoder(records, compression):
    batch = build_batch([Record(i, 1, b"key-%d" % k, v) for i, (k, v) in enumerate(records)], compression=compression)
    latest: dict = {}
    scan_chunk(batch, latest)
    expected: dict = {}
    for record in decode_records(batch):
        expected[record.key] = record.value
    assert latest == expected == {b"key-%d" % k: v for k, v in records}
