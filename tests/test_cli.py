from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kbroker.wire.messages.metadata import MetadataRequest, MetadataRequestTopic
from tests.broker_process import BrokerProcess, free_port
from tests.wire_client import WireClient

METADATA = 3


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kbroker", *args], capture_output=True, text=True, timeout=30)


def test_invalid_config_value_exits_2(tmp_path):
    result = run_cli("serve", "--data-dir", str(tmp_path), "-o", "num.partitions=lots")
    assert result.returncode == 2
    assert "num.partitions" in result.stderr


def test_override_without_equals_exits_2(tmp_path):
    result = run_cli("serve", "--data-dir", str(tmp_path), "-o", "num.partitions")
    assert result.returncode == 2


def test_missing_properties_file_exits_2(tmp_path):
    result = run_cli("serve", "--config", str(tmp_path / "absent.properties"))
    assert result.returncode == 2
    assert "absent.properties" in result.stderr


def test_port_in_use_exits_1_with_a_clear_message(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--data-dir", str(tmp_path), "--listen", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def assert_one_clear_line(result: subprocess.CompletedProcess, *needles: str) -> None:
    """Exit 1, no traceback, and one ERROR line that says all of `needles`."""
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert len(errors) == 1 and all(n in errors[0] for n in needles), result.stderr


def test_second_broker_on_the_same_data_dir_refuses_to_start(tmp_path):
    data_dir = tmp_path / "data"
    first = BrokerProcess(data_dir).start()
    try:
        second = run_cli("serve", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{free_port()}")
        assert first.process.poll() is None
    finally:
        assert first.stop() == 0
    assert_one_clear_line(second, "another broker is using data directory", str(data_dir))
    assert (data_dir / ".lock").exists()
    crashed = BrokerProcess(data_dir).start()  # the lock went with the first broker
    crashed.kill()
    BrokerProcess(data_dir).start().stop()  # and with a killed one: the kernel drops it


def test_data_dir_that_is_a_file_exits_1_with_a_clear_message(tmp_path):
    path = tmp_path / "data"
    path.write_text("not a directory")
    result = run_cli("serve", "--data-dir", str(path), "--listen", f"127.0.0.1:{free_port()}")
    assert_one_clear_line(result, str(path), "is not a directory")


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Root ignores file modes, so for root the file or directory is made immutable (chattr +i) too."""
    path.chmod(0o555 if path.is_dir() else 0o444)
    immutable = os.geteuid() == 0
    if immutable:
        subprocess.run(["chattr", "+i", str(path)], check=True)
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o755 if path.is_dir() else 0o644)


def test_read_only_data_dir_exits_1_with_a_clear_message(tmp_path):
    path = tmp_path / "data"
    path.mkdir()
    with read_only(path):
        result = run_cli("serve", "--data-dir", str(path), "--listen", f"127.0.0.1:{free_port()}")
    assert_one_clear_line(result, f"data directory {path} cannot be used")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any directory")
def test_inaccessible_data_dir_exits_1_with_a_clear_message(tmp_path):
    path = tmp_path / "data"
    path.mkdir()
    path.chmod(0)
    try:
        result = run_cli("serve", "--data-dir", str(path), "--listen", f"127.0.0.1:{free_port()}")
    finally:
        path.chmod(0o755)
    assert_one_clear_line(result, f"data directory {path} cannot be used", "Permission denied")


def test_data_dir_of_another_node_exits_1_with_a_clear_message(tmp_path):
    BrokerProcess(tmp_path / "data").start().stop()
    result = run_cli("serve", "--data-dir", str(tmp_path / "data"), "--listen", f"127.0.0.1:{free_port()}",
                     "-o", "node.id=7")
    assert_one_clear_line(result, "node.id")


def test_data_dir_with_a_segment_that_cannot_be_opened_exits_1_with_a_clear_message(tmp_path):
    data_dir = tmp_path / "data"
    broker = BrokerProcess(data_dir, {"num.partitions": "1"}).start()
    with WireClient(broker.bootstrap) as client:
        client.request(METADATA, 12, MetadataRequest(topics=[MetadataRequestTopic(name="orders")]))
    broker.stop()
    segment = data_dir / "orders-0" / f"{0:020d}.log"
    with read_only(segment):
        result = run_cli("serve", "--data-dir", str(data_dir), "--listen", f"127.0.0.1:{free_port()}")
    assert_one_clear_line(result, f"data directory {data_dir} cannot be loaded", str(segment))


def test_a_keystore_that_cannot_be_loaded_exits_1_with_a_clear_message(tmp_path):
    result = run_cli("serve", "--data-dir", str(tmp_path / "data"), "-o", f"listeners=SSL://127.0.0.1:{free_port()}",
                     "-o", f"ssl.keystore.location={tmp_path / 'absent.pem'}")
    assert_one_clear_line(result, "listener SSL", "ssl.keystore.location")


def test_a_jks_keystore_exits_2_naming_pem(tmp_path):
    result = run_cli("serve", "--data-dir", str(tmp_path / "data"), "-o", f"listeners=SSL://127.0.0.1:{free_port()}",
                     "-o", "ssl.keystore.type=JKS", "-o", "ssl.keystore.location=server.jks")
    assert result.returncode == 2
    assert "ssl.keystore.type=PEM" in result.stderr


def test_scram_user_stores_no_password(tmp_path):
    result = run_cli("scram-user", "--data-dir", str(tmp_path), "--user", "alice", "--password", "pw-1234",
                     "--mechanism", "SCRAM-SHA-512", "--iterations", "8192")
    assert result.returncode == 0, result.stderr
    stored = (tmp_path / "scram-credentials.json").read_text()
    assert "pw-1234" not in stored and "SCRAM-SHA-512" in stored and "iterations=8192" in stored
    assert run_cli("scram-user", "--data-dir", str(tmp_path), "--user", "bob", "--iterations", "10").returncode == 2
    broker = BrokerProcess(tmp_path).start()  # a running broker holds the data dir
    try:
        result = run_cli("scram-user", "--data-dir", str(tmp_path), "--user", "bob", "--password", "x")
    finally:
        broker.stop()
    assert result.returncode == 1 and "another broker" in result.stderr
