"""Replication on a 3-broker cluster: what acks=all costs at RF=3, failover time, follower catch-up.

    python benchmarks/replication.py                 # the full run (~5 min here)
    python benchmarks/replication.py --quick         # tiny: the smoke test's size
    python benchmarks/replication.py --inter-broker PLAINTEXT,SSL --failovers 0 --catch-up-mb 0 --rates ''
                                                     # (a) with the brokers replicating over each

One real ZooKeeper (tickTime 500) and three kbroker processes (tests/cluster_process.py),
zookeeper.session.timeout.ms=6000. Topics at RF=3 have min.insync.replicas=2.

(a) acks=all, RF=3 against RF=1, interleaved --repeat times, one partition, 100 B records:
    unthrottled produce throughput with bench.py's produce workers (confluent-kafka produce_batch,
    linger.ms=5), every record consumed back and verified (workload.py), broker CPU summed over
    the three brokers; then produce -> acknowledgement latency at fixed rates (linger.ms=0;
    librdkafka's own per-message latency, from produce() to the delivery report).
(b) failover: an idempotent acks=all producer (tests/replication_checker.py's LoadProducer) at
    --failover-rate; the partition's leader gets SIGKILL (its session lapses after the timeout)
    or SIGTERM (a clean shutdown closes its session: the controller acts at once). Measured:
    the signal -> the metadata naming another leader; -> a producer started then has one record
    acknowledged by that leader (on a second partition with the same replicas, so the same
    leader: the cluster's side of a failover, without the load producer's reconnect backoff);
    and -> the load producer's first record the new leader wrote (at or past the start offset
    of its epoch, from its leader-epoch-checkpoint) is acknowledged: after SIGTERM the old leader
    may still acknowledge a few records itself, and librdkafka's delivery reports do not say
    which leader did. The checker then reads the load partition back.
(c) catch-up: a follower is stopped cleanly, --catch-up-mb are written at acks=1, the follower
    is launched again: its launch -> listening -> back in the ISR; MB/s = the bytes it lacked over
    the time from listening to the ISR (its fetcher may start a little before it listens), and
    over the time from its launch (a lower bound).

--inter-broker names the security protocols the brokers replicate over (inter.broker.listener.name:
an INTERNAL listener beside the clients' PLAINTEXT one; test certificates for TLS, SASL PLAIN): one
cluster each, on the same ZooKeeper; (a) runs interleaved on all of them, (b) and (c) on the first.

Prints one JSON line per measurement and markdown tables; results.jsonl and report.md in --out.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench import _run_workers, consume_worker, create_topic, load_average, produce_worker, recorder  # noqa: E402
from tests.certificates import make_certificates  # noqa: E402
from tests.cluster_process import SESSION_TIMEOUT_MS, ClusterProcesses  # noqa: E402
from tests.replication_checker import LoadProducer, check  # noqa: E402
from tests.zookeeper_process import ZooKeeperProcess  # noqa: E402

REPLICATED = {"min.insync.replicas": "2"}


class ClusterTarget:
    """What bench.py's client runners need of a target, for a whole cluster: CPU is the brokers' sum."""

    def __init__(self, cluster: ClusterProcesses, kind: str) -> None:
        self.cluster = cluster
        self.kind = kind
        self.bootstrap = cluster.bootstrap_all

    def cpu_seconds(self) -> float:
        total = 0.0
        for node in self.cluster.alive():
            times = psutil.Process(self.cluster.brokers[node].process.pid).cpu_times()
            total += times.user + times.system
        return total


def percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def _topic(cluster: ClusterProcesses, name: str, replication_factor: int, partitions: int = 1) -> str:
    topic = f"{name}-{time.time_ns()}"
    create_topic(cluster.bootstrap_all, topic, partitions, REPLICATED if replication_factor > 1 else {},
                 replication_factor)
    cluster.wait_in_sync(topic, partitions, replication_factor)  # followers join the ISR once caught up
    return topic


def cluster_over(zookeeper: ZooKeeperProcess, workdir: Path, protocol: str,
                 session_timeout_ms: int = SESSION_TIMEOUT_MS) -> ClusterProcesses:
    """Three brokers replicating over `protocol`: PLAINTEXT as by default, else an INTERNAL listener."""
    session = {"zookeeper.session.timeout.ms": str(session_timeout_ms)}
    if protocol == "PLAINTEXT":
        return ClusterProcesses(zookeeper, workdir / "cluster", 3, session)
    settings = {**session, "inter.broker.listener.name": "INTERNAL",
                "listener.security.protocol.map": f"PLAINTEXT:PLAINTEXT,INTERNAL:{protocol}"}
    if protocol in ("SSL", "SASL_SSL"):
        certs = make_certificates(workdir / "certs")
        settings.update({"ssl.keystore.location": str(certs.server), "ssl.truststore.location": str(certs.ca)})
    if protocol.startswith("SASL_"):
        settings.update({"listener.name.internal.sasl.enabled.mechanisms": "PLAIN",
                         "sasl.mechanism.inter.broker.protocol": "PLAIN",
                         "listener.name.internal.plain.sasl.jaas.config":
                             'org.apache.kafka.common.security.plain.PlainLoginModule required username="broker" '
                             'password="broker-secret" user_broker="broker-secret";'})
    return ClusterProcesses(zookeeper, workdir / f"cluster-{protocol.lower()}", 3, settings).add_listener("INTERNAL")


# -- (a) acks=all at RF=3 and RF=1 ---------------------------------------------------------------

def throughput(cluster: ClusterProcesses, replication_factor: int, records: int, size: int, repeat: int,
               inter_broker: str = "PLAINTEXT") -> dict:
    topic = _topic(cluster, f"throughput-rf{replication_factor}", replication_factor)
    target = ClusterTarget(cluster, f"rf{replication_factor}")
    load = load_average()
    produced, produce_cpu = _run_workers(target, produce_worker,
                                         [(target.bootstrap, topic, [0], records, size, {"acks": "all"})], timeout=600)
    if produced[0]["error_count"] or produced[0]["undelivered"]:
        raise RuntimeError(f"acks=all produce at RF={replication_factor} failed: {produced}")
    consumed, _ = _run_workers(target, consume_worker, [(target.bootstrap, topic, [0], records, size, 300.0)],
                               timeout=300)
    if "fatal" in consumed[0] or consumed[0]["problems"]:
        raise RuntimeError(f"verification failed at RF={replication_factor}: {consumed}")
    seconds = produced[0]["finished"] - produced[0]["started"]
    return {"kind": "throughput", "inter_broker": inter_broker, "replication_factor": replication_factor,
            "records": records, "size": size,
            "repeat": repeat, "msg_per_s": records / seconds, "mb_per_s": records * size / seconds / 1e6,
            "broker_cpu_us_per_msg": produce_cpu / records * 1e6, "verified": True, "load_avg": load}


def ack_latency(cluster: ClusterProcesses, replication_factor: int, rate: int, seconds: float, size: int,
                repeat: int, acks: str = "all", inter_broker: str = "PLAINTEXT") -> dict:
    """Produce -> acknowledgement at a fixed rate, each record sent as soon as it is due."""
    from confluent_kafka import Producer

    topic = _topic(cluster, f"latency-rf{replication_factor}", replication_factor)
    latencies: list[float] = []
    errors: list[str] = []

    def delivered(err, msg) -> None:
        if err is not None:
            errors.append(str(err))
        else:
            latencies.append(msg.latency())

    producer = Producer({"bootstrap.servers": cluster.bootstrap_all, "acks": acks, "linger.ms": 0,
                         "on_delivery": delivered})
    producer.list_topics(topic, timeout=20)
    value = b"x" * size
    total = max(int(rate * seconds), 1)
    load = load_average()
    started = time.perf_counter()
    sent = 0
    while sent < total:
        due = min(int((time.perf_counter() - started) * rate) + 1, total)
        while sent < due:
            producer.produce(topic, value, partition=0)
            sent += 1
        producer.poll(0)
        wait = started + sent / rate - time.perf_counter()
        if wait > 0:
            time.sleep(min(wait, 0.001))
    achieved = total / (time.perf_counter() - started)
    if producer.flush(60) or errors or len(latencies) != total:
        raise RuntimeError(f"latency run at RF={replication_factor}: {len(latencies)}/{total} acknowledged, "
                           f"errors {errors[:3]}")
    ms = sorted(s * 1e3 for s in latencies)
    return {"kind": "latency", "inter_broker": inter_broker, "replication_factor": replication_factor, "acks": acks,
            "rate": rate,
            "achieved_msg_s": achieved,
            "records": total, "repeat": repeat, "p50_ms": percentile(ms, 0.5), "p99_ms": percentile(ms, 0.99),
            "p999_ms": percentile(ms, 0.999), "max_ms": ms[-1], "load_avg": load}


# -- (b) failover --------------------------------------------------------------------------------

PROBE_PARTITION = 1  # led with partition 0 (same replica list), outside what the checker reads


def _failover_topic(cluster: ClusterProcesses, name: str) -> str:
    """Two partitions on the same replicas in the same order: they have the same leader, always."""
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"{name}-{time.time_ns()}"
    replicas = sorted(cluster.brokers)
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap_all})
    assignment = NewTopic(topic, num_partitions=2, replica_assignment=[replicas, replicas], config=REPLICATED)
    admin.create_topics([assignment])[topic].result(30)
    cluster.wait_in_sync(topic, 2)
    return topic


def probe_ack(cluster: ClusterProcesses, node: int, topic: str) -> float:
    """When (time.monotonic) a producer started now has one acks=all record acknowledged by `node`."""
    from confluent_kafka import Producer

    acked: list[float] = []
    probe = Producer({"bootstrap.servers": cluster.bootstrap(node), "acks": "all", "linger.ms": 0,
                      "on_delivery": lambda err, _msg: acked.append(time.monotonic()) if err is None else None})
    probe.produce(topic, b"probe", partition=PROBE_PARTITION)
    probe.flush(60)
    if not acked:
        raise RuntimeError(f"the probe record was not acknowledged by broker {node}")
    return acked[0]


def failovers(cluster: ClusterProcesses, how: signal.Signals, times: int, rate: int,
              session_timeout_ms: int) -> list[dict]:
    topic = _failover_topic(cluster, f"failover-{how.name.lower()}")
    producer = LoadProducer(cluster.bootstrap_all, topic, 1, rate).start()
    rows = []
    try:
        producer.acked_since(100)
        for repeat in range(times):
            view = cluster.metadata(cluster.alive()[0], [topic])
            leader = view.topics[topic][0].leader
            other = next(n for n in cluster.alive() if n != leader)
            load = load_average()
            mark = producer.mark()
            hit = time.monotonic()
            cluster.signal(leader, how)
            view, elected = cluster.wait_until(lambda v: v.leaders(topic)[0] not in (leader, -1), via=other,
                                               topics=[topic], timeout=60)
            new = view.topics[topic][0]
            probed = probe_ack(cluster, new.leader, topic) - hit
            start = epoch_start(cluster, new.leader, topic, new.leader_epoch)
            acked = producer.first_ack_after(mark, [0], timeout=120, min_offset=start) - hit
            rows.append({"kind": "failover", "signal": how.name, "session_timeout_ms": session_timeout_ms,
                         "repeat": repeat, "old_leader": leader,
                         "new_leader_in_metadata_s": elected, "fresh_producer_ack_s": probed, "first_ack_s": acked,
                         "load_avg": load})
            print(json.dumps(rows[-1]), flush=True)
            broker = cluster.brokers[leader]
            if how == signal.SIGTERM:
                broker.stop()
            else:
                broker.kill()  # reaps it
            broker.start(timeout=60)
            cluster.wait_in_sync(topic, 2)
            producer.acked_since(100)
    finally:
        producer.stop()
    report = check(cluster, topic, 1, producer.acked, cluster.alive()[0])
    if not report.ok or producer.errors:
        raise RuntimeError(f"failover lost data: missing {report.missing[:3]}, duplicates {report.duplicates[:3]}, "
                           f"out of order {report.out_of_order[:3]}, diverged {report.diverged}, "
                           f"errors {producer.errors[:3]}")
    return rows


def epoch_start(cluster: ClusterProcesses, node: int, topic: str, epoch: int, timeout: float = 120) -> int:
    """The first offset `node` wrote as leader in `epoch` (or later), from its leader-epoch-checkpoint,
    which gains the entry with the epoch's first append."""
    from kbroker.log.checkpoints import MalformedCheckpoint, read_epochs

    path = cluster.brokers[node].data_dir / f"{topic}-0" / "leader-epoch-checkpoint"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            starts = [offset for entry_epoch, offset in read_epochs(path) if entry_epoch >= epoch]
        except MalformedCheckpoint:  # caught mid-rewrite
            starts = []
        if starts:
            return starts[0]
        time.sleep(0.01)
    raise RuntimeError(f"broker {node} wrote nothing in leader epoch {epoch} of {topic} within {timeout}s")


