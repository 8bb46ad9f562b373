"""The pytest plugin as its users meet it: test files written with kafka-python, confluent-kafka and
aiokafka, run by pytest (pytester, in a subprocess as a user's run would be) against `kafka_broker`
and `kafka_topic`; a failing test's report shows the broker log; under pytest-xdist every worker
has its own broker; the package's metadata registers the plugin with the `pytest11` entry point.
"""
from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest

import kbroker

pytest_plugins = ["pytester"]

PLUGIN = "kbroker.pytest_plugin"


def _plugin_args() -> list[str]:
    """`-p` only where the running install's metadata lacks the entry point (pytest would register it twice)."""
    registered = any(ep.value == PLUGIN for ep in importlib.metadata.entry_points(group="pytest11"))
    return [] if registered else ["-p", PLUGIN]


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(*_plugin_args(), "-p", "no:cacheprovider", *args, timeout=120)


def test_the_package_metadata_registers_the_plugin(pytester: pytest.Pytester):
    dist = importlib.metadata.distribution("kbroker")
    source = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
    checkout = Path(kbroker.__file__).resolve().parents[1]
    if source and source != checkout.as_uri():
        pytest.skip(f"the installed kbroker is {source}, not this checkout {checkout}: its metadata says nothing "
                    f"of this pyproject.toml (pip install -e . here)")
    entry_points = [(ep.name, ep.value) for ep in dist.entry_points if ep.group == "pytest11"]
    assert entry_points == [("kbroker", PLUGIN)], "pip install -e '.[test]' again: the install predates the entry point"

    # Loaded by the entry point alone, and it starts (and imports) nothing a test does not ask for.
    pytester.makepyfile(test_quiet="""
        import sys

        def test_loaded_but_idle(pytestconfig):
            assert pytestconfig.pluginmanager.has_plugin("kbroker")
            assert "kbroker.embedded" not in sys.modules
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=60)
    result.assert_outcomes(passed=1)


CLIENT_TESTS = {
    # A project's own conftest: isolation between tests by deleting every topic after each.
    "conftest": """
        import pytest

        @pytest.fixture(autouse=True)
        def isolated(kafka_broker):
            yield
            kafka_broker.delete_all_topics()
    """,
    "test_with_kafka_python": """
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition

        def test_produce_and_consume_in_a_group(kafka_broker, kafka_topic):
            producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
            for i in range(10):
                producer.send(kafka_topic, key=b"k", value=f"v{i}".encode())
            producer.flush()
            producer.close()

            consumer = KafkaConsumer(kafka_topic, bootstrap_servers=kafka_broker.bootstrap_servers,
                                     group_id="kafka-python-group", auto_offset_reset="earliest",
                                     consumer_timeout_ms=15000)
            values = []
            for message in consumer:
                values.append(message.value)
                if len(values) == 10:
                    break
            consumer.commit()
            committed = consumer.committed(TopicPartition(kafka_topic, 0))
            consumer.close()
            assert values == [f"v{i}".encode() for i in range(10)]
            assert committed == 10

        def test_a_topic_of_a_fixed_name(kafka_broker):
            kafka_broker.create_topic("orders", partitions=2)
            producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
            producer.send("orders", b"left behind", partition=1).get(timeout=15)
            producer.close()

        def test_the_same_name_again_starts_empty(kafka_broker):
            # Without the conftest's delete_all_topics this is TOPIC_ALREADY_EXISTS, with a record in it.
            kafka_broker.create_topic("orders", partitions=2)
            consumer = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap_servers)
            partitions = [TopicPartition("orders", p) for p in (0, 1)]
            assert consumer.end_offsets(partitions) == {p: 0 for p in partitions}
            consumer.close()
    """,
    "test_with_confluent_kafka": """
        import time

        from confluent_kafka import Consumer, Producer

        def test_produce_and_consume_in_a_group(kafka_broker, kafka_topic):
            producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers})
            for i in range(10):
                producer.produce(kafka_topic, key=b"k", value=f"v{i}".encode())
            assert producer.flush(15) == 0

            consumer = Consumer({"bootstrap.servers": kafka_broker.bootstrap_servers,
                                 "group.id": "confluent-group", "auto.offset.reset": "earliest"})
            consumer.subscribe([kafka_topic])
            values, deadline = [], time.monotonic() + 20
            while len(values) < 10 and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is None:
                    continue
                assert message.error() is None, message.error()
                values.append(message.value())
            consumer.close()
            assert values == [f"v{i}".encode() for i in range(10)]
    """,
    "test_with_aiokafka": """
        import asyncio

        import pytest
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        @pytest.mark.asyncio
        async def test_produce_and_consume_in_a_group(kafka_broker, kafka_topic):
            producer = AIOKafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
            await producer.start()
            try:
                for i in range(10):
                    await producer.send_and_wait(kafka_topic, f"v{i}".encode(), key=b"k")
            finally:
                await producer.stop()

            consumer = AIOKafkaConsumer(kafka_topic, bootstrap_servers=kafka_broker.bootstrap_servers,
                                        group_id="aiokafka-group", auto_offset_reset="earliest")
            await consumer.start()
            try:
                values = [(await asyncio.wait_for(consumer.getone(), 20)).value for _ in range(10)]
            finally:
                await consumer.stop()
            assert values == [f"v{i}".encode() for i in range(10)]
    """,
}


@pytest.mark.timeout(180)
def test_client_test_files_pass_against_one_session_broker(pytester: pytest.Pytester):
    pytester.makeconftest(CLIENT_TESTS["conftest"])
    pytester.makepyfile(**{name: text for name, text in CLIENT_TESTS.items() if name != "conftest"})
    result = _run(pytester, "-v")
    result.assert_outcomes(passed=5)
    assert "kafka_broker log" not in result.stdout.str()  # only failures carry the log


def test_a_failing_test_reports_what_the_broker_logged_during_it(pytester: pytest.Pytester):
    pytester.makepyfile(test_fails="""
        def test_passes(kafka_topic):
            pass

        def test_fails(kafka_topic):
            assert kafka_topic == "something else"
    """)
    result = _run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert out.count("kafka_broker log") == 1
    section = out[out.index("kafka_broker log"):]
    assert "created topic test_fails-" in section
    assert "created topic test_passes-" not in section  # the log of that test alone


def test_options_set_the_broker_config_and_the_fixture_scope(pytester: pytest.Pytester):
    pytester.makeini("""
        [pytest]
        kafka_broker_config =
            num.partitions=3
            log.retention.ms=600000
    """)
    seen = pytester.path / "seen"
    seen.mkdir()
    pytester.makepyfile(test_options=f"""
        import pathlib

        import pytest
        from kafka import KafkaConsumer

        @pytest.mark.parametrize("run", [1, 2])
        def test_partitions(kafka_broker, kafka_topic, run):
            consumer = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap_servers)
            assert consumer.partitions_for_topic(kafka_topic) == {{0, 1, 2}}
            consumer.close()
            pathlib.Path({str(seen)!r}, str(run)).write_text(str(kafka_broker.pid))

        @pytest.mark.kafka_topic(partitions=5, config={{"cleanup.policy": "compact"}})
        def test_marked_topic(kafka_broker, kafka_topic):
            from confluent_kafka.admin import AdminClient, ConfigResource

            consumer = KafkaConsumer(bootstrap_servers=kafka_broker.bootstrap_servers)
            assert consumer.partitions_for_topic(kafka_topic) == set(range(5))
            consumer.close()
            admin = AdminClient({{"bootstrap.servers": kafka_broker.bootstrap_servers}})
            (described,) = admin.describe_configs([ConfigResource("topic", kafka_topic)]).values()
            assert described.result(timeout=15)["cleanup.policy"].value == "compact"
    """)
    result = _run(pytester, "--kafka-broker-scope", "function", "--kafka-broker-config", "num.network.threads=3")
    result.assert_outcomes(passed=3)
    pids = {path.read_text() for path in seen.iterdir()}
    assert len(pids) == 2  # function scope: a broker per test


@pytest.mark.timeout(180)
def test_every_xdist_worker_has_its_own_broker(pytester: pytest.Pytester):
    seen = pytester.path / "seen"
    seen.mkdir()
    pytester.makepyfile(test_workers=f"""
        import json
        import os
        import pathlib

        import pytest
        from kafka import KafkaProducer

        @pytest.mark.parametrize("n", range(8))
        def test_produce(kafka_broker, kafka_topic, n):
            producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap_servers)
            producer.send(kafka_topic, b"x").get(timeout=15)
            producer.close()
            pathlib.Path({str(seen)!r}, str(n)).write_text(json.dumps(
                [os.environ["PYTEST_XDIST_WORKER"], kafka_broker.bootstrap_servers, kafka_broker.pid]))
    """)
    result = _run(pytester, "-n", "2")
    result.assert_outcomes(passed=8)
    by_worker: dict[str, set[tuple[str, int]]] = {}
    for path in seen.iterdir():
        worker, bootstrap, pid = json.loads(path.read_text())
        by_worker.setdefault(worker, set()).add((bootstrap, pid))
    assert sorted(by_worker) == ["gw0", "gw1"]
    assert all(len(brokers) == 1 for brokers in by_worker.values()), by_worker  # one per worker session
    assert by_worker["gw0"] != by_worker["gw1"]


@pytest.mark.timeout(180)
def test_kafka_cluster_replicates_and_reports_every_broker_log(pytester: pytest.Pytester):
    from kbroker.zookeeper_process import zookeeper_missing

    missing = zookeeper_missing()
    if missing:
        pytest.skip(f"kafka_cluster needs a real ZooKeeper: {missing}")
    pytester.makepyfile(test_cluster="""
        import time

        from confluent_kafka import Consumer, Producer
        from confluent_kafka.admin import AdminClient

        def test_acks_all_on_a_replicated_topic(kafka_cluster):
            kafka_cluster.create_topic("replicated", partitions=3)
            metadata = AdminClient({"bootstrap.servers": kafka_cluster.bootstrap_servers}).list_topics(timeout=15)
            assert len(metadata.brokers) == 3
            partitions = metadata.topics["replicated"].partitions.values()
            assert all(len(p.replicas) == 3 and len(p.isrs) == 3 for p in partitions)

            producer = Producer({"bootstrap.servers": kafka_cluster.bootstrap_servers, "acks": "all"})
            for i in range(30):
                producer.produce("replicated", key=str(i).encode(), value=f"v{i}".encode())
            assert producer.flush(15) == 0
            consumer = Consumer({"bootstrap.servers": kafka_cluster.bootstrap_servers,
                                 "group.id": "cluster-group", "auto.offset.reset": "earliest"})
            consumer.subscribe(["replicated"])
            values, deadline = set(), time.monotonic() + 30
            while len(values) < 30 and time.monotonic() < deadline:
                message = consumer.poll(0.5)
                if message is not None and message.error() is None:
                    values.add(message.value())
            consumer.close()
            assert values == {f"v{i}".encode() for i in range(30)}

        def test_fails(kafka_cluster):
            kafka_cluster.create_topic("doomed")
            assert kafka_cluster.topics() == []
    """)
    result = _run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    for node in (1, 2, 3):
        assert f"kafka_cluster broker {node} log" in out
    assert "created topic doomed" in out
