"""Which old segments retention deletes (Kafka's UnifiedLog.deleteOldSegments), as a pure function.

Only for cleanup.policy containing `delete`. Walking from the oldest segment, a segment goes while
  - retention.ms >= 0 and its largest timestamp (file mtime if it has none) is older than
    now - retention.ms, or
  - retention.bytes >= 0 and the log would still hold at least retention.bytes without it, or
  - the log start offset has reached the next segment's base (nothing in it is readable),
and only while all of it lies below the high watermark, so the log start never passes the high
watermark. The active segment qualifies only when it holds data; the log then rolls a new empty
active segment before deleting (as Kafka does).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kbroker.log.config import LogConfig


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    base_offset: int
    size: int
    largest_timestamp: int


def deletable_segment_count(segments: Sequence[SegmentInfo], config: LogConfig, *, now_ms: int,
                            log_start_offset: int, high_watermark: int, log_end_offset: int) -> int:
    """How many segments, from the oldest, retention deletes."""
    excess = sum(s.size for s in segments) - config.retention_bytes
    count = 0
    for i, segment in enumerate(segments):
        last = i + 1 == len(segments)
        upper = log_end_offset if last else segments[i + 1].base_offset
        if high_watermark < upper or (last and segment.size == 0):
            break
        by_time = config.retention_ms >= 0 and now_ms - segment.largest_timestamp > config.retention_ms
        by_size = config.retention_bytes >= 0 and excess - segment.size >= 0
        by_start = not last and upper <= log_start_offset
        if not (by_time or by_size or by_start):
            break
        excess -= segment.size
        count += 1
    return count
