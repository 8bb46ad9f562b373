"""A real ZooKeeper for cluster tests: it lives in the package, for the pytest plugin's kafka_cluster."""
from kbroker.zookeeper_process import CLASSPATH, MAIN, ZooKeeperProcess, zookeeper_missing

__all__ = ["CLASSPATH", "MAIN", "ZooKeeperProcess", "zookeeper_missing"]
