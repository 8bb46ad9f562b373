import re
from pathlib import Path

import pytest

from kbroker import config_docs
from kbroker.config import BROKER_CONFIGS, ConfigError, Listener, UpdateMode, build_config
from kbroker.log.config import LONG_MAX, LogConfig
from kbroker.properties import read_properties


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


def test_every_default_is_a_value_its_own_key_accepts():
    config = build_config({})
    for key in BROKER_CONFIGS:
        assert getattr(config, key.attribute) == key.default, key.name
        text = config.value_text(key.name)
        assert (key.parse(text) if text is not None else None) == key.default, key.name
        assert key.minimum is None or key.default is None or key.default >= key.minimum, key.name


def test_a_topic_without_overrides_gets_the_broker_defaults_of_its_synonyms():
    assert build_config({}).log_defaults() == LogConfig()


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


def test_topic_defaults_come_from_their_broker_synonyms():
    config = build_config({"log.segment.bytes": "4096", "log.roll.ms": "10", "message.max.bytes": "77",
                           "log.flush.interval.ms": str(LONG_MAX), "num.partitions": "3"}).log_defaults()
    assert (config.segment_bytes, config.segment_ms, config.max_message_bytes) == (4096, 10, 77)
    assert config.flush_interval_ms is None  # LONG_MAX: not set, as for the topic's flush.ms
    assert build_config({"log.cleanup.policy": "delete,compact"}).log_defaults().cleanup_policy == "compact,delete"


def test_broker_defaults_are_checked_as_topic_configs():
    """A broker key beyond its topic config's range fails as that topic config would (an INT)."""
    with pytest.raises(ConfigError, match="Invalid value 2147483648 for configuration segment.bytes: "
                                          "Not a number of type INT"):
        build_config({"log.segment.bytes": str(2**31)})
    with pytest.raises(ConfigError, match="min.cleanable.dirty.ratio: Value must be no more than 1.0"):
        build_config({"log.cleaner.min.cleanable.ratio": "1.5"})


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


def test_several_listeners_each_with_its_advertised_endpoint():
    config = build_config({
        "listeners": "PLAINTEXT://127.0.0.1:9092,sasl_ssl://0.0.0.0:9093,INTERNAL://:9094",
        "advertised.listeners": "SASL_SSL://kafka.example:19093",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT",
        "listener.name.sasl_ssl.ssl.keystore.location": "/etc/kbroker/server.pem",
        "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-512"})
    assert config.listeners == (Listener("127.0.0.1", 9092), Listener("0.0.0.0", 9093, "SASL_SSL"),
                                Listener("", 9094, "INTERNAL"))
    assert config.advertised_for("PLAINTEXT") == Listener("127.0.0.1", 9092)
    assert config.advertised_for("SASL_SSL") == Listener("kafka.example", 19093, "SASL_SSL")
    assert config.advertised_for("INTERNAL") == Listener("127.0.0.1", 9094, "INTERNAL")
    assert config.advertised_for(None) == config.advertised == Listener("127.0.0.1", 9092)
    assert config.security["SASL_SSL"].sasl.mechanisms == ("SCRAM-SHA-512",)
    assert config.security["SASL_SSL"].tls.keystore_location == "/etc/kbroker/server.pem"
    assert config.security["PLAINTEXT"].tls is None and config.security["PLAINTEXT"].sasl is None
    assert build_config({}).value_text("listeners") == "PLAINTEXT://127.0.0.1:9092"
    assert build_config({}).value_text("listener.security.protocol.map") == \
        "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL"


def test_listener_overrides_beat_the_plain_keys():
    config = build_config({"listeners": "SSL://:9093,MTLS://:9094",
                           "listener.security.protocol.map": "SSL:SSL,MTLS:SSL",
                           "ssl.keystore.location": "server.pem", "ssl.client.auth": "requested",
                           "listener.name.mtls.ssl.client.auth": "required"})
    assert config.security["SSL"].tls.client_auth == "requested"
    assert config.security["MTLS"].tls.client_auth == "required"


SASL_INTER_BROKER = {
    "listeners": "SASL_PLAINTEXT://:1", "sasl.enabled.mechanisms": "PLAIN", "zookeeper.connect": "zk:2181",
    "security.inter.broker.protocol": "SASL_PLAINTEXT", "sasl.mechanism.inter.broker.protocol": "PLAIN",
    "listener.name.sasl_plaintext.plain.sasl.jaas.config":
        'x.PlainLoginModule required username="broker" password="s3cret" user_broker="s3cret";'}


