"""An independent audit of a data directory's partition logs, read straight from the files.

It shares no code with `kbroker.log` (a bug there must not hide itself here) and checks what
start-up recovery promises about every partition directory:

  .log        whole record batches v2 back to back, each passing its CRC-32C (over attributes to
              the end), magic 2, offsets strictly increasing across batches and segments, the first
              batch at or above the segment's base offset (its file name), nothing after the last
              whole batch.
  .index      8-byte entries (relative offset, position): strictly increasing, and each position is
              a batch start whose batch ends at exactly that offset (Kafka's convention).
  .timeindex  12-byte entries (timestamp, relative offset): strictly increasing timestamps, each
              naming the last offset of a batch that first reached that largest timestamp of the
              segment so far.

Layout of a batch header (DefaultRecordBatch): baseOffset i64 | batchLength i32 |
partitionLeaderEpoch i32 | magic i8 | crc u32 | attributes i16 | lastOffsetDelta i32 |
baseTimestamp i64 | maxTimestamp i64 | producerId i64 | producerEpoch i16 | baseSequence i32 |
recordCount i32 — 61 bytes; the CRC covers everything from attributes on.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import crc32c

_HEADER = struct.Struct(">qiibIhiqqqhii")
_CRC_START = 21
_INDEX_ENTRY = struct.Struct(">ii")
_TIME_ENTRY = struct.Struct(">qi")


@dataclass(frozen=True, slots=True)
class Batch:
    position: int
    base_offset: int
    last_offset: int
    max_timestamp: int
    size: int


@dataclass(slots=True)
class PartitionAudit:
    directory: Path
    batches: int = 0
    next_offset: int | None = None  # one past the last offset in the log, None when empty
    problems: list[str] = field(default_factory=list)


def audit_data_dir(data_dir: Path, *, topics: set[str] | None = None) -> list[PartitionAudit]:
    """Audit every `<topic>-<partition>` directory (of `topics`, when given)."""
    audits = []
    for directory in sorted(Path(data_dir).iterdir()):
        topic, _, partition = directory.name.rpartition("-")
        if not (directory.is_dir() and partition.isdigit() and topic):
            continue
        if topics is None or topic in topics:
            audits.append(audit_partition(directory))
    return audits


def problems_in(audits: list[PartitionAudit]) -> list[str]:
    return [f"{a.directory.name}: {p}" for a in audits for p in a.problems]


def audit_partition(directory: Path) -> PartitionAudit:
    audit = PartitionAudit(directory)
    expected = None
    for log_file in sorted(directory.glob("[0-9]" * 20 + ".log")):
        base = int(log_file.name[:20])
        batches, problem = read_batches(log_file.read_bytes())
        if problem:
            audit.problems.append(f"{log_file.name}: {problem}")
        for batch in batches:
            if batch.base_offset < base:
                audit.problems.append(f"{log_file.name}: batch at {batch.position} has offset "
                                      f"{batch.base_offset} below the segment base")
            if expected is not None and batch.base_offset < expected:
                audit.problems.append(f"{log_file.name}: batch at {batch.position} has offsets "
                                      f"{batch.base_offset}..{batch.last_offset}, expected {expected} or above")
            expected = batch.last_offset + 1
        audit.batches += len(batches)
        audit.problems += [f"{log_file.name[:20]}.index: {p}"
                           for p in _audit_offset_index(log_file.with_suffix(".index"), base, batches)]
        audit.problems += [f"{log_file.name[:20]}.timeindex: {p}"
                           for p in _audit_time_index(log_file.with_suffix(".timeindex"), base, batches)]
    audit.next_offset = expected
    return audit


def read_batches(data: bytes) -> tuple[list[Batch], str | None]:
    """The whole valid batches of a .log file, and what is wrong after them (None: nothing)."""
    batches = []
    position = 0
    while position < len(data):
        if position + _HEADER.size > len(data):
            return batches, f"{len(data) - position} bytes of a partial header at {position}"
        (base_offset, length, _epoch, magic, crc, _attributes, last_delta, _base_ts, max_ts,
         _pid, _pepoch, _seq, _count) = _HEADER.unpack_from(data, position)
        size = 12 + length
        if magic != 2 or length < _HEADER.size - 12:
            return batches, f"not a v2 batch at {position} (magic {magic}, length {length})"
        if position + size > len(data):
            return batches, f"batch at {position} needs {size} bytes, {len(data) - position} left"
        if crc32c.crc32c(data[position + _CRC_START:position + size]) != crc:
            return batches, f"CRC mismatch in the batch at {position} (offset {base_offset})"
        batches.append(Batch(position, base_offset, base_offset + last_delta, max_ts, size))
        position += size
    return batches, None


def _audit_offset_index(path: Path, base: int, batches: list[Batch]) -> list[str]:
    if not path.exists():
        return ["missing"]
    data = path.read_bytes()
    if len(data) % _INDEX_ENTRY.size:
        return [f"size {len(data)} is not a multiple of {_INDEX_ENTRY.size}"]
    by_position = {b.position: b for b in batches}
    problems = []
    last = (-1, -1)
    for relative, position in _INDEX_ENTRY.iter_unpack(data):
        batch = by_position.get(position)
        if batch is None:
            problems.append(f"entry ({relative}, {position}) is not at a batch start")
        elif batch.last_offset != base + relative:
            problems.append(f"entry ({relative}, {position}) names offset {base + relative}, "
                            f"the batch there ends at {batch.last_offset}")
        if (relative, position) <= last or relative <= last[0] or position <= last[1]:
            problems.append(f"entry ({relative}, {position}) does not increase")
        last = (relative, position)
    return problems


def _audit_time_index(path: Path, base: int, batches: list[Batch]) -> list[str]:
    if not path.exists():
        return ["missing"]
    data = path.read_bytes()
    if len(data) % _TIME_ENTRY.size:
        return [f"size {len(data)} is not a multiple of {_TIME_ENTRY.size}"]
    # the largest timestamp so far, as of each batch's last offset, for the batches that raised it
    raised_at: dict[int, int] = {}
    largest = -1
    for batch in batches:
        if batch.max_timestamp > largest:
            largest = batch.max_timestamp
            raised_at[batch.last_offset] = largest
    problems = []
    last_timestamp = -1
    for timestamp, relative in _TIME_ENTRY.iter_unpack(data):
        if raised_at.get(base + relative) != timestamp:
            problems.append(f"entry ({timestamp}, {relative}): no batch ending at offset {base + relative} "
                            f"first reached timestamp {timestamp}")
        if timestamp <= last_timestamp:
            problems.append(f"entry ({timestamp}, {relative}) does not increase")
        last_timestamp = timestamp
    return problems
