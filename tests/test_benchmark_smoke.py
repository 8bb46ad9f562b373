"""The benchmark, tiny: it runs end to end and its verification catches bad data.

No timing is asserted — CI machines are shared and noisy. What must hold: every run of
`benchmarks/bench.py` against kbroker and the null broker verifies all records it consumed,
`benchmarks/replication.py` runs each of its measurements once on a 3-broker cluster,
`benchmarks/startup.py` reports every row, and
`benchmarks/workload.py`'s check fails on a lost, duplicated, reordered or corrupted record.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from workload import POOL, PartitionCheck, pool  # noqa: E402

pytest.importorskip("confluent_kafka")


def test_bench_runs_tiny_and_verifies_everything(tmp_path: Path) -> None:
    out = tmp_path / "results"
    command = [sys.executable, str(BENCHMARKS / "bench.py"), "--targets", "kbroker,null", "--records", "3000",
               "--sizes", "100,1024", "--acks", "all", "--compression", "none,zstd", "--repeat", "1",
               "--rates", "500", "--latency-seconds", "0.5", "--out", str(out),
               "--kbroker-src", "worktree"]  # the code under test, not the last commit
    done = subprocess.run(command, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    throughput = [r for r in rows if r["kind"] == "throughput"]
    assert len(throughput) == 2 * 2 * 2  # 2 sizes x 2 codecs x 2 targets
    assert all(r["verified"] and r["records"] == 3000 for r in throughput)
    latency = [r for r in rows if r["kind"] == "latency"]
    assert sorted(r["target"] for r in latency) == ["kbroker", "null"]
    assert all(r["records"] == 250 for r in latency)
    assert "| 100 B acks=all none | kbroker |" in (out / "report.md").read_text()


def test_replication_benchmark_runs_tiny(tmp_path: Path) -> None:
    from tests.zookeeper_process import zookeeper_missing

    missing = zookeeper_missing()
    if missing:
        pytest.skip(f"the replication benchmark needs a real ZooKeeper: {missing}")
    out = tmp_path / "results"
    done = subprocess.run([sys.executable, str(BENCHMARKS / "replication.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted((r["kind"], r.get("replication_factor")) for r in rows if r["kind"] != "failover") == [
        ("catch-up", None), ("latency", 1), ("latency", 3), ("throughput", 1), ("throughput", 3)]
    assert all(r["verified"] for r in rows if r["kind"] == "throughput")
    assert [r["signal"] for r in rows if r["kind"] == "failover"] == ["SIGTERM"]
    assert "| RF=3 |" in (out / "report.md").read_text()


def test_startup_benchmark_runs_tiny() -> None:
    done = subprocess.run([sys.executable, str(BENCHMARKS / "startup.py"), "--runs", "2", "--idle", "0.2", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert sorted(result) == sorted(["python -c pass", "import kbroker (cli + server)", "EmbeddedBroker().start()",
                                     "import, no bytecode cache", "idle"])
    assert 0 < result["python -c pass"]["p50_s"] < result["EmbeddedBroker().start()"]["p50_s"]
    assert result["idle"]["rss_mib"] > 10


def _stream(count: int, size: int = 100) -> list[bytes]:
    values = pool(size)
    return [values[k % POOL] for k in range(count)]


def _check(values: list[bytes], offsets: list[int] | None = None, batch: int = 7) -> PartitionCheck:
    check = PartitionCheck()
    offsets = list(range(len(values))) if offsets is None else offsets
    for i in range(0, len(values), batch):
        check.add(values[i:i + batch], offsets[i:i + batch])
    return check


def test_workload_check_accepts_the_stream_and_rejects_damage() -> None:
    count = POOL + 50  # past a pool cycle
    good = _stream(count)
    assert _check(good).verify(count, 100) is None
    lost = good[:10] + good[11:]
    assert _check(lost).verify(count, 100) is not None
    assert _check(lost + good[-1:]).verify(count, 100) is not None  # a duplicate makes the count right again
    swapped = good[:]
    swapped[3], swapped[4] = swapped[4], swapped[3]
    assert "checksum" in _check(swapped).verify(count, 100)
    corrupt = good[:]
    corrupt[5] = corrupt[5][:-1] + b"!"
    assert "checksum" in _check(corrupt).verify(count, 100)
    # A whole pool cycle lost and another repeated leaves values and crc intact: offsets catch it.
    offsets = list(range(count))
    offsets[POOL:POOL + 5] = offsets[:5]
    assert "offsets" in _check(good, offsets).verify(count, 100)


def test_cluster_bench_runs_tiny(tmp_path: Path) -> None:
    """benchmarks/cluster.py end to end on a real ZooKeeper and three brokers, in a few seconds:
    a clean shutdown for failover (a SIGKILL would wait out the session timeout)."""
    from tests.zookeeper_process import zookeeper_missing

    missing = zookeeper_missing()
    if missing:
        pytest.skip(missing)
    out = tmp_path / "results"
    command = [sys.executable, str(BENCHMARKS / "cluster.py"), "--records", "1200", "--records-1k", "1200",
               "--propagation-partitions", "12", "--failures", "term,controller-term", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert not [r for r in rows if r["kind"] == "error"]
    scale = [r for r in rows if r["kind"] == "scaleout"]
    assert sorted((r["target"], r["size"]) for r in scale) == [("cluster", 100), ("cluster", 1024),
                                                               ("single", 100), ("single", 1024)]
    assert all(r["verified"] and r["records"] == 1200 for r in scale)
    assert [r["partitions"] for r in scale if r["target"] == "cluster"] == [12, 12]
    assert sorted(len(r["per_broker"]) for r in scale) == [1, 1, 3, 3]
    assert len([r for r in rows if r["kind"] == "propagation"]) == 3  # CreateTopics through each broker
    failover = {r["failure"]: r for r in rows if r["kind"] == "failover"}
    assert failover["controller-term"]["victim_was_controller"] and "new_controller_s" in failover["controller-term"]
    assert sorted(r["start"] for r in rows if r["kind"] == "startup") == ["cold", "warm"]
    report = (out / "report.md").read_text()
    assert "## Scale-out" in report and "| 100 B | cluster (3) |" in report and "| cold |" in report


def test_read_committed_benchmark_runs_tiny_and_checks_the_counts() -> None:
    command = [sys.executable, str(BENCHMARKS / "read_committed.py"), "--records", "3000", "--txn-records", "100",
               "--abort-every", "3", "--repeats", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert runs[0] == {**runs[0], "records": 3000, "committed": 2000}
    assert {(r["isolation"], r["records"]) for r in runs[1:]} == {("read_uncommitted", 3000), ("read_committed", 2000)}


def test_transactions_benchmark_runs_tiny() -> None:
    command = [sys.executable, str(BENCHMARKS / "transactions.py"), "--records", "2000", "--ids", "300"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    runs = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [(r["run"], r.get("records_per_txn")) for r in runs] == [
        ("plain", None), ("txn-100", 100), ("txn-1000", 1000), ("init-ids", None), ("restart", None)]
    assert runs[1]["txn_per_s"] > 0 and runs[4]["ids"] == 300
