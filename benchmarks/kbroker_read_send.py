"""kbroker with Fetch data read into memory and written, instead of sendfile'd — for comparison.

    python benchmarks/kbroker_read_send.py serve --data-dir DIR --listen 127.0.0.1:9092

The broker is unchanged; only `loop.sendfile` is replaced, before the broker starts, by what a
broker without zero-copy does: `os.pread` the slice (page cache -> a Python bytes object) and
`transport.write` it (-> the socket buffer). `benchmarks/bench.py --targets kbroker,kbroker-readsend`
compares broker CPU-seconds per GB consumed on the two paths.

(asyncio's own fallback, used when sendfile is unavailable, reads 16 KiB blocks in an executor
thread — far slower than either, so it is not what we compare against.)
"""
from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
from pathlib import Path

if importlib.util.find_spec("kbroker") is None:  # bench.py puts the kbroker to run on PYTHONPATH
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


async def _read_and_send(self, transport, file, offset=0, count=None, *, fallback=True):
    data = os.pread(file.fileno(), count if count is not None else os.fstat(file.fileno()).st_size - offset, offset)
    transport.write(data)
    return len(data)


asyncio.BaseEventLoop.sendfile = _read_and_send

from kbroker.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
