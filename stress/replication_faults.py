"""Kill, pause and restart brokers of a 3-broker cluster under acks=all load, many times; check at the end.

    python stress/replication_faults.py --cycles 50
    python stress/replication_faults.py --cycles 10 --rate 200 -o replica.lag.time.max.ms=10000

The long version of compat_tests/test_replication.py, on a real ZooKeeper (tickTime 500) and
three kbroker processes, replication factor 3, min.insync.replicas=2, an idempotent acks=all
producer (tests/replication_checker.py's LoadProducer). Even cycles SIGKILL the leader of
partition 0; odd cycles take turns: SIGKILL a follower of partition 0, SIGKILL the controller,
SIGSTOP the leader of partition 0 until another broker leads it (past the session timeout),
then SIGCONT (the deposed leader must refuse what it is sent). A killed broker is restarted;
every cycle waits until each partition has all three replicas in its ISR again.

Per cycle, one JSON line: the failover time (the fault -> the first acknowledged record sent
after it, of a partition the victim led, or of any partition when it led none: acks=all also
stalls while a dead follower is still in the ISR) and how long the ISR took to be full again
(from the restart). At the end the checker reads every partition back: acknowledged records
lost (must be 0), duplicated, out of order, replicas that differ below the high watermark.
Exits 1 if any of those is not zero.
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
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from compat_tests.test_replication import _create  # noqa: E402
from tests.cluster_process import ClusterProcesses  # noqa: E402
from tests.replication_checker import LoadProducer, check  # noqa: E402
from tests.zookeeper_process import ZooKeeperProcess  # noqa: E402

TOPIC = "replication-faults"
FAULTS_BETWEEN_LEADER_KILLS = ("follower-kill", "controller-kill", "leader-pause")


@dataclass(frozen=True)
class Cycle:
    cycle: int
    fault: str
    victim: int
    led: list[int]  # the partitions the victim led when it was hit
    failover_s: float
    isr_full_s: float  # from the victim's restart (launch, or SIGCONT) until every ISR is full
    acked: int
    load_avg: float


def fault_for(cycle: int) -> str:
    if cycle % 2 == 0:
        return "leader-kill"
    return FAULTS_BETWEEN_LEADER_KILLS[(cycle // 2) % len(FAULTS_BETWEEN_LEADER_KILLS)]


def choose_victim(cluster: ClusterProcesses, fault: str) -> tuple[int, list[int]]:
    view = cluster.metadata(cluster.alive()[0], [TOPIC])
    leaders = view.leaders(TOPIC)
    if fault == "controller-kill":
        victim = view.controller
    elif fault == "follower-kill":
        victim = next(n for n in view.topics[TOPIC][0].replicas if n != leaders[0])
    else:
        victim = leaders[0]
    return victim, sorted(p for p, leader in leaders.items() if leader == victim)


def run_cycle(cluster: ClusterProcesses, producer: LoadProducer, number: int, partitions: int) -> Cycle:
    fault = fault_for(number)
    victim, led = choose_victim(cluster, fault)
    watched = led or list(range(partitions))
    mark = producer.mark()
    hit = time.monotonic()
    if fault == "leader-pause":
        cluster.signal(victim, signal.SIGSTOP)
        try:
            others = [n for n in cluster.brokers if n != victim]
            cluster.wait_until(lambda v: v.leaders(TOPIC)[0] not in (victim, -1), via=others[0], topics=[TOPIC],
                               timeout=60)
        finally:
            # Resumed, the deposed leader must answer NOT_LEADER_OR_FOLLOWER (its lease is gone), which sends
            # the producer to the new leader; left paused, the producer would wait out socket.timeout.ms (60 s).
            cluster.signal(victim, signal.SIGCONT)
        back = time.monotonic()
        failover = producer.first_ack_after(mark, watched, timeout=120) - hit
    else:
        cluster.brokers[victim].kill()
        failover = producer.first_ack_after(mark, watched, timeout=120) - hit
        back = time.monotonic()
        cluster.brokers[victim].start(timeout=60)
    cluster.wait_in_sync(TOPIC, partitions, timeout=120)
    isr_full = time.monotonic() - back
    producer.acked_since(50, timeout=60)
    return Cycle(number, fault, victim, led, round(failover, 3), round(isr_full, 3), len(producer.acked),
                 round(os.getloadavg()[0], 2))


def summary(cycles: list[Cycle]) -> str:
    lines = ["| fault | cycles | failover min s | median s | max s | ISR full again, median s |",
             "|---|---:|---:|---:|---:|---:|"]
    for fault in dict.fromkeys(c.fault for c in cycles):
        group = [c for c in cycles if c.fault == fault]
        failovers = [c.failover_s for c in group]
        lines.append(f"| {fault} | {len(group)} | {min(failovers):.2f} | {statistics.median(failovers):.2f} | "
                     f"{max(failovers):.2f} | {statistics.median(c.isr_full_s for c in group):.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--rate", type=int, default=500, help="records/s the producer sends")
    parser.add_argument("--keep", action="store_true", help="keep the data dirs and logs")
    parser.add_argument("-o", "--override", action="append", default=[], help="broker config KEY=VALUE")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="kbroker-replication-faults-"))
    started = time.monotonic()
    zookeeper = ZooKeeperProcess(workdir / "zookeeper").start()
    cluster = ClusterProcesses(zookeeper, workdir / "cluster", 3, dict(item.split("=", 1) for item in args.override))
    cycles: list[Cycle] = []
    producer: LoadProducer | None = None
    status = 0
    try:
        cluster.start()
        _create(cluster, TOPIC, args.partitions)
        producer = LoadProducer(cluster.bootstrap_all, TOPIC, args.partitions, args.rate).start()
        producer.acked_since(200)
        for number in range(args.cycles):
            cycles.append(run_cycle(cluster, producer, number, args.partitions))
            print(json.dumps(asdict(cycles[-1])), flush=True)
        producer.stop()
        report = check(cluster, TOPIC, args.partitions, producer.acked, cluster.alive()[0])
        lost, duplicated = len(report.missing), len(report.duplicates)
        print(summary(cycles))
        print(f"\nrecords acknowledged {len(producer.acked):,}; read back {report.records:,}; lost {lost}; "
              f"duplicated {duplicated}; out of order {len(report.out_of_order)}; diverged replicas "
              f"{report.diverged}; producer errors {len(producer.errors)} {producer.errors[:3]}")
        if not report.ok:
            print(f"FAILED: lost e.g. {report.missing[:5]}, duplicated e.g. {report.duplicates[:5]}, "
                  f"out of order e.g. {report.out_of_order[:3]}", file=sys.stderr)
            status = 1
    except Exception as exc:  # noqa: BLE001 - report where it stopped, keep the evidence
        print(f"FAILED in cycle {len(cycles)} ({fault_for(len(cycles))}): {type(exc).__name__}: {exc}",
              file=sys.stderr)
        if cycles:
            print(summary(cycles))
        status = 1
    finally:
        if producer is not None:
            producer.halt()
        cluster.stop()
        zookeeper.stop()
        keep = args.keep or status
        print(f"{time.monotonic() - started:.0f}s; logs and data {workdir if keep else '(removed)'}")
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
