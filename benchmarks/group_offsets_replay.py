"""Restart time with many committed offsets: a broker replays `__consumer_offsets` at start-up.

    python benchmarks/group_offsets_replay.py [--commits 1000000] [--groups 10] [--partitions 100]

Starts a broker in a temporary directory, commits `--commits` offsets through OffsetCommit
(v8, `--partitions` partitions per request, spread over `--groups` simple groups, so the records
land in several `__consumer_offsets` partitions), then restarts it three ways and times, from the
process start, until every group answers OffsetFetch with its last commits (no
COORDINATOR_LOAD_IN_PROGRESS):

    sigterm     clean shutdown, replay of the whole log (the cleaner is off until now)
    sigkill     crash (log recovery of the unflushed tail, then the same replay)
    compacted   after a run with the log cleaner on has compacted `__consumer_offsets` (a
                small segment size makes the commits roll into cleanable segments)

Prints one JSON line per phase.
"""
from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kbroker.wire.messages.offset_commit import (  # noqa: E402
    OffsetCommitRequest,
    OffsetCommitRequestPartition,
    OffsetCommitRequestTopic,
)
from kbroker.wire.messages.offset_fetch import OffsetFetchRequest, OffsetFetchRequestGroup  # noqa: E402
from tests.broker_process import BrokerProcess  # noqa: E402
from tests.wire_client import WireClient  # noqa: E402

TOPIC = "replay-topic"


def create_topic(bootstrap: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(TOPIC, partitions)])[TOPIC].result(30)


def commit_all(bootstrap: str, commits: int, groups: int, partitions: int) -> dict[str, int]:
    """Pipelined OffsetCommit v8 requests; returns each group's last committed offset."""
    last: dict[str, int] = {}
    requests = commits // partitions
    with WireClient(bootstrap, timeout=60) as client:
        in_flight = 0
        for i in range(requests):
            group = f"replay-group-{i % groups}"
            offset = i // groups + 1
            body = OffsetCommitRequest(group_id=group, generation_id_or_member_epoch=-1, member_id="",
                                       topics=[OffsetCommitRequestTopic(name=TOPIC, partitions=[
                                           OffsetCommitRequestPartition(partition_index=p, committed_offset=offset,
                                                                        committed_metadata="")
                                           for p in range(partitions)])])
            client.send(8, 8, body)
            in_flight += 1
            last[group] = offset
            if in_flight >= 32:
                _, response = client.receive(8, 8)
                assert all(p.error_code == 0 for t in response.topics for p in t.partitions), response
                in_flight -= 1
        for _ in range(in_flight):
            _, response = client.receive(8, 8)
            assert all(p.error_code == 0 for t in response.topics for p in t.partitions), response
    return last


def wait_loaded(bootstrap: str, last: dict[str, int], partitions: int, started: float, timeout: float = 600) -> float:
    """Seconds from `started` until OffsetFetch answers every group with its last commit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with WireClient(bootstrap, timeout=30) as client:
                while time.monotonic() < deadline:
                    response = client.request(9, 8, OffsetFetchRequest(groups=[
                        OffsetFetchRequestGroup(group_id=g, topics=None) for g in last]))
                    if all(g.error_code == 0 for g in response.groups):
                        for group in response.groups:
                            offsets = {p.committed_offset for t in group.topics for p in t.partitions}
                            count = sum(len(t.partitions) for t in group.topics)
                            assert offsets == {last[group.group_id]} and count == partitions, (group.group_id, offsets)
                        return time.monotonic() - started
                    time.sleep(0.01)
        except (ConnectionError, socket.timeout, OSError):
            time.sleep(0.05)
    raise TimeoutError("the groups did not load")


def restart(broker: BrokerProcess, how: str) -> tuple[BrokerProcess, float]:
    if how == "sigkill":
        broker.kill()
    else:
        broker.stop(timeout=300)
    started = time.monotonic()
    return BrokerProcess(broker.data_dir, broker.overrides, port=broker.port).start(timeout=600), started


def segment_bytes(data_dir: Path) -> int:
    return sum(f.stat().st_size for f in data_dir.glob("__consumer_offsets-*/*.log"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commits", type=int, default=1_000_000)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--partitions", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kbroker-replay-"))
    # Small segments so the cleaner has closed segments to compact (Kafka's default is 100 MiB).
    overrides = {"offsets.topic.segment.bytes": str(1024 * 1024), "log.cleaner.backoff.ms": "1000",
                 "log.cleaner.enable": "false"}
    broker = BrokerProcess(work / "data", overrides).start()
    try:
        create_topic(broker.bootstrap, args.partitions)
        started = time.monotonic()
        last = commit_all(broker.bootstrap, args.commits, args.groups, args.partitions)
        elapsed = time.monotonic() - started
        print(json.dumps({"phase": "commit", "commits": args.commits, "seconds": round(elapsed, 2),
                          "commits_per_s": round(args.commits / elapsed), "log_bytes": segment_bytes(broker.data_dir)}),
              flush=True)
        for how in ("sigterm", "sigkill"):
            broker, started = restart(broker, how)
            seconds = wait_loaded(broker.bootstrap, last, args.partitions, started)
            print(json.dumps({"phase": how, "commits": args.commits, "restart_to_offsets_s": round(seconds, 2),
                              "log_bytes": segment_bytes(broker.data_dir)}), flush=True)
        # Turn the cleaner on, let it compact the rolled segments, then restart once more.
        before = segment_bytes(broker.data_dir)
        broker.stop(timeout=300)
        broker = BrokerProcess(broker.data_dir, {**overrides, "log.cleaner.enable": "true"}, port=broker.port).start()
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and segment_bytes(broker.data_dir) > before // 2:
            time.sleep(1)
        broker, started = restart(broker, "sigterm")
        seconds = wait_loaded(broker.bootstrap, last, args.partitions, started)
        print(json.dumps({"phase": "compacted", "commits": args.commits, "restart_to_offsets_s": round(seconds, 2),
                          "log_bytes_before": before, "log_bytes": segment_bytes(broker.data_dir)}), flush=True)
        print(broker.log()[-1500:])
    finally:
        broker.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
