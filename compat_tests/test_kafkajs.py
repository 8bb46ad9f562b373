"""kafkajs (Node.js) against a kbroker subprocess: admin, idempotent gzip produce, a consumer group.

kafkajs is installed from compat_tests/js/package-lock.json by scripts/test.sh (`npm ci`);
compat_tests/js/kafkajs_client.js runs one step per call and prints what happened as JSON.
Records kafkajs wrote are read back by confluent-kafka too, so each client checks the other.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from compat_tests.clients import ConfluentKafka

JS = Path(__file__).parent / "js"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(
    NODE is None or not (JS / "node_modules" / "kafkajs").is_dir(),
    reason="kafkajs tests need node and `npm ci --prefix compat_tests/js` (scripts/test.sh runs it)")


def kafkajs(step: str, broker, **args) -> dict:
    done = subprocess.run([NODE, str(JS / "kafkajs_client.js"), json.dumps({"step": step, "brokers": [broker.bootstrap],
                                                                           **args})],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{done.stderr}\nbroker log:\n{broker.log()[-3000:]}"
    return json.loads(done.stdout)


def test_kafkajs_admin_producer_and_consumer_group(broker, topic_name):
    created = kafkajs("admin", broker, topic=topic_name, partitions=3, create=True)
    assert created["created"] is True and topic_name in created["topics"]
    assert sorted(p["id"] for p in created["partitions"]) == [0, 1, 2]

    assert kafkajs("produce", broker, topic=topic_name, first=0, count=1000) == {"sent": 1000}
    group = f"{topic_name}-group"
    first = kafkajs("consume", broker, topic=topic_name, group=group, expect=1000, timeout_ms=60000)["received"]
    assert sorted(m["value"]["n"] for m in first) == list(range(1000))
    assert all(m["key"] == f"k{m['value']['n']}" and m["source"] == "kafkajs" for m in first)
    for partition in range(3):  # offsets ascend within each partition, as the log holds them
        offsets = [m["offset"] for m in first if m["partition"] == partition]
        assert offsets == sorted(offsets)

    # The group committed on leaving: a new member reads only what was produced since.
    kafkajs("produce", broker, topic=topic_name, first=1000, count=100)
    second = kafkajs("consume", broker, topic=topic_name, group=group, expect=100, timeout_ms=60000)["received"]
    assert sorted(m["value"]["n"] for m in second) == list(range(1000, 1100))

    described = kafkajs("admin", broker, topic=topic_name, group=group, delete=False)
    ends = {int(p["partition"]): int(p["high"]) for p in described["offsets"]}
    assert sum(ends.values()) == 1100
    committed = {p["partition"]: int(p["offset"]) for p in described["group_offsets"][0]["partitions"]}
    assert committed == ends
    assert described["groups"] == [{"id": group, "state": "Empty", "protocolType": "consumer"}]

    # confluent-kafka reads what kafkajs wrote (gzip batches from an idempotent producer).
    received = ConfluentKafka().consume(broker.bootstrap, topic_name, {p: (0, end) for p, end in ends.items()})
    assert sorted(json.loads(r.value)["n"] for r in received) == list(range(1100))

    described = kafkajs("admin", broker, topic=topic_name, delete=True)
    assert topic_name not in described["after_delete"]
