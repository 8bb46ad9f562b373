"""A cluster of kbroker subprocesses on one real ZooKeeper, each cluster in a chroot of its own.

Brokers start side by side; `start` returns once every broker lists all of them. `metadata`
asks one broker, with our own codec, what it knows (brokers, controller, leaders), and
`wait_until` polls such a view until a condition holds: the tests wait on what the cluster says,
never on a sleep.
"""
from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kbroker.wire.messages.metadata import MetadataRequest, MetadataRequestTopic
from tests.broker_process import BrokerProcess, free_port
from tests.scale_harness import _produce as produce_request
from tests.wire_client import WireClient
from tests.zookeeper_process import ZooKeeperProcess

METADATA, PRODUCE = 3, 0
METADATA_VERSION, PRODUCE_VERSION = 12, 9
SESSION_TIMEOUT_MS = 6000  # ZooKeeper (tickTime 500) grants 1-10 s


@dataclass(frozen=True)
class PartitionView:
    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    error_code: int


@dataclass(frozen=True)
class ClusterView:
    brokers: tuple[int, ...]
    controller: int
    topics: dict[str, dict[int, PartitionView]]
    topic_errors: dict[str, int]

    def leaders(self, topic: str) -> dict[int, int]:
        return {p: view.leader for p, view in self.topics.get(topic, {}).items()}

    def fully_led(self, topic: str, partitions: int) -> bool:
        leaders = self.leaders(topic)
        return len(leaders) == partitions and all(leader in self.brokers for leader in leaders.values())


class ClusterProcesses:
    def __init__(self, zookeeper: ZooKeeperProcess, base: Path, size: int = 3,
                 overrides: dict[str, str] | None = None) -> None:
        Path(base).mkdir(parents=True, exist_ok=True)
        self.chroot = f"/kbroker-{uuid.uuid4().hex[:12]}"
        self.zookeeper = zookeeper
        common = {"zookeeper.connect": zookeeper.connect + self.chroot,
                  "zookeeper.session.timeout.ms": str(SESSION_TIMEOUT_MS), **(overrides or {})}
        self.brokers = {node: BrokerProcess(Path(base) / f"broker{node}", {**common, "node.id": str(node)})
                        for node in range(1, size + 1)}

    def add_listener(self, name: str) -> ClusterProcesses:
        """Give every broker a listener `name` on a free port beside PLAINTEXT on its `port` (where
        the test's own requests go), e.g. the one inter.broker.listener.name names."""
        for broker in self.brokers.values():
            broker.overrides["listeners"] = f"PLAINTEXT://127.0.0.1:{broker.port},{name}://127.0.0.1:{free_port()}"
        return self

    def start(self, timeout: float = 30.0) -> ClusterProcesses:
        for broker in self.brokers.values():
            broker.launch()
        for broker in self.brokers.values():
            broker.wait_listening(timeout)
        for node in self.brokers:
            self.wait_until(lambda v: len(v.brokers) == len(self.brokers), via=node, timeout=timeout)
        return self

    def stop(self) -> None:
        for broker in self.brokers.values():
            broker.kill()

    def bootstrap(self, node: int) -> str:
        return self.brokers[node].bootstrap

    @property
    def bootstrap_all(self) -> str:
        return ",".join(b.bootstrap for b in self.brokers.values())

    def alive(self) -> list[int]:
        return [n for n, b in self.brokers.items() if b.process is not None and b.process.poll() is None]

    def signal(self, node: int, sig: signal.Signals) -> None:
        os.kill(self.brokers[node].process.pid, sig)

    def produce_to_paused(self, node: int, topic: str, partition: int, value: bytes,
                          deposed: Callable[[ClusterView], bool], via: int, timeout: float) -> Any:
        """SIGSTOP `node` until `deposed` holds (seen from `via`), queue an acks=all Produce on a
        connection it accepted before, SIGCONT it: the answer to the first thing it does on waking."""
        with WireClient(self.bootstrap(node), timeout=60) as client:
            self.signal(node, signal.SIGSTOP)
            try:
                self.wait_until(deposed, via=via, topics=[topic], timeout=timeout)
                sent = client.send(PRODUCE, PRODUCE_VERSION, produce_request(topic, partition, value))
            finally:
                self.signal(node, signal.SIGCONT)
            correlation, response = client.receive(PRODUCE, PRODUCE_VERSION)
        assert correlation == sent
        return response.responses[0].partition_responses[0]

    def metadata(self, via: int, topics: list[str] | None = None) -> ClusterView:
        request = _metadata_request(topics)
        with WireClient(self.bootstrap(via), timeout=5) as client:
            response = client.request(METADATA, METADATA_VERSION, request)
        return ClusterView(
            brokers=tuple(sorted(b.node_id for b in response.brokers)),
            controller=response.controller_id,
            topics={t.name: {p.partition_index: PartitionView(p.leader_id, p.leader_epoch, tuple(p.replica_nodes),
                                                               tuple(p.isr_nodes), p.error_code)
                             for p in t.partitions} for t in response.topics if t.error_code == 0},
            topic_errors={t.name: t.error_code for t in response.topics if t.error_code})

    def wait_in_sync(self, topic: str, partitions: int, replication_factor: int = 3, via: int | None = None,
                     timeout: float = 60.0) -> float:
        """Until every partition is led and has all its replicas in its ISR; the seconds waited."""
        _, waited = self.wait_until(
            lambda v: v.fully_led(topic, partitions) and all(len(p.isr) == replication_factor
                                                              for p in v.topics[topic].values()),
            via=via, topics=[topic], timeout=timeout)
        return waited

    def wait_until(self, condition: Callable[[ClusterView], bool], via: int | None = None,
                   topics: list[str] | None = None, timeout: float = 30.0) -> tuple[ClusterView, float]:
        """Poll Metadata (from `via`, else any live broker) until `condition`; (the view, seconds waited)."""
        started = time.monotonic()
        last: Any = None
        while time.monotonic() - started < timeout:
            for node in [via] if via is not None else self.alive():
                try:
                    view = self.metadata(node, topics)
                except OSError as exc:
                    last = exc
                    continue
                last = view
                if condition(view):
                    return view, time.monotonic() - started
            time.sleep(0.05)
        raise AssertionError(f"cluster condition not met within {timeout}s; last view: {last}\n" +
                             "\n".join(f"--- broker {n} ---\n{b.log()[-3000:]}" for n, b in self.brokers.items()))


def _metadata_request(topics: list[str] | None) -> Any:
    return MetadataRequest(
        topics=None if topics is None else [MetadataRequestTopic(name=t) for t in topics],
        allow_auto_topic_creation=False)
