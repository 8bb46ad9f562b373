"""Broker configuration under Kafka's own names, so a user's server.properties mostly works.

Each key we understand is declared once, as a field of `Config` made by `config_key()`: Kafka's
name, parser, default, minimum, doc, update mode (KIP-226: whether it can change at run time), and
the topic config it is the broker-wide default of. The table `BROKER_CONFIGS`, DescribeConfigs'
types and read-only flags, the topic-config defaults and docs/configuration.md derive from those
fields.

Precedence, as Kafka's DynamicBrokerConfig: this broker's dynamic value (`/config/brokers/<id>`),
the cluster's dynamic default (`/config/brokers/<default>`), the static value (server.properties,
-o), the declared default. `Config` is immutable: a dynamic change makes a new one
(`with_dynamic`), which kbroker/broker/dynamic_config.py puts in force.
Keys Kafka has but kbroker has no use for (thread pools, KRaft, ...) are accepted and ignored;
any other key gets a warning. `zookeeper.connect` turns on
cluster mode (kbroker/cluster/).
A value that does not parse raises `ConfigError`; the CLI turns that into exit code 2.
"""
from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Callable, Mapping

from kbroker.errors import KafkaError
from kbroker.log.config import (
    CREATE_TIME,
    INT_MAX,
    LOG_APPEND_TIME,
    LONG_MAX,
    TOPIC_CONFIGS,
    ConfigType,
    LogConfig,
)
from kbroker.security.settings import (
    InterBrokerSecurity,
    ListenerSecurity,
    inter_broker_security,
    is_security_key,
    listener_security,
)

log = logging.getLogger("kbroker.config")


class ConfigError(ValueError):
    """A configuration value that does not parse or is out of range."""


@dataclass(frozen=True, slots=True)
class Listener:
    """One entry of `listeners` / `advertised.listeners`: `NAME://host:port`."""
    host: str
    port: int
    name: str = "PLAINTEXT"

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.name}://{self}"


# Kafka's default listener.security.protocol.map: each protocol is also a listener name.
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
DEFAULT_PROTOCOL_MAP = ",".join(f"{name}:{name}" for name in SECURITY_PROTOCOLS)


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError(f"expected true or false, got {text!r}")
    return lowered == "true"


def parse_int(text: str) -> int:
    return int(text.strip())


def parse_float(text: str) -> float:
    return float(text.strip())


def parse_listeners(text: str) -> tuple[Listener, ...]:
    """`NAME://host:port,...`; a bare `host:port` or `:port` is the PLAINTEXT listener."""
    listeners: list[Listener] = []
    for item in (part.strip() for part in text.split(",")):
        match = re.fullmatch(r"(?:([A-Za-z0-9_]+)://)?(\[[^\]]*\]|[^:]*):(\d+)", item)
        if not match:
            raise ValueError(f"expected NAME://host:port, got {item!r}")
        name, host, port = (match.group(1) or "PLAINTEXT").upper(), match.group(2).strip("[]"), int(match.group(3))
        if not 0 <= port <= 65535:
            raise ValueError(f"port {port} out of range")
        if any(other.name == name for other in listeners):
            raise ValueError(f"listener name {name} is used more than once")
        listeners.append(Listener(host, port, name))
    return tuple(listeners)


def parse_protocol_map(text: str) -> tuple[tuple[str, str], ...]:
    """`listener.security.protocol.map`: `NAME:PROTOCOL,...`."""
    pairs = []
    for item in (part.strip() for part in text.split(",") if part.strip()):
        name, sep, protocol = item.partition(":")
        if not sep or protocol.strip().upper() not in SECURITY_PROTOCOLS:
            raise ValueError(f"expected NAME:{'|'.join(SECURITY_PROTOCOLS)}, got {item!r}")
        pairs.append((name.strip().upper(), protocol.strip().upper()))
    return tuple(pairs)


def parse_security_protocol(text: str) -> str:
    if text.strip().upper() not in SECURITY_PROTOCOLS:
        raise ValueError(f"expected one of {', '.join(SECURITY_PROTOCOLS)}")
    return text.strip().upper()


def parse_super_users(text: str) -> tuple[str, ...]:
    """`super.users`: `User:admin;User:ops` (semicolon-separated principals)."""
    users = tuple(part.strip() for part in text.split(";") if part.strip())
    for user in users:
        if ":" not in user:
            raise ValueError(f"expected TYPE:NAME principals separated by ';', got {user!r}")
    return users
