"""A real kbroker cluster for tests: a ZooKeeper and `size` EmbeddedBrokers joined through it.

    with EmbeddedCluster(size=3) as cluster:
        cluster.create_topic("orders", partitions=3)   # replication factor min(3, size)
        produce_with_acks_all(cluster.bootstrap_servers)

ZooKeeper is Debian's (`zookeeper_process.py`; it needs Java): `zookeeper_missing()` says why it
cannot run. The brokers are `EmbeddedBroker`s with `zookeeper.connect` (a chroot of their own) and
node ids 1..size, launched side by side; the cluster is ready once every broker's Metadata lists
them all. Topic changes go through broker 1 and return once every broker sees every partition led
with its whole ISR, so a client may bootstrap from any of them at once.
"""
from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from kbroker.blocking_client import BlockingClient
from kbroker.embedded import EmbeddedBroker, EmbeddedBrokerError
from kbroker.zookeeper_process import ZooKeeperProcess, zookeeper_missing

__all__ = ["EmbeddedCluster", "zookeeper_missing"]

# ZooKeeper (tickTime 500 ms) grants sessions of 1-10 s: a dead broker leaves the cluster in 6 s.
_SESSION_TIMEOUT_MS = "6000"
_POLL_INTERVAL = 0.05


class EmbeddedCluster:
    def __init__(self, size: int = 3, *, startup_timeout: float = 60.0, **config: Any) -> None:
        self.size = size
        self.startup_timeout = startup_timeout
        self.config = {"zookeeper.session.timeout.ms": _SESSION_TIMEOUT_MS,
                       "offsets.topic.replication.factor": min(3, size), **config}
        self.zookeeper: ZooKeeperProcess | None = None
        self.brokers: list[EmbeddedBroker] = []
        self._work_dir: Path | None = None

    def start(self) -> EmbeddedCluster:
        missing = zookeeper_missing()
        if missing:
            raise EmbeddedBrokerError(f"a cluster needs a real ZooKeeper: {missing}")
        self._work_dir = Path(tempfile.mkdtemp(prefix="kbroker-cluster-"))
        try:
            self.zookeeper = ZooKeeperProcess(self._work_dir / "zookeeper").start()
            connect = f"{self.zookeeper.connect}/kbroker-{uuid.uuid4().hex[:12]}"
            self.brokers = [EmbeddedBroker(startup_timeout=self.startup_timeout,
                                           **{**self.config, "zookeeper.connect": connect, "node.id": node})
                            for node in range(1, self.size + 1)]
            for broker in self.brokers:
                broker.launch()
            for broker in self.brokers:
                broker.wait_ready()
            self._wait_until(lambda metadata: len(metadata.brokers) == self.size, "every broker to join")
        except BaseException:
            self._stop_all()
            raise
        return self

    def stop(self) -> None:
        """Every broker (SIGTERM), then ZooKeeper; raises EmbeddedBrokerError if a broker did not stop cleanly."""
        failures = self._stop_all()
        if failures:
            raise EmbeddedBrokerError("\n".join(str(failure) for failure in failures))

    def __enter__(self) -> EmbeddedCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        failures = self._stop_all()
        if failures and exc is None:  # a failure to stop does not hide the block's own exception
            raise EmbeddedBrokerError("\n".join(str(failure) for failure in failures))

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(broker.bootstrap_servers for broker in self.brokers)

    def log_text(self) -> str:
        return "\n".join(f"--- broker {node} ---\n{broker.log_text()}" for node, broker in enumerate(self.brokers, 1))

    def create_topic(self, name: str, partitions: int = 1, config: Mapping[str, Any] | None = None,
                     replication_factor: int | None = None) -> None:
        factor = min(3, self.size) if replication_factor is None else replication_factor
        self.brokers[0].create_topic(name, partitions, config, replication_factor=factor)
        self._wait_until(lambda metadata: _fully_replicated(metadata, name, factor), f"topic {name} to be replicated")

    def topics(self) -> list[str]:
        return self.brokers[0].topics()

    def delete_topics(self, names: list[str]) -> None:
        self.brokers[0].delete_topics(names)
        gone = set(names)
        self._wait_until(lambda metadata: not gone & {t.name for t in metadata.topics}, f"{names} to be deleted")

    def delete_all_topics(self) -> None:
        self.delete_topics(self.topics())

    def _stop_all(self) -> list[EmbeddedBrokerError]:
        failures = []
        for broker in self.brokers:
            try:
                broker.stop()
            except EmbeddedBrokerError as exc:
                failures.append(exc)
        self.brokers = []
        if self.zookeeper is not None:
            self.zookeeper.stop()
            self.zookeeper = None
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
            self._work_dir = None
        return failures

    def _wait_until(self, condition: Callable[[Any], bool], what: str) -> None:
        """Poll every broker's Metadata until `condition` holds on each of them."""
        from kbroker.wire.messages.metadata import METADATA, MetadataRequest

        deadline = time.monotonic() + self.startup_timeout
        waiting = list(self.brokers)
        while waiting:
            broker = waiting[0]
            with BlockingClient(broker.host, broker.port) as client:
                metadata = client.request(METADATA, 1, MetadataRequest(topics=None))
            if condition(metadata):
                waiting.pop(0)
            elif time.monotonic() > deadline:
                raise EmbeddedBrokerError(f"timed out waiting for {what} (seen from {broker.bootstrap_servers})")
            else:
                time.sleep(_POLL_INTERVAL)


def _fully_replicated(metadata: Any, topic: str, factor: int) -> bool:
    brokers = {b.node_id for b in metadata.brokers}
    for candidate in metadata.topics:
        if candidate.name == topic and candidate.error_code == 0 and candidate.partitions:
            return all(p.leader_id in brokers and len(p.isr_nodes) == factor for p in candidate.partitions)
    return False
