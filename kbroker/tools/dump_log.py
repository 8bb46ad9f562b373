"""`kbroker dump-log PATH`: inspect segment files offline, as Kafka's DumpLogSegments does.

PATH is a `.log` segment (or its `.index` / `.timeindex`), a partition directory or a whole data
dir (every segment below it). For each batch: offsets, position, size, codec, timestamps,
producer id / epoch / sequence, transactional and control flags, and whether its CRC-32C holds;
`--print-records` decodes the records too. Batches are read with the broker's own readers
(`kbroker.wire.records`); a bad CRC is reported and the walk goes on (the length is outside the
CRC), while a torn or non-v2 batch ends it, as start-up recovery would truncate there.

Index sanity, per segment: every `.index` entry must point at a batch start and name that
batch's last offset; `.timeindex` entries must increase and name the last offset of a batch whose
largest timestamp they carry. Zero entries after the first are a JVM broker's preallocated,
unused index space and end the entries. Any problem means exit code 1.
"""
from __future__ import annotations

import argparse
import mmap
import os
import re
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kbroker.errors import KafkaError
from kbroker.log.index import OffsetIndex, TimeIndex
from kbroker.tools.output import EXIT_ERROR, Table, emit
from kbroker.tools.record_formats import FORMATS, from_bytes
from kbroker.wire.records import BatchHeader, Compression, compute_crc, decode_records, scan_batches

_SEGMENT = re.compile(r"\d{20}\.(log|index|timeindex)")


def register(commands: argparse._SubParsersAction) -> None:
    dump = commands.add_parser("dump-log", help="inspect segment files offline (batches, CRCs, indexes)")
    dump.add_argument("path", type=Path, help="a .log/.index/.timeindex file, a partition dir or a data dir")
    dump.add_argument("--print-records", action="store_true", help="decode and show every record")
    dump.add_argument("--key-format", choices=FORMATS, default="string", help="how keys are shown")
    dump.add_argument("--value-format", choices=FORMATS, default="string", help="how values are shown")
    dump.add_argument("--output", "-O", choices=("table", "json"), default="table", help="default: %(default)s")
    dump.set_defaults(run=dump_log)


def _segments(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*.log") if _SEGMENT.fullmatch(p.name))
    if not path.exists():
        raise FileNotFoundError(2, "no such file or directory", str(path))
    if not _SEGMENT.fullmatch(path.name):
        raise ValueError(f"{path}: not a segment file (<20-digit base offset>.log, .index or .timeindex)")
    return [path.with_suffix(".log")]


def dump_log(args: argparse.Namespace) -> int:
    try:
        segments = [_dump_segment(p, args) for p in _segments(args.path)]
    except ValueError as exc:
        print(f"kbroker dump-log: {exc}", file=sys.stderr)
        return EXIT_ERROR
    tables = []
    for segment in segments:
        tables.append(Table(
            f"{segment['path']}: {len(segment['batches'])} batches, {segment['index_entries']} index and "
            f"{segment['time_index_entries']} time index entries",
            ("offsets", "records", "position", "size", "codec", "max timestamp", "producer id/epoch/seq",
             "flags", "crc"),
            [(f"{b['base_offset']}..{b['last_offset']}", b["record_count"], b["position"], b["size"],
              b["compression"], _time(b["max_timestamp"]),
              f"{b['producer_id']}/{b['producer_epoch']}/{b['base_sequence']}",
              " ".join(f for f in ("transactional", "control") if b[f"is_{f}"]), "ok" if b["crc_valid"] else "BAD")
             for b in segment["batches"]]))
        if args.print_records:
            tables.append(Table(None, ("offset", "timestamp", "key", "value", "headers"),
                                [(r["offset"], _time(r["timestamp"]), r["key"], r["value"], r["headers"] or "")
                                 for b in segment["batches"] for r in b.get("records", ())]))
    problems = [f"{s['path']}: {p}" for s in segments for p in s["problems"]]
    emit(args.output, {"segments": segments, "problems": problems}, *tables)
    for problem in problems:
        print(f"kbroker dump-log: {problem}", file=sys.stderr)
    if not segments:
        print(f"kbroker dump-log: no segment files under {args.path}", file=sys.stderr)
    return EXIT_ERROR if problems or not segments else 0


def _time(ms: int) -> str:
    if ms < 0:
        return "-"
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _map(path: Path) -> bytes | mmap.mmap:
    """The file's bytes without reading them all into memory (a segment may be a GiB)."""
    with open(path, "rb") as file:
        if os.fstat(file.fileno()).st_size == 0:
            return b""  # an empty file cannot be mapped
        return mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)


