"""Who owns the log's file descriptors, and when they close.

Every segment file (.log, .index, .timeindex) is one `SegmentFile`, opened for append and read
(O_APPEND: writes always land at the end, whatever the file position). Reads use `os.pread` and
`os.sendfile` with explicit offsets, so the shared file position is never relied on.

A live segment's files are closed explicitly when the log closes. A deleted segment's files are
unlinked at once but not closed: a fetch slice being sent with sendfile, or a flush running in a
worker thread, may still hold them, and closing would let the descriptor number be reused under
them. They close when the last holder lets go (CPython refcounting), without a ResourceWarning.
"""
from __future__ import annotations

import io
import os
from pathlib import Path


class SegmentFile(io.FileIO):
    def __init__(self, path: Path, *, truncate: bool = False) -> None:
        super().__init__(path, "a+")
        if truncate:
            os.ftruncate(self.fileno(), 0)

    def __del__(self) -> None:
        self.close()

    def write_all(self, data: bytes | bytearray | memoryview) -> None:
        """Append all of `data`; on failure cut off the part written and re-raise."""
        fd = self.fileno()
        view = memoryview(data)
        written = 0
        try:
            while written < len(view):
                written += os.write(fd, view[written:])
        except OSError:
            if written:  # the log has a single writer, so the partial write is the file's tail
                os.ftruncate(fd, os.fstat(fd).st_size - written)
            raise

    def sync(self) -> None:
        os.fsync(self.fileno())


def fsync_dir(path: Path) -> None:
    """Make renames and new files in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
