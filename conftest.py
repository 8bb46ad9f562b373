"""Fixtures shared by tests/ and compat_tests/: real broker subprocesses, a real ZooKeeper, clusters."""
from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.broker_process import BrokerProcess
from tests.cluster_process import ClusterProcesses
from tests.zookeeper_process import ZooKeeperProcess, zookeeper_missing

_names = itertools.count()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    """One broker per test module; tests use distinct topic names (see `topic_name`)."""
    process = BrokerProcess(tmp_path_factory.mktemp("broker") / "data").start()
    yield process
    process.stop()


@pytest.fixture
def broker_factory(tmp_path) -> Iterator:
    """Start brokers with custom settings; every one is stopped (or killed) at the end."""
    started: list[BrokerProcess] = []

    def start(overrides: dict[str, str] | None = None, data_dir=None) -> BrokerProcess:
        process = BrokerProcess(data_dir or tmp_path / f"data{len(started)}", overrides).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.kill()


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> str:
    """A topic name unique within the session, readable in broker logs."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:80]
    return f"{base}-{next(_names)}"


@pytest.fixture(scope="session")
def zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperProcess]:
    """One real ZooKeeper per test session; each cluster uses a chroot of its own."""
    missing = zookeeper_missing()
    if missing:
        pytest.skip(f"cluster tests need a real ZooKeeper: {missing}")
    process = ZooKeeperProcess(tmp_path_factory.mktemp("zookeeper")).start()
    yield process
    process.stop()


@pytest.fixture
def cluster_factory(zookeeper: ZooKeeperProcess, tmp_path) -> Iterator:
    """Start clusters of broker processes on the session's ZooKeeper; all killed at the end."""
    started: list[ClusterProcesses] = []

    def start(size: int = 3, overrides: dict[str, str] | None = None,
              zookeeper_process: ZooKeeperProcess | None = None) -> ClusterProcesses:
        cluster = ClusterProcesses(zookeeper_process or zookeeper, tmp_path / f"cluster{len(started)}", size, overrides)
        started.append(cluster)
        return cluster.start()

    yield start
    for cluster in started:
        cluster.stop()
