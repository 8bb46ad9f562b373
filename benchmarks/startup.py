"""Start-up to ready, and idle RSS, of the broker the pytest plugin and EmbeddedBroker start.

    python benchmarks/startup.py              # 20 runs of each
    python benchmarks/startup.py --runs 50 --json

Each row is a fresh process, timed from spawn: wall clock p50 and p99 over the runs, and the p50 of
the CPU time that process used (user + system; for the broker, until it was ready), which a
loaded machine inflates less:
  python -c pass                  the floor: an interpreter that does nothing
  import kbroker (cli + server)   what importing the broker costs
  EmbeddedBroker().start()        spawn to ready: listening on port 0, the port read back from
                                  its log, ApiVersions answered (fresh data dir each run)
  import, no bytecode cache       the import again, compiling every module from source: what each
                                  start costs where no .pyc can be written or found
                                  (PYTHONDONTWRITEBYTECODE=1 and a source checkout)
All but the last row run with a warm bytecode cache, as after `pip install`: if this environment
forbids writing one, a temporary PYTHONPYCACHEPREFIX is used.
Then one broker is left idle for --idle seconds and its RSS read with psutil (targets: ready
in <= 0.3 s, idle RSS <= 40 MiB).
"""
from __future__ import annotations

import argparse
import json
import statistics
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402

from kbroker.embedded import EmbeddedBroker  # noqa: E402


Run = tuple[float, float]  # (wall seconds, CPU seconds of the started process)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def python_run(code: str, env: dict[str, str] | None = None) -> Callable[[], Run]:
    def once() -> Run:
        cpu, started = children_cpu(), time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        return time.perf_counter() - started, children_cpu() - cpu
    return once


def broker_start_stop() -> Run:
    broker = EmbeddedBroker()
    started = time.perf_counter()
    broker.start()
    wall = time.perf_counter() - started
    cpu = psutil.Process(broker.pid).cpu_times()
    broker.stop()
    return wall, cpu.user + cpu.system


def use_bytecode_cache(cache_dir: str) -> None:
    """Children write and reuse .pyc files under `cache_dir` even if the environment says not to."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = cache_dir
    python_run("import kbroker.cli, kbroker.broker.server")()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def idle_rss(idle_seconds: float) -> dict[str, float]:
    with EmbeddedBroker() as broker:
        time.sleep(idle_seconds)  # the measurement itself: what an idle broker holds after a while
        memory = psutil.Process(broker.pid).memory_full_info()
    return {"rss_mib": memory.rss / 2**20, "uss_mib": memory.uss / 2**20}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--idle", type=float, default=2.0, help="seconds the broker idles before RSS is read")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as no_cache, tempfile.TemporaryDirectory() as cache:
        use_bytecode_cache(cache)
        import_server = "import kbroker.cli, kbroker.broker.server"
        from_source = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": no_cache}
        rows = {name: [once() for _ in range(args.runs)] for name, once in (
            ("python -c pass", python_run("pass")),
            ("import kbroker (cli + server)", python_run(import_server)),
            ("EmbeddedBroker().start()", broker_start_stop),
            ("import, no bytecode cache", python_run(import_server, from_source)),
        )}
        result: dict[str, dict[str, float]] = {
            name: {"p50_s": statistics.median(wall for wall, _ in runs),
                   "p99_s": percentile([wall for wall, _ in runs], 0.99),
                   "cpu_p50_s": statistics.median(cpu for _, cpu in runs)}
            for name, runs in rows.items()}
        result["idle"] = idle_rss(args.idle)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{'':32} {'p50':>8} {'p99':>8} {'CPU p50':>8}   ({args.runs} runs; CPU: of that process)")
    for name in rows:
        row = result[name]
        print(f"{name:32} {row['p50_s'] * 1000:6.0f}ms {row['p99_s'] * 1000:6.0f}ms {row['cpu_p50_s'] * 1000:6.0f}ms")
    idle = result["idle"]
    print(f"idle broker after {args.idle:g} s: RSS {idle['rss_mib']:.1f} MiB (USS {idle['uss_mib']:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