def parse_metrics_listener(text: str) -> Listener | None:
    """`metrics.listener`: `http://host:port` (a path after it is ignored: /metrics is served), or empty: off."""
    text = text.strip()
    if not text:
        return None
    match = re.fullmatch(r"(?:http://)?(\[[^\]]*\]|[^:/]*):(\d+)(?:/.*)?", text)
    if not match or not 0 <= int(match.group(2)) <= 65535:
        raise ValueError(f"expected http://host:port, got {text!r}")
    return Listener(match.group(1).strip("[]"), int(match.group(2)))


# KIP-848 server-side assignors: Kafka names them by class; the short names work too.
CONSUMER_ASSIGNORS = {"uniform": "uniform", "range": "range",
                      "org.apache.kafka.coordinator.group.assignor.UniformAssignor": "uniform",
                      "org.apache.kafka.coordinator.group.assignor.RangeAssignor": "range"}


def parse_assignors(text: str) -> tuple[str, ...]:
    """`group.consumer.assignors`: the first one is the default."""
    names = []
    for item in (part.strip() for part in text.split(",")):
        if item not in CONSUMER_ASSIGNORS:
            raise ValueError(f"unknown assignor {item!r} (uniform, range)")
        names.append(CONSUMER_ASSIGNORS[item])
    if not names:
        raise ValueError("at least one assignor is needed")
    return tuple(names)


def parse_connection_overrides(text: str) -> tuple[tuple[str, int], ...]:
    """`max.connections.per.ip.overrides`: `host:count,host:count` (split at the last colon: IPv6)."""
    overrides = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        host, sep, count = item.rpartition(":")
        if not sep or not host.strip():
            raise ValueError(f"expected host:count, got {item!r}")
        value = int(count.strip())
        if value < 0:
            raise ValueError(f"negative connection count in {item!r}")
        overrides.append((host.strip().strip("[]"), value))
    return tuple(overrides)


def parse_timestamp_type(text: str) -> str:
    if text not in (CREATE_TIME, LOG_APPEND_TIME):
        raise ValueError(f"expected {CREATE_TIME} or {LOG_APPEND_TIME}, got {text!r}")
    return text


# DescribeConfigs reports a broker key's type by its parser (every integer as LONG).
_KIND = {parse_bool: ConfigType.BOOLEAN, parse_int: ConfigType.LONG, parse_float: ConfigType.DOUBLE}


class UpdateMode(StrEnum):
    """Kafka's "Update Mode" of a broker config (KIP-226). A key is dynamic here only where kbroker
    really puts a change in force; Kafka's mode for a key kbroker cannot change at run time is
    still read-only here."""
    READ_ONLY = "read-only"
    PER_BROKER = "per-broker"  # only on a broker's own entity, never the cluster default
    CLUSTER_WIDE = "cluster-wide"


@dataclass(frozen=True, slots=True)
class ConfigKey:
    """One broker config, declared as a field of `Config` with `config_key()`."""
    name: str
    parse: Callable[[str], Any]
    default: Any  # typed, as `parse` returns it
    minimum: int | None = None
    topic: str | None = None  # the topic config this key is the broker-wide default of (Kafka's synonyms)
    doc: str = ""
    mode: UpdateMode = UpdateMode.READ_ONLY
    attribute: str = ""  # the Config field, filled in from the field's name

    @property
    def kind(self) -> ConfigType:
        return _KIND.get(self.parse, ConfigType.STRING)

    @property
    def dynamic(self) -> bool:
        return self.mode is not UpdateMode.READ_ONLY

    def parse_text(self, text: str) -> Any:
        """The typed value of `text`, within the declared minimum; ConfigError otherwise."""
        try:
            value = self.parse(text)
        except ValueError as exc:
            raise ConfigError(f"{self.name}={text!r}: {exc}") from exc
        if self.minimum is not None and value < self.minimum:
            raise ConfigError(f"{self.name}={text!r}: must be at least {self.minimum}")
        return value

    def text(self, value: Any) -> str | None:
        """A typed value as Kafka prints it (None: unset)."""
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, tuple) and value and isinstance(value[0], Listener):
            return ",".join(listener.url for listener in value)
        if isinstance(value, tuple):
            return ",".join(item if isinstance(item, str) else ":".join(map(str, item)) for item in value)
        return str(value)


_FROM_TOPIC: Any = object()


