"""Many partitions and connections within a small descriptor budget, CI-sized.

The broker runs with RLIMIT_NOFILE = 1024, so it may keep only 256 segment files open
(files.py), while it holds 2,000 partitions (6,000 segment files) and 300 connections that each
produce to their own partition and fetch the batch back. It must serve them all, correctly,
within the limit, and start again over the same data; start-up time, RSS and descriptors are
printed. stress/scale.py is the 10,000-partition, 1,000-connection version.
"""
from __future__ import annotations

import asyncio
import re
import time

import pytest

from kbroker.wire.messages.api_versions import ApiVersionsRequest
from tests.broker_process import BrokerProcess
from tests.scale_harness import BrokerFootprint, create_topics, fill, raise_client_fd_limit, run_clients
from tests.wire_client import WireClient

TOPICS, PARTITIONS, CONNECTIONS = 20, 100, 300
FD_LIMIT = 1024

pytestmark = [pytest.mark.timeout(600), pytest.mark.slow]


def test_2000_partitions_and_300_connections_within_1024_descriptors(tmp_path):
    raise_client_fd_limit()
    broker = BrokerProcess(tmp_path / "data", open_file_limit=FD_LIMIT).start()
    try:
        asyncio.run(create_topics(broker.port, TOPICS, PARTITIONS))
        asyncio.run(fill(broker.port, TOPICS, PARTITIONS))
        after_fill = BrokerFootprint.of(broker.process.pid)
        assert broker.stop(timeout=120) == 0

        started = time.monotonic()
        broker.start(timeout=120)
        with WireClient(broker.bootstrap) as client:
            client.request(18, 0, ApiVersionsRequest())
        start_up = time.monotonic() - started
        capacity = int(re.findall(r"segment files open \(at most (\d+)\)", broker.log())[-1])
        assert capacity == FD_LIMIT // 4

        run = asyncio.run(run_clients(broker.port, TOPICS, PARTITIONS, CONNECTIONS, 6, broker.process.pid))
        after = BrokerFootprint.of(broker.process.pid)
        print(f"\n{TOPICS * PARTITIONS} partitions: after fill {after_fill.rss_mib:.0f} MiB / {after_fill.fds} fds; "
              f"start-up {start_up:.1f} s; {CONNECTIONS} connections: {run.round_trips} produce+fetch round trips "
              f"in 6 s, p50 {run.percentile(0.5) * 1000:.0f} ms, p99 {run.percentile(0.99) * 1000:.0f} ms, "
              f"peak {run.peak.rss_mib:.0f} MiB / {run.peak.fds} fds")
        assert not run.errors, run.errors[:5]
        assert min(run.per_connection) >= 1  # every connection was served, none starved
        assert max(after_fill.fds, run.peak.fds, after.fds) < FD_LIMIT
        assert run.peak.rss_mib < 300
        assert "Too many open files" not in broker.log()
        assert broker.stop(timeout=120) == 0
    finally:
        broker.kill()
