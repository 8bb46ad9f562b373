"""Start-up recovery time of one unclean segment: CRC-scan every batch, rebuild both indexes.

    python benchmarks/recovery.py                         # a 1 GiB segment of 16 KiB batches
    python benchmarks/recovery.py --size-mib 1024 --batch-bytes 1024 --broker

Writes one partition log whose single segment holds --size-mib of batches (100-byte records,
--batch-bytes per batch) through PartitionLog.append, drops it without a clean shutdown, and
times PartitionLog.open with recovery point 0 (what start-up does after a crash when the
checkpoint is older than the segment). It checks the recovered log end and that the rebuilt
indexes equal the ones the appends wrote, and times a clean open for comparison. --cold drops
the page cache first (root only); --broker also times a `kbroker serve` process from launch to
listening on that data dir. Prints one JSON line per measurement.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kbroker.log.config import LogConfig  # noqa: E402
from kbroker.log.log_manager import LogManager  # noqa: E402
from kbroker.wire.records import Record, build_batch, validate_produce_batch  # noqa: E402
from tests.broker_process import BrokerProcess  # noqa: E402

TOPIC = "recovery"


def build(data_dir: Path, size: int, batch_bytes: int) -> tuple[int, dict[str, bytes]]:
    """Fill one segment; return the log end offset and the index files the appends wrote."""
    logs = LogManager(data_dir, LogConfig(segment_bytes=size + batch_bytes * 2)).load()
    logs.create_topic(TOPIC, 1, {})
    log = logs.get_log(TOPIC, 0)
    per_batch = max(1, batch_bytes // 110)
    now = int(time.time() * 1000)
    template = build_batch([Record(i, now + i, b"key-%d" % i, os.urandom(50) + b"v" * 40) for i in range(per_batch)])
    while log.log_end_offset == 0 or log.segments[-1].size + len(template) <= size:
        data = bytearray(template)
        log.append(data, validate_produce_batch(memoryview(data), 1 << 30), leader_epoch=0, now_ms=now)
    log.flush()
    assert len(log.segments) == 1
    directory = log.directory
    indexes = {p.name: p.read_bytes() for p in directory.iterdir() if p.suffix in (".index", ".timeindex")}
    end = log.log_end_offset
    log.segments[-1].close()  # a crash: no final index entry, no snapshot, no checkpoint, no marker
    return end, indexes


def drop_page_cache() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--batch-bytes", type=int, default=16384)
    parser.add_argument("--dir", help="where to build the data dir (default: a temp dir)")
    parser.add_argument("--cold", action="store_true", help="drop the page cache before each open (root)")
    parser.add_argument("--broker", action="store_true", help="also time a broker process start")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="kbroker-recovery-", dir=args.dir))
    try:
        data_dir = workdir / "data"
        started = time.perf_counter()
        end, indexes = build(data_dir, args.size_mib << 20, args.batch_bytes)
        segment = data_dir / f"{TOPIC}-0" / f"{0:020d}.log"
        size = segment.stat().st_size
        print(json.dumps({"phase": "build", "bytes": size, "records": end, "seconds": time.perf_counter() - started}))

        cold = args.cold and drop_page_cache()
        started = time.perf_counter()
        logs = LogManager(data_dir, LogConfig(segment_bytes=size + args.batch_bytes * 2)).load()
        elapsed = time.perf_counter() - started
        log = logs.get_log(TOPIC, 0)
        assert log.log_end_offset == end, (log.log_end_offset, end)
        rebuilt = {p.name: p.read_bytes() for p in log.directory.iterdir() if p.suffix in (".index", ".timeindex")}
        assert rebuilt == indexes, "the rebuilt indexes differ from the ones the appends wrote"
        print(json.dumps({"phase": "unclean open", "bytes": size, "batch_bytes": args.batch_bytes,
                          "cold_cache": cold, "seconds": elapsed, "mb_per_s": size / elapsed / 1e6}))
        logs.shutdown()

        cold = args.cold and drop_page_cache()
        started = time.perf_counter()
        logs = LogManager(data_dir, LogConfig(segment_bytes=size + args.batch_bytes * 2)).load()
        print(json.dumps({"phase": "clean open", "cold_cache": cold, "seconds": time.perf_counter() - started}))
        log = logs.get_log(TOPIC, 0)
        log.segments[-1].close()
        for name in (".kafka_cleanshutdown", "recovery-point-offset-checkpoint"):
            (data_dir / name).unlink(missing_ok=True)

        if args.broker:
            cold = args.cold and drop_page_cache()
            broker = BrokerProcess(data_dir, {"log.segment.bytes": str(size + args.batch_bytes * 2)})
            started = time.perf_counter()
            broker.start(timeout=600)
            elapsed = time.perf_counter() - started
            broker.stop()
            print(json.dumps({"phase": "broker start after a crash (launch to listening)", "cold_cache": cold,
                              "seconds": elapsed}))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