def config_key(name: str, parse: Callable[[str], Any], default: str | None = _FROM_TOPIC, *,
               minimum: int | None = _FROM_TOPIC, topic: str | None = None, doc: str = _FROM_TOPIC,
               mode: UpdateMode | None = None) -> Any:
    """Declare a `Config` field as the broker config `name`. `default` is text as a user would write
    it, parsed once here. A key that is the broker-wide default of a topic config takes the default,
    minimum and doc it does not give from that topic config, and is cluster-wide dynamic as in
    Kafka's DynamicLogConfig: the log manager re-derives every partition's config when it changes."""
    if mode is None:
        mode = UpdateMode.READ_ONLY if topic is None else UpdateMode.CLUSTER_WIDE
    if topic is not None:
        declared = TOPIC_CONFIGS[topic]
        typed = declared.default if default is _FROM_TOPIC else None if default is None else parse(default)
        minimum = getattr(declared.type, "minimum", None) if minimum is _FROM_TOPIC else minimum
        doc = declared.doc if doc is _FROM_TOPIC else doc
    elif default is _FROM_TOPIC or doc is _FROM_TOPIC:
        raise TypeError(f"{name} needs a default and a doc, or a topic config to take them from")
    else:
        typed = None if default is None else parse(default)
        minimum = None if minimum is _FROM_TOPIC else minimum
    return dataclasses.field(default=typed, metadata={"key": ConfigKey(name, parse, typed, minimum, topic, doc, mode)})


# Kafka's older spellings that set the same value (Kafka resolves them the same way).
_ALIASES = {"broker.id": "node.id", "log.dir": "log.dirs"}

# Kafka keys kbroker accepts without acting on them.
IGNORED_KEYS = frozenset({
    "num.network.threads", "num.io.threads", "num.recovery.threads.per.data.dir", "num.replica.fetchers",
    "transaction.state.log.min.isr",
    "process.roles", "controller.quorum.voters",
    "controller.quorum.bootstrap.servers", "controller.listener.names", "group.coordinator.rebalance.protocols",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr", "log.segment.delete.delay.ms", "unclean.leader.election.enable",
    "log.cleaner.threads", "log.cleaner.io.max.bytes.per.second",
})


