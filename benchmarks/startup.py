"""Start-up to ready, and idle RSS, of the broker the pytest plugin and EmbeddedBroker start.

    python benchmarks/startup.py              # 20 runs of each
    python benchmarks/startup.py --runs 50 --json

Each row is a fresh process, timed from spawn, p50 and p99 over the runs:
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
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402

from kbroker.embedded import EmbeddedBroker  # noqa: E402


def timed_runs(runs: int, once: Callable[[], None]) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        once()
        times.append(time.perf_counter() - started)
    return times


def python_run(code: str, env: dict[str, str] | None = None) -> Callable[[], None]:
    return lambda: subprocess.run([sys.executable, "-c", code], check=True, env=env)


def use_bytecode_cache(cache_dir: str) -> None:
    """Children write and reuse .pyc files under `cache_dir` even if the environment says not to."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = cache_dir
    python_run("import kbroker.cli, kbroker.broker.server")()


def broker_start_stop(times: list[float]) -> Callable[[], None]:
    def once() -> None:
        broker = EmbeddedBroker()
        started = time.perf_counter()
        broker.start()
        times.append(time.perf_counter() - started)
        broker.stop()
    return once


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
        start_times: list[float] = []
        import_server = "import kbroker.cli, kbroker.broker.server"
        rows = {
            "python -c pass": timed_runs(args.runs, python_run("pass")),
            "import kbroker (cli + server)": timed_runs(args.runs, python_run(import_server)),
        }
        timed_runs(args.runs, broker_start_stop(start_times))
        rows["EmbeddedBroker().start()"] = start_times
        from_source = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": no_cache}
        rows["import, no bytecode cache"] = timed_runs(args.runs, python_run(import_server, from_source))
        result = {name: {"p50_s": statistics.median(times), "p99_s": percentile(times, 0.99)}
                  for name, times in rows.items()}
        result["idle"] = idle_rss(args.idle)
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{'':32} {'p50':>8} {'p99':>8}   ({args.runs} runs)")
    for name in rows:
        print(f"{name:32} {result[name]['p50_s'] * 1000:6.0f}ms {result[name]['p99_s'] * 1000:6.0f}ms")
    idle = result["idle"]
    print(f"idle broker after {args.idle:g} s: RSS {idle['rss_mib']:.1f} MiB (USS {idle['uss_mib']:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
