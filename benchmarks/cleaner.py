"""Log cleaner throughput, and what a cleaning does to the event loop's latency.

    python benchmarks/cleaner.py                     # every codec, 100-byte and 1 KiB values
    python benchmarks/cleaner.py --mb 256 --codec lz4 --value 100 --lag

For each case a partition log of --mb MiB is written on a temp dir (16 KiB batches, keys drawn
from --keys, so most records are superseded), rolled, and cleaned once on this thread. Prints the
log size, records, seconds, MB of log per second and records per second; the offset-map pass and
the rewrite pass each read the dirty log once. With --lag the cleaning runs the way the broker runs
it (worker thread, swaps on the loop) while a 1 ms ticker measures how late the loop wakes up.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kbroker.log.cleaner import CleanerSettings, LogCleaner, advance  # noqa: E402
from kbroker.log.config import LogConfig  # noqa: E402
from kbroker.log.files import OpenFiles  # noqa: E402
from kbroker.log.partition_log import PartitionLog  # noqa: E402
from kbroker.wire.records import Compression, Record, build_batch, validate_produce_batch  # noqa: E402

NOW = 1_800_000_000_000


def build_log(directory: Path, mb: int, codec: Compression, value_size: int, keys: int) -> PartitionLog:
    config = LogConfig(segment_bytes=64 * 1024 * 1024, cleanup_policy="compact", min_cleanable_dirty_ratio=0.01)
    plog = PartitionLog.open(directory / "t-0", "t", 0, uuid.uuid4(), config, now_ms=NOW, files=OpenFiles())
    rng = random.Random(1)
    per_batch = max(1, 16_000 // (value_size + 30))
    written = 0
    while written < mb * 1024 * 1024:
        records = [Record(i, NOW + i, b"key-%08d" % rng.randrange(keys),
                          rng.randbytes(value_size // 2) + b"x" * (value_size - value_size // 2))
                   for i in range(per_batch)]
        batch = bytearray(build_batch(records, compression=codec))
        plog.append(batch, validate_produce_batch(memoryview(batch), 10**8), leader_epoch=0, now_ms=NOW)
        written += len(batch)
    plog.update_high_watermark(plog.log_end_offset)
    plog.roll_if_idle(NOW + 10**12)
    return plog


async def clean_with_lag(cleaner: LogCleaner, plog: PartitionLog) -> list[float]:
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    done = False

    async def ticker() -> None:
        while not done:
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append((time.perf_counter() - started - 0.001) * 1000)

    task = asyncio.create_task(ticker())
    with ThreadPoolExecutor(1) as executor:
        job = cleaner.grab_filthiest(NOW)
        steps = cleaner.clean_steps(job)
        request = await loop.run_in_executor(executor, advance, steps, None)
        while request is not None:
            request = await loop.run_in_executor(executor, advance, steps, plog.replace_segments(*request))
    done = True
    await task
    return sorted(lags)


def run(mb: int, codec: Compression, value_size: int, keys: int, lag: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        plog = build_log(Path(tmp), mb, codec, value_size, keys)
        size = sum(s.size for s in plog.segments)
        cleaner = LogCleaner(Path(tmp), lambda: [plog], CleanerSettings())
        started = time.perf_counter()
        if lag:
            lags = asyncio.run(clean_with_lag(cleaner, plog))
            extra = f"  loop lag p50 {lags[len(lags) // 2]:.2f} ms, p99 {lags[int(len(lags) * .99)]:.2f} ms"
        else:
            job = cleaner.clean_now(NOW)
            assert job is not None
            extra = ""
        elapsed = time.perf_counter() - started
        after = sum(s.size for s in plog.segments)
        records = plog.log_end_offset
        print(f"{codec.name:6} value {value_size:5} B  log {size / 1e6:6.1f} MB -> {after / 1e6:5.1f} MB  "
              f"{records:8d} records  {elapsed:6.2f} s  {size / 1e6 / elapsed:6.1f} MB/s  "
              f"{records / elapsed / 1e3:5.0f}k records/s{extra}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=64)
    parser.add_argument("--codec", choices=[c.name.lower() for c in Compression])
    parser.add_argument("--value", type=int)
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--lag", action="store_true")
    args = parser.parse_args()
    codecs = [Compression[args.codec.upper()]] if args.codec else list(Compression)
    for value_size in [args.value] if args.value else [100, 1000]:
        for codec in codecs:
            run(args.mb, codec, value_size, args.keys, args.lag)


if __name__ == "__main__":
    main()
