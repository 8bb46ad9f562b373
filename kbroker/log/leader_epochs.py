"""The leader epoch cache of a partition: (leader epoch, first offset written in that epoch).

Persisted as `leader-epoch-checkpoint` (format in checkpoints.py), rewritten whenever an entry is
added or removed. Invariant: epochs and start offsets both strictly increase. It answers
OffsetForLeaderEpoch (the end offset of an epoch = the start of the next one, or the log end for
the latest) and the leader epoch of a given offset.

Crash behaviour: an entry is written when the first batch of a new epoch is appended, before that
batch reaches the disk, so after a crash the file may name a start offset at or past the recovered
log end; loading truncates such entries (Kafka's truncateFromEnd). A write that fails (disk full)
is logged and left to the next change: the cache in memory stays right.
"""
from __future__ import annotations

import logging
from bisect import bisect_right
from pathlib import Path

from kbroker.log.checkpoints import MalformedCheckpoint, read_epochs, write_epochs

log = logging.getLogger("kbroker.log")

UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1


class LeaderEpochCache:
    def __init__(self, path: Path) -> None:
        self._path = path
        try:
            self._entries = read_epochs(path)
        except MalformedCheckpoint as e:
            log.warning("ignoring %s", e)
            self._entries = []

    @property
    def entries(self) -> list[tuple[int, int]]:
        return list(self._entries)

    @property
    def latest_epoch(self) -> int:
        return self._entries[-1][0] if self._entries else UNDEFINED_EPOCH

    def assign(self, epoch: int, start_offset: int) -> None:
        """Record that `epoch` starts at `start_offset` (no-op for the current epoch)."""
        if self._entries and self._entries[-1][0] == epoch and self._entries[-1][1] <= start_offset:
            return
        # Entries this one contradicts (same or later epoch, or starting at or after it) go.
        while self._entries and (self._entries[-1][0] >= epoch or self._entries[-1][1] >= start_offset):
            removed = self._entries.pop()
            log.warning("leader epoch entry %s removed by new entry %s", removed, (epoch, start_offset))
        self._entries.append((epoch, start_offset))
        self._write()

    def end_offset_for(self, epoch: int, log_end_offset: int) -> tuple[int, int]:
        """(largest known epoch <= `epoch`, end offset of that epoch), as Kafka answers it."""
        if epoch == UNDEFINED_EPOCH or not self._entries:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if epoch == self.latest_epoch:
            return epoch, log_end_offset
        epochs = [e for e, _ in self._entries]
        higher = bisect_right(epochs, epoch)
        if higher == len(epochs):
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if higher == 0:  # older than anything known: the data before is gone
            return epoch, self._entries[0][1]
        return self._entries[higher - 1][0], self._entries[higher][1]

    def epoch_for_offset(self, offset: int) -> int:
        starts = [s for _, s in self._entries]
        i = bisect_right(starts, offset) - 1
        return self._entries[i][0] if i >= 0 else UNDEFINED_EPOCH

    def truncate_from_end(self, end_offset: int) -> None:
        """Drop the epochs starting at or after `end_offset` (the log was cut there)."""
        keep = [(e, s) for e, s in self._entries if s < end_offset]
        if len(keep) != len(self._entries):
            self._entries = keep
            self._write()

    def truncate_from_start(self, start_offset: int) -> None:
        """Forget epochs wholly below `start_offset`; the one holding it now starts there."""
        n = bisect_right([s for _, s in self._entries], start_offset)
        if n == 0:
            return
        entries = [(self._entries[n - 1][0], start_offset), *self._entries[n:]]
        if entries != self._entries:
            self._entries = entries
            self._write()

    def _write(self) -> None:
        try:
            write_epochs(self._path, self._entries)
        except OSError as e:  # a disk full must not fail the append; the next change rewrites it
            log.warning("could not write %s: %s", self._path, e)