@dataclass(frozen=True, slots=True)
class Config:
    node_id: int = config_key("node.id", parse_int, "1", minimum=0,
                              doc="This broker's id, unique in the cluster (broker.id is the older name)")
    log_dirs: str = config_key("log.dirs", str, "./kbroker-data",
                               doc="The data directory (of a comma-separated list, the first is used)")
    listeners: tuple[Listener, ...] = config_key("listeners", parse_listeners, "PLAINTEXT://127.0.0.1:9092",
                                                 doc="Where the broker listens: NAME://host:port, comma-separated")
    advertised_listeners: tuple[Listener, ...] | None = config_key("advertised.listeners", parse_listeners, None,
                                                                   doc="Where clients reconnect, per listener name "
                                                                       "(default: the listener's address)")
    listener_security_protocol_map: tuple[tuple[str, str], ...] = config_key(
        "listener.security.protocol.map", parse_protocol_map, DEFAULT_PROTOCOL_MAP,
        doc="The security protocol of each listener name: NAME:PROTOCOL, comma-separated")
    inter_broker_listener_name: str | None = config_key("inter.broker.listener.name", str.upper, None,
                                                        doc="The listener brokers use to reach each other")
    security_inter_broker_protocol: str | None = config_key(
        "security.inter.broker.protocol", parse_security_protocol, None,
        doc="The security protocol between brokers (instead of inter.broker.listener.name)")
    connections_max_reauth_ms: int = config_key("connections.max.reauth.ms", parse_int, "0", minimum=0,
                                                doc="How long a SASL session lasts before the client must log in "
                                                    "again (KIP-368); 0: forever")
    connection_failed_authentication_delay_ms: int = config_key(
        "connection.failed.authentication.delay.ms", parse_int, "100", minimum=0,
        doc="How long the broker waits before closing a connection whose login failed")
    metrics_listener: Listener | None = config_key("metrics.listener", parse_metrics_listener, "",
                                                   doc="http://host:port serving Prometheus metrics at /metrics; "
                                                       "empty: off")
    num_partitions: int = config_key("num.partitions", parse_int, "1", minimum=1,
                                     doc="The partitions of an auto-created topic")
    default_replication_factor: int = config_key("default.replication.factor", parse_int, "1", minimum=1,
                                                 doc="The replication factor of an auto-created topic")
    auto_create_topics_enable: bool = config_key("auto.create.topics.enable", parse_bool, "true",
                                                 doc="Create a topic when a client asks for metadata of one that "
                                                     "does not exist")
    delete_topic_enable: bool = config_key("delete.topic.enable", parse_bool, "true",
                                           doc="Allow DeleteTopics")
    log_segment_bytes: int = config_key("log.segment.bytes", parse_int, topic="segment.bytes")
    log_roll_hours: int = config_key("log.roll.hours", parse_int, "168", minimum=1,
                                     doc="Roll a new segment after this many hours (log.roll.ms, when set, wins)")
    log_roll_ms: int | None = config_key("log.roll.ms", parse_int, None, topic="segment.ms")
    log_index_interval_bytes: int = config_key("log.index.interval.bytes", parse_int, topic="index.interval.bytes")
    log_index_size_max_bytes: int = config_key("log.index.size.max.bytes", parse_int, topic="segment.index.bytes")
    log_flush_interval_messages: int = config_key("log.flush.interval.messages", parse_int, topic="flush.messages")
    log_flush_interval_ms: int | None = config_key("log.flush.interval.ms", parse_int, topic="flush.ms")
    log_flush_scheduler_interval_ms: int = config_key(
        "log.flush.scheduler.interval.ms", parse_int, str(LONG_MAX), minimum=0,
        doc="How often the flusher checks whether a partition needs a flush")
    log_flush_offset_checkpoint_interval_ms: int = config_key(
        "log.flush.offset.checkpoint.interval.ms", parse_int, "60000", minimum=0,
        doc="How often the recovery point checkpoint is written")
    log_retention_hours: int = config_key("log.retention.hours", parse_int, "168", minimum=-1,
                                          doc="Delete segments older than this many hours (-1: keep forever)")
    log_retention_minutes: int | None = config_key("log.retention.minutes", parse_int, None, minimum=-1,
                                                   doc="Delete segments older than this many minutes (beats hours)")
    log_retention_ms: int | None = config_key("log.retention.ms", parse_int, None, topic="retention.ms",
                                              doc="Delete segments older than this (wins over minutes and hours; "
                                                  "-1: keep forever)")
    log_retention_bytes: int = config_key("log.retention.bytes", parse_int, minimum=-1, topic="retention.bytes")
    log_retention_check_interval_ms: int = config_key(
        "log.retention.check.interval.ms", parse_int, "300000", minimum=1,
        doc="How often retention is applied")
    log_cleanup_policy: str = config_key("log.cleanup.policy", str, topic="cleanup.policy")
    log_cleaner_enable: bool = config_key("log.cleaner.enable", parse_bool, "true",
                                          doc="Run the log cleaner that compacts topics with the compact policy")
    log_cleaner_backoff_ms: int = config_key("log.cleaner.backoff.ms", parse_int, "15000", minimum=0,
                                             doc="How long the cleaner sleeps when no log needs cleaning")
    log_cleaner_dedupe_buffer_size: int = config_key(
        "log.cleaner.dedupe.buffer.size", parse_int, "134217728", minimum=0,
        doc="The memory the cleaner uses for its key map")
    log_cleaner_io_buffer_size: int = config_key("log.cleaner.io.buffer.size", parse_int, "524288", minimum=0,
                                                 doc="The cleaner's read and write buffer size")
    log_cleaner_io_buffer_load_factor: float = config_key(
        "log.cleaner.io.buffer.load.factor", parse_float, "0.9", minimum=0,
        doc="How full the cleaner's key map may get")
    log_cleaner_min_cleanable_ratio: float = config_key(
        "log.cleaner.min.cleanable.ratio", parse_float, topic="min.cleanable.dirty.ratio")
    log_cleaner_delete_retention_ms: int = config_key(
        "log.cleaner.delete.retention.ms", parse_int, topic="delete.retention.ms")
    log_cleaner_min_compaction_lag_ms: int = config_key(
        "log.cleaner.min.compaction.lag.ms", parse_int, topic="min.compaction.lag.ms")
    log_cleaner_max_compaction_lag_ms: int = config_key(
        "log.cleaner.max.compaction.lag.ms", parse_int, topic="max.compaction.lag.ms")
    log_message_timestamp_type: str = config_key(
        "log.message.timestamp.type", parse_timestamp_type, topic="message.timestamp.type")
    log_message_timestamp_before_max_ms: int = config_key(
        "log.message.timestamp.before.max.ms", parse_int, topic="message.timestamp.before.max.ms")
    log_message_timestamp_after_max_ms: int = config_key(
        "log.message.timestamp.after.max.ms", parse_int, topic="message.timestamp.after.max.ms")
    log_message_timestamp_difference_max_ms: int = config_key(
        "log.message.timestamp.difference.max.ms", parse_int, topic="message.timestamp.difference.max.ms")
    message_max_bytes: int = config_key("message.max.bytes", parse_int, topic="max.message.bytes",
                                        doc="The largest record batch the broker accepts")
    socket_request_max_bytes: int = config_key("socket.request.max.bytes", parse_int, "104857600", minimum=1,
                                               doc="The largest request the broker reads")
    socket_send_buffer_bytes: int = config_key("socket.send.buffer.bytes", parse_int, "102400", minimum=-1,
                                               doc="SO_SNDBUF of client connections; -1: the OS default")
    socket_receive_buffer_bytes: int = config_key("socket.receive.buffer.bytes", parse_int, "102400", minimum=-1,
                                                  doc="SO_RCVBUF of client connections (set on the listener); -1: "
                                                      "the OS default")
    # Lowered at run time, they refuse new connections; open ones stay (Kafka's ConnectionQuotas).
    max_connections: int = config_key("max.connections", parse_int, str(INT_MAX), minimum=0,
                                      doc="The most client connections the broker holds open",
                                      mode=UpdateMode.CLUSTER_WIDE)
    max_connections_per_ip: int = config_key("max.connections.per.ip", parse_int, str(INT_MAX), minimum=0,
                                             doc="The most connections from one IP address",
                                             mode=UpdateMode.CLUSTER_WIDE)
    max_connections_per_ip_overrides: tuple[tuple[str, int], ...] = config_key(
        "max.connections.per.ip.overrides", parse_connection_overrides, "",
        doc="Per-address limits instead of max.connections.per.ip: host:count, comma-separated",
        mode=UpdateMode.CLUSTER_WIDE)
    connections_max_idle_ms: int = config_key("connections.max.idle.ms", parse_int, "600000", minimum=-1,
                                              doc="Close a connection idle this long; negative: never")
    queued_max_requests: int = config_key("queued.max.requests", parse_int, "500", minimum=1,
                                          doc="The most requests read ahead of their answers, per connection in "
                                              "kbroker")
    offsets_topic_num_partitions: int = config_key("offsets.topic.num.partitions", parse_int, "50", minimum=1,
                                                   doc="The partitions of __consumer_offsets")
    group_initial_rebalance_delay_ms: int = config_key(
        "group.initial.rebalance.delay.ms", parse_int, "3000", minimum=0,
        doc="How long a new classic group waits for more members before its first rebalance")
    group_min_session_timeout_ms: int = config_key("group.min.session.timeout.ms", parse_int, "6000", minimum=0,
                                                   doc="The least session timeout a classic group member may ask for")
    group_max_session_timeout_ms: int = config_key("group.max.session.timeout.ms", parse_int, "1800000", minimum=0,
                                                   doc="The most session timeout a classic group member may ask for")
    group_max_size: int = config_key("group.max.size", parse_int, str(INT_MAX), minimum=1,
                                     doc="The most members of a classic group")
    offsets_retention_minutes: int = config_key("offsets.retention.minutes", parse_int, "10080", minimum=1,
                                                doc="How long the committed offsets of an empty group are kept")
    offsets_retention_check_interval_ms: int = config_key(
        "offsets.retention.check.interval.ms", parse_int, "600000", minimum=1,
        doc="How often expired offsets are removed")
    offset_metadata_max_bytes: int = config_key("offset.metadata.max.bytes", parse_int, "4096", minimum=0,
                                                doc="The largest metadata string of a committed offset")
    offsets_topic_segment_bytes: int = config_key("offsets.topic.segment.bytes", parse_int, "104857600", minimum=14,
                                                  doc="The segment size of __consumer_offsets")
    group_consumer_heartbeat_interval_ms: int = config_key(
        "group.consumer.heartbeat.interval.ms", parse_int, "5000", minimum=1,
        doc="The heartbeat interval of consumer group (KIP-848) members")
    group_consumer_min_heartbeat_interval_ms: int = config_key(
        "group.consumer.min.heartbeat.interval.ms", parse_int, "5000", minimum=1,
        doc="The least heartbeat interval of consumer group members")
    group_consumer_max_heartbeat_interval_ms: int = config_key(
        "group.consumer.max.heartbeat.interval.ms", parse_int, "15000", minimum=1,
        doc="The most heartbeat interval of consumer group members")
    group_consumer_session_timeout_ms: int = config_key(
        "group.consumer.session.timeout.ms", parse_int, "45000", minimum=1,
        doc="The session timeout of consumer group (KIP-848) members")
    group_consumer_min_session_timeout_ms: int = config_key(
        "group.consumer.min.session.timeout.ms", parse_int, "45000", minimum=1,
        doc="The least session timeout of consumer group members")
    group_consumer_max_session_timeout_ms: int = config_key(
        "group.consumer.max.session.timeout.ms", parse_int, "60000", minimum=1,
        doc="The most session timeout of consumer group members")
    group_consumer_max_size: int = config_key("group.consumer.max.size", parse_int, str(INT_MAX), minimum=1,
                                              doc="The most members of a consumer group")
    group_consumer_assignors: tuple[str, ...] = config_key(
        "group.consumer.assignors", parse_assignors, "uniform,range",
        doc="The server-side assignors (uniform, range); the first is the default")
    zookeeper_connect: str | None = config_key("zookeeper.connect", str, None,
                                               doc="host:port[/chroot] of ZooKeeper: cluster mode when set")
    zookeeper_session_timeout_ms: int = config_key("zookeeper.session.timeout.ms", parse_int, "18000", minimum=1,
                                                   doc="The ZooKeeper session timeout")
    zookeeper_connection_timeout_ms: int | None = config_key(
        "zookeeper.connection.timeout.ms", parse_int, None, minimum=1,
        doc="How long to wait for a ZooKeeper connection (unset: the session timeout)")
    broker_rack: str | None = config_key("broker.rack", str, None,
                                         doc="This broker's rack, for rack-aware replica placement")
    offsets_topic_replication_factor: int = config_key("offsets.topic.replication.factor", parse_int, "3", minimum=1,
                                                       doc="The replication factor of __consumer_offsets (at most "
                                                           "the live brokers)")
    replica_lag_time_max_ms: int = config_key("replica.lag.time.max.ms", parse_int, "30000", minimum=1,
                                              doc="A follower that has not caught up for this long leaves the ISR")
    min_insync_replicas: int = config_key("min.insync.replicas", parse_int, "1", minimum=1,
                                          doc="The fewest in-sync replicas an acks=all produce needs")
    auto_leader_rebalance_enable: bool = config_key("auto.leader.rebalance.enable", parse_bool, "true",
                                                    doc="Move leadership back to the preferred replicas")
    # SIGTERM: leave the live brokers and keep serving until leadership moved (member.py); without
    # it the session simply closes (leaders still move at once, but clients find them by retrying).
    controlled_shutdown_enable: bool = config_key("controlled.shutdown.enable", parse_bool, "true",
                                                  doc="On SIGTERM, move leadership away before leaving the cluster")
    leader_imbalance_check_interval_seconds: int = config_key(
        "leader.imbalance.check.interval.seconds", parse_int, "300", minimum=1,
        doc="How often the controller checks leadership balance")
    leader_imbalance_per_broker_percentage: int = config_key(
        "leader.imbalance.per.broker.percentage", parse_int, "10", minimum=0,
        doc="The share of misplaced leaders on a broker that triggers a rebalance")
    # ACLs: any authorizer class name switches kbroker's own authorizer on (kbroker/security/acls.py).
    authorizer_class_name: str = config_key("authorizer.class.name", str, "",
                                            doc="Any authorizer class turns ACLs on; empty: everyone may do "
                                                "everything")
    super_users: tuple[str, ...] = config_key("super.users", parse_super_users, "",
                                              doc="Principals that pass every ACL check: User:name, "
                                                  "semicolon-separated")
    allow_everyone_if_no_acl_found: bool = config_key("allow.everyone.if.no.acl.found", parse_bool, "false",
                                                      doc="Allow access to a resource that has no ACL")
    # Client quotas are measured over quota.window.num samples of quota.window.size.seconds.
    quota_window_num: int = config_key("quota.window.num", parse_int, "11", minimum=1,
                                       doc="How many samples a client quota is measured over")
    quota_window_size_seconds: int = config_key("quota.window.size.seconds", parse_int, "1", minimum=1,
                                                doc="The length of one client quota sample")
    transaction_state_log_num_partitions: int = config_key(
        "transaction.state.log.num.partitions", parse_int, "50", minimum=1,
        doc="The partitions of __transaction_state")
    transaction_state_log_segment_bytes: int = config_key(
        "transaction.state.log.segment.bytes", parse_int, "104857600", minimum=14,
        doc="The segment size of __transaction_state")
    transaction_state_log_replication_factor: int = config_key(
        "transaction.state.log.replication.factor", parse_int, "3", minimum=1,
        doc="The replication factor of __transaction_state")
    transaction_max_timeout_ms: int = config_key("transaction.max.timeout.ms", parse_int, "900000", minimum=1,
                                                 doc="The longest transaction timeout a producer may ask for")
    transactional_id_expiration_ms: int = config_key(
        "transactional.id.expiration.ms", parse_int, "604800000", minimum=1,
        doc="How long an idle transactional id is kept")
    transaction_abort_timed_out_transaction_cleanup_interval_ms: int = config_key(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms", parse_int, "10000", minimum=1,
        doc="How often timed-out transactions are aborted")
    transaction_remove_expired_transaction_cleanup_interval_ms: int = config_key(
        "transaction.remove.expired.transaction.cleanup.interval.ms", parse_int, "3600000", minimum=1,
        doc="How often expired transactional ids are removed")
    # KIP-890 part 1: a partition leader asks the coordinator before a transaction's first batch.
    transaction_partition_verification_enable: bool = config_key(
        "transaction.partition.verification.enable", parse_bool, "true",
        doc="Check with the coordinator before a transaction's first batch (KIP-890)", mode=UpdateMode.CLUSTER_WIDE)
    # Keys the user set (file or -o), as given: DescribeConfigs reports them as static.
    explicit: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # Dynamic settings as given: this broker's entity, then the cluster default (both win over `explicit`).
    dynamic_broker: Mapping[str, str] = dataclasses.field(default_factory=dict)
    dynamic_default: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # TLS and SASL settings of each listener, by listener name (`ssl.*`, `sasl.*`, `listener.name.*`).
    security: Mapping[str, ListenerSecurity] = dataclasses.field(default_factory=dict)
    # How this broker connects to the others (None: no inter-broker listener, a single node).
    inter_broker_security: InterBrokerSecurity | None = None

    @property
    def data_dir(self) -> Path:
        return Path(self.log_dirs.split(",")[0])

    @property
    def advertised(self) -> Listener:
        """The first listener's advertised endpoint: this broker's address where one is shown."""
        return self.advertised_for(self.listeners[0].name)

    def advertised_for(self, name: str | None) -> Listener:
        """Where clients of listener `name` reconnect after bootstrap (None: the first listener);
        defaults to that listener's own address (a wildcard host advertises loopback)."""
        listener = next((item for item in self.listeners if item.name == name), self.listeners[0])
        for advertised in self.advertised_listeners or ():
            if advertised.name == listener.name:
                return advertised
        host = listener.host
        return Listener(host if host not in ("", "0.0.0.0", "::") else "127.0.0.1", listener.port, listener.name)

    def security_protocol(self, name: str) -> str:
        return dict(self.listener_security_protocol_map)[name]

    @property
    def inter_broker_listener(self) -> str:
        """The listener brokers use to reach each other (Kafka's resolution of the two keys)."""
        if self.inter_broker_listener_name is not None:
            return self.inter_broker_listener_name
        return self.security_inter_broker_protocol or "PLAINTEXT"

    @property
    def effective_zookeeper_connection_timeout_ms(self) -> int:
        return self.zookeeper_connection_timeout_ms or self.zookeeper_session_timeout_ms

    @property
    def effective_log_roll_ms(self) -> int:
        """log.roll.ms, else log.roll.hours (Kafka's resolution)."""
        return self.log_roll_ms if self.log_roll_ms is not None else self.log_roll_hours * 3_600_000

    @property
    def effective_log_retention_ms(self) -> int:
        """log.retention.ms, else .minutes, else .hours; -1 in any of them keeps forever."""
        if self.log_retention_ms is not None:
            return self.log_retention_ms
        if self.log_retention_minutes is not None:
            return self.log_retention_minutes * 60_000 if self.log_retention_minutes >= 0 else -1
        return self.log_retention_hours * 3_600_000 if self.log_retention_hours >= 0 else -1

    def log_defaults(self) -> LogConfig:
        """Topic-level defaults: what a topic without overrides gets (Kafka's synonyms)."""
        values = {key.topic: value for key in BROKER_CONFIGS
                  if key.topic is not None and (value := getattr(self, key.attribute)) is not None}
        values["segment.ms"] = self.effective_log_roll_ms
        values["retention.ms"] = self.effective_log_retention_ms
        return LogConfig.from_values(values)

    def value_text(self, name: str) -> str | None:
        """The effective value of a broker key as Kafka would print it."""
        for layer in (self.dynamic_broker, self.dynamic_default, self.explicit):
            if name in layer:
                return layer[name]
        key = BROKER_KEYS[name]
        return key.text(getattr(self, key.attribute))

    def with_dynamic(self, per_broker: Mapping[str, str], default: Mapping[str, str]) -> Config:
        """This config with these dynamic settings in force instead of the ones it had (a key in
        neither falls back to its static value, else its default); ConfigError for a key that
        cannot change at run time or a value that does not parse."""
        static = sorted({name for name in (*per_broker, *default)
                         if name not in BROKER_KEYS or not BROKER_KEYS[name].dynamic})
        if static:
            raise ConfigError(f"Cannot update these configs dynamically: Set({', '.join(static)})")
        per_broker_only = sorted(name for name in default if BROKER_KEYS[name].mode is UpdateMode.PER_BROKER)
        if per_broker_only:
            raise ConfigError("Cannot update these configs at default cluster level, broker id must be specified: "
                              f"Set({', '.join(per_broker_only)})")
        values = {}
        for key in BROKER_CONFIGS:
            if key.dynamic:
                text = per_broker.get(key.name, default.get(key.name, self.explicit.get(key.name)))
                values[key.attribute] = key.default if text is None else key.parse_text(text)
        config = dataclasses.replace(self, **values, dynamic_broker=dict(per_broker), dynamic_default=dict(default))
        _check(config)
        return config


