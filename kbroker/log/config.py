"""Per-topic log configuration under Kafka's topic-config names (segment.bytes, retention.ms, ...).

A `LogConfig` is the broker defaults with a topic's overrides applied. Overrides arrive as text
(CreateTopics, AlterConfigs) and are validated here as Kafka validates them, failing with
INVALID_CONFIG. Topic configs Kafka knows but a single-node log has no use for (min.insync.replicas,
compression.type, ...) are accepted and stored so that tools setting them keep working.

Each topic config is declared once: the ones the log acts on as `LogConfig` fields made by
`_topic()` (name, value type with its bounds, default, doc), the stored ones as `TopicKey`s;
`TOPIC_CONFIGS` collects both. The broker keys that set their defaults (kbroker/config.py) take
default, minimum and doc from here.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from kbroker.errors import ErrorCode, KafkaError

LONG_MAX = 2**63 - 1
INT_MAX = 2**31 - 1

CREATE_TIME = "CreateTime"
LOG_APPEND_TIME = "LogAppendTime"


class ConfigType(IntEnum):
    """A config's type as DescribeConfigs v3+ reports it (Kafka's ConfigDef.Type)."""
    BOOLEAN = 1
    STRING = 2
    INT = 3
    LONG = 5
    DOUBLE = 6
    LIST = 7


def _invalid(name: str, text: str, why: str) -> KafkaError:
    return KafkaError(ErrorCode.INVALID_CONFIG, f"Invalid value {text} for configuration {name}: {why}")


# The value types of topic configs: `parse` takes an override's text, `check` a value already
# typed (the broker setting a topic config falls back to); both fail as Kafka's ConfigDef does.

@dataclass(frozen=True, slots=True)
class Number:
    minimum: int
    maximum: int = LONG_MAX
    unset_at_max: bool = False  # LONG_MAX means "not set" (flush.ms): the value is None

    @property
    def kind(self) -> ConfigType:
        return ConfigType.INT if self.maximum == INT_MAX else ConfigType.LONG

    def parse(self, name: str, text: str) -> int | None:
        try:
            value = int(text.strip())
        except ValueError:
            raise _invalid(name, text, f"Not a number of type {self.kind.name}") from None
        return self._bounded(name, value, text)

    def check(self, name: str, value: int) -> int | None:
        return self._bounded(name, value, str(value))

    def _bounded(self, name: str, value: int, text: str) -> int | None:
        if value > self.maximum:
            raise _invalid(name, text, f"Not a number of type {self.kind.name}")
        if value < self.minimum:
            raise _invalid(name, text, f"Value must be at least {self.minimum}")
        return None if self.unset_at_max and value == LONG_MAX else value


@dataclass(frozen=True, slots=True)
class Ratio:
    kind = ConfigType.DOUBLE
    minimum = 0

    def parse(self, name: str, text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise _invalid(name, text, "Not a number of type DOUBLE") from None
        return self._bounded(name, value, text)

    def check(self, name: str, value: float) -> float:
        return self._bounded(name, value, str(value))

    @staticmethod
    def _bounded(name: str, value: float, text: str) -> float:
        if value < 0:
            raise _invalid(name, text, "Value must be at least 0.0")
        if value > 1:
            raise _invalid(name, text, "Value must be no more than 1.0")
        return value


@dataclass(frozen=True, slots=True)
class OneOf:
    choices: tuple[str, ...]
    kind = ConfigType.STRING

    def parse(self, name: str, text: str) -> str:
        if text not in self.choices:
            raise _invalid(name, text, f"String must be one of: {', '.join(self.choices)}")
        return text

    check = parse


@dataclass(frozen=True, slots=True)
class CleanupPolicy:
    kind = ConfigType.LIST

    def parse(self, name: str, text: str) -> str:
        policies = [p.strip() for p in text.split(",") if p.strip()]
        if not policies or any(p not in ("compact", "delete") for p in policies):
            raise _invalid(name, text, "[compact, delete] are the valid values")
        return ",".join(sorted(set(policies)))

    check = parse


@dataclass(frozen=True, slots=True)
class Boolean:
    kind = ConfigType.BOOLEAN

    def parse(self, name: str, text: str) -> bool:
        if text.strip().lower() not in ("true", "false"):
            raise _invalid(name, text, "Expected value to be either true or false")
        return text.strip().lower() == "true"

    def check(self, name: str, value: bool) -> bool:
        return value


@dataclass(frozen=True, slots=True)
class Text:
    kind: ConfigType = ConfigType.STRING

    def parse(self, name: str, text: str) -> str:
        return text

    check = parse


ValueType = Number | Ratio | OneOf | CleanupPolicy | Boolean | Text


@dataclass(frozen=True, slots=True)
class TopicKey:
    """One topic config: Kafka's name, its value type and default, the `LogConfig` field it sets
    (None: stored, not acted on), whether DescribeConfigs lists it when the topic does not set it,
    and its documentation."""
    name: str
    type: ValueType
    default: object
    field: str | None = None
    described: bool = True
    doc: str = ""

    def text(self, value: object) -> str:
        """The value as Kafka prints it (an unset flush.ms is LONG_MAX)."""
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(LONG_MAX if value is None else value)


def _topic(name: str, value_type: ValueType, default: Any, *, described: bool = True, doc: str) -> Any:
    """A `LogConfig` field declared as the topic config `name` (TOPIC_CONFIGS is derived from them)."""
    key = TopicKey(name, value_type, default, described=described, doc=doc)
    return dataclasses.field(default=default, metadata={"key": key})


@dataclass(frozen=True, slots=True)
class LogConfig:
    # Minimums are Kafka's (TopicConfig / LogConfig.java).
    segment_bytes: int = _topic("segment.bytes", Number(14, INT_MAX), 1024 * 1024 * 1024,
                                doc="The largest size of a log segment file")
    segment_ms: int = _topic("segment.ms", Number(1), 7 * 24 * 60 * 60 * 1000,
                             doc="Roll a new segment after this long, even when not full")
    segment_index_bytes: int = _topic("segment.index.bytes", Number(4, INT_MAX), 10 * 1024 * 1024,
                                      doc="The largest size of an offset or time index file")
    index_interval_bytes: int = _topic("index.interval.bytes", Number(0, INT_MAX), 4096,
                                       doc="How many bytes of log lie between two offset index entries")
    flush_interval_messages: int = _topic("flush.messages", Number(1), LONG_MAX,
                                          doc="Fsync a partition after this many messages")
    flush_interval_ms: int | None = _topic("flush.ms", Number(0, unset_at_max=True), None,
                                           doc="Fsync a partition when its oldest unflushed message is this old "
                                               "(unset: leave it to the OS)")
    max_message_bytes: int = _topic("max.message.bytes", Number(0, INT_MAX), 1024 * 1024 + 12,
                                    doc="The largest record batch accepted")
    message_timestamp_type: str = _topic("message.timestamp.type", OneOf((CREATE_TIME, LOG_APPEND_TIME)), CREATE_TIME,
                                         doc="CreateTime (the producer's timestamp) or LogAppendTime (the broker's)")
    retention_ms: int = _topic("retention.ms", Number(-1), 7 * 24 * 60 * 60 * 1000,
                               doc="Delete segments older than this (-1: keep forever)")
    retention_bytes: int = _topic("retention.bytes", Number(-(2**63)), -1,
                                  doc="Delete old segments while a partition is larger than this (-1: no limit)")
    cleanup_policy: str = _topic("cleanup.policy", CleanupPolicy(), "delete",
                                 doc="delete, compact or compact,delete: what happens to old segments")
    delete_retention_ms: int = _topic("delete.retention.ms", Number(0), 24 * 60 * 60 * 1000,
                                      doc="How long a tombstone stays readable after it is cleaned")
    min_cleanable_dirty_ratio: float = _topic("min.cleanable.dirty.ratio", Ratio(), 0.5,
                                              doc="The least share of dirty log for a partition to be cleaned")
    min_compaction_lag_ms: int = _topic("min.compaction.lag.ms", Number(0), 0,
                                        doc="The least time a message stays uncompacted")
    max_compaction_lag_ms: int = _topic("max.compaction.lag.ms", Number(1), LONG_MAX,
                                        doc="The most time a message may stay uncompacted")
    message_timestamp_before_max_ms: int = _topic("message.timestamp.before.max.ms", Number(0), LONG_MAX,
                                                  doc="How far behind the broker's clock a CreateTime may be")
    message_timestamp_after_max_ms: int = _topic("message.timestamp.after.max.ms", Number(0), LONG_MAX,
                                                 doc="How far ahead of the broker's clock a CreateTime may be")
    # Deprecated: stands in for an unset before/after; described only when set (Kafka 4 dropped it).
    message_timestamp_difference_max_ms: int = _topic(
        "message.timestamp.difference.max.ms", Number(0), LONG_MAX, described=False,
        doc="Deprecated: stands in for an unset before.max.ms / after.max.ms")

    @property
    def log_append_time(self) -> bool:
        return self.message_timestamp_type == LOG_APPEND_TIME

    def create_time_window_ms(self) -> tuple[int, int] | None:
        """How far (before, after) the broker's clock a CreateTime record's timestamp may lie
        (KIP-937, Kafka's LogConfig), or None when any timestamp goes."""
        before, after = self.message_timestamp_before_max_ms, self.message_timestamp_after_max_ms
        before = self.message_timestamp_difference_max_ms if before == LONG_MAX else before
        after = self.message_timestamp_difference_max_ms if after == LONG_MAX else after
        if self.log_append_time or (before == LONG_MAX and after == LONG_MAX):
            return None
        return before, after

    @property
    def deletes_old_segments(self) -> bool:
        return "delete" in self.cleanup_policy.split(",")

    @property
    def compact(self) -> bool:
        return "compact" in self.cleanup_policy.split(",")

    @classmethod
    def from_topic_configs(cls, overrides: Mapping[str, str], broker_defaults: LogConfig) -> LogConfig:
        """`broker_defaults` with the topic's overrides applied; INVALID_CONFIG if one is bad."""
        changes = {}
        for name, text in overrides.items():
            key = TOPIC_CONFIGS.get(name)
            if key is None:
                raise KafkaError(ErrorCode.INVALID_CONFIG, f"Unknown topic config name: {name}")
            value = key.type.parse(name, text)
            if key.field is not None:
                changes[key.field] = value
        return dataclasses.replace(broker_defaults, **changes)

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> LogConfig:
        """A LogConfig from typed values by topic config name (the broker's defaults), each checked
        as an override would be; INVALID_CONFIG if one is out of range."""
        changes: dict[str, Any] = {}
        for name, value in values.items():
            key = TOPIC_CONFIGS[name]
            assert key.field is not None, f"{name} is stored, not a LogConfig field"
            changes[key.field] = key.type.check(name, value)
        return cls(**changes)

    def topic_configs(self) -> dict[str, str]:
        """Every topic config's default-or-effective value by Kafka name (DescribeConfigs)."""
        out = {}
        for name, key in TOPIC_CONFIGS.items():
            value = key.default if key.field is None else getattr(self, key.field)
            if key.described or value != key.default:
                out[name] = key.text(value)
        return out


# Every topic config we know by Kafka name: the LogConfig fields, then those Kafka knows that this log
# stores but does not act on (with Kafka's default; not described: Kafka 4 no longer has it, but older
# tools still set it).
TOPIC_CONFIGS: dict[str, TopicKey] = {key.name: key for key in (
    *(dataclasses.replace(f.metadata["key"], field=f.name) for f in dataclasses.fields(LogConfig)),
    TopicKey("compression.type", OneOf(("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer")), "producer",
             doc="The topic's compression; kbroker keeps batches as the producer sent them"),
    TopicKey("file.delete.delay.ms", Number(0), 60000,
             doc="How long a deleted segment file lingers (stored, not acted on)"),
    TopicKey("follower.replication.throttled.replicas", Text(ConfigType.LIST), "",
             doc="Replicas throttled on the follower side (stored, not acted on)"),
    TopicKey("leader.replication.throttled.replicas", Text(ConfigType.LIST), "",
             doc="Replicas throttled on the leader side (stored, not acted on)"),
    TopicKey("local.retention.bytes", Number(-2), -2,
             doc="Tiered storage's local retention (stored, not acted on)"),
    TopicKey("local.retention.ms", Number(-2), -2,
             doc="Tiered storage's local retention (stored, not acted on)"),
    TopicKey("message.downconversion.enable", Boolean(), True, described=False,
             doc="Removed in Kafka 4 (stored, not acted on)"),
    TopicKey("message.format.version", Text(), "", described=False,
             doc="Removed in Kafka 4 (stored, not acted on)"),
    TopicKey("min.insync.replicas", Number(1, INT_MAX), 1,
             doc="The fewest in-sync replicas an acks=all produce needs"),
    TopicKey("preallocate", Boolean(), False,
             doc="Preallocate segment files (stored, not acted on)"),
    TopicKey("remote.storage.enable", Boolean(), False,
             doc="Tiered storage (stored, not acted on)"),
    TopicKey("segment.jitter.ms", Number(0), 0,
             doc="A random jitter on segment.ms (stored, not acted on)"),
    TopicKey("unclean.leader.election.enable", Boolean(), False,
             doc="Let an out-of-sync replica become leader (stored, not acted on)"),
)}
