"""The admin CLI (`python -m kbroker topics|groups|produce|consume|cluster|dump-log`) against a real broker.

Each test runs the real command as a subprocess and checks what it did with a real client:
topics it created are there with their configs (confluent-kafka's admin), records it produced
are what kafka-python, confluent-kafka, aiokafka and kcat read (at the partitions Java's
partitioner would choose) and it prints what each of them produced; a kafka-python group and a
KIP-848 confluent-kafka group are listed, described, their lag shown and their offsets reset —
and the next member starts where the reset put it. One broker for the module (plus one
three-broker cluster for routing).
"""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from compat_tests.clients import ALL_CLIENTS, KCAT, Record
from compat_tests.test_group_kip848 import KIP848_SETTINGS
from tests.broker_process import BrokerProcess, free_port
from tests.waiting import wait_until

DEADLINE_S = 20.0


@pytest.fixture(scope="module")
def cli_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path_factory.mktemp("cli") / "data",
                            {"group.initial.rebalance.delay.ms": "0", **KIP848_SETTINGS}).start()
    yield process
    process.stop()


def cli(*args: str, bootstrap: str | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "kbroker", *args] + (["--bootstrap-server", bootstrap] if bootstrap else [])
    return subprocess.run(command, capture_output=True, text=True, input=input, timeout=60)


