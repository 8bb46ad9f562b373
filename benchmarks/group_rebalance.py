"""Rebalance times of classic consumer groups with real clients, against the broker's defaults.

    python benchmarks/group_rebalance.py [--clients kafka-python,confluent-kafka,aiokafka] [--skip-default-session]

For each client, on a fresh broker with Kafka's defaults (group.initial.rebalance.delay.ms=3000):

    join            3 members subscribe at once: seconds from the last one's subscribe() until
                    every member holds 2 of the 6 partitions (the initial delay is most of it)
    failover_6s     3 members with session.timeout.ms=6000, one SIGKILLed: seconds until the two
                    survivors hold all 6 partitions
    failover_default  the same with the client's default session timeout (45 s for kafka-python
                    and librdkafka, 10 s for aiokafka)

`--clients consumer-protocol` measures a KIP-848 group of confluent-kafka members instead
(group.protocol=consumer; the broker's group.consumer.* defaults: 5 s heartbeats, 45 s session).

Members are processes (compat_tests/group_member.py). Prints one JSON line per measurement.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from compat_tests.group_fleet import Fleet  # noqa: E402
from compat_tests.test_groups import create_topic  # noqa: E402
from tests.broker_process import BrokerProcess  # noqa: E402

PARTITIONS = 6


def measure(client: str, session_ms: int, work: Path, name: str) -> dict:
    broker = BrokerProcess(work / name).start()
    fleet = Fleet(broker.bootstrap, "rebalance", f"group-{name}")
    try:
        create_topic(broker.bootstrap, "rebalance")
        if client == "consumer-protocol":
            members = [fleet.start("confluent-kafka", protocol="consumer") for _ in range(3)]
        else:
            members = [fleet.start(client, session_ms=session_ms) for _ in range(3)]
        balanced_at = fleet.wait_balanced(PARTITIONS, timeout=120)
        fleet.wait_for(lambda: all(m.subscribed_at for m in members), 10, "subscribe events")
        join = balanced_at - max(m.subscribed_at for m in members)
        time.sleep(1)
        killed_at = members[1].kill()
        failover = fleet.wait_balanced(PARTITIONS, timeout=120, members=[members[0], members[2]]) - killed_at
        return {"client": client, "session_timeout_ms": session_ms or "default", "join_s": round(join, 2),
                "failover_s": round(failover, 2)}
    finally:
        fleet.stop_all()
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", default="kafka-python,confluent-kafka,aiokafka")
    parser.add_argument("--skip-default-session", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kbroker-rebalance-"))
    try:
        for client in args.clients.split(","):
            sessions = [6000] if args.skip_default_session else [6000, 0]
            if client == "consumer-protocol":
                sessions = [0]  # the broker decides (group.consumer.session.timeout.ms)
            for session_ms in sessions:
                print(json.dumps(measure(client, session_ms, work, f"{client}-{session_ms}")), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