# Every broker key we understand, in declaration order, derived from the fields of Config.
BROKER_CONFIGS: tuple[ConfigKey, ...] = tuple(
    dataclasses.replace(field.metadata["key"], attribute=field.name)
    for field in dataclasses.fields(Config) if "key" in field.metadata)
BROKER_KEYS: dict[str, ConfigKey] = {k.name: k for k in BROKER_CONFIGS}
# Topic config name -> the broker config that sets its default (Kafka's ServerTopicConfigSynonyms).
BROKER_SYNONYMS: dict[str, str] = {k.topic: k.name for k in BROKER_CONFIGS if k.topic is not None}


def build_config(settings: Mapping[str, str]) -> Config:
    """Parse Kafka-named settings (later entries already override earlier ones)."""
    resolved: dict[str, str] = {}
    security: dict[str, str] = {}
    for name, text in settings.items():
        if name in BROKER_KEYS:
            resolved[name] = text
        elif name in _ALIASES:
            resolved.setdefault(_ALIASES[name], text)
        elif is_security_key(name):
            security[name] = text
        elif name in IGNORED_KEYS:
            log.debug("config %s is not used by a single-node kbroker; ignored", name)
        else:
            log.warning("unknown config %s=%s ignored", name, text)
    values = {key.attribute: key.parse_text(resolved[key.name]) for key in BROKER_CONFIGS if key.name in resolved}
    config = Config(**values, explicit=dict(resolved))
    listeners = _listener_security(config, security)
    config = dataclasses.replace(config, security=listeners,
                                 inter_broker_security=_inter_broker_security(config, listeners, security))
    _check(config)
    return config


