"""Read record-batch headers straight from a topic's log segments in the broker's data dir.

Kafka's on-disk layout (`<log.dirs>/<topic>-<partition>/<20-digit base offset>.log`, each
file a run of record batches v2, DefaultRecordBatch) is the format the broker stores. The
compat tests use it for what a client cannot show: which compression codec the client really
put on the wire (librdkafka < 2.11.1, for example, silently sends gzip/snappy/lz4
uncompressed when the broker's Produce versions do not reach v0), whether
batches carry a producer id (the idempotent path was taken), how many segments a partition has.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


@dataclass(frozen=True, slots=True)
class BatchHeader:
    partition: int
    base_offset: int
    attributes: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int


# baseOffset i64, batchLength i32, partitionLeaderEpoch i32, magic i8, crc u32, attributes i16,
# lastOffsetDelta i32, baseTimestamp i64, maxTimestamp i64, producerId i64, producerEpoch i16,
# baseSequence i32, recordCount i32: 61 bytes.
_HEADER = struct.Struct(">qiibIhiqqqhii")


def batch_headers(data_dir: Path, topic: str) -> list[BatchHeader]:
    """The header of every record batch stored for `topic`, partition by partition, in log order."""
    out = []
    dirs = {int(d.name.rpartition("-")[2]): d for d in Path(data_dir).iterdir()
            if d.is_dir() and d.name.rpartition("-")[0] == topic and d.name.rpartition("-")[2].isdigit()}
    assert dirs, f"no partition directories for {topic!r} in {data_dir}: {sorted(p.name for p in Path(data_dir).iterdir())}"
    for partition, d in sorted(dirs.items()):
        for segment in sorted(d.glob("*.log")):
            data = segment.read_bytes()
            pos = 0
            while pos + _HEADER.size <= len(data):
                (base_offset, length, _epoch, _magic, _crc, attributes, _last_delta, _base_ts, _max_ts,
                 producer_id, producer_epoch, base_sequence, count) = _HEADER.unpack_from(data, pos)
                if length <= 0:
                    break  # preallocated tail
                out.append(BatchHeader(partition, base_offset, attributes, producer_id, producer_epoch,
                                       base_sequence, count))
                pos += 12 + length
    return out


def stored_codecs(data_dir: Path, topic: str) -> set[str]:
    names = {v: k for k, v in CODEC_IDS.items()}
    return {names.get(b.attributes & 0x7, f"codec {b.attributes & 0x7}") for b in batch_headers(data_dir, topic)}


def segment_counts(data_dir: Path, topic: str) -> dict[int, int]:
    """{partition: number of .log segment files}."""
    out = {}
    for d in Path(data_dir).iterdir():
        name, _, partition = d.name.rpartition("-")
        if d.is_dir() and name == topic and partition.isdigit():
            out[int(partition)] = len(list(d.glob("*.log")))
    return out
