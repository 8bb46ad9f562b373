"""The two sparse indexes of a segment, in Kafka's byte format.

`<base>.index` (OffsetIndex): 8-byte big-endian entries
    relative offset int32 (offset - segment base offset) | position int32 (byte position in .log)
  An entry is added when more than index.interval.bytes of log were appended since the previous
  one. As in Kafka it names the *last* offset of the batch being appended and the position where
  that batch starts. Offsets and positions strictly increase. To find an offset: take the last
  entry at or below it, then scan batch headers in the log from that position (a few KiB at most).

`<base>.timeindex` (TimeIndex): 12-byte big-endian entries
    timestamp int64 (largest timestamp in the segment so far) | relative offset int32 (last offset
    of the batch that first reached that timestamp)
  Written at the same moments as offset entries, but only when the largest timestamp grew, plus a
  final entry when the segment stops being active. Timestamps strictly increase; offsets never
  decrease.

Kafka preallocates segment.index.bytes and mmaps the files. We keep the entries in memory and
append each one to the file, so a file holds exactly its entries; `max_entries` still caps an index
(the segment rolls when one is full). Crash behaviour: after a crash an index may be ahead of or
behind its log. Indexes of segments above the recovery point are rebuilt from the log, and an index
that fails the load-time sanity check (size not a multiple of the entry size, entries not
increasing, positions past the end of the log) is rebuilt as well.
"""
from __future__ import annotations

import struct
from array import array
from bisect import bisect_left, bisect_right
from pathlib import Path

from kbroker.log.files import OpenFiles, SegmentFile


class _IndexFile:
    ENTRY: struct.Struct

    def __init__(self, path: Path, base_offset: int, max_index_bytes: int, files: OpenFiles, *,
                 create: bool) -> None:
        self.path = path
        self.base_offset = base_offset
        self.max_entries = max_index_bytes // self.ENTRY.size
        self.file = SegmentFile(path, files, truncate=create)
        self._held: bytearray | None = None  # entries not yet written (`hold_writes`)

    def _raw_entries(self) -> list[tuple[int, ...]] | str:
        size = self.file.stat().st_size
        if size % self.ENTRY.size:
            return f"size {size} is not a multiple of {self.ENTRY.size}"
        data = self.file.pread(size, 0)
        return list(self.ENTRY.iter_unpack(data))

    def _append_entry(self, *fields: int) -> None:
        if self._held is not None:
            self._held += self.ENTRY.pack(*fields)
            return
        self.file.write_all(self.ENTRY.pack(*fields))

    def hold_writes(self) -> None:
        """Collect new entries in memory until `write_held` (a rebuild: one write, not one per entry)."""
        self._held = bytearray()

    def write_held(self) -> None:
        held, self._held = self._held, None
        if held:
            self.file.write_all(held)

    def _truncate_entries(self, count: int) -> None:
        self.file.truncate(count * self.ENTRY.size)

    def __len__(self) -> int:
        raise NotImplementedError

    def forget_after(self, count: int) -> None:
        """Drop the in-memory entries past the first `count` (an append being undone; see `trim_file`)."""
        raise NotImplementedError

    def trim_file(self) -> None:
        """Cut the file to the entries held in memory."""
        self._truncate_entries(len(self))

    def flush(self) -> None:
        self.file.sync()

    def close(self) -> None:
        self.file.close()

    def delete(self) -> None:
        self.file.delete()


