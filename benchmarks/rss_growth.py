"""Broker RSS as the data on disk grows: produce in steps, sample RSS after each, then read it all.

    python benchmarks/rss_growth.py --gb 10          # 10 steps of 1 GB (1 KiB records), then a full read
    python benchmarks/rss_growth.py --gb 2 --step-gb 0.5

Load comes from kcat (C): each step produces a file of workload records (1 KiB) into one
partition; at the end kcat reads the whole log back and its output is checked (byte count and
chained CRC32 against the workload stream), so the broker serves every byte it stored. RSS is
sampled every 50 ms throughout; a line per step gives the data size on disk, RSS now and
peak so far. The data dir is on --data-base (default: the system temp dir) — check free space
first (`df -h`).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import psutil  # noqa: E402

import bench  # noqa: E402
from workload import POOL  # noqa: E402


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=10.0, help="total data to produce (GB, 1e9 bytes)")
    parser.add_argument("--step-gb", type=float, default=1.0)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--data-base", default=None)
    parser.add_argument("-o", "--override", action="append", default=[], help="kbroker config KEY=VALUE")
    parser.add_argument("--kbroker-src", default="head", help="as bench.py's (default: a snapshot of HEAD)")
    args = parser.parse_args()
    step_records = max(POOL, int(args.step_gb * 1e9 / args.size) // POOL * POOL)  # whole pool cycles
    steps = max(1, round(args.gb / args.step_gb))
    ns = argparse.Namespace(override=args.override, data_base=args.data_base, bootstrap=None, tansu=None,
                            consume_timeout=3600.0)
    ns.kbroker_path, version = bench.kbroker_snapshot(args.kbroker_src, Path(tempfile.mkdtemp(prefix="rss-growth-")))
    print(f"kbroker at {version}", flush=True)
    target = bench.Target("kbroker", ns).start()
    topic = "rss-growth"
    rows = []
    try:
        bench.create_topic(target.bootstrap, topic, 1)
        process = psutil.Process(target.pid)
        for step in range(1, steps + 1):
            seconds, cpu = bench._kcat_produce(target, topic, [0], step_records, args.size,
                                               {"acks": "1", "compression.type": "none"}, ns)
            row = {"step": step, "records": step * step_records, "disk_gb": disk_bytes(target.workdir) / 1e9,
                   "rss_mib": process.memory_info().rss / 2**20, "peak_rss_mib": target.rss.peak / 2**20,
                   "produce_mb_s": step_records * args.size / seconds / 1e6, "broker_cpu_s": cpu}
            rows.append(row)
            print(json.dumps(row), flush=True)
        total = steps * step_records
        seconds, cpu = bench._kcat_consume(target, topic, [0], total, args.size, ns)
        row = {"step": "read all", "records": total, "disk_gb": disk_bytes(target.workdir) / 1e9,
               "rss_mib": process.memory_info().rss / 2**20, "peak_rss_mib": target.rss.peak / 2**20,
               "consume_mb_s": total * args.size / seconds / 1e6, "broker_cpu_s_per_gb": cpu / (total * args.size / 1e9),
               "verified": True}
        rows.append(row)
        print(json.dumps(row), flush=True)
    finally:
        target.stop()
    print("\n| data on disk GB | RSS MiB | peak RSS MiB |\n|---:|---:|---:|")
    for row in rows:
        print(f"| {row['disk_gb']:.1f}{' (after reading it all)' if row['step'] == 'read all' else ''} | "
              f"{row['rss_mib']:.0f} | {row['peak_rss_mib']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
