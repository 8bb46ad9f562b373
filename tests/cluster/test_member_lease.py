"""ClusterMember's lease on the in-memory store twin, its monotonic clock stood in: a broker leads
only while ZooKeeper confirmed its session less than 2/3 of zookeeper.session.timeout.ms ago, so
one paused past that (its lease task never ran) fences itself the moment it runs again."""
from __future__ import annotations

from kbroker.cluster.member import ClusterMember
from kbroker.config import build_config
from kbroker.log.config import LogConfig
from kbroker.log.log_manager import LogManager
from tests.cluster.memory_store import MemoryMetaStore, MemoryZooKeeper
from tests.waiting import wait_until_async

# Long enough that the lease task (every session timeout / 4, on the real clock) never runs here.
SESSION_TIMEOUT_MS = 600_000
LEASE_MS = SESSION_TIMEOUT_MS * 2 // 3


async def test_a_paused_broker_fences_itself_when_its_lease_ran_out(tmp_path) -> None:
    now = [10**12]
    logs = LogManager(tmp_path, LogConfig(), hosts_every_partition=False).load()
    store = MemoryMetaStore(MemoryZooKeeper())
    await store.start()
    config = build_config({"node.id": "1", "zookeeper.session.timeout.ms": str(SESSION_TIMEOUT_MS)})
    member = ClusterMember(store, config, logs, None, lambda lost: None, None, lambda partition_log: None,
                           monotonic=lambda: now[0])
    try:
        await member.start("127.0.0.1", 9001)  # the lease starts when the registration was sent
        await wait_until_async(lambda: 1 in member.image.brokers, "broker 1 to see its registration")
        await member.admin.create_topic("t", 1, 1, [[1]], {}, validate_only=False, timeout_ms=5000)
        await wait_until_async(lambda: member.leads("t", 0), "broker 1 to lead t-0")
        now[0] += LEASE_MS - 1  # paused: no confirmation came meanwhile
        assert member.leads("t", 0) and member.lease_valid()
        now[0] += 1
        assert not member.leads("t", 0) and not member.lease_valid()
        assert "t" in member.image.topic_names and member.image.states[("t", 0)].leader == 1  # nobody told it
    finally:
        await member.close()
        logs.shutdown()