class OffsetIndex(_IndexFile):
    ENTRY = struct.Struct(">ii")

    def __init__(self, path: Path, base_offset: int, max_index_bytes: int, files: OpenFiles, *,
                 create: bool) -> None:
        super().__init__(path, base_offset, max_index_bytes, files, create=create)
        self._offsets = array("q")  # absolute offsets
        self._positions = array("q")

    def __len__(self) -> int:
        return len(self._offsets)

    @property
    def is_full(self) -> bool:
        return len(self._offsets) >= self.max_entries

    def load(self, log_size: int) -> str | None:
        """Read the file; if it fails the sanity check, empty the index and say why."""
        entries = self._raw_entries()
        problem = entries if isinstance(entries, str) else None
        last_offset = last_position = -1
        for relative, position in entries if problem is None else ():
            offset = self.base_offset + relative
            if relative < 0 or offset <= last_offset or position <= last_position or position >= log_size:
                problem = f"entry ({relative}, {position}) out of order or past the log end"
                break
            self._offsets.append(offset)
            self._positions.append(position)
            last_offset, last_position = offset, position
        if problem is not None:
            self.reset()
        return problem

    def append(self, offset: int, position: int) -> None:
        self._append_entry(offset - self.base_offset, position)
        self._offsets.append(offset)
        self._positions.append(position)

    def lookup(self, offset: int) -> tuple[int, int]:
        """The last entry with an offset <= `offset`, or (base offset, 0)."""
        i = bisect_right(self._offsets, offset) - 1
        return (self._offsets[i], self._positions[i]) if i >= 0 else (self.base_offset, 0)

    def floor_position(self, position: int) -> int:
        """The last indexed batch position <= `position` (0 when none): a known batch start."""
        i = bisect_right(self._positions, position) - 1
        return self._positions[i] if i >= 0 else 0

    @property
    def last_entry(self) -> tuple[int, int]:
        return (self._offsets[-1], self._positions[-1]) if self._offsets else (self.base_offset, 0)

    def truncate_to(self, offset: int) -> None:
        """Drop the entries for offsets >= `offset`."""
        keep = bisect_left(self._offsets, offset)
        del self._offsets[keep:], self._positions[keep:]
        self._truncate_entries(keep)

    def forget_after(self, count: int) -> None:
        del self._offsets[count:], self._positions[count:]

    def reset(self) -> None:
        del self._offsets[:], self._positions[:]
        self._truncate_entries(0)


class TimeIndex(_IndexFile):
    ENTRY = struct.Struct(">qi")

    def __init__(self, path: Path, base_offset: int, max_index_bytes: int, files: OpenFiles, *,
                 create: bool) -> None:
        super().__init__(path, base_offset, max_index_bytes, files, create=create)
        self._timestamps = array("q")
        self._offsets = array("q")  # absolute offsets

    def __len__(self) -> int:
        return len(self._timestamps)

    @property
    def is_full(self) -> bool:
        return len(self._timestamps) >= self.max_entries

    def load(self) -> str | None:
        entries = self._raw_entries()
        problem = entries if isinstance(entries, str) else None
        last_timestamp, last_offset = -1, self.base_offset
        for timestamp, relative in entries if problem is None else ():
            offset = self.base_offset + relative
            if timestamp <= last_timestamp or offset < last_offset:
                problem = f"entry ({timestamp}, {relative}) out of order"
                break
            self._timestamps.append(timestamp)
            self._offsets.append(offset)
            last_timestamp, last_offset = timestamp, offset
        if problem is not None:
            self.reset()
        return problem

    def maybe_append(self, timestamp: int, offset: int) -> None:
        """Add (timestamp, offset) if `timestamp` is above the last entry's (an empty index: -1)."""
        if timestamp <= self.last_entry[0]:
            return
        self._append_entry(timestamp, offset - self.base_offset)
        self._timestamps.append(timestamp)
        self._offsets.append(offset)

    def lookup(self, timestamp: int) -> tuple[int, int]:
        """The last entry with a timestamp <= `timestamp`, or (-1, base offset)."""
        i = bisect_right(self._timestamps, timestamp) - 1
        return (self._timestamps[i], self._offsets[i]) if i >= 0 else (-1, self.base_offset)

    @property
    def last_entry(self) -> tuple[int, int]:
        return (self._timestamps[-1], self._offsets[-1]) if self._timestamps else (-1, self.base_offset)

    def truncate_to(self, offset: int) -> None:
        """Drop the entries for offsets >= `offset`."""
        keep = bisect_left(self._offsets, offset)
        del self._timestamps[keep:], self._offsets[keep:]
        self._truncate_entries(keep)

    def forget_after(self, count: int) -> None:
        del self._timestamps[count:], self._offsets[count:]

    def reset(self) -> None:
        del self._timestamps[:], self._offsets[:]
        self._truncate_entries(0)
