import subprocess
import sys


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