@pytest.mark.parametrize("settings, message", [
    ({"listeners": "PLAINTEXT://:1,PLAINTEXT://:2"}, "more than once"),
    ({"listeners": "CUSTOM://:1"}, "listener CUSTOM has no security protocol"),
    ({"listener.security.protocol.map": "PLAINTEXT:TLS"}, "listener.security.protocol.map"),
    ({"advertised.listeners": "SSL://h:1"}, "which listeners does not define"),
    ({"inter.broker.listener.name": "PLAINTEXT", "security.inter.broker.protocol": "PLAINTEXT"}, "Only one of"),
    ({"inter.broker.listener.name": "OTHER"}, "must be a listener name defined in listeners"),
    ({**SASL_INTER_BROKER, "sasl.mechanism.inter.broker.protocol": ""}, "GSSAPI \\(Kafka default\\)"),
    ({**SASL_INTER_BROKER, "sasl.mechanism.inter.broker.protocol": "OAUTHBEARER"}, "OAUTHBEARER: kbroker brokers"),
    ({**SASL_INTER_BROKER, "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-256"},
     "must be included in sasl.enabled.mechanisms of the inter-broker listener SASL_PLAINTEXT"),
    ({**SASL_INTER_BROKER, "listener.name.sasl_plaintext.plain.sasl.jaas.config":
      'x.PlainLoginModule required user_a="b";'}, "plain.sasl.jaas.config needs username"),
    ({"listeners": "SSL://:1", "ssl.keystore.location": "k.pem", "ssl.endpoint.identification.algorithm": "ftp"},
     "ssl.endpoint.identification.algorithm"),
    ({"listeners": "SSL://:1"}, "ssl.keystore.location"),
    ({"listeners": "SSL://:1", "ssl.keystore.type": "JKS", "ssl.keystore.location": "k.jks"}, "PEM"),
    ({"listeners": "SSL://:1", "ssl.keystore.location": "k.pem", "ssl.truststore.type": "PKCS12"}, "PEM"),
    ({"listeners": "SSL://:1", "ssl.keystore.location": "k.pem", "ssl.client.auth": "maybe"}, "ssl.client.auth"),
    ({"listeners": "SSL://:1", "ssl.keystore.location": "k.pem", "ssl.enabled.protocols": "TLSv1"}, "TLSv1"),
    ({"listeners": "SASL_SSL://:1", "ssl.keystore.location": "k.pem"}, "GSSAPI"),  # Kafka's default mechanism
    ({"listeners": "SASL_PLAINTEXT://:1", "sasl.enabled.mechanisms": "PLAIN"}, "plain.sasl.jaas.config"),
])
def test_bad_listener_settings_are_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        build_config(settings)


def test_brokers_log_in_to_each_other_on_the_inter_broker_listener():
    security = build_config(SASL_INTER_BROKER).inter_broker_security
    assert (security.listener, security.protocol, security.tls) == ("SASL_PLAINTEXT", "SASL_PLAINTEXT", None)
    assert (security.sasl_mechanism, security.username, security.password) == ("PLAIN", "broker", "s3cret")
    mtls = build_config({"zookeeper.connect": "zk:2181", "listeners": "PLAINTEXT://:1,INTERNAL://:2",
                         "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,INTERNAL:SSL",
                         "inter.broker.listener.name": "INTERNAL", "ssl.keystore.location": "k.pem",
                         "listener.name.internal.ssl.truststore.location": "ca.pem",
                         "listener.name.internal.ssl.client.auth": "required",
                         "listener.name.internal.ssl.endpoint.identification.algorithm": ""}).inter_broker_security
    assert (mtls.listener, mtls.protocol, mtls.sasl_mechanism) == ("INTERNAL", "SSL", None)
    assert (mtls.tls.keystore_location, mtls.tls.truststore_location, mtls.tls.check_hostname) == \
        ("k.pem", "ca.pem", False)
    scram = build_config({**SASL_INTER_BROKER, "sasl.enabled.mechanisms": "SCRAM-SHA-512",
                          "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
                          "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config":
                              'x.ScramLoginModule required username="b1" password="pw";'}).inter_broker_security
    assert (scram.sasl_mechanism, scram.username, scram.password) == ("SCRAM-SHA-512", "b1", "pw")
    assert build_config({}).inter_broker_security.protocol == "PLAINTEXT"
    assert build_config({"listeners": "SASL_PLAINTEXT://:1", "sasl.enabled.mechanisms": "SCRAM-SHA-256"}
                        ).inter_broker_security is None  # a single node without a PLAINTEXT listener


