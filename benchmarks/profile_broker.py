"""Profile kbroker with py-spy under produce load, then under consume load, and summarise.

    pip install py-spy
    python benchmarks/profile_broker.py --records 3000000 --size 100 --out /tmp/profile

The load is kcat (C), so the broker, not a Python client, is what saturates. For each phase
py-spy samples the broker process (`py-spy record --format raw`: collapsed stacks, which
speedscope.app and flamegraph.pl read) while kcat runs; the summary lists the functions with
the most samples on-CPU at the top of the stack (self) and anywhere in it (total). Idle
samples (the event loop waiting in select/epoll) are counted apart, so the percentages are of
the time the broker was busy.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench  # noqa: E402

def is_idle(frame: str) -> bool:
    """The event loop waiting for sockets (py-spy counts the thread as active there)."""
    return "(selectors.py:" in frame or frame.startswith(("epoll_wait", "select "))


def summarise(raw: Path, top: int = 25) -> dict:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = idle = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = stack.split(";")
        samples += n
        if is_idle(frames[-1]):
            idle += n
            continue
        own[frames[-1]] += n
        for frame in set(frames[1:]):  # frames[0] is the thread
            total[frame] += n
    busy = max(samples - idle, 1)
    return {"samples": samples, "idle_share": idle / max(samples, 1),
            "self": [(f, round(100 * c / busy, 1)) for f, c in own.most_common(top)],
            "total": [(f, round(100 * c / busy, 1)) for f, c in total.most_common(top)]}


def record(pid: int, out: Path, load: list[str] | None, run_load) -> float:
    spy = subprocess.Popen(["py-spy", "record", "-p", str(pid), "-r", "250", "-f", "raw", "-o", str(out), "--nonblocking"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # py-spy attached
    started = time.time()
    run_load()
    elapsed = time.time() - started
    spy.send_signal(2)  # SIGINT: py-spy writes its output and exits
    spy.wait(60)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=3_000_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--compression", default="none")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "kbroker-profile")
    parser.add_argument("--kbroker-src", default="head")
    parser.add_argument("-o", "--override", action="append", default=[])
    args = parser.parse_args()
    if shutil.which("py-spy") is None:
        parser.error("py-spy is not installed: pip install py-spy")
    args.out.mkdir(parents=True, exist_ok=True)
    ns = argparse.Namespace(override=args.override, data_base=None, bootstrap=None, tansu=None, consume_timeout=600.0)
    ns.kbroker_path, version = bench.kbroker_snapshot(args.kbroker_src, args.out)
    target = bench.Target("kbroker", ns).start()
    topic = "profile"
    report = {"kbroker": version, "records": args.records, "size": args.size, "compression": args.compression}
    try:
        bench.create_topic(target.bootstrap, topic, 1)
        config = {"acks": "1", "compression.type": args.compression}
        bench._kcat_file(args.size, args.records, Path(tempfile.gettempdir()))  # written before timing
        for phase, run in (
                ("produce", lambda: bench._kcat_produce(target, topic, [0], args.records, args.size, config, ns)),
                ("consume", lambda: bench._kcat_consume(target, topic, [0], args.records, args.size, ns))):
            raw = args.out / f"{phase}.raw"
            cpu_before = target.cpu_seconds()
            elapsed = record(target.pid, raw, None, run)
            cpu = target.cpu_seconds() - cpu_before
            summary = summarise(raw)
            report[phase] = {"seconds": elapsed, "msg_s": args.records / elapsed, "broker_cpu_s": cpu,
                             "broker_cpu_us_per_msg": cpu / args.records * 1e6, **summary}
    finally:
        target.stop()
    (args.out / "summary.json").write_text(json.dumps(report, indent=1))
    for phase in ("produce", "consume"):
        r = report[phase]
        print(f"\n## {phase}: {r['msg_s']:,.0f} msg/s, broker {r['broker_cpu_us_per_msg']:.2f} CPU-µs/msg, "
              f"idle {100 * r['idle_share']:.0f}% of samples")
        print("self %   function")
        for frame, share in r["self"][:15]:
            print(f"{share:6.1f}   {frame}")
        print("total %  function")
        for frame, share in r["total"][:25]:
            print(f"{share:6.1f}   {frame}")
    print(f"\nraw stacks (speedscope.app, flamegraph.pl): {args.out}/produce.raw, consume.raw")
    return 0


if __name__ == "__main__":
    sys.exit(main())
