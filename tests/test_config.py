from pathlib import Path

import pytest

from kbroker.config import ConfigError, Listener, build_config, read_properties


def test_defaults_are_kafkas():
    config = build_config({})
    assert config.listeners == (Listener("127.0.0.1", 9092),)
    assert config.advertised == Listener("127.0.0.1", 9092)
    assert config.log_segment_bytes == 1073741824
    assert config.message_max_bytes == 1048588
    assert config.log_flush_interval_messages == 2**63 - 1
    assert config.log_flush_interval_ms is None
    assert config.auto_create_topics_enable is True
    assert config.value_text("log.segment.bytes") == "1073741824"


def test_server_properties_file(tmp_path: Path):
    path = tmp_path / "server.properties"
    path.write_text(
        "# a comment\n! another\n"
        "broker.id=3\n"
        "listeners=PLAINTEXT://0.0.0.0:19092\n"
        "advertised.listeners = PLAINTEXT://kafka.example:29092\n"
        "log.dirs: /var/lib/kafka\n"
        "log.retention.hours=24\n"
        "num.partitions=\\\n 6\n"
        "num.network.threads=3\n")
    config = build_config(read_properties(path))
    assert config.node_id == 3
    assert config.listeners == (Listener("0.0.0.0", 19092),)
    assert config.advertised == Listener("kafka.example", 29092)
    assert config.log_dirs == "/var/lib/kafka"
    assert config.effective_log_retention_ms == 24 * 3_600_000
    assert config.num_partitions == 6


def test_retention_and_roll_defaults_are_kafkas_hours():
    config = build_config({})
    assert (config.log_retention_hours, config.log_retention_minutes, config.log_retention_ms) == (168, None, None)
    assert config.value_text("log.retention.ms") is None
    assert config.effective_log_retention_ms == 7 * 24 * 3_600_000
    assert config.log_defaults().retention_ms == 7 * 24 * 3_600_000
    assert build_config({"log.roll.hours": "2"}).log_defaults().segment_ms == 2 * 3_600_000
    assert build_config({"log.retention.minutes": "-1"}).log_defaults().retention_ms == -1


def test_explicit_ms_beats_hours_alias():
    config = build_config({"log.retention.hours": "1", "log.retention.ms": "5000"})
    assert config.effective_log_retention_ms == 5000


def test_unknown_key_warns(caplog):
    build_config({"no.such.key": "1"})
    assert "unknown config no.such.key" in caplog.text


@pytest.mark.parametrize("key,value", [
    ("num.partitions", "many"), ("num.partitions", "0"), ("auto.create.topics.enable", "yes"),
    ("listeners", "nonsense"), ("log.message.timestamp.type", "Sometime"), ("log.retention.hours", "x"),
])
def test_invalid_values_raise(key, value):
    with pytest.raises(ConfigError, match=key):
        build_config({key: value})


def test_listen_any_advertises_loopback():
    assert build_config({"listeners": "0.0.0.0:9093"}).advertised == Listener("127.0.0.1", 9093)