# -- (c) follower catch-up -----------------------------------------------------------------------

def log_bytes(cluster: ClusterProcesses, node: int, topic: str) -> int:
    return sum(p.stat().st_size for p in (cluster.brokers[node].data_dir / f"{topic}-0").glob("*.log"))


def catch_up(cluster: ClusterProcesses, megabytes: int, size: int) -> dict:
    topic = _topic(cluster, "catch-up", 3)
    view = cluster.metadata(1, [topic])
    leader = view.topics[topic][0].leader
    follower = next(n for n in view.topics[topic][0].replicas if n != leader)
    cluster.brokers[follower].stop()
    cluster.wait_until(lambda v: follower not in v.topics[topic][0].isr, via=leader, topics=[topic], timeout=60)
    records = megabytes * 10**6 // size
    target = ClusterTarget(cluster, "catch-up")
    produced, _ = _run_workers(target, produce_worker, [(target.bootstrap, topic, [0], records, size, {"acks": "1"})],
                               timeout=600)
    if produced[0]["error_count"] or produced[0]["undelivered"]:
        raise RuntimeError(f"writing the backlog failed: {produced}")
    behind = log_bytes(cluster, leader, topic) - log_bytes(cluster, follower, topic)
    load = load_average()
    launched = time.monotonic()
    cluster.brokers[follower].start(timeout=120)
    listening = time.monotonic()
    cluster.wait_in_sync(topic, 1, via=leader, timeout=600)
    in_sync = time.monotonic()
    if log_bytes(cluster, follower, topic) != log_bytes(cluster, leader, topic):
        raise RuntimeError("the follower rejoined the ISR with a log of another size than the leader's")
    return {"kind": "catch-up", "bytes_behind": behind, "records": records, "size": size,
            "start_s": listening - launched, "catch_up_s": in_sync - listening,
            "mb_per_s": behind / (in_sync - listening) / 1e6,
            "mb_per_s_from_launch": behind / (in_sync - launched) / 1e6, "load_avg": load}


