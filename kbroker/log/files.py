"""Who owns the log's file descriptors, and when they close.

Every segment file (.log, .index, .timeindex) is one `SegmentFile`: a path and, while it is in
use, an open `FileHandle` (O_APPEND: writes always land at the end, whatever the file position).
Reads use `os.pread` and `os.sendfile` with explicit offsets, so the shared file position is
never relied on.

Descriptors are bounded. 10,000 partitions are at least 30,000 segment files, and keeping them
all open (as Kafka does, with mmap'ed indexes) would exhaust RLIMIT_NOFILE. So every open handle
is in one bounded set, an `OpenFiles` of at most `capacity` handles; opening one more closes
the least recently used (CLOCK: a handle used since the last sweep gets a second chance). An
evicted SegmentFile reopens its file on next use, without O_CREAT: a file that vanished is an
error, never silently recreated. Active segments that are appended to or read stay open; an idle
partition's files close. Dirty pages need no open descriptor: fsync through a reopened one
writes back everything the file holds (Linux reports an earlier writeback error to the next fd
that asks).

The set is a budget the LogManager owns and hands down (PartitionLog -> LocalLog -> LogSegment -> each
SegmentFile); the server sizes it from the descriptor limit it raised at start-up. Nothing is
process-wide, so two brokers (or tests) in one process each keep their own.

Eviction never closes a descriptor that is in use. It drops the set's and the SegmentFile's
references; the handle closes when its last reference goes (CPython refcounting). A fetch's file
slice being sent with sendfile, a flush or a cleaner read in a worker thread each hold the
handle, so it stays open under them. Hence the rule for callers: never keep a bare descriptor
number; use the SegmentFile's methods, or hold `handle()` in a variable for as long as its
descriptor is used (`os.fstat(f.handle().fileno())` drops the temporary handle before the call;
a FileSlice holds its handle). Open descriptors may briefly exceed `capacity` by the handles
such holders keep.

A deleted segment's files are unlinked at once but their handles (opened first if need be) stay
with their SegmentFile, outside the bounded set, until it is dropped: a reader that took the
segment list before the delete still reads it. Renames (the cleaner's .cleaned -> .swap -> live)
and reopens take the same lock, so a reopen never sees a half-moved name. Closing a log closes
its handles explicitly (clean shutdown, topic deletion).

Threads: the event loop and worker threads (flushes, the log cleaner) both open files; the set
and each SegmentFile's handle and path are guarded by one lock. Reads, writes and fsyncs run
outside it, on the handle the caller holds.
"""
from __future__ import annotations

import io
import os
import resource
import threading
import weakref
from collections import OrderedDict
from pathlib import Path

DEFAULT_CAPACITY = 4096
MIN_CAPACITY = 16


class FileHandle(io.FileIO):
    """An open segment file; closes quietly when the last reference goes."""

    def __del__(self) -> None:
        self.close()


def _open_existing(path: str, flags: int) -> int:
    return os.open(path, flags & ~os.O_CREAT, 0o644)


def capacity_for(fd_limit: int) -> int:
    """Handles for a process allowed `fd_limit` descriptors: a quarter of them, at most DEFAULT_CAPACITY."""
    if fd_limit < 0 or fd_limit == resource.RLIM_INFINITY:
        return DEFAULT_CAPACITY
    return max(MIN_CAPACITY, min(DEFAULT_CAPACITY, fd_limit // 4))


class OpenFiles:
    """The bounded set of open segment-file handles (see the module docstring).

    It holds its SegmentFiles weakly: one dropped without close() (a test's log) still closes
    its file when collected; its entry goes at the next eviction.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self.lock = threading.Lock()
        self._open: OrderedDict[int, weakref.ref[SegmentFile]] = OrderedDict()  # by id(), oldest first
        self.opened = 0  # files opened (or reopened) so far, for tests and start-up reports
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._open)

    def _add(self, file: SegmentFile) -> None:  # lock held
        self._open[id(file)] = weakref.ref(file)
        self._evict(file)

    def _discard(self, file: SegmentFile) -> None:  # lock held
        entry = self._open.get(id(file))
        if entry is not None and entry() is file:
            del self._open[id(file)]

    def _evict(self, keep: SegmentFile) -> None:  # lock held
        chances = len(self._open)
        while len(self._open) > self.capacity:
            key, ref = next(iter(self._open.items()))
            victim = ref()
            if victim is None:  # collected: its handle is already closed
                del self._open[key]
                continue
            if victim is keep or (victim._used and chances > 0):
                victim._used = False
                self._open.move_to_end(key)
                chances -= 1
                continue
            del self._open[key]
            victim._handle = None  # closes now unless a reader still holds the handle
            self.evicted += 1


class SegmentFile:
    def __init__(self, path: Path, files: OpenFiles, *, truncate: bool = False) -> None:
        self.path = path
        self._files = files
        self._used = False  # set by each use; cleared when the eviction sweep passes it over
        self._deleted = False
        self._closed = False
        with files.lock:  # the first open creates the file (an index may be missing)
            handle = FileHandle(path, "a+")
            if truncate:
                os.ftruncate(handle.fileno(), 0)
            self._handle: FileHandle | None = handle
            files.opened += 1
            files._add(self)

    def __repr__(self) -> str:
        return f"SegmentFile({str(self.path)!r})"

    def handle(self) -> FileHandle:
        """The open file; keep this reference for as long as you use its descriptor."""
        handle = self._handle
        if handle is None:
            handle = self._reopen()
        self._used = True
        return handle

    def _reopen(self) -> FileHandle:
        with self._files.lock:
            if self._handle is not None:
                return self._handle
            if self._closed:
                raise ValueError(f"I/O operation on closed segment file {self.path}")
            handle = FileHandle(self.path, "a+", opener=_open_existing)
            self._handle = handle
            self._files.opened += 1
            self._files._add(self)
            return handle

    @property
    def is_open(self) -> bool:
        return self._handle is not None

    # -- I/O on the current handle -------------------------------------------------------

    def pread(self, size: int, position: int) -> bytes:
        handle = self.handle()  # a local, not a temporary: the descriptor must outlive the call
        return os.pread(handle.fileno(), size, position)

    def stat(self) -> os.stat_result:
        handle = self.handle()
        return os.fstat(handle.fileno())

    def truncate(self, size: int) -> None:
        handle = self.handle()
        os.ftruncate(handle.fileno(), size)

    def set_times(self, mtime_ns: int) -> None:
        handle = self.handle()
        os.utime(handle.fileno(), ns=(mtime_ns, mtime_ns))

    def write_all(self, data: bytes | bytearray | memoryview) -> None:
        """Append all of `data`; on failure cut off the part written and re-raise."""
        handle = self.handle()
        fd = handle.fileno()
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
        handle = self.handle()
        os.fsync(handle.fileno())

    # -- lifetime --------------------------------------------------------------------------

    def rename(self, target: Path) -> None:
        with self._files.lock:
            os.rename(self.path, target)
            self.path = target

    def delete(self) -> None:
        """Unlink the file; keep a handle for readers that still hold this segment (see the header)."""
        with self._files.lock:
            if self._deleted:
                return
            if self._handle is None and not self._closed:
                try:
                    self._handle = FileHandle(self.path, "a+", opener=_open_existing)
                except FileNotFoundError:
                    pass
            self._files._discard(self)
            self._deleted = True
            self.path.unlink(missing_ok=True)

    def close(self) -> None:
        with self._files.lock:
            self._files._discard(self)
            handle, self._handle = self._handle, None
            self._closed = True
        if handle is not None:
            handle.close()


def fsync_dir(path: Path) -> None:
    """Make renames and new files in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