def _check(config: Config) -> None:
    """What Kafka checks across keys (at start-up and for each dynamic change)."""
    try:
        config.log_defaults()
    except KafkaError as exc:
        raise ConfigError(exc.message) from exc
    _check_group_ranges(config)
    if config.max_connections_per_ip == 0 and not config.max_connections_per_ip_overrides:
        raise ConfigError("max.connections.per.ip can be set to zero only if "
                          "max.connections.per.ip.overrides property is set.")


def _listener_security(config: Config, settings: Mapping[str, str]) -> dict[str, ListenerSecurity]:
    """Check the listener keys against each other and read each listener's TLS / SASL settings."""
    protocols = dict(config.listener_security_protocol_map)
    for listener in (*config.listeners, *(config.advertised_listeners or ())):
        if listener.name not in protocols:
            raise ConfigError(f"listener {listener.name} has no security protocol: name it in "
                              "listener.security.protocol.map")
    names = {listener.name for listener in config.listeners}
    unknown = [item.name for item in config.advertised_listeners or () if item.name not in names]
    if unknown:
        raise ConfigError(f"advertised.listeners names {', '.join(unknown)}, which listeners does not define")
    if config.inter_broker_listener_name is not None and config.security_inter_broker_protocol is not None:
        raise ConfigError("Only one of inter.broker.listener.name and security.inter.broker.protocol should be set.")
    inter_broker = config.inter_broker_listener
    explicit = config.inter_broker_listener_name or config.security_inter_broker_protocol
    if (explicit or config.zookeeper_connect) and inter_broker not in names:
        raise ConfigError(f"inter.broker.listener.name must be a listener name defined in listeners: "
                          f"{inter_broker} is not one of {', '.join(sorted(names))}")
    try:
        return {listener.name: listener_security(listener.name, protocols[listener.name], settings)
                for listener in config.listeners}
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def _inter_broker_security(config: Config, listeners: Mapping[str, ListenerSecurity],
                           settings: Mapping[str, str]) -> InterBrokerSecurity | None:
    listener = listeners.get(config.inter_broker_listener)
    if listener is None:
        return None
    try:
        return inter_broker_security(listener, settings)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def _check_group_ranges(config: Config) -> None:
    """Kafka refuses to start when a group timeout lies outside its own min/max."""
    for name, low, high in (
        ("group.consumer.heartbeat.interval.ms", "group.consumer.min.heartbeat.interval.ms",
         "group.consumer.max.heartbeat.interval.ms"),
        ("group.consumer.session.timeout.ms", "group.consumer.min.session.timeout.ms",
         "group.consumer.max.session.timeout.ms"),
    ):
        value, minimum, maximum = (getattr(config, BROKER_KEYS[n].attribute) for n in (name, low, high))
        if not minimum <= value <= maximum:
            raise ConfigError(f"{name}={value} must be between {low}={minimum} and {high}={maximum}")
    if config.group_consumer_heartbeat_interval_ms >= config.group_consumer_session_timeout_ms:
        raise ConfigError("group.consumer.heartbeat.interval.ms must be less than group.consumer.session.timeout.ms")
