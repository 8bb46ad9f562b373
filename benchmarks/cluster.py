"""kbroker's cluster mode (ZooKeeper, replication factor 1): scale-out, failure detection,
metadata propagation and start-up, measured on real processes.

    python benchmarks/cluster.py                         # everything, 1 repeat
    python benchmarks/cluster.py --repeat 3 --sections failover
    python benchmarks/cluster.py --session-timeout-ms 18000 --sections failover --failures kill

One repeat runs, in this order, on a fresh ZooKeeper (Debian's, tests/zookeeper_process.py) and
three fresh brokers (tests/cluster_process.py) in temporary dirs:

  startup      ZooKeeper launched, then 3 brokers side by side: the time to ZooKeeper answering, to
               every broker's port bound (it accepts connections then, and answers once registered), to
               every broker's Metadata listing all three, and to a
               12-partition topic created through broker 1 being led on every broker ("cold"). At
               the end of the repeat the brokers are stopped (SIGTERM), ZooKeeper killed, and all
               relaunched on their data: the time to that topic being led again ("warm").
  scaleout     the same partitioned load (--partitions, one kcat producer and then one kcat consumer
               per partition, as `bench.py --client kcat`, the topic read --consume-passes times so that
               the brokers' consume CPU is large enough for psutil's 10 ms ticks; or `--client python`, bench.py's
               confluent-kafka processes) against one broker alone (no ZooKeeper) and against the
               3-broker cluster, each size of --sizes: aggregate MB/s and msg/s, and broker
               CPU-seconds (psutil, user+system) per GB for each broker and in total. Every record
               consumed is verified (bytes and chained CRC32 per partition, see workload.py).
  propagation  CreateTopics (12 and 100 partitions, sent to each broker in turn with our own codec):
               the time from its answer until every broker's Metadata shows all partitions led.
  failover     with a 12-partition topic: a non-controller broker SIGKILLed, then SIGTERMed (clean
               shutdown closes its ZooKeeper session), then the controller SIGKILLed, then SIGTERMed;
               each time the time until another broker's Metadata shows the victim's partitions
               without a leader (and, for the controller, a new controller), then the time from the
               victim's relaunch to all its partitions led again on every broker.

Times are taken by polling Metadata (our codec, one open connection per broker) every --poll-ms;
each figure is therefore late by up to one poll plus one request. Output (in --out, default
benchmarks/results/cluster-<time>/): results.jsonl (one JSON line per measurement, also printed)
and report.md (the markdown summary, also printed; medians over the runs, with min–max).
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import types
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import psutil  # noqa: E402

import bench  # noqa: E402
from kbroker.wire.messages.create_topics import CreatableTopic, CreateTopicsRequest  # noqa: E402
from tests.broker_process import BrokerProcess  # noqa: E402
from tests.cluster_process import ClusterProcesses, ClusterView, _metadata_request  # noqa: E402
from tests.wire_client import WireClient  # noqa: E402
from tests.zookeeper_process import ZooKeeperProcess, zookeeper_missing  # noqa: E402

METADATA, METADATA_VERSION, CREATE_TOPICS = 3, 12, 19
SECTIONS = ("startup", "scaleout", "propagation", "failover")
FAILURES = ("kill", "term", "controller-kill", "controller-term")
BROKERS = 3


# -- Metadata polling --------------------------------------------------------------------------

class Poller:
    """Metadata from any broker over a connection kept open (reopened after an error)."""

    def __init__(self, cluster: ClusterProcesses, poll_s: float) -> None:
        self.cluster = cluster
        self.poll_s = poll_s
        self._clients: dict[int, WireClient] = {}

    def view(self, node: int, topics: list[str] | None = None) -> ClusterView | None:
        """What `node` says now, or None when it does not answer."""
        try:
            client = self._clients.get(node)
            if client is None:
                client = self._clients[node] = WireClient(self.cluster.bootstrap(node), timeout=5)
            response = client.request(METADATA, METADATA_VERSION, _metadata_request(topics))
        except (OSError, AssertionError, ValueError):
            self.drop(node)
            return None
        return ClusterView(
            brokers=tuple(sorted(b.node_id for b in response.brokers)), controller=response.controller_id,
            topics={t.name: {p.partition_index: types.SimpleNamespace(leader=p.leader_id, leader_epoch=p.leader_epoch)
                             for p in t.partitions} for t in response.topics if t.error_code == 0},
            topic_errors={t.name: t.error_code for t in response.topics if t.error_code})

    def drop(self, node: int) -> None:
        client = self._clients.pop(node, None)
        if client is not None:
            client.close()

    def close(self) -> None:
        for node in list(self._clients):
            self.drop(node)

    def until(self, nodes: list[int], condition, started: float, topics: list[str] | None = None,
              timeout: float = 60.0, what: str = "") -> dict[int, float]:
        """Poll each of `nodes` until `condition(view)` holds on it: {node: seconds since `started`}."""
        seen: dict[int, float] = {}
        deadline = time.monotonic() + timeout
        last = {}
        while len(seen) < len(nodes):
            for node in nodes:
                if node in seen:
                    continue
                view = self.view(node, topics)
                last[node] = view
                if view is not None and condition(view):
                    seen[node] = time.monotonic() - started
            if len(seen) < len(nodes):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{what or 'condition'} not met within {timeout}s on brokers "
                                       f"{sorted(set(nodes) - set(seen))}; last views: {last}\n" + logs(self.cluster))
                time.sleep(self.poll_s)
        return seen


def logs(cluster: ClusterProcesses) -> str:
    return "\n".join(f"--- broker {n} ---\n{b.log()[-2500:]}" for n, b in cluster.brokers.items())


def fully_led(topic: str, partitions: int):
    def check(view: ClusterView) -> bool:
        leaders = {p: v.leader for p, v in view.topics.get(topic, {}).items()}
        return len(leaders) == partitions and all(leader in view.brokers for leader in leaders.values())
    return check


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def system_seconds(pid: int) -> float:
    return psutil.Process(pid).cpu_times().system


def create_topic(bootstrap: str, name: str, partitions: int, timeout_ms: int = 60_000) -> None:
    with WireClient(bootstrap, timeout=timeout_ms / 1000 + 10) as client:
        response = client.request(CREATE_TOPICS, 7, CreateTopicsRequest(
            topics=[CreatableTopic(name=name, num_partitions=partitions, replication_factor=1)],
            timeout_ms=timeout_ms))
    topic = response.topics[0]
    if topic.error_code:
        raise RuntimeError(f"CreateTopics {name} via {bootstrap}: error {topic.error_code} {topic.error_message}")


def delete_topic(bootstrap: str, name: str) -> None:
    from confluent_kafka.admin import AdminClient

    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})  # held: a dropped client fails its futures
        admin.delete_topics([name])[name].result(30)
    except Exception as exc:  # noqa: BLE001 - the run's figures stand; the data stays until the repeat ends
        print(f"could not delete {name}: {exc}", file=sys.stderr)


# -- one cluster -------------------------------------------------------------------------------

class Setup:
    """ZooKeeper and three brokers in `base`, with the timings of their start."""

    def __init__(self, base: Path, args: argparse.Namespace) -> None:
        self.base = base
        self.args = args
        self.zookeeper = ZooKeeperProcess.for_session_timeout(base / "zookeeper", args.session_timeout_ms)
        self.cluster: ClusterProcesses | None = None
        self.poller: Poller | None = None

    def _overrides(self) -> dict[str, str]:
        return {"zookeeper.session.timeout.ms": str(self.args.session_timeout_ms),
                **dict(item.split("=", 1) for item in self.args.override)}

    def start(self, warm: bool = False, topic: str | None = None) -> dict:
        """Launch ZooKeeper, then the brokers; a warm start relaunches them on their data and ports."""
        t0 = time.monotonic()
        self.zookeeper.start()
        zk_ready = time.monotonic() - t0
        if not warm:
            self.cluster = ClusterProcesses(self.zookeeper, self.base / "brokers", BROKERS, self._overrides())
            self.poller = Poller(self.cluster, self.args.poll_ms / 1000)
        else:
            self.poller.close()
        t1 = time.monotonic()
        for broker in self.cluster.brokers.values():
            broker.launch()
        listening = {}
        for node, broker in self.cluster.brokers.items():
            broker.wait_listening(60)
            listening[node] = time.monotonic() - t1
        nodes = list(self.cluster.brokers)
        registered = self.poller.until(nodes, lambda v: len(v.brokers) == BROKERS, t1, what="3 brokers registered")
        row = {"kind": "startup", "start": "warm" if warm else "cold",
               "session_timeout_ms": self.args.session_timeout_ms,
               "zookeeper_ready_s": zk_ready, "brokers_listening_s": max(listening.values()),
               "all_registered_s": max(registered.values()), "load_avg": bench.load_average()}
        if topic is None:
            return row
        if not warm:
            create_topic(self.cluster.bootstrap(1), topic, self.args.partitions)
            row["create_answered_s"] = time.monotonic() - t1
        led = self.poller.until(nodes, fully_led(topic, self.args.partitions), t1, topics=[topic],
                                what=f"{topic} fully led")
        row["topic_led_s"] = max(led.values())
        row["topic_led_from_zookeeper_launch_s"] = row["topic_led_s"] + (t1 - t0)
        row["all_registered_from_zookeeper_launch_s"] = row["all_registered_s"] + (t1 - t0)
        return row

    def stop_all(self) -> None:
        """A clean stop of the brokers (SIGTERM), then ZooKeeper (SIGKILL: it has fsynced every change)."""
        if self.poller is not None:
            self.poller.close()
        if self.cluster is not None:
            for broker in self.cluster.brokers.values():
                if broker.process is not None and broker.process.poll() is None:
                    broker.stop(30)
        self.zookeeper.stop()

    def kill_all(self) -> None:
        if self.poller is not None:
            self.poller.close()
        if self.cluster is not None:
            self.cluster.stop()
        self.zookeeper.stop()


# -- scale-out ---------------------------------------------------------------------------------

def scaleout_run(kind: str, size: int, args: argparse.Namespace, repeat: int, setup: Setup | None) -> dict:
    per_partition = args.records // args.partitions
    total = per_partition * args.partitions
    topic = f"scale-{size}-{repeat}-{time.time_ns()}"
    single: BrokerProcess | None = None
    load = bench.load_average()
    try:
        if kind == "single":
            directory = Path(tempfile.mkdtemp(prefix="single-", dir=args.work))
            single = BrokerProcess(directory / "data", dict(item.split("=", 1) for item in args.override)).start(30)
            bootstrap, pids = single.bootstrap, {1: single.process.pid}
            create_topic(bootstrap, topic, args.partitions)
            leaders = {p: 1 for p in range(args.partitions)}
            zookeeper_pid = None
        else:
            cluster = setup.cluster
            bootstrap = cluster.bootstrap_all
            pids = {n: b.process.pid for n, b in cluster.brokers.items()}
            create_topic(cluster.bootstrap(1), topic, args.partitions)
            views = setup.poller.until(list(cluster.brokers), fully_led(topic, args.partitions), time.monotonic(),
                                       topics=[topic], what=f"{topic} fully led")
            assert views
            view = setup.poller.view(1, [topic])
            leaders = {p: v.leader for p, v in view.topics[topic].items()}
            zookeeper_pid = setup.zookeeper.process.pid
        target = types.SimpleNamespace(kind=kind, bootstrap=bootstrap, cpu_seconds=lambda: None)
        partitions = list(range(args.partitions))
        config = {"acks": args.acks, "compression.type": "none"}

        def cpu() -> dict[int, float]:
            out = {n: cpu_seconds(pid) for n, pid in pids.items()}
            out.update({-n: system_seconds(pid) for n, pid in pids.items()})  # -node: its system time alone
            if zookeeper_pid is not None:
                out[0] = cpu_seconds(zookeeper_pid)
            return out

        if args.client == "kcat":
            before = cpu()
            produce_s, _ = bench._kcat_produce(target, topic, partitions, per_partition, size, config, args)
            middle = before_consume = cpu()
            consume_s = 0.0
            for _ in range(args.consume_passes):  # the topic read again: CPU-seconds big enough to count
                consume_s += bench._kcat_consume(target, topic, partitions, per_partition, size, args,
                                                 offset="0")[0]
            after = cpu()
        else:  # bench's client processes, produce then consume; its CPU hook is read before and after each
            marks: list[dict[int, float]] = []
            target.cpu_seconds = lambda: marks.append(cpu())
            produce_s, consume_s, *_ = bench._python_clients(target, topic, bench.Variant(size, args.acks, "none"),
                                                             args, per_partition, partitions, config)
            before, middle, before_consume, after = marks
        gb = total * size / 1e9
        passes = args.consume_passes if args.client == "kcat" else 1
        consumed_gb = gb * passes
        share = Counter(leaders.values())  # partitions led per broker
        brokers = {}
        for node in pids:
            produce_cpu = middle[node] - before[node]
            consume_cpu = after[node] - before_consume[node]
            own_gb = gb * share[node] / args.partitions
            brokers[str(node)] = {
                "partitions": share[node], "produce_cpu_s": produce_cpu, "consume_cpu_s": consume_cpu,
                "produce_system_s": middle[-node] - before[-node],
                "consume_system_s": after[-node] - before_consume[-node],
                "produce_cpu_s_per_gb_own": produce_cpu / own_gb if own_gb else None,
                "consume_cpu_s_per_gb_own": consume_cpu / own_gb / passes if own_gb else None}
        produce_cpu = sum(middle[n] - before[n] for n in pids)
        consume_cpu = sum(after[n] - before_consume[n] for n in pids)
        row = {"kind": "scaleout", "target": kind, "brokers": len(pids), "size": size, "records": total,
               "partitions": args.partitions, "client": args.client, "acks": args.acks, "repeat": repeat,
               "produce_s": produce_s, "consume_s": consume_s,
               "produce_msg_s": total / produce_s, "produce_mb_s": total * size / produce_s / 1e6,
               "consume_msg_s": total * passes / consume_s, "consume_mb_s": total * passes * size / consume_s / 1e6,
               "consume_passes": passes,
               "produce_cpu_s_per_gb": produce_cpu / gb, "consume_cpu_s_per_gb": consume_cpu / consumed_gb,
               "per_broker": brokers, "verified": True, "load_avg": load}
        if 0 in after:
            row["zookeeper_cpu_s"] = after[0] - before[0]
        return row
    except Exception as exc:
        log = single.log() if single is not None else (logs(setup.cluster) if setup and setup.cluster else "")
        raise RuntimeError(f"{type(exc).__name__}: {exc} | logs: {log[-3000:]}") from exc
    finally:
        if single is not None:
            single.stop(30)
            shutil.rmtree(single.data_dir.parent, ignore_errors=True)
        elif setup is not None and setup.cluster is not None:  # its page cache freed, as the single node's is
            delete_topic(setup.cluster.bootstrap(1), topic)


# -- propagation -------------------------------------------------------------------------------

def propagation_run(setup: Setup, partitions: int, via: int, repeat: int) -> dict:
    cluster, poller = setup.cluster, setup.poller
    topic = f"prop-{partitions}-{repeat}-{via}-{time.time_ns()}"
    controller = poller.view(via).controller
    load = bench.load_average()
    sent = time.monotonic()
    create_topic(cluster.bootstrap(via), topic, partitions)
    answered = time.monotonic()
    seen = poller.until(list(cluster.brokers), fully_led(topic, partitions), answered, topics=[topic],
                        what=f"{topic} fully led")
    return {"kind": "propagation", "partitions": partitions, "via": via, "via_is_controller": via == controller,
            "repeat": repeat, "create_s": answered - sent, "all_brokers_led_after_answer_s": max(seen.values()),
            "per_broker_s": {str(n): s for n, s in sorted(seen.items())}, "load_avg": load}


# -- failover ----------------------------------------------------------------------------------

def failover_run(setup: Setup, topic: str, failure: str, repeat: int, args: argparse.Namespace) -> dict:
    cluster, poller = setup.cluster, setup.poller
    nodes = list(cluster.brokers)
    view = poller.view(nodes[0], [topic])
    controller = view.controller
    if failure.startswith("controller"):
        victim = controller
    else:
        victim = next(n for n in nodes if n != controller)
    observer = next(n for n in nodes if n not in (victim, controller))  # the controller's Metadata is not asked
    mine = [p for p, v in view.topics[topic].items() if v.leader == victim]
    sig = signal.SIGKILL if failure.endswith("kill") else signal.SIGTERM
    load = bench.load_average()
    poller.drop(victim)
    started = time.monotonic()
    cluster.signal(victim, sig)

    def leaderless(v: ClusterView) -> bool:
        parts = v.topics.get(topic, {})
        return all(parts[p].leader != victim and parts[p].leader not in v.brokers for p in mine)

    row = {"kind": "failover", "failure": failure, "victim": victim, "victim_was_controller": victim == controller,
           "observer": observer, "victim_partitions": len(mine), "session_timeout_ms": args.session_timeout_ms,
           "repeat": repeat, "load_avg": load}
    timeout = args.session_timeout_ms / 1000 * 3 + 30
    if failure.startswith("controller"):
        new = poller.until([observer], lambda v: v.controller not in (victim, -1), started, what="a new controller",
                           timeout=timeout)
        row["new_controller_s"] = new[observer]
        row["new_controller"] = poller.view(observer).controller
    offline = poller.until([observer], leaderless, started, topics=[topic], timeout=timeout,
                           what=f"broker {victim}'s partitions without a leader")
    row["partitions_leaderless_s"] = offline[observer]
    process = cluster.brokers[victim].process
    process.wait(30)
    row["exit_code"] = process.returncode
    # Relaunch it on its data and port: time to all its partitions led again, seen by every broker.
    relaunched = time.monotonic()
    cluster.brokers[victim].launch()
    cluster.brokers[victim].wait_listening(60)
    row["restart_listening_s"] = time.monotonic() - relaunched

    def led_again(v: ClusterView) -> bool:
        parts = v.topics.get(topic, {})
        return victim in v.brokers and all(parts[p].leader == victim for p in mine)

    back = poller.until(nodes, led_again, relaunched, topics=[topic], timeout=60, what=f"broker {victim} leading again")
    row["restart_led_s"] = max(back.values())
    row["restart_led_per_broker_s"] = {str(n): s for n, s in sorted(back.items())}
    return row


# -- report ------------------------------------------------------------------------------------

def _med(rows: list[dict], key) -> float | None:
    values = [key(r) if callable(key) else r.get(key) for r in rows]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _span(rows: list[dict], key, digits: int = 2) -> str:
    values = [key(r) if callable(key) else r.get(key) for r in rows]
    values = sorted(v for v in values if v is not None)
    if not values:
        return "–"
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:,.{digits}f}"
    return f"{median:,.{digits}f} ({values[0]:,.{digits}f}–{values[-1]:,.{digits}f})"


def _loads(rows: list[dict]) -> str:
    loads = sorted(r["load_avg"] for r in rows)
    return f"{loads[0]}–{loads[-1]}" if loads else "–"


def report(rows: list[dict], args: argparse.Namespace) -> str:
    lines = [f"# kbroker cluster benchmark — {time.strftime('%Y-%m-%d %H:%M')}", "",
             f"{os.cpu_count()} CPUs; kbroker at {args.version}; {BROKERS} brokers on one ZooKeeper (tickTime "
             f"{ZooKeeperProcess.for_session_timeout(Path('.'), args.session_timeout_ms).tick_ms} ms), zookeeper.session.timeout.ms="
             f"{args.session_timeout_ms}; replication factor 1; {args.repeat} repeat(s), medians "
             f"(min–max); Metadata polled every {args.poll_ms} ms; load average (1 min) at the start of each "
             f"run in the last column.", ""]
    scale = [r for r in rows if r["kind"] == "scaleout"]
    if scale:
        lines += [f"## Scale-out ({args.client}, {args.partitions} partitions, acks={args.acks}, "
                  f"{args.records:,} records per run)", "",
                  "| size | target | produce MB/s | msg/s | consume MB/s | msg/s | broker CPU-s/GB in, total | out, total "
                  "| per broker CPU-s/GB of its own data in | out | runs | load |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---|---|---:|---|"]
        for size in dict.fromkeys(r["size"] for r in scale):
            for target in ("single", "cluster"):
                group = [r for r in scale if r["size"] == size and r["target"] == target]
                if not group:
                    continue
                nodes = sorted(group[0]["per_broker"])
                own_in = " / ".join(_span(group, lambda r, n=n: r["per_broker"][n]["produce_cpu_s_per_gb_own"], 1)
                                    .split(" ")[0] for n in nodes)
                own_out = " / ".join(_span(group, lambda r, n=n: r["per_broker"][n]["consume_cpu_s_per_gb_own"], 1)
                                     .split(" ")[0] for n in nodes)
                lines.append(f"| {size:,} B | {target} ({len(nodes)}) | {_span(group, 'produce_mb_s', 1)} | "
                             f"{_span(group, 'produce_msg_s', 0)} | {_span(group, 'consume_mb_s', 1)} | "
                             f"{_span(group, 'consume_msg_s', 0)} | {_span(group, 'produce_cpu_s_per_gb', 2)} | "
                             f"{_span(group, 'consume_cpu_s_per_gb', 2)} | {own_in} | {own_out} | {len(group)} | "
                             f"{_loads(group)} |")
        lines += ["", "On paper, one core per broker and the clients elsewhere: a broker moves at most 1 / (its "
                  "CPU-s per GB of its own data) GB/s, so N hosts give N times the median per-broker figure:", "",
                  "| size | direction | 1 broker: GB/s per core | 3 brokers on 3 hosts: GB/s (× single) |",
                  "|---|---|---:|---:|"]
        for size in dict.fromkeys(r["size"] for r in scale):
            single = [r for r in scale if r["size"] == size and r["target"] == "single"]
            multi = [r for r in scale if r["size"] == size and r["target"] == "cluster"]
            for direction, key, own in (("produce", "produce_cpu_s_per_gb", "produce_cpu_s_per_gb_own"),
                                        ("consume", "consume_cpu_s_per_gb", "consume_cpu_s_per_gb_own")):
                one = _med(single, key)
                per = _med(multi, lambda r: statistics.median(
                    b[own] for b in r["per_broker"].values() if b[own] is not None)) if multi else None
                three = BROKERS / per if per else None
                lines.append(f"| {size:,} B | {direction} | {1 / one if one else float('nan'):.2f} | "
                             + (f"{three:.2f} (× {three * one:.2f})" if three and one else "–") + " |")
    prop = [r for r in rows if r["kind"] == "propagation"]
    if prop:
        lines += ["", "## Metadata propagation after CreateTopics", "",
                  "| partitions | CreateTopics answered in s | answer → every broker's Metadata fully led, s | runs | load |",
                  "|---:|---:|---:|---:|---|"]
        for n in dict.fromkeys(r["partitions"] for r in prop):
            group = [r for r in prop if r["partitions"] == n]
            lines.append(f"| {n} | {_span(group, 'create_s', 3)} | {_span(group, 'all_brokers_led_after_answer_s', 3)} | "
                         f"{len(group)} | {_loads(group)} |")
    fail = [r for r in rows if r["kind"] == "failover"]
    if fail:
        lines += ["", f"## Failure detection (zookeeper.session.timeout.ms={args.session_timeout_ms})", "",
                  "| event | → victim's partitions leaderless (another broker's Metadata), s | → new controller, s "
                  "| relaunch → port bound, s | relaunch → its partitions led on every broker, s | runs | load |",
                  "|---|---:|---:|---:|---:|---:|---|"]
        for failure in FAILURES:
            group = [r for r in fail if r["failure"] == failure]
            if group:
                lines.append(f"| {failure} | {_span(group, 'partitions_leaderless_s')} | {_span(group, 'new_controller_s')} | "
                             f"{_span(group, 'restart_listening_s')} | {_span(group, 'restart_led_s')} | {len(group)} | "
                             f"{_loads(group)} |")
    start = [r for r in rows if r["kind"] == "startup"]
    if start:
        lines += ["", f"## Start-up (ZooKeeper, then {BROKERS} brokers; a {args.partitions}-partition topic)", "",
                  "| start | ZooKeeper answering, s | brokers' port bound, s | all 3 registered, s | topic led on every "
                  "broker, s | from ZooKeeper's launch: registered / topic led, s | runs | load |",
                  "|---|---:|---:|---:|---:|---|---:|---|"]
        kinds = [("cold", [r for r in start if r["start"] == "cold"])]
        for n in sorted({r.get("partitions_in_zookeeper", 0) for r in start if r["start"] == "warm"}):
            kinds.append((f"warm, {n:,} partitions in ZooKeeper",
                          [r for r in start if r["start"] == "warm" and r.get("partitions_in_zookeeper", 0) == n]))
        for kind, group in kinds:
            if group:
                lines.append(f"| {kind} | {_span(group, 'zookeeper_ready_s')} | {_span(group, 'brokers_listening_s')} | "
                             f"{_span(group, 'all_registered_s')} | {_span(group, 'topic_led_s')} | "
                             f"{_span(group, 'all_registered_from_zookeeper_launch_s')} / "
                             f"{_span(group, 'topic_led_from_zookeeper_launch_s')} | {len(group)} | {_loads(group)} |")
        lines += ["", "Broker times count from the brokers' launch (after ZooKeeper answered); cold: the topic is "
                  "created through broker 1 once all three are registered; warm: the same data relaunched."]
    return "\n".join(lines) + "\n"


# -- main --------------------------------------------------------------------------------------

def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    parser.add_argument("--failures", default=",".join(FAILURES), help=f"comma-separated, of {', '.join(FAILURES)}")
    parser.add_argument("--repeat", type=int, default=1, help="the whole sequence, each time on a fresh cluster")
    parser.add_argument("--records", type=int, default=2_400_000, help="records per scale-out run (all partitions)")
    parser.add_argument("--records-1k", type=int, default=240_000,
                        help="records per scale-out run for sizes ≥ 1 KiB (default: ~the bytes of the 100 B runs)")
    parser.add_argument("--sizes", default="100,1024")
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--propagation-partitions", default="12,100")
    parser.add_argument("--acks", default="1")
    parser.add_argument("--client", choices=("kcat", "python"), default="kcat")
    parser.add_argument("--consume-passes", type=int, default=3,
                        help="--client kcat: the topic is consumed this many times over (one consumer per "
                             "partition each time); rates and CPU per GB count every pass")
    parser.add_argument("--producers", type=int, default=2, help="--client python: producer processes")
    parser.add_argument("--consumers", type=int, default=2, help="--client python: consumer processes")
    parser.add_argument("--consume-timeout", type=float, default=300.0)
    parser.add_argument("--warm-partitions", type=int, default=0,
                        help="startup: topics of 100 partitions created before the warm restart, this many in all")
    parser.add_argument("--session-timeout-ms", type=int, default=6000)
    parser.add_argument("--poll-ms", type=float, default=10.0)
    parser.add_argument("-o", "--override", action="append", default=[], help="broker config KEY=VALUE (all brokers)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    args.section_list = _csv(args.sections)
    args.failure_list = _csv(args.failures)
    for name in args.section_list:
        if name not in SECTIONS:
            parser.error(f"unknown section {name}")
    for name in args.failure_list:
        if name not in FAILURES:
            parser.error(f"unknown failure {name}")
    args.out = args.out or HERE / "results" / time.strftime("cluster-%Y%m%d-%H%M%S")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    missing = zookeeper_missing()
    if missing:
        print(f"cannot run a ZooKeeper here: {missing}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    args.version = bench._git_version()
    args.work = Path(tempfile.mkdtemp(prefix="work-", dir=args.out))
    args.data_base = str(args.work)  # kcat's value files
    rows: list[dict] = []
    failed = False
    with open(args.out / "results.jsonl", "a") as jsonl:
        record = bench.recorder(rows, jsonl)

        def attempt(what: dict, fn) -> None:
            nonlocal failed
            try:
                record(fn())
            except Exception as exc:  # noqa: BLE001 - recorded as a failed run; the others go on
                failed = True
                record({"kind": "error", **what, "error": str(exc)[:4000]})

        for repeat in range(args.repeat):
            setup = Setup(Path(tempfile.mkdtemp(prefix=f"cluster-{repeat}-", dir=args.work)), args)
            start_topic = f"startup-{repeat}"
            try:
                row = setup.start(topic=start_topic if "startup" in args.section_list else None)
                if "startup" in args.section_list:
                    record(row)
                if "scaleout" in args.section_list:
                    order = ("single", "cluster") if repeat % 2 == 0 else ("cluster", "single")
                    for size in [int(s) for s in _csv(args.sizes)]:
                        for kind in order:
                            size_args = argparse.Namespace(**vars(args))
                            if size >= 1024:
                                size_args.records = args.records_1k
                            attempt({"section": "scaleout", "target": kind, "size": size, "repeat": repeat},
                                    lambda: scaleout_run(kind, size, size_args, repeat, setup))
                if "propagation" in args.section_list:
                    for n in [int(p) for p in _csv(args.propagation_partitions)]:
                        for via in setup.cluster.brokers:
                            attempt({"section": "propagation", "partitions": n, "via": via, "repeat": repeat},
                                    lambda: propagation_run(setup, n, via, repeat))
                if "failover" in args.section_list:
                    topic = f"failover-{repeat}"
                    create_topic(setup.cluster.bootstrap(1), topic, args.partitions)
                    setup.poller.until(list(setup.cluster.brokers), fully_led(topic, args.partitions),
                                       time.monotonic(), topics=[topic])
                    for failure in args.failure_list:
                        attempt({"section": "failover", "failure": failure, "repeat": repeat},
                                lambda: failover_run(setup, topic, failure, repeat, args))
                if "startup" in args.section_list:
                    for i in range(math.ceil(args.warm_partitions / 100)):  # more state for the warm start to read
                        name = f"bulk-{repeat}-{i}"
                        create_topic(setup.cluster.bootstrap(i % BROKERS + 1), name, 100)
                    partitions = sum(len(t) for t in setup.poller.view(1).topics.values())
                    setup.stop_all()
                    attempt({"section": "startup", "start": "warm", "repeat": repeat},
                            lambda: {**setup.start(warm=True, topic=start_topic),
                                     "partitions_in_zookeeper": partitions})
            except Exception as exc:  # noqa: BLE001
                failed = True
                record({"kind": "error", "repeat": repeat, "error": f"{type(exc).__name__}: {exc}"[:4000]})
            finally:
                setup.kill_all()
    shutil.rmtree(args.work, ignore_errors=True)
    text = report(rows, args)
    (args.out / "report.md").write_text(text)
    print("\n" + text)
    print(f"results: {args.out}")
    if failed:
        print("FAILED: some runs did not finish (see the error rows)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
