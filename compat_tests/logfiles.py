"""Read record-batch headers straight from a topic's log segments in the broker's data dir.

Kafka's on-disk layout (`<log.dirs>/<topic>-<partition>/<20-digit base offset>.log`, each
file a run of record batches v2, DefaultRecordBatch) is the format the broker stores. The
compat tests use it for one thing a client cannot show: which compression codec the client
really put on the wire (librdkafka < 2.11.1, for example, silently sends gzip/snappy/lz4
uncompressed when the broker's Produce versions do not reach v0; CLIENTS.md §4b).
"""
from __future__ import annotations

import struct
from pathlib import Path

CODEC_IDS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def batch_attributes(data_dir: Path, topic: str) -> list[int]:
    """The attributes field of every record batch stored for `topic`, all partitions."""
    out = []
    dirs = [d for d in Path(data_dir).iterdir() if d.is_dir() and d.name.rsplit("-", 1)[0] == topic]
    assert dirs, f"no partition directories for {topic!r} in {data_dir}: {sorted(p.name for p in Path(data_dir).iterdir())}"
    for d in dirs:
        for segment in sorted(d.glob("*.log")):
            data = segment.read_bytes()
            pos = 0
            while pos + 61 <= len(data):
                (length,) = struct.unpack_from(">i", data, pos + 8)
                if length <= 0:
                    break  # preallocated tail
                (attributes,) = struct.unpack_from(">h", data, pos + 21)
                out.append(attributes)
                pos += 12 + length
    return out


def stored_codecs(data_dir: Path, topic: str) -> set[str]:
    names = {v: k for k, v in CODEC_IDS.items()}
    return {names.get(a & 0x7, f"codec {a & 0x7}") for a in batch_attributes(data_dir, topic)}


def segment_counts(data_dir: Path, topic: str) -> dict[int, int]:
    """{partition: number of .log segment files}."""
    out = {}
    for d in Path(data_dir).iterdir():
        name, _, partition = d.name.rpartition("-")
        if d.is_dir() and name == topic and partition.isdigit():
            out[int(partition)] = len(list(d.glob("*.log")))
    return out