def _dump_segment(log_path: Path, args: argparse.Namespace) -> dict[str, Any]:
    base = int(log_path.name[:20])
    data = _map(log_path)
    problems: list[str] = []
    batches: list[tuple[int, BatchHeader]] = []
    rows = []
    scan = scan_batches(data, verify_crc=False)
    expected = base
    for position, header in scan:
        crc_valid = compute_crc(memoryview(data)[position:position + header.size]) == header.crc
        if not crc_valid:
            problems.append(f"CRC mismatch in the batch at position {position} (offset {header.base_offset}): "
                            f"stored {header.crc:#010x}")
        if header.base_offset < expected:
            problems.append(f"batch at position {position} starts at offset {header.base_offset}, "
                            f"expected {expected} or above")
        expected = header.next_offset
        batches.append((position, header))
        row = _batch_row(position, header, crc_valid)
        if args.print_records and crc_valid:
            try:
                row["records"] = [{"offset": r.offset, "timestamp": r.timestamp,
                                   "key": from_bytes(r.key, args.key_format),
                                   "value": from_bytes(r.value, args.value_format),
                                   "headers": [[k, from_bytes(v, "string")] for k, v in r.headers]}
                                  for r in decode_records(memoryview(data)[position:position + header.size])]
            except KafkaError as exc:
                problems.append(f"batch at position {position}: {exc}")
        rows.append(row)
    if scan.error:
        problems.append(f"{scan.error}; {len(data) - scan.end} bytes after the last whole batch")
    index = _offset_index_problems(log_path.with_suffix(".index"), base, batches, len(data))
    time_index = _time_index_problems(log_path.with_suffix(".timeindex"), base, batches)
    return {"path": str(log_path), "base_offset": base, "size": len(data), "batches": rows,
            "index_entries": index[0], "time_index_entries": time_index[0],
            "problems": problems + index[1] + time_index[1]}


def _batch_row(position: int, header: BatchHeader, crc_valid: bool) -> dict[str, Any]:
    try:
        codec = Compression(header.compression).name.lower()
    except ValueError:
        codec = f"invalid ({header.compression})"
    return {"base_offset": header.base_offset, "last_offset": header.last_offset, "record_count": header.record_count,
            "position": position, "size": header.size, "compression": codec,
            "timestamp_type": header.timestamp_type.name, "base_timestamp": header.base_timestamp,
            "max_timestamp": header.max_timestamp, "producer_id": header.producer_id,
            "producer_epoch": header.producer_epoch, "base_sequence": header.base_sequence,
            "partition_leader_epoch": header.partition_leader_epoch, "is_transactional": header.is_transactional,
            "is_control": header.is_control, "crc": header.crc, "crc_valid": crc_valid}


def _entries(path: Path, entry: Any) -> tuple[list[tuple[int, ...]], list[str]]:
    """An index file's entries, up to the preallocated zeros a JVM broker leaves after them."""
    if not path.exists():
        return [], [f"{path.name} is missing"]
    data = path.read_bytes()
    problems = [] if len(data) % entry.size == 0 else [f"{path.name}: size {len(data)} is not a multiple of "
                                                       f"{entry.size}"]
    entries = list(entry.iter_unpack(data[:len(data) - len(data) % entry.size]))
    for i, fields in enumerate(entries):
        if i > 0 and not any(fields):
            return entries[:i], problems
    return entries, problems


def _offset_index_problems(path: Path, base: int, batches: list[tuple[int, BatchHeader]],
                           log_size: int) -> tuple[int, list[str]]:
    entries, problems = _entries(path, OffsetIndex.ENTRY)
    by_position = dict(batches)
    last = (-1, -1)
    for relative, position in entries:
        header = by_position.get(position)
        if position >= log_size or header is None:
            problems.append(f"{path.name}: entry ({relative}, {position}) is not at a batch start")
        elif header.last_offset != base + relative:
            problems.append(f"{path.name}: entry ({relative}, {position}) names offset {base + relative}, "
                            f"the batch there ends at {header.last_offset}")
        if relative <= last[0] or position <= last[1]:
            problems.append(f"{path.name}: entry ({relative}, {position}) does not increase")
        last = (relative, position)
    return len(entries), problems


def _time_index_problems(path: Path, base: int, batches: list[tuple[int, BatchHeader]]) -> tuple[int, list[str]]:
    entries, problems = _entries(path, TimeIndex.ENTRY)
    largest = {}  # last offset -> the largest timestamp up to and including that batch
    running = -1
    for _, header in batches:
        running = max(running, header.max_timestamp)
        largest[header.last_offset] = running
    last = (-1, -1)
    for timestamp, relative in entries:
        offset = base + relative
        if offset not in largest:
            problems.append(f"{path.name}: entry ({timestamp}, {relative}) names offset {offset}, "
                            f"which ends no batch")
        elif timestamp != largest[offset]:
            problems.append(f"{path.name}: entry ({timestamp}, {relative}): the largest timestamp up to offset "
                            f"{offset} is {largest[offset]}")
        if timestamp <= last[0] or relative < last[1]:
            problems.append(f"{path.name}: entry ({timestamp}, {relative}) does not increase")
        last = (timestamp, relative)
    return len(entries), problems
