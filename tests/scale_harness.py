"""Many partitions and many connections against a broker subprocess, with its RSS and descriptors.

Shared by tests/broker/test_scale.py (CI-sized) and stress/scale.py (10,000 partitions, 1,000
connections). Everything speaks our own codec over asyncio (async_wire_client.py), so one
process can hold a thousand connections.

  create_topics   `topics` topics of `partitions` partitions each, a few CreateTopics at a time.
  fill            one batch into every partition, so each has a segment with data.
  run_clients     `connections` connections at once, each producing a batch to its own partition
                  and fetching it back, again and again for `seconds`; every fetch must return
                  the batch just produced at its offset. Latencies of each produce+fetch pair.
"""
from __future__ import annotations

import asyncio
import os
import resource
import time
from dataclasses import dataclass, field

import psutil

from kbroker.wire.messages.create_topics import CreatableTopic, CreateTopicsRequest
from kbroker.wire.messages.fetch import FetchPartition, FetchRequest, FetchTopic
from kbroker.wire.messages.produce import PartitionProduceData, ProduceRequest, TopicProduceData
from kbroker.wire.records import Record, build_batch
from tests.async_wire_client import AsyncWireClient

PRODUCE, FETCH, CREATE_TOPICS = 0, 1, 19


@dataclass
class BrokerFootprint:
    rss_mib: float
    fds: int

    @classmethod
    def of(cls, pid: int) -> BrokerFootprint:
        return cls(psutil.Process(pid).memory_info().rss / 2**20, len(os.listdir(f"/proc/{pid}/fd")))


@dataclass
class ClientRun:
    connections: int
    seconds: float
    round_trips: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    per_connection: list[int] = field(default_factory=list)  # round trips each connection completed
    connect_seconds: float = 0.0
    peak: BrokerFootprint | None = None

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")


def raise_client_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def topic_names(topics: int) -> list[str]:
    return [f"scale-{i:04d}" for i in range(topics)]


async def create_topics(port: int, topics: int, partitions: int, per_request: int = 20) -> None:
    client = await AsyncWireClient.connect("127.0.0.1", port)
    names = topic_names(topics)
    for start in range(0, topics, per_request):
        response = await client.request(CREATE_TOPICS, 7, CreateTopicsRequest(
            topics=[CreatableTopic(name=name, num_partitions=partitions, replication_factor=1)
                    for name in names[start:start + per_request]], timeout_ms=60_000))
        bad = [(t.name, t.error_code) for t in response.topics if t.error_code]
        if bad:
            raise AssertionError(f"CreateTopics failed: {bad[:5]}")
    await client.close()


def _batch(value: bytes) -> bytearray:
    return bytearray(build_batch([Record(0, int(time.time() * 1000), b"k", value)]))


def _produce(topic: str, partition: int, value: bytes) -> ProduceRequest:
    return ProduceRequest(acks=-1, timeout_ms=30_000, topic_data=[TopicProduceData(name=topic, partition_data=[
        PartitionProduceData(index=partition, records=_batch(value))])])


def _fetch(topic: str, partition: int, offset: int) -> FetchRequest:
    return FetchRequest(max_wait_ms=0, min_bytes=0, max_bytes=1 << 20, topics=[FetchTopic(topic=topic, partitions=[
        FetchPartition(partition=partition, fetch_offset=offset, partition_max_bytes=1 << 20)])])


async def fill(port: int, topics: int, partitions: int, connections: int = 16) -> None:
    """One batch into each partition, over a few connections."""
    targets = [(name, p) for name in topic_names(topics) for p in range(partitions)]

    async def worker(share: list[tuple[str, int]]) -> None:
        client = await AsyncWireClient.connect("127.0.0.1", port)
        for name, partition in share:
            response = await client.request(PRODUCE, 9, _produce(name, partition, b"fill"))
            code = response.responses[0].partition_responses[0].error_code
            if code:
                raise AssertionError(f"produce to {name}-{partition} failed with {code}")
        await client.close()

    await asyncio.gather(*(worker(targets[i::connections]) for i in range(connections)))


async def run_clients(port: int, topics: int, partitions: int, connections: int, seconds: float,
                      broker_pid: int) -> ClientRun:
    """`connections` clients, each on its own partition: produce a batch, fetch it back, repeat."""
    run = ClientRun(connections, seconds)
    targets = [(name, p) for p in range(partitions) for name in topic_names(topics)][:connections]
    started = time.monotonic()
    clients = await asyncio.gather(*(AsyncWireClient.connect("127.0.0.1", port) for _ in range(connections)))
    run.connect_seconds = time.monotonic() - started
    stop_at = time.monotonic() + seconds

    run.per_connection = [0] * connections

    async def loop(index: int, client: AsyncWireClient, topic: str, partition: int) -> None:
        sequence = 0
        while time.monotonic() < stop_at:
            value = b"%s-%d-%d" % (topic.encode(), partition, sequence)
            began = time.perf_counter()
            produced = (await client.request(PRODUCE, 9, _produce(topic, partition, value)))
            result = produced.responses[0].partition_responses[0]
            if result.error_code:
                run.errors.append(f"produce {topic}-{partition}: error {result.error_code}")
                return
            fetched = await client.request(FETCH, 12, _fetch(topic, partition, result.base_offset))
            data = fetched.responses[0].partitions[0]
            if data.error_code or value not in bytes(data.records or b""):
                run.errors.append(f"fetch {topic}-{partition}@{result.base_offset}: error {data.error_code}, "
                                  f"{len(data.records or b'')} bytes without the value just produced")
                return
            run.latencies.append(time.perf_counter() - began)
            run.round_trips += 1
            run.per_connection[index] += 1
            sequence += 1

    async def sample() -> None:
        while time.monotonic() < stop_at:
            footprint = BrokerFootprint.of(broker_pid)
            if run.peak is None or footprint.rss_mib > run.peak.rss_mib:
                run.peak = BrokerFootprint(footprint.rss_mib, max(footprint.fds, run.peak.fds if run.peak else 0))
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample())
    results = await asyncio.gather(*(loop(i, c, t, p) for i, (c, (t, p)) in enumerate(zip(clients, targets))),
                                   return_exceptions=True)
    await sampler
    run.errors += [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    await asyncio.gather(*(c.close() for c in clients))
    return run
