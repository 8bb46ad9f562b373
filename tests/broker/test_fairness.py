"""A client that sends requests but never reads its socket costs the broker bounded memory and
does not slow anyone else down.

Hostile connections pipeline Metadata requests for a 300-partition cluster (12 KB answers from
30-byte requests), 2 MB Fetches (sendfile) and Produces, as fast as the broker reads them, and
never read an answer. Meanwhile a well-behaved client produces and fetches; its p99 latency is
compared with a baseline taken before, and the broker's RSS with its RSS before.
"""
from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest

from kbroker.wire import frames
from kbroker.wire.messages import APIS
from kbroker.wire.messages.create_topics import CreatableTopic, CreateTopicsRequest
from kbroker.wire.messages.fetch import FetchPartition, FetchRequest, FetchTopic
from kbroker.wire.messages.metadata import MetadataRequest
from kbroker.wire.messages.produce import PartitionProduceData, ProduceRequest, TopicProduceData
from tests.broker.test_bad_input import batch, fetch_all, produce
from tests.broker_process import BrokerProcess
from tests.wire_client import WireClient

PRODUCE, FETCH, METADATA, CREATE_TOPICS = 0, 1, 3, 19
HOSTILE_CONNECTIONS = 4
ATTEMPTED_BYTES = 200 << 20  # per hostile connection, if the broker kept reading

pytestmark = pytest.mark.timeout(180)


def hostile_burst() -> bytes:
    """~1 MB of pipelined requests: mostly tiny Metadata requests with big answers."""
    parts = []
    metadata = frames.encode_request(APIS[METADATA], 12, 1, "hostile", MetadataRequest(topics=None))
    fetch = frames.encode_request(APIS[FETCH], 12, 2, "hostile", FetchRequest(
        max_wait_ms=0, min_bytes=0, max_bytes=50_000_000, topics=[FetchTopic(topic="fair", partitions=[
            FetchPartition(partition=0, fetch_offset=0, partition_max_bytes=50_000_000)])]))
    produce_request = frames.encode_request(APIS[PRODUCE], 9, 3, "hostile", ProduceRequest(
        acks=1, timeout_ms=5000, topic_data=[TopicProduceData(name="sink", partition_data=[
            PartitionProduceData(index=0, records=batch(b"h" * 20_000))])]))
    for i in range(20_000):
        parts.append(metadata)
        if i % 1000 == 0:
            parts.append(fetch)
            parts.append(produce_request)
    return b"".join(parts)


class Hostile(threading.Thread):
    """Writes until the broker stops reading (3 s without progress), never reads."""

    def __init__(self, port: int, burst: bytes) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.burst = burst
        self.sent = 0
        self.stalled = threading.Event()

    def run(self) -> None:
        self.sock.settimeout(0.5)
        view = memoryview(self.burst)
        stalled_since = None
        while self.sent < ATTEMPTED_BYTES:
            at = self.sent % len(self.burst)
            try:
                self.sent += self.sock.send(view[at:])
                stalled_since = None
            except TimeoutError:
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 3:
                    break
            except OSError:
                break
        self.stalled.set()


def round_trips(client: WireClient, count: int) -> list[float]:
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        result = produce(client, "latency", 0, batch(b"v%d" % i))
        assert result.error_code == 0
        assert fetch_all(client, "latency", 0, offset=result.base_offset).error_code == 0
        latencies.append(time.perf_counter() - started)
    return latencies


def p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99) - 1]


@pytest.fixture
def memory_broker(tmp_path):
    """A broker whose data dir is on tmpfs when there is one: the latencies compared are the
    broker's, not those of a disk other processes may be saturating."""
    shm = Path("/dev/shm")
    work = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path
    broker = BrokerProcess(work / "data").start()
    yield broker
    broker.kill()
    if work != tmp_path:
        shutil.rmtree(work, ignore_errors=True)


def test_a_client_that_never_reads_costs_bounded_memory_and_nobody_else_waits(memory_broker):
    broker = memory_broker
    rss = psutil.Process(broker.process.pid)
    with WireClient(broker.bootstrap) as client:
        created = client.request(CREATE_TOPICS, 7, CreateTopicsRequest(topics=[
            CreatableTopic(name="wide", num_partitions=300, replication_factor=1),
            CreatableTopic(name="fair", num_partitions=1, replication_factor=1),
            CreatableTopic(name="sink", num_partitions=1, replication_factor=1),
            CreatableTopic(name="latency", num_partitions=1, replication_factor=1)], timeout_ms=5000))
        assert all(topic.error_code == 0 for topic in created.topics)
        for _ in range(4):
            assert produce(client, "fair", 0, batch(b"f" * 500_000)).error_code == 0
        round_trips(client, 50)  # warm up
        baseline = round_trips(client, 300)
    rss_before = rss.memory_info().rss

    burst = hostile_burst()
    hostiles = [Hostile(broker.port, burst) for _ in range(HOSTILE_CONNECTIONS)]
    for hostile in hostiles:
        hostile.start()
    rss_peak = rss_before
    with WireClient(broker.bootstrap) as client:
        under_attack: list[float] = []
        while not all(h.stalled.is_set() for h in hostiles) or len(under_attack) < 300:
            under_attack += round_trips(client, 10)
            rss_peak = max(rss_peak, rss.memory_info().rss)
    rss_after = rss.memory_info().rss
    sent = [h.sent for h in hostiles]
    for hostile in hostiles:
        hostile.sock.close()

    growth = max(rss_peak, rss_after) - rss_before
    print(f"\nbaseline p99 {p99(baseline) * 1000:.1f} ms, under attack p99 {p99(under_attack) * 1000:.1f} ms "
          f"({len(under_attack)} round trips); RSS {rss_before >> 20} MiB -> peak {rss_peak >> 20} MiB; "
          f"hostile bytes accepted {[s >> 20 for s in sent]} MiB")
    assert all(s < 64 << 20 for s in sent), "the broker kept reading a client that does not read"
    assert growth < 64 << 20, f"RSS grew by {growth >> 20} MiB"
    assert p99(under_attack) < 5 * p99(baseline) + 0.05
    with WireClient(broker.bootstrap) as client:  # and the broker is fine afterwards
        assert fetch_all(client, "fair", 0).error_code == 0
