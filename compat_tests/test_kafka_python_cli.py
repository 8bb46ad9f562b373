"""kafka-python's own admin CLI (`python -m kafka.admin`, --format json) against a kbroker subprocess.

Topics (create, list, describe, delete), configs (alter, describe), partitions (create, latest
offsets), the cluster (describe, log dirs) and a consumer group made by confluent-kafka (list,
committed offsets, reset to earliest) — each answer parsed and checked against what was done.
"""
from __future__ import annotations

import json
import subprocess
import sys

from confluent_kafka import Consumer, Producer


def admin(broker, *command: str):
    done = subprocess.run([sys.executable, "-m", "kafka.admin", "-b", broker.bootstrap, "--format", "json", *command],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"{command}: {done.stderr}"
    return json.loads(done.stdout)


def test_kafka_python_admin_cli(broker, topic_name):
    created = admin(broker, "topics", "create", "-t", topic_name, "--num-partitions", "2", "--replication-factor", "1")
    assert [(t["name"], t["error_code"], t["num_partitions"]) for t in created["topics"]] == [(topic_name, 0, 2)]
    assert topic_name in admin(broker, "topics", "list")
    [described] = admin(broker, "topics", "describe", "-t", topic_name)
    assert [(p["partition_index"], p["leader_id"], p["isr_nodes"]) for p in described["partitions"]] == [
        (0, 1, [1]), (1, 1, [1])]

    assert admin(broker, "configs", "alter", "-r", "topic", "-n", topic_name, "-c", "retention.ms=3600000") == {
        "topic": {topic_name: "OK"}}
    config = admin(broker, "configs", "describe", "-r", "topic", "-n", topic_name, "-c", "retention.ms")
    assert config["topic"][topic_name]["retention.ms"]["value"] == "3600000"
    assert config["topic"][topic_name]["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
    assert admin(broker, "partitions", "create", "-p", f"{topic_name}:3")["results"][0]["error_code"] == 0

    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(30):
        producer.produce(topic_name, value=b"%d" % i, partition=i % 3)
    assert producer.flush(30) == 0
    latest = admin(broker, "partitions", "list-offsets", "-t", topic_name, "-s", "latest")[topic_name]
    assert {p: v["offset"] for p, v in latest.items()} == {"0": 10, "1": 10, "2": 10}

    group = f"{topic_name}-group"
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic_name])
    read = 0
    while read < 30:
        message = consumer.poll(10)
        assert message is not None and not message.error()
        read += 1
    consumer.commit(asynchronous=False)
    consumer.close()
    assert group in [g["group_id"] for g in admin(broker, "groups", "list")]
    committed = admin(broker, "groups", "list-offsets", "-g", group)[topic_name]
    assert {p: (v["offset"], v["lag"]) for p, v in committed.items()} == {"0": (10, 0), "1": (10, 0), "2": (10, 0)}
    # (`groups reset-offsets` fails inside kafka-python 3.0 itself, encoding its OffsetFetch: not tried)
    admin(broker, "groups", "alter-offsets", "-g", group, "-o", f"{topic_name}:0:4")
    altered = admin(broker, "groups", "list-offsets", "-g", group)[topic_name]
    assert {p: (v["offset"], v["lag"]) for p, v in altered.items()} == {"0": (4, 6), "1": (10, 0), "2": (10, 0)}
    admin(broker, "groups", "delete", "-g", group)
    assert group not in [g["group_id"] for g in admin(broker, "groups", "list")]

    cluster = admin(broker, "cluster", "describe")
    assert cluster["controller_id"] == 1 and [b["port"] for b in cluster["brokers"]] == [broker.port]
    [log_dirs] = admin(broker, "cluster", "describe-log-dirs")
    sizes = {p["partition_index"]: p["partition_size"] for t in log_dirs["log_dirs"][0]["topics"]
             if t["name"] == topic_name for p in t["partitions"]}
    assert sorted(sizes) == [0, 1, 2] and all(size > 0 for size in sizes.values())

    assert admin(broker, "topics", "delete", "-t", topic_name)["topics"][0]["error_code"] == 0
    assert topic_name not in admin(broker, "topics", "list")