def cli_json(*args: str, bootstrap: str | None = None, input: str | None = None) -> Any:
    result = cli(*args, "--output", "json", bootstrap=bootstrap, input=input)
    assert result.returncode == 0 and result.stderr == "", result
    return json.loads(result.stdout)


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *words: str) -> None:
    assert result.returncode == code, result
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def test_topic_create_describe_alter_delete(cli_broker, topic_name):
    from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource

    b = cli_broker.bootstrap
    assert cli_json("topics", "create", topic_name, "--partitions", "3", "--config", "retention.ms=3600000",
                    bootstrap=b) == {"topic": topic_name, "created": True}
    admin = AdminClient({"bootstrap.servers": b})
    assert len(admin.list_topics(topic_name, timeout=10).topics[topic_name].partitions) == 3

    (described,) = cli_json("topics", "describe", topic_name, bootstrap=b)
    assert [p["partition"] for p in described["partitions"]] == [0, 1, 2]
    assert {p["leader"] for p in described["partitions"]} == {b_["node_id"] for b_ in
                                                              cli_json("cluster", "describe", bootstrap=b)["brokers"]}
    assert described["configs"] == {"retention.ms": "3600000"}
    assert any(t["topic"] == topic_name and t["partitions"] == 3 for t in cli_json("topics", "list", bootstrap=b))

    assert cli("topics", "alter-config", topic_name, "--set", "cleanup.policy=compact", "--delete", "retention.ms",
               bootstrap=b).returncode == 0
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic_name)
    configs = admin.describe_configs([resource])[resource].result(10)
    assert configs["cleanup.policy"].value == "compact"
    assert configs["cleanup.policy"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert configs["retention.ms"].source != ConfigSource.DYNAMIC_TOPIC_CONFIG.value

    assert_one_line_error(cli("topics", "create", topic_name, bootstrap=b), 1, "TOPIC_ALREADY_EXISTS")
    assert cli_json("topics", "create", topic_name, "--if-not-exists", bootstrap=b)["created"] is False
    assert cli("topics", "delete", topic_name, bootstrap=b).returncode == 0
    wait_until(lambda: topic_name not in admin.list_topics(timeout=10).topics, "the deleted topic gone", DEADLINE_S)
    assert_one_line_error(cli("topics", "describe", topic_name, bootstrap=b), 1, f"unknown topic '{topic_name}'")
    assert_one_line_error(cli("topics", "delete", topic_name, bootstrap=b), 1, "unknown topic")


@pytest.mark.parametrize("client", ALL_CLIENTS, ids=str)
def test_records_produced_by_kbroker_are_read_by_each_client(cli_broker, topic_name, client):
    from kafka.partitioner.default import murmur2

    b = cli_broker.bootstrap
    cli_json("topics", "create", topic_name, "--partitions", "3", bootstrap=b)
    lines = [f"key-{i}|{json.dumps({'n': i})}" for i in range(30)]
    summary = cli_json("produce", topic_name, "--key-separator", "|", "--value-format", "json",
                       "--header", "source=cli", "--batch-size", "7", input="\n".join(lines) + "\n", bootstrap=b)
    assert summary["records"] == 30
    ranges = {int(p): (o["first_offset"], o["last_offset"] + 1) for p, o in summary["partitions"].items()}

    received = client.consume(b, topic_name, ranges)
    # keyed records where Java's default partitioner puts them (kafka-python implements it too)
    assert sorted((r.partition, r.key, r.value, r.headers) for r in received) == sorted(
        ((murmur2(f"key-{i}".encode()) & 0x7FFFFFFF) % 3, f"key-{i}".encode(), json.dumps({"n": i}).encode(),
         (("source", b"cli"),)) for i in range(30))


@pytest.mark.parametrize("client", ALL_CLIENTS, ids=str)
def test_records_produced_by_each_client_are_printed_by_kbroker(cli_broker, topic_name, client):
    b = cli_broker.bootstrap
    cli_json("topics", "create", topic_name, "--partitions", "2", bootstrap=b)
    sent = [Record(i % 2, f"k{i}".encode(), f"v{i}".encode(), (("h", f"x{i}".encode()),),
                   1_700_000_000_000 + i if client.explicit_timestamps else None) for i in range(20)]
    client.produce(b, topic_name, sent)

    printed = consume_lines(topic_name, "--from-beginning", "--exit-at-end", bootstrap=b)
    assert sorted((r["partition"], r["offset"], r["key"], r["value"], r["headers"]) for r in printed) == sorted(
        (i % 2, i // 2, f"k{i}", f"v{i}", [["h", f"x{i}"]]) for i in range(20))
    if client.explicit_timestamps:
        assert sorted(r["timestamp"] for r in printed) == [1_700_000_000_000 + i for i in range(20)]


def test_consume_from_an_offset_a_count_plain_lines_and_a_file_read_to_its_count(cli_broker, topic_name, tmp_path):
    b = cli_broker.bootstrap
    cli_json("topics", "create", topic_name, "--partitions", "2", bootstrap=b)
    records = tmp_path / "records.txt"
    records.write_text("".join(f"k{i}={i:02x}ff\n" for i in range(10)))
    assert cli_json("produce", topic_name, "--file", str(records), "--count", "8", "--key-separator", "=",
                    "--value-format", "hex", "--partition", "1", bootstrap=b)["records"] == 8

    some = consume_lines(topic_name, "--partition", "1", "--offset", "2", "--count", "3", "--value-format", "hex",
                         bootstrap=b)
    assert [(r["offset"], r["key"], r["value"]) for r in some] == [(2, "k2", "02ff"), (3, "k3", "03ff"),
                                                                   (4, "k4", "04ff")]
    tail = consume_lines(topic_name, "-p", "1", "-o", "-2", "-e", "--value-format", "base64", bootstrap=b)
    assert [r["value"] for r in tail] == ["Bv8=", "B/8="]
    plain = cli("consume", topic_name, "-p", "1", "-o", "beginning", "-c", "2", "--key-separator", ":",
                "--value-format", "hex", bootstrap=b)
    assert plain.returncode == 0 and plain.stdout == "k0:00ff\nk1:01ff\n", plain
    assert consume_lines(topic_name, "-p", "0", "-e", bootstrap=b) == []
    assert_one_line_error(cli("consume", "no-such-topic", "-e", bootstrap=b), 1, "unknown topic 'no-such-topic'")


def consume_lines(*args: str, bootstrap: str) -> list[dict[str, Any]]:
    result = cli("consume", *args, "--output", "json", bootstrap=bootstrap)
    assert result.returncode == 0 and result.stderr == "", result
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_kcat_and_kbroker_read_each_others_lines(cli_broker, topic_name):
    assert KCAT is not None, "kcat is not installed (Debian package `kcat`; scripts/test.sh installs it)"
    b = cli_broker.bootstrap
    cli_json("topics", "create", topic_name, "--partitions", "2", bootstrap=b)
    from_kcat = "".join(f"kcat-{i}:value {i}\n" for i in range(10))
    subprocess.run([KCAT, "-P", "-b", b, "-t", topic_name, "-K", ":", "-p", "0"], input=from_kcat.encode(),
                   check=True, timeout=30)
    printed = cli("consume", topic_name, "-p", "0", "--from-beginning", "-e", "-K", ":", bootstrap=b)
    assert printed.returncode == 0 and printed.stdout == from_kcat, printed

    from_kbroker = "".join(f"kbroker-{i}:value {i}\n" for i in range(10))
    cli_json("produce", topic_name, "-p", "1", "-K", ":", input=from_kbroker, bootstrap=b)
    read = subprocess.run([KCAT, "-C", "-b", b, "-t", topic_name, "-p", "1", "-o", "beginning", "-e", "-q",
                           "-f", "%k:%s\n"], capture_output=True, check=True, timeout=30)
    assert read.stdout.decode() == from_kbroker


def test_a_kafka_python_group_listed_described_lagging_and_reset(cli_broker, topic_name):
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    b, group = cli_broker.bootstrap, f"{topic_name}-group"
    cli_json("topics", "create", topic_name, "--partitions", "2", bootstrap=b)
    producer = KafkaProducer(bootstrap_servers=b)
    base_ms = 1_700_000_000_000
    for i in range(10):
        producer.send(topic_name, value=b"p0-%d" % i, partition=0)
        producer.send(topic_name, value=b"p1-%d" % i, partition=1, timestamp_ms=base_ms + i * 1000)
    producer.flush()

    def read_all(consumer: KafkaConsumer, count: int) -> list[Any]:
        got: list[Any] = []
        deadline = time.monotonic() + DEADLINE_S
        while len(got) < count and time.monotonic() < deadline:
            for batch in consumer.poll(500).values():
                got += batch
        assert len(got) >= count, f"kafka-python read {len(got)} of {count}"
        return got

    consumer = KafkaConsumer(topic_name, bootstrap_servers=b, group_id=group, auto_offset_reset="earliest",
                             enable_auto_commit=False, client_id="cli-test-member")
    read_all(consumer, 20)
    consumer.commit()
    for i in range(5):
        producer.send(topic_name, value=b"late-%d" % i, partition=0)
    producer.flush()

    assert {"group": group, "protocol_type": "consumer", "state": "Stable"} in cli_json("groups", "list", bootstrap=b)
    described = cli_json("groups", "describe", group, bootstrap=b)
    assert described["state"] == "Stable"
    (member,) = described["members"]
    assert member["client_id"] == "cli-test-member" and member["assignment"] == {topic_name: [0, 1]}
    lag = cli_json("groups", "lag", group, bootstrap=b)
    assert [(o["partition"], o["committed"], o["log_end"], o["lag"]) for o in lag["offsets"]] == [
        (0, 10, 15, 5), (1, 10, 10, 0)]
    assert lag["total_lag"] == 5
    assert_one_line_error(cli("groups", "reset-offsets", group, "--all-topics", "--to-earliest", bootstrap=b), 1,
                          "inactive", "Stable")

    consumer.close()
    wait_until(lambda: cli_json("groups", "describe", group, bootstrap=b)["state"] == "Empty", "the group empty",
               DEADLINE_S)
    admin = KafkaAdminClient(bootstrap_servers=b)

    def committed() -> dict[int, int]:
        return {tp.partition: meta.offset for tp, meta in admin.list_group_offsets(group)[group].items()}

    dry = cli_json("groups", "reset-offsets", group, "--topic", topic_name, "--to-offset", "3", "--dry-run",
                   bootstrap=b)
    assert [(o["partition"], o["committed"], o["new"]) for o in dry["offsets"]] == [(0, 10, 3), (1, 10, 3)]
    latest = cli_json("groups", "reset-offsets", group, "--all-topics", "--to-latest", "--dry-run", bootstrap=b)
    assert [o["new"] for o in latest["offsets"]] == [15, 10]
    assert committed() == {0: 10, 1: 10}

    cli_json("groups", "reset-offsets", group, "--topic", f"{topic_name}:0", "--to-offset", "3", bootstrap=b)
    # p1's records are 1 s apart from base_ms: the first at or after base + 4.5 s is offset 5
    at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((base_ms + 4000) // 1000)) + ".500+00:00"
    cli_json("groups", "reset-offsets", group, "--topic", f"{topic_name}:1", "--to-datetime", at, bootstrap=b)
    assert committed() == {0: 3, 1: 5}

    consumer = KafkaConsumer(topic_name, bootstrap_servers=b, group_id=group, enable_auto_commit=False)
    first: dict[int, int] = {}
    for record in read_all(consumer, 12 + 5):
        first.setdefault(record.partition, record.offset)
    consumer.close()
    assert first == {0: 3, 1: 5}

    assert cli("groups", "delete", group, bootstrap=b).returncode == 0
    assert_one_line_error(cli("groups", "describe", group, bootstrap=b), 1, f"unknown group '{group}'")
    assert committed() == {}  # the group's offsets went with it
    admin.close()
    producer.close()


def test_a_kip848_consumer_group_is_described_and_reset_only_once_empty(cli_broker, topic_name):
    from confluent_kafka import Consumer

    b, group = cli_broker.bootstrap, f"{topic_name}-group"
    cli_json("topics", "create", topic_name, "--partitions", "2", bootstrap=b)
    cli_json("produce", topic_name, input="".join(f"r{i}\n" for i in range(10)), bootstrap=b)
    consumer = Consumer({"bootstrap.servers": b, "group.id": group, "group.protocol": "consumer",
                         "client.id": "kip848-member", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic_name])
    read = 0
    deadline = time.monotonic() + DEADLINE_S
    while read < 10 and time.monotonic() < deadline:
        message = consumer.poll(0.5)
        read += message is not None and message.error() is None
    assert read == 10
    consumer.commit(asynchronous=False)

    described = cli_json("groups", "describe", group, bootstrap=b)
    assert (described["state"], described["protocol_type"]) == ("Stable", "consumer")
    (member,) = described["members"]
    assert member["client_id"] == "kip848-member" and member["assignment"] == {topic_name: [0, 1]}
    assert sum(o["committed"] for o in described["offsets"]) == 10 and described["total_lag"] == 0
    assert_one_line_error(cli("groups", "reset-offsets", group, "--all-topics", "--to-earliest", bootstrap=b), 1,
                          "inactive", "Stable")

    consumer.close()
    wait_until(lambda: cli_json("groups", "describe", group, bootstrap=b)["state"] == "Empty", "the group empty",
               DEADLINE_S)
    cli_json("groups", "reset-offsets", group, "--all-topics", "--to-earliest", bootstrap=b)
    assert [o["committed"] for o in cli_json("groups", "lag", group, bootstrap=b)["offsets"]] == [0, 0]


def test_consume_with_a_group_starts_at_its_offsets_and_commits(cli_broker, topic_name):
    b, group = cli_broker.bootstrap, f"{topic_name}-group"
    cli_json("topics", "create", topic_name, "--partitions", "1", bootstrap=b)
    cli_json("produce", topic_name, input="".join(f"r{i}\n" for i in range(8)), bootstrap=b)
    assert [r["value"] for r in consume_lines(topic_name, "--group", group, "--from-beginning", "--count", "5",
                                              bootstrap=b)] == [f"r{i}" for i in range(5)]
    assert [o["committed"] for o in cli_json("groups", "lag", group, bootstrap=b)["offsets"]] == [5]
    assert [r["value"] for r in consume_lines(topic_name, "--group", group, "-e", bootstrap=b)] == ["r5", "r6", "r7"]
    assert cli_json("groups", "lag", group, bootstrap=b)["total_lag"] == 0


def test_cluster_describe_matches_the_metadata_confluent_kafka_sees(cli_broker):
    from confluent_kafka.admin import AdminClient

    metadata = AdminClient({"bootstrap.servers": cli_broker.bootstrap}).list_topics(timeout=10)
    described = cli_json("cluster", "describe", bootstrap=cli_broker.bootstrap)
    assert described["cluster_id"] == metadata.cluster_id
    assert described["controller_id"] == metadata.controller_id
    assert [(x["node_id"], x["port"]) for x in described["brokers"]] == [(n, m.port) for n, m in metadata.brokers.items()]
    table = cli("cluster", "describe", bootstrap=cli_broker.bootstrap)
    assert table.returncode == 0 and metadata.cluster_id in table.stdout


def test_dump_log_reads_the_broker_segments_and_reports_a_corrupt_batch(cli_broker, topic_name, tmp_path):
    from confluent_kafka import Producer

    b = cli_broker.bootstrap
    cli_json("topics", "create", topic_name, "--partitions", "1", bootstrap=b)
    cli_json("produce", topic_name, "--compression", "gzip", "--batch-size", "25",
             input="".join(f"value-{i}\n" for i in range(50)), bootstrap=b)
    # four ~5 KB batches: more than index.interval.bytes (4 KiB) each, so the indexes get entries
    large = [f"large-{i}-" + "x" * 500 for i in range(40)]
    cli_json("produce", topic_name, "--batch-size", "10", input="".join(f"{v}\n" for v in large), bootstrap=b)
    producer = Producer({"bootstrap.servers": b, "enable.idempotence": True})
    for i in range(10):
        producer.produce(topic_name, value=f"idempotent-{i}")
    assert producer.flush(10) == 0

    partition_dir = cli_broker.data_dir / f"{topic_name}-0"
    dumped = cli_json("dump-log", str(partition_dir), "--print-records")
    assert dumped["problems"] == []
    (segment,) = dumped["segments"]
    assert segment["index_entries"] >= 3 and segment["time_index_entries"] >= 1
    batches = segment["batches"]
    assert [b_["compression"] for b_ in batches[:3]] == ["gzip", "gzip", "none"]
    assert batches[-1]["producer_id"] >= 0 and batches[0]["producer_id"] == -1
    values = [r["value"] for batch in batches for r in batch["records"]]
    assert values == [f"value-{i}" for i in range(50)] + large + [f"idempotent-{i}" for i in range(10)]
    assert all(batch["crc_valid"] for batch in batches)

    corrupt = tmp_path / partition_dir.name
    shutil.copytree(partition_dir, corrupt)
    log = corrupt / "00000000000000000000.log"
    data = bytearray(log.read_bytes())
    data[batches[1]["position"] + 70] ^= 0xFF  # inside the second batch's records, under its CRC
    log.write_bytes(data)
    index = log.with_suffix(".index")
    entries = bytearray(index.read_bytes())
    entries[7] += 1  # the first entry's position, one byte past its batch start
    index.write_bytes(entries)
    result = cli("dump-log", str(corrupt), "--output", "json")
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    crc_line, index_line = result.stderr.splitlines()
    assert f"CRC mismatch in the batch at position {batches[1]['position']} " in crc_line
    assert index_line.endswith(f"00000000000000000000.index: entry ({int.from_bytes(entries[:4], 'big')}, "
                               f"{int.from_bytes(entries[4:8], 'big')}) is not at a batch start")
    assert [batch["crc_valid"] for batch in json.loads(result.stdout)["segments"][0]["batches"]][:3] == [
        True, False, True]


def test_an_unreachable_broker_is_one_line_and_exit_code_3():
    result = cli("topics", "list", bootstrap=f"127.0.0.1:{free_port()}")
    assert_one_line_error(result, 3, "broker unreachable", "Connection refused")
    assert result.stdout == ""


def test_on_a_three_broker_cluster_requests_go_to_each_leader_and_the_coordinator(cluster_factory, topic_name):
    cluster = cluster_factory(3, {"group.initial.rebalance.delay.ms": "0"})
    b = cluster.bootstrap(1)  # one broker to start from; the commands find the others
    cli_json("topics", "create", topic_name, "--partitions", "6", "--replication-factor", "3", bootstrap=b)
    cluster.wait_in_sync(topic_name, 6)
    (described,) = cli_json("topics", "describe", topic_name, bootstrap=b)
    assert {p["leader"] for p in described["partitions"]} == {1, 2, 3}
    assert all(sorted(p["replicas"]) == [1, 2, 3] for p in described["partitions"])
    assert [x["node_id"] for x in cli_json("cluster", "describe", bootstrap=b)["brokers"]] == [1, 2, 3]

    cli_json("produce", topic_name, "-K", ":", input="".join(f"k{i}:v{i}\n" for i in range(60)), bootstrap=b)
    printed = consume_lines(topic_name, "--from-beginning", "-e", "--group", "cli-cluster-group", bootstrap=b)
    assert sorted(r["value"] for r in printed) == sorted(f"v{i}" for i in range(60))
    assert {r["partition"] for r in printed} == set(range(6))
    lag = cli_json("groups", "lag", "cli-cluster-group", bootstrap=cluster.bootstrap(2))
    assert len(lag["offsets"]) == 6 and lag["total_lag"] == 0
    assert sum(o["committed"] for o in lag["offsets"]) == 60


def test_ctrl_c_ends_consume_and_its_group_keeps_what_was_printed(cli_broker, topic_name):
    b, group = cli_broker.bootstrap, f"{topic_name}-group"
    cli_json("topics", "create", topic_name, "--partitions", "1", bootstrap=b)
    cli_json("produce", topic_name, input="".join(f"r{i}\n" for i in range(5)), bootstrap=b)
    running = subprocess.Popen([sys.executable, "-m", "kbroker", "consume", topic_name, "--group", group,
                                "--from-beginning", "--bootstrap-server", b],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert [running.stdout.readline() for _ in range(5)] == [f"r{i}\n" for i in range(5)]
        running.send_signal(signal.SIGINT)
        assert running.wait(20) == 130, running.stderr.read()
    finally:
        running.kill()
    assert running.stderr.read() == ""
    assert [o["committed"] for o in cli_json("groups", "lag", group, bootstrap=b)["offsets"]] == [5]


def test_every_command_at_the_lowest_versions_it_speaks(cli_broker, topic_name, tmp_path, monkeypatch, capsys):
    # As against an old broker: each API at the bottom of the tools' range (Produce v3, Fetch v4,
    # Metadata v1, FindCoordinator v0, ...), run in-process so the ranges can be pinned.
    from kbroker.cli import main
    from kbroker.tools import client

    monkeypatch.setattr(client, "VERSIONS", {key: (low, low) for key, (low, _) in client.VERSIONS.items()})
    b, group = cli_broker.bootstrap, f"{topic_name}-group"

    def run(*args: str) -> Any:
        code = main([*args, "--output", "json", "--bootstrap-server", b])
        out, err = capsys.readouterr()
        assert (code, err) == (0, ""), err
        return out

    run("topics", "create", topic_name, "--partitions", "2", "--config", "retention.ms=60000")
    run("topics", "alter-config", topic_name, "--set", "retention.ms=120000")
    (described,) = json.loads(run("topics", "describe", topic_name))
    assert len(described["partitions"]) == 2 and described["configs"] == {"retention.ms": "120000"}
    lines = tmp_path / "lines.txt"
    lines.write_text("".join(f"k{i}:v{i}\n" for i in range(10)))
    assert json.loads(run("produce", topic_name, "--file", str(lines), "-K", ":", "-H", "h=1"))["records"] == 10
    printed = [json.loads(line) for line in run("consume", topic_name, "--group", group, "--from-beginning",
                                                "-e").splitlines()]
    assert sorted(r["value"] for r in printed) == sorted(f"v{i}" for i in range(10))
    assert json.loads(run("groups", "lag", group))["total_lag"] == 0
    assert any(g["group"] == group for g in json.loads(run("groups", "list")))
    run("groups", "reset-offsets", group, "--all-topics", "--to-earliest")
    assert [o["committed"] for o in json.loads(run("groups", "lag", group))["offsets"]] == [0, 0]
    assert json.loads(run("cluster", "describe"))["brokers"][0]["port"] == cli_broker.port
    run("groups", "delete", group)
    run("topics", "delete", topic_name)
