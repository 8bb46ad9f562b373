"""Record spans (the cleaner's view of a batch), rebuilt and empty batches, the keyless-record check."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kbroker.errors import ErrorCode, KafkaError
from kbroker.wire.records import (
    BatchHeader,
    BatchScan,
    Compression,
    Record,
    TimestampType,
    batch_body,
    build_batch,
    decode_records,
    empty_batch,
    keyless_record_indexes,
    rebuild_batch,
    record_spans,
    record_value,
)

NOW = 1_800_000_000_000


def _records(count: int = 6, *, base: int = 100) -> list[Record]:
    out = []
    for i in range(count):
        key = None if i == 2 else b"key-%d" % i
        value = None if i == 3 else b"value-%d" % i * (1 + 40 * (i == 4))  # record 4 needs a 2-byte length
        out.append(Record(base + i * 2, NOW + 1000 * i - 5000 * (i == 5), key, value,
                          (("h", b"x"),) if i == 1 else ()))
    return out


@pytest.mark.parametrize("codec", list(Compression), ids=lambda c: c.name)
def test_spans_match_decoded_records(codec: Compression) -> None:
    records = _records()
    batch = build_batch(records, compression=codec)
    header = BatchHeader.parse(batch)
    body = bytes(batch_body(batch))
    spans = record_spans(body, header.record_count)
    assert [(header.base_offset + s[4], s[5], record_value(body, s)) for s in spans] == \
        [(r.offset, r.key, r.value) for r in records]
    assert [header.base_timestamp + s[3] for s in spans] == [r.timestamp for r in records]
    assert keyless_record_indexes(batch, 10**6) == [2]


@pytest.mark.parametrize("codec", list(Compression), ids=lambda c: c.name)
def test_rebuilt_batch_keeps_offsets_codec_and_chosen_records(codec: Compression) -> None:
    records = _records()
    batch = build_batch(records, compression=codec, producer_id=7, producer_epoch=2, base_sequence=40,
                        partition_leader_epoch=3)
    header = BatchHeader.parse(batch)
    body = batch_body(batch)
    spans = record_spans(body, header.record_count)
    rebuilt = rebuild_batch(header, body, [spans[1], spans[4]])
    new = BatchHeader.parse(rebuilt)
    assert list(BatchScan(rebuilt)) and new.size == len(rebuilt)  # the CRC checks out
    assert (new.base_offset, new.last_offset, new.compression, new.producer_id, new.producer_epoch,
            new.base_sequence, new.partition_leader_epoch, new.record_count) == \
        (header.base_offset, header.last_offset, codec, 7, 2, 40, 3, 2)
    assert decode_records(rebuilt) == [records[1], records[4]]
    assert new.max_timestamp == max(records[1].timestamp, records[4].timestamp)
    assert not new.has_delete_horizon


def test_delete_horizon_moves_the_base_timestamp_and_keeps_record_timestamps() -> None:
    records = _records()
    batch = build_batch(records, compression=Compression.ZSTD)
    header = BatchHeader.parse(batch)
    body = batch_body(batch)
    spans = record_spans(body, header.record_count)
    horizon = NOW + 86_400_000
    rebuilt = rebuild_batch(header, body, spans, delete_horizon_ms=horizon)
    new = BatchHeader.parse(rebuilt)
    assert new.has_delete_horizon and new.base_timestamp == horizon
    assert new.max_timestamp == header.max_timestamp
    assert decode_records(rebuilt) == records


def test_log_append_time_batch_keeps_its_time() -> None:
    batch = build_batch(_records(), timestamp_type=TimestampType.LOG_APPEND_TIME)
    header = BatchHeader.parse(batch)
    body = batch_body(batch)
    rebuilt = BatchHeader.parse(rebuild_batch(header, body, record_spans(body, header.record_count)[:1]))
    assert rebuilt.max_timestamp == header.max_timestamp and rebuilt.timestamp_type is TimestampType.LOG_APPEND_TIME


def test_empty_batch_keeps_offsets_and_producer() -> None:
    header = BatchHeader.parse(build_batch(_records(), producer_id=9, producer_epoch=1, base_sequence=5,
                                           is_transactional=True, compression=Compression.LZ4))
    empty = empty_batch(header)
    new = BatchHeader.parse(empty)
    assert len(empty) == 61 and list(BatchScan(empty))
    assert (new.base_offset, new.last_offset, new.producer_id, new.base_sequence, new.last_sequence,
            new.is_transactional, new.compression, new.record_count) == \
        (header.base_offset, header.last_offset, 9, 5, header.last_sequence, True, 0, 0)
    assert decode_records(empty) == []


def test_malformed_records_are_invalid_record() -> None:
    batch = bytearray(build_batch(_records()))
    batch[61] = 0x7E  # the first record claims 63 bytes
    header = BatchHeader.parse(batch)
    for check in (lambda: record_spans(batch_body(batch), header.record_count),
                  lambda: keyless_record_indexes(batch, 10**6)):
        with pytest.raises(KafkaError) as info:
            check()
        assert info.value.code == ErrorCode.INVALID_RECORD


_record = st.builds(lambda key, value, delta, headers: (key, value, delta, headers),
                    st.none() | st.binary(max_size=200), st.none() | st.binary(max_size=300),
                    st.integers(-10**9, 10**9), st.lists(st.tuples(st.text(max_size=5), st.none() | st.binary(max_size=5)),
                                                          max_size=2))


@given(st.lists(_record, min_size=1, max_size=20), st.sampled_from(list(Compression)), st.data())
def test_any_subset_rebuilds_to_the_same_records(fields, codec, data) -> None:
    records = [Record(1000 + 3 * i, NOW + delta, key, value, tuple(headers))
               for i, (key, value, delta, headers) in enumerate(fields)]
    batch = build_batch(records, compression=codec)
    header = BatchHeader.parse(batch)
    body = batch_body(batch)
    spans = record_spans(body, header.record_count)
    assert keyless_record_indexes(batch, 10**6) == [i for i, r in enumerate(records) if r.key is None]
    chosen = sorted(data.draw(st.sets(st.integers(0, len(records) - 1), min_size=1)))
    horizon = data.draw(st.none() | st.integers(NOW - 10**9, NOW + 10**9))
    rebuilt = rebuild_batch(header, body, [spans[i] for i in chosen], delete_horizon_ms=horizon)
    assert decode_records(rebuilt) == [records[i] for i in chosen]
    assert BatchHeader.parse(rebuilt).last_offset == header.last_offset