def test_cluster_traffic_needs_the_inter_broker_listener():
    with pytest.raises(ConfigError, match="inter.broker.listener.name"):
        build_config({"zookeeper.connect": "zk:2181", "listeners": "SSL://:9093", "ssl.keystore.location": "k.pem"})
    assert build_config({"zookeeper.connect": "zk:2181", "listeners": "INTERNAL://:1,SSL://:2",
                         "listener.security.protocol.map": "INTERNAL:PLAINTEXT,SSL:SSL",
                         "inter.broker.listener.name": "INTERNAL",
                         "ssl.keystore.location": "k.pem"}).inter_broker_listener == "INTERNAL"


# Kafka's update mode of each key kbroker puts in force at run time (DynamicBrokerConfig.AllDynamicConfigs
# with DynamicLogConfig / SocketServer / DynamicProducerStateManagerConfig); every other key is read-only.
DYNAMIC_KEYS = {
    "log.segment.bytes", "log.roll.ms", "log.index.interval.bytes", "log.index.size.max.bytes",
    "log.flush.interval.messages", "log.flush.interval.ms", "log.retention.ms", "log.retention.bytes",
    "log.cleanup.policy", "log.cleaner.min.cleanable.ratio", "log.cleaner.delete.retention.ms",
    "log.cleaner.min.compaction.lag.ms", "log.cleaner.max.compaction.lag.ms", "log.message.timestamp.type",
    "log.message.timestamp.before.max.ms", "log.message.timestamp.after.max.ms",
    "log.message.timestamp.difference.max.ms", "message.max.bytes", "max.connections", "max.connections.per.ip",
    "max.connections.per.ip.overrides", "transaction.partition.verification.enable",
}


def test_update_modes_are_kafkas_for_the_keys_applied_at_run_time():
    modes = {key.name: key.mode for key in BROKER_CONFIGS}
    assert {name for name, mode in modes.items() if mode != UpdateMode.READ_ONLY} == DYNAMIC_KEYS
    assert {modes[name] for name in DYNAMIC_KEYS} == {UpdateMode.CLUSTER_WIDE}
    # Kafka's own read-only spellings of the same values
    assert modes["log.retention.hours"] == modes["log.roll.hours"] == modes["node.id"] == UpdateMode.READ_ONLY


def test_dynamic_settings_win_in_kafkas_order_and_fall_back_when_removed():
    static = build_config({"message.max.bytes": "5000", "log.retention.ms": "7000"})
    both = static.with_dynamic({"message.max.bytes": "3000"}, {"message.max.bytes": "4000", "log.retention.ms": "9000"})
    assert (both.message_max_bytes, both.value_text("message.max.bytes")) == (3000, "3000")
    assert both.log_defaults().retention_ms == 9000  # the cluster default beats the static value
    assert both.dynamic_broker == {"message.max.bytes": "3000"}
    assert both.explicit == static.explicit  # what the user started with stays as given
    removed = both.with_dynamic({}, {})
    assert (removed.message_max_bytes, removed.log_retention_ms) == (5000, 7000)
    assert build_config({}).with_dynamic({"message.max.bytes": "10"}, {}).with_dynamic({}, {}).message_max_bytes == \
        1048588


@pytest.mark.parametrize("per_broker, message", [
    ({"num.partitions": "3"}, "Cannot update these configs dynamically: Set(num.partitions)"),
    ({"no.such.key": "1", "log.dirs": "/x"}, "Cannot update these configs dynamically: Set(log.dirs, no.such.key)"),
    ({"message.max.bytes": "big"}, "message.max.bytes='big'"),
    ({"log.retention.ms": "-2"}, "must be at least -1"),
    ({"log.cleaner.min.cleanable.ratio": "2"}, "min.cleanable.dirty.ratio"),
    ({"max.connections.per.ip": "0"}, "max.connections.per.ip can be set to zero only if"),
])
def test_a_dynamic_change_is_checked_as_the_declarations_say(per_broker, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config({}).with_dynamic(per_broker, {})


def test_docs_configuration_md_is_what_the_declarations_generate():
    committed = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    assert committed == config_docs.render(), "run: python -m kbroker.config_docs > docs/configuration.md"
    assert all(f"`{key.name}`" in committed for key in BROKER_CONFIGS)
