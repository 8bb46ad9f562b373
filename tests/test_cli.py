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
