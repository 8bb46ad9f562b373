"""EmbeddedCluster: ZooKeeper and brokers start together, topics are replicated on return, and a
failed start leaves no process behind."""
from __future__ import annotations

import psutil
import pytest

import kbroker
from kbroker.config import ConfigError
from kbroker.zookeeper_process import zookeeper_missing

_missing = zookeeper_missing()
pytestmark = pytest.mark.skipif(_missing is not None, reason=f"EmbeddedCluster needs a real ZooKeeper: {_missing}")


def _children() -> set[int]:
    """Our child processes (other tests' session fixtures, such as a ZooKeeper, may be among them)."""
    return {child.pid for child in psutil.Process().children(recursive=True)}


def test_a_two_broker_cluster_replicates_and_cleans_up():
    with kbroker.EmbeddedCluster(size=2, num_partitions=2) as cluster:
        assert len(cluster.bootstrap_servers.split(",")) == 2
        pids = [broker.pid for broker in cluster.brokers] + [cluster.zookeeper.process.pid]
        cluster.create_topic("replicated", partitions=-1)  # num.partitions reached every broker
        assert cluster.topics() == ["replicated"]
        assert "created topic replicated with 2 partitions" in cluster.log_text()
        cluster.delete_all_topics()
        assert [broker.topics() for broker in cluster.brokers] == [[], []]
    assert not any(psutil.pid_exists(pid) for pid in pids)


def test_a_failed_start_stops_zookeeper_too():
    before = _children()
    with pytest.raises(ConfigError, match="num.partitions"):
        kbroker.EmbeddedCluster(num_partitions="many").start()
    assert _children() <= before
