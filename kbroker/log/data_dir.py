"""The data directory: created if missing, and locked for as long as the broker runs.

`.lock` in the data dir holds an OS record lock (fcntl.lockf) from start-up to shutdown, as
Kafka's LogManager.lockLogDirs does: a second broker on the same directory would interleave
appends to the same segments, so it refuses to start instead. The kernel drops the lock when
the process ends, however it ends, so a crash leaves nothing to clean up. The lock is per
process (POSIX semantics): a test reopening the directory in the same process is not refused.

Creating the lock file is also the start-up check of the directory: one that is a file, read
only, or not accessible fails here with a `DataDirError` naming it and the problem.
"""
from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

LOCK_FILE = ".lock"


class DataDirError(Exception):
    """The data directory cannot be used; the message says which and why."""


def lock_data_dir(data_dir: Path) -> int:
    """Create `data_dir` if needed and lock it; the lock's file descriptor (see `unlock_data_dir`)."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        with os.scandir(data_dir):  # readable: start-up lists it
            pass
        fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except FileExistsError as e:
        raise DataDirError(f"data directory {data_dir} is not a directory") from e
    except OSError as e:
        raise DataDirError(f"data directory {data_dir} cannot be used: {e.strerror or e}") from e
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EACCES, errno.EAGAIN):
            raise DataDirError(f"failed to acquire the lock on {data_dir / LOCK_FILE}: another broker "
                               f"is using data directory {data_dir}") from e
        raise DataDirError(f"data directory {data_dir}: cannot lock {LOCK_FILE}: {e.strerror or e}") from e
    return fd


def unlock_data_dir(fd: int) -> None:
    os.close(fd)  # closing drops the lock; the file stays, as Kafka's does
