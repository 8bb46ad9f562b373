"""A segment's aborted-transactions index, `<base>.txnindex`, in Kafka's byte format.

34-byte big-endian entries (Kafka's AbortedTxn), one per transaction whose ABORT marker is in
this segment, in marker order:
    version int16 = 0 | producer id int64 | first offset int64 (the transaction's first batch in
    this partition) | last offset int64 (its ABORT marker) | last stable offset int64 (the
    partition's last stable offset once the marker was written)
A read_committed Fetch sends the entries overlapping the offsets it returns, so that clients drop
the aborted records (`collect`).

As in Kafka the file exists only once a segment has an entry. The entries are also kept in memory
(few: one per aborted transaction). Crash behaviour: the index is derived from the log. A segment
that recovery scans has its index rebuilt from the markers the producer-state replay finds
(partition_log.py); an index whose size is not a multiple of 34 or whose entries go backwards is
rebuilt as well.
"""
from __future__ import annotations

import os
import struct
from bisect import bisect_left
from pathlib import Path
from typing import NamedTuple

from kbroker.log.files import OpenFiles, SegmentFile

_ENTRY = struct.Struct(">hqqqq")
_VERSION = 0


class AbortedTxn(NamedTuple):
    producer_id: int
    first_offset: int
    last_offset: int
    last_stable_offset: int


def _last_offset(txn: AbortedTxn) -> int:
    return txn.last_offset


class TransactionIndex:
    def __init__(self, path: Path, files: OpenFiles) -> None:
        self.path = path
        self._files = files
        self.entries: list[AbortedTxn] = []
        self._file: SegmentFile | None = SegmentFile(path, files, truncate=False) if path.exists() else None

    def load(self) -> str | None:
        """Read the file; if it fails the sanity check, empty the index and say why."""
        if self._file is None:
            return None
        size = self._file.stat().st_size
        problem = None
        if size % _ENTRY.size:
            problem = f"size {size} is not a multiple of {_ENTRY.size}"
        else:
            last = -1
            for version, pid, first, last_offset, lso in _ENTRY.iter_unpack(self._file.pread(size, 0)):
                if version != _VERSION or last_offset <= last or first > last_offset:
                    problem = f"entry ({pid}, {first}, {last_offset}) out of order or of an unknown version"
                    break
                self.entries.append(AbortedTxn(pid, first, last_offset, lso))
                last = last_offset
        if problem is not None:
            self.reset()
        return problem

    def append(self, txn: AbortedTxn) -> None:
        if self.entries and txn.last_offset <= self.entries[-1].last_offset:
            raise ValueError(f"aborted transaction ending at {txn.last_offset} is not after "
                             f"{self.entries[-1].last_offset}")
        self.entries.append(txn)  # kept even if the write fails: fetches stay right until a restart rebuilds it
        if self._file is None:
            self._file = SegmentFile(self.path, self._files, truncate=True)
        self._file.write_all(_ENTRY.pack(_VERSION, *txn))

    def collect(self, fetch_offset: int, upper_bound: int) -> tuple[list[AbortedTxn], bool]:
        """The transactions overlapping [fetch_offset, upper_bound), and whether later segments can
        hold none (an entry whose last stable offset reaches the bound: Kafka's `isComplete`)."""
        found = []
        # Entries ending before the fetch offset can neither overlap nor complete the search (an
        # entry's last stable offset is at most its marker + 1), so start past them.
        start = bisect_left(self.entries, fetch_offset, key=_last_offset)
        for txn in self.entries[start:]:
            if txn.first_offset < upper_bound:
                found.append(txn)
            if txn.last_stable_offset >= upper_bound:
                return found, True
        return found, False

    def truncate_to(self, offset: int) -> None:
        """Drop the transactions whose marker is at `offset` or later."""
        keep = len(self.entries)
        while keep and self.entries[keep - 1].last_offset >= offset:
            keep -= 1
        if keep < len(self.entries):
            del self.entries[keep:]
            if self._file is not None:
                self._file.truncate(keep * _ENTRY.size)

    def reset(self) -> None:
        self.entries.clear()
        if self._file is not None:
            self._file.truncate(0)

    def flush(self) -> None:
        if self._file is not None:
            self._file.sync()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def delete(self) -> None:
        if self._file is not None:
            self._file.delete()
        else:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    def rename(self, target: Path) -> None:
        if self._file is not None:
            self._file.rename(target)
        self.path = target
