"""DescribeLogDirs' offset lag as ClusterMember tells it: how far a replica's log end is behind the
high watermark it knows. A follower knows the leader's from its fetcher's last answer (here a
stand-in fetcher); with none known yet, its own high watermark, never past its log end: 0."""
from __future__ import annotations

from types import SimpleNamespace

from kbroker.cluster.member import ClusterMember
from kbroker.config import build_config
from kbroker.log.config import LogConfig
from kbroker.log.log_manager import LogManager
from tests.cluster.memory_store import MemoryMetaStore, MemoryZooKeeper


def test_a_followers_lag_is_its_distance_to_the_leaders_high_watermark(tmp_path) -> None:
    logs = LogManager(tmp_path, LogConfig()).load()
    try:
        logs.create_topic("t", 2, {})
        member = ClusterMember(MemoryMetaStore(MemoryZooKeeper()), build_config({"node.id": "1"}), logs, None,
                               lambda lost: None, None, lambda partition_log: None)
        follower, other = logs.get_log("t", 0), logs.get_log("t", 1)
        assert member.offset_lag(follower) == 0
        member._fetchers[2] = SimpleNamespace(partitions={("t", 0): 3}, leader_high_watermarks={("t", 0): 7})
        assert member.offset_lag(follower) == 7 - follower.log_end_offset == 7
        assert member.offset_lag(other) == 0  # not followed: nothing known beyond its own
    finally:
        logs.shutdown()