# -- report --------------------------------------------------------------------------------------

def _median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def _range(rows: list[dict], key: str) -> str:
    values = sorted(r[key] for r in rows)
    return f"{values[0]:.2f}–{values[-1]:.2f}"


def _by_setup(rows: list[dict]) -> list[tuple[str, int, list[dict]]]:
    """(", SSL inter-broker" or "", replication factor, rows) for each protocol and RF measured."""
    setups = sorted({(r.get("inter_broker", "PLAINTEXT"), r["replication_factor"]) for r in rows},
                    key=lambda s: (s[0] != "PLAINTEXT", s[0], -s[1]))
    shown = len({protocol for protocol, _ in setups}) > 1 or setups[0][0] != "PLAINTEXT"
    return [(f", {protocol} inter-broker" if shown else "", rf,
             [r for r in rows if (r.get("inter_broker", "PLAINTEXT"), r["replication_factor"]) == (protocol, rf)])
            for protocol, rf in setups]


def report(rows: list[dict]) -> str:
    lines = []
    through = [r for r in rows if r["kind"] == "throughput"]
    if through:
        lines += ["| acks=all, 1 partition | produce msg/s | MB/s | broker CPU µs/msg (3 brokers) | runs | load |",
                  "|---|---:|---:|---:|---:|---|"]
        for protocol, rf, group in _by_setup(through):
            lines.append(f"| RF={rf}{protocol} | {_median(group, 'msg_per_s'):,.0f} | "
                         f"{_median(group, 'mb_per_s'):.1f} | {_median(group, 'broker_cpu_us_per_msg'):.1f} | {len(group)} | "
                         f"{_range(group, 'load_avg')} |")
        lines.append("")
    latency = [r for r in rows if r["kind"] == "latency"]
    if latency:
        lines += ["| acks=all produce -> ack | rate msg/s | achieved | p50 ms | p99 ms | p99.9 ms | max ms | runs "
                  "| load |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for rate in sorted({r["rate"] for r in latency}):
            for protocol, rf, group in _by_setup([r for r in latency if r["rate"] == rate]):
                if group:
                    lines.append(f"| RF={rf}{protocol} | {rate:,} | {_median(group, 'achieved_msg_s'):,.0f} | "
                                 f"{_median(group, 'p50_ms'):.2f} | {_median(group, 'p99_ms'):.2f} | "
                                 f"{_median(group, 'p999_ms'):.2f} | {_median(group, 'max_ms'):.1f} | {len(group)} | "
                                 f"{_range(group, 'load_avg')} |")
        lines.append("")
    failover = [r for r in rows if r["kind"] == "failover"]
    if failover:
        timeouts = sorted({r["session_timeout_ms"] for r in failover})
        lines += [f"| leader failover (session timeout {', '.join(map(str, timeouts))} ms), s: median (range) | new leader "
                  "in metadata | a fresh producer's record acknowledged | the load producer's first record on the "
                  "new leader acknowledged | runs |", "|---|---|---|---|---:|"]
        for how in dict.fromkeys(r["signal"] for r in failover):
            group = [r for r in failover if r["signal"] == how]
            cells = [f"{_median(group, key):.2f} ({_range(group, key)})"
                     for key in ("new_leader_in_metadata_s", "fresh_producer_ack_s", "first_ack_s")]
            lines.append(f"| {how} | {' | '.join(cells)} | {len(group)} |")
        lines.append("")
    for r in rows:
        if r["kind"] == "catch-up":
            lines.append(f"Catch-up: {r['bytes_behind'] / 1e6:.0f} MB behind ({r['size']} B records); start "
                         f"{r['start_s']:.2f} s, then back in the ISR after {r['catch_up_s']:.2f} s: "
                         f"{r['mb_per_s']:.1f} MB/s ({r['mb_per_s_from_launch']:.1f} MB/s from its launch; "
                         f"load {r['load_avg']}).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=2_000_000, help="per throughput run")
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rates", default="1000,10000", help="latency runs, msg/s ('' for none)")
    parser.add_argument("--latency-seconds", type=float, default=5.0)
    parser.add_argument("--failovers", type=int, default=3, help="per signal (0: none)")
    parser.add_argument("--failover-rate", type=int, default=500)
    parser.add_argument("--signals", default="SIGKILL,SIGTERM", help="how the leader is stopped, in turn")
    parser.add_argument("--catch-up-mb", type=int, default=200, help="0: no catch-up run")
    parser.add_argument("--catch-up-size", type=int, default=1024)
    parser.add_argument("--session-timeout-ms", type=int, default=SESSION_TIMEOUT_MS,
                        help="zookeeper.session.timeout.ms of the brokers (Kafka's default: 18000)")
    parser.add_argument("--inter-broker", default="PLAINTEXT",
                        help="comma-separated security protocols to replicate over, one cluster each")
    parser.add_argument("--quick", action="store_true", help="tiny, for the smoke test")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.records, args.repeat, args.rates, args.latency_seconds = 3000, 1, "200", 0.5
        # SIGTERM only: a SIGKILL failover waits out the 6 s session timeout.
        args.failovers, args.failover_rate, args.signals, args.catch_up_mb = 1, 200, "SIGTERM", 2
    args.out = args.out or HERE / "results" / f"replication-{time.strftime('%Y%m%d-%H%M%S')}"
    args.out.mkdir(parents=True, exist_ok=True)

    workdir = Path(tempfile.mkdtemp(prefix="kbroker-replication-bench-"))
    zookeeper = ZooKeeperProcess.for_session_timeout(workdir / "zookeeper", args.session_timeout_ms).start()
    protocols = [p.strip().upper() for p in args.inter_broker.split(",") if p.strip()]
    clusters = {protocol: cluster_over(zookeeper, workdir, protocol, args.session_timeout_ms) for protocol in protocols}
    cluster = clusters[protocols[0]]
    rows: list[dict] = []
    status = 0
    with open(args.out / "results.jsonl", "a") as jsonl:
        record = recorder(rows, jsonl)

        try:
            for each in clusters.values():
                each.start()
            for repeat in range(args.repeat):
                # Interleaved, the order turned each repeat: none always runs on a fresher machine.
                for protocol in protocols[repeat % len(protocols):] + protocols[:repeat % len(protocols)]:
                    for rf in ((3, 1) if repeat % 2 == 0 else (1, 3)):
                        record(throughput(clusters[protocol], rf, args.records, args.size, repeat, protocol))
                        for rate in (int(r) for r in args.rates.split(",") if r.strip()):
                            record(ack_latency(clusters[protocol], rf, rate, args.latency_seconds, args.size, repeat,
                                               inter_broker=protocol))
            if args.failovers:
                for how in (signal.Signals[name.strip()] for name in args.signals.split(",")):
                    for row in failovers(cluster, how, args.failovers, args.failover_rate, args.session_timeout_ms):
                        record(row)
            if args.catch_up_mb:
                record(catch_up(cluster, args.catch_up_mb, args.catch_up_size))
        except Exception as exc:  # noqa: BLE001 - report what was measured, keep the logs
            print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            status = 1
        finally:
            for each in clusters.values():
                each.stop()
            zookeeper.stop()
    text = (f"3 brokers + ZooKeeper on {os.cpu_count()} CPUs; load average at the start of each run.\n\n"
            + report(rows))
    (args.out / "report.md").write_text(text)
    print("\n" + text)
    print(f"results: {args.out}; broker logs {workdir if status else '(removed)'}")
    if not status:
        shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
