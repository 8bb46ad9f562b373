"""EmbeddedBroker: start, stop, clean-up on every path out, Kafka-named config, async with."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

import kbroker
from kbroker.blocking_client import BrokerRequestError
from kbroker.config import ConfigError
from kbroker.embedded import EmbeddedBroker, EmbeddedBrokerError, kafka_config
from kbroker.errors import ErrorCode


def _gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def _broker_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children() if "kbroker" in " ".join(p.cmdline())]


def test_kafka_config_maps_keyword_names_to_kafka_names():
    assert kafka_config({"num_partitions": 3, "auto.create.topics.enable": False, "log.roll.ms": 10}) == {
        "num.partitions": "3", "auto.create.topics.enable": "false", "log.roll.ms": "10"}


def test_starts_answers_and_stops_cleanly(tmp_path):
    with kbroker.EmbeddedBroker(num_partitions=3, **{"log.retention.ms": 60000}) as broker:
        host, port = broker.bootstrap_servers.split(":")
        assert host == "127.0.0.1" and int(port) > 0
        pid, work_dir = broker.pid, broker.log_path.parent
        broker.create_topic("orders", partitions=2, config={"cleanup.policy": "compact"})
        broker.create_topic("defaults", partitions=-1)
        assert broker.topics() == ["defaults", "orders"]
        with pytest.raises(BrokerRequestError) as raised:
            broker.create_topic("orders")
        assert raised.value.code == ErrorCode.TOPIC_ALREADY_EXISTS
        broker.delete_all_topics()
        assert broker.topics() == []
        log = broker.log_text()
        assert "created topic defaults" in log and "with 3 partitions" in log  # num_partitions reached the broker
    assert _gone(pid) and not work_dir.exists()
    assert not broker.running
    assert "stopped cleanly" in broker.log_text()  # the log outlives the broker
    with pytest.raises(EmbeddedBrokerError):
        broker.bootstrap_servers


def test_a_given_data_dir_is_kept_and_reused(tmp_path):
    with EmbeddedBroker(tmp_path / "data") as broker:
        broker.create_topic("kept")
    with EmbeddedBroker(tmp_path / "data") as broker:
        assert broker.topics() == ["kept"]
    assert (tmp_path / "data" / "kept-0").is_dir()


def test_a_bad_value_raises_before_anything_starts():
    with pytest.raises(ConfigError, match="num.partitions"):
        EmbeddedBroker(num_partitions="many")
    assert _broker_children() == []


def test_a_broker_that_cannot_start_raises_with_its_log_and_leaves_nothing(tmp_path):
    (tmp_path / "not-a-dir").write_text("a file where the data dir should be")
    broker = EmbeddedBroker(tmp_path / "not-a-dir")
    with pytest.raises(EmbeddedBrokerError, match="exited with code 1") as raised:
        broker.start()
    assert "not-a-dir" in str(raised.value)  # the broker's own error line
    assert _broker_children() == [] and broker.log_path is None


def test_an_exception_in_the_with_block_stops_the_broker():
    with pytest.raises(KeyError):
        with EmbeddedBroker() as broker:
            pid = broker.pid
            raise KeyError("test failure")
    assert _gone(pid)


async def test_async_with():
    async with EmbeddedBroker() as broker:
        pid = broker.pid
        broker.create_topic("async")
        assert broker.topics() == ["async"]
    assert _gone(pid)


def test_a_broker_left_running_is_stopped_at_interpreter_exit():
    script = "import kbroker; b = kbroker.EmbeddedBroker().start(); print(b.pid, b.log_path.parent)"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    pid, work_dir = done.stdout.split()
    assert _gone(int(pid)) and not Path(work_dir).exists()


def test_a_broker_that_died_is_reported_at_stop():
    broker = EmbeddedBroker().start()
    os.kill(broker.pid, signal.SIGKILL)
    with pytest.raises(EmbeddedBrokerError, match="exited with code -9"):
        broker.stop()
    assert broker.log_path is None  # cleaned up all the same
