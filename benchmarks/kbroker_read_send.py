"""kbroker with Fetch data read into memory and sent, instead of sendfile'd — for comparison.

    python benchmarks/kbroker_read_send.py serve --data-dir DIR --listen 127.0.0.1:9092

The broker is unchanged. `loop.sendfile` (what kbroker calls) still waits for the transport's
buffer to drain and then sends on the raw socket; only the zero-copy step under it,
`os.sendfile`, is replaced by what a broker without zero-copy does: `os.pread` 256 KiB of the
segment (page cache -> a Python bytes object) and `loop.sock_sendall` it (-> the socket
buffer). `benchmarks/bench.py --targets kbroker,kbroker-readsend` compares broker
CPU-seconds per GB consumed on the two paths.

(asyncio's own fallback, used when sendfile is unavailable, reads 16 KiB blocks in an executor
thread, and a plain `transport.write` of a multi-MB slice costs O(n^2) memmove in Python 3.11's
transport buffer — both far slower than a sensible read path, so neither is what we compare.)
"""
from __future__ import annotations

import asyncio.unix_events
import importlib.util
import os
import sys
from pathlib import Path

if importlib.util.find_spec("kbroker") is None:  # bench.py puts the kbroker to run on PYTHONPATH
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CHUNK = 256 * 1024


async def _read_and_send(self, sock, file, offset, count):
    fd = file.fileno()
    if not count:
        count = os.fstat(fd).st_size - offset
    sent = 0
    try:
        while sent < count:
            data = os.pread(fd, min(CHUNK, count - sent), offset + sent)
            if not data:
                break
            await self.sock_sendall(sock, data)
            sent += len(data)
    finally:
        if sent:
            file.seek(offset + sent)
    return sent


asyncio.unix_events._UnixSelectorEventLoop._sock_sendfile_native = _read_and_send

from kbroker.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
