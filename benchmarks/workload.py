"""The benchmark's records and how a consumer proves it got them all, cheaply.

Every partition receives the same stream: record k of a partition is `pool[k % POOL]`, where
`pool[j]` is `j` as 8 hex digits followed by a deterministic hex stream (so values are ASCII,
contain no newline — kcat can produce them from a file — and compress about as well as
hex text does: lz4 ~1.8x, zstd ~2x).

A consumer proves what it read per partition with three numbers, all computed by C code over
whole fetched batches (never a Python loop per record):

  * count: records consumed;
  * crc: `zlib.crc32` chained over the values in consumed order — so a lost, duplicated,
    reordered or corrupted record changes it;
  * next offset: offsets must run contiguously from 0, checked per batch by comparing the
    list of offsets with a `range` (so a duplicate that happens to repeat a whole pool cycle
    still shows as an offset gap).

`expected_crc(n)` gives the crc a partition of n records must end with.
"""
from __future__ import annotations

import hashlib
import zlib
from functools import lru_cache

POOL = 10_000


@lru_cache(maxsize=8)
def pool(size: int) -> tuple[bytes, ...]:
    if size < 8:
        raise ValueError("records are at least 8 bytes (the pool index)")
    tail = size - 8
    stream = hashlib.shake_128(b"kbroker-benchmark").hexdigest((POOL * tail + 1) // 2).encode()
    return tuple(b"%08x" % j + stream[j * tail:(j + 1) * tail] for j in range(POOL))


def expected_crc(count: int, size: int) -> int:
    """The chained crc32 of the first `count` records of a partition's stream."""
    values = pool(size)
    blob = b"".join(values)
    crc = 0
    for _ in range(count // POOL):
        crc = zlib.crc32(blob, crc)
    rest = count % POOL
    if rest:
        crc = zlib.crc32(b"".join(values[:rest]), crc)
    return crc


class PartitionCheck:
    """What one consumer has seen of one partition; `add` takes a batch of values/offsets."""

    __slots__ = ("count", "crc", "next_offset", "bytes", "problem")

    def __init__(self) -> None:
        self.count = 0
        self.crc = 0
        self.next_offset = 0
        self.bytes = 0
        self.problem: str | None = None

    def add(self, values: list[bytes], offsets: list[int]) -> None:
        n = len(values)
        if offsets != list(range(self.next_offset, self.next_offset + n)) and self.problem is None:
            self.problem = f"offsets not contiguous after {self.next_offset}: got {offsets[0]}..{offsets[-1]} for {n}"
        blob = b"".join(values)
        self.crc = zlib.crc32(blob, self.crc)
        self.bytes += len(blob)
        self.count += n
        self.next_offset += n

    def verify(self, count: int, size: int) -> str | None:
        """None when the partition holds exactly the expected records, else what is wrong."""
        if self.problem:
            return self.problem
        if self.count != count:
            return f"{self.count} records consumed, {count} expected"
        if self.crc != expected_crc(count, size):
            return "checksum differs: a record was corrupted, reordered, lost or duplicated"
        return None
