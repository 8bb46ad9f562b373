"""Opening a partition directory at start-up: which segments to trust and which to CRC-scan.

1. Debris of interrupted work is removed: `*.tmp` (half-written checkpoints and snapshots),
   `*.deleted` and `*.cleaned` files, and index files whose .log is gone. An interrupted log-cleaner
   swap is finished: a `<base>.log.swap` file was committed (fsynced, all its batches whole) to
   replace every segment in its offset range [base, its next offset), so the live segments still
   in that range are deleted, the swap segment is CRC-scanned (indexes rebuilt) and renamed live.
   Index `.swap` files without their `.log.swap` are debris (see cleaner.py for the order).
2. Every `<base>.log` is opened. An index that is missing or fails its sanity check, or a segment
   whose tail does not end on a whole batch, is recovered whatever the shutdown was.
3. Without a clean shutdown, every segment that may hold offsets at or above the recovery point
   (all were fsynced below it) is recovered.

Recovering a segment: CRC-check every batch from position 0 (and that offsets only go forward).
The first torn or invalid batch and everything after it is cut off, with a WARNING naming the
reason, and both indexes are rebuilt from the batches kept; its `.txnindex` is marked stale and
rebuilt by the partition log's producer-state replay (partition_log.py), which knows where each
aborted transaction began. Once a segment has been cut, the
segments after it are deleted too: what follows a hole is not a valid continuation (Kafka does the
same).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from kbroker.log.config import LogConfig
from kbroker.log.files import OpenFiles
from kbroker.log.segment import (
    INDEX_SUFFIX,
    LOG_SUFFIX,
    SWAP_SUFFIX,
    TIME_INDEX_SUFFIX,
    TXN_INDEX_SUFFIX,
    LogSegment,
    file_name,
)

log = logging.getLogger("kbroker.log")

_DEBRIS_SUFFIXES = (".tmp", ".deleted", ".cleaned")
_SEGMENT_SUFFIXES = (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX)


def load_segments(directory: Path, config: LogConfig, files: OpenFiles, *, recovery_point: int,
                  clean_shutdown: bool, now_ms: int, name: str) -> list[LogSegment]:
    """The segments of `directory` in offset order, recovered where needed (possibly none)."""
    _finish_swaps(directory, config, files, now_ms=now_ms, name=name)
    bases = _clear_debris(directory)
    opened = [LogSegment.open(directory, base, config, now_ms, files) for base in bases]
    segments: list[LogSegment] = []
    for i, (segment, problem) in enumerate(opened):
        upper = opened[i + 1][0].base_offset if i + 1 < len(opened) else None
        unflushed = not clean_shutdown and (upper is None or upper > recovery_point)
        segments.append(segment)
        if problem is None and not unflushed:
            continue
        if problem is not None:
            log.warning("%s: recovering segment %d: %s", name, segment.base_offset, problem)
        if recover_segment(segment, name=name):
            for later, _ in opened[i + 1:]:
                log.warning("%s: deleting segment %d, which follows a truncated one", name, later.base_offset)
                later.close()
                later.delete()
            break
        if upper is not None:  # a rolled segment: its final time-index entry, as at the roll
            segment.finish_time_index()
    return segments


def recover_segment(segment: LogSegment, *, name: str) -> int:
    """CRC-scan the segment, rebuild its indexes, cut off a bad tail; return the bytes cut."""
    size = segment.size
    reason = segment.recover()
    if segment.size < size:
        log.warning("%s: segment %d: %s; truncating %d bytes at position %d (offsets from %d on)", name,
                    segment.base_offset, reason, size - segment.size, segment.size, segment.next_offset)
    return size - segment.size


def _finish_swaps(directory: Path, config: LogConfig, files: OpenFiles, *, now_ms: int, name: str) -> None:
    """Complete the log cleaner's committed replacements (`<base>.log.swap`), see the header."""
    for base in sorted(_bases_with(directory, LOG_SUFFIX + SWAP_SUFFIX)):
        swap, _ = LogSegment.open(directory, base, config, now_ms, files, suffix=SWAP_SUFFIX)
        try:
            recover_segment(swap, name=name)
            end = swap.next_offset
            replaced = sorted(b for b in _bases_with(directory, LOG_SUFFIX) if base <= b < end)
            log.warning("%s: finishing an interrupted log-cleaner swap: segment %d (offsets up to %d) replaces "
                        "segments %s", name, base, end, replaced)
            for old in replaced:
                for suffix in _SEGMENT_SUFFIXES:
                    (directory / file_name(old, suffix)).unlink(missing_ok=True)
            swap.change_suffix("")
        finally:
            swap.close()
    for entry in os.listdir(directory):
        if entry.endswith(SWAP_SUFFIX):  # index files whose .log.swap never came: not committed
            (directory / entry).unlink()


def _bases_with(directory: Path, suffix: str) -> list[int]:
    bases = []
    for entry in os.listdir(directory):
        stem = entry[:20]
        if entry.endswith(suffix) and len(entry) == 20 + len(suffix) and stem.isdigit():
            bases.append(int(stem))
    return bases


def _clear_debris(directory: Path) -> list[int]:
    """Remove leftovers; return the base offsets of the .log files, sorted."""
    bases, index_bases = set(), {}
    for entry in os.listdir(directory):
        path = directory / entry
        if entry.endswith(_DEBRIS_SUFFIXES):
            path.unlink()
            continue
        stem, dot, suffix = entry.partition(".")
        if not (dot and stem.isdigit() and len(stem) == 20):
            continue
        if "." + suffix == LOG_SUFFIX:
            bases.add(int(stem))
        elif "." + suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX):
            index_bases[path] = int(stem)
    for path, base in index_bases.items():
        if base not in bases:
            path.unlink()
    return sorted(bases)
