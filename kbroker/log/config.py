"""Per-topic log configuration under Kafka's topic-config names (segment.bytes, retention.ms, ...).

A `LogConfig` is the broker defaults with a topic's overrides applied. Overrides arrive as text
(CreateTopics, AlterConfigs) and are validated here as Kafka validates them, failing with
INVALID_CONFIG. Topic configs Kafka knows but a single-node log has no use for (min.insync.replicas,
compression.type, ...) are accepted and stored so that tools setting them keep working.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kbroker.errors import ErrorCode, KafkaError

LONG_MAX = 2**63 - 1
INT_MAX = 2**31 - 1

CREATE_TIME = "CreateTime"
LOG_APPEND_TIME = "LogAppendTime"


@dataclass(frozen=True, slots=True)
class LogConfig:
    segment_bytes: int = 1024 * 1024 * 1024
    segment_ms: int = 7 * 24 * 60 * 60 * 1000
    segment_index_bytes: int = 10 * 1024 * 1024
    index_interval_bytes: int = 4096
    flush_interval_messages: int = LONG_MAX
    flush_interval_ms: int | None = None  # None: leave flushing to the OS
    max_message_bytes: int = 1024 * 1024 + 12
    message_timestamp_type: str = CREATE_TIME
    retention_ms: int = 7 * 24 * 60 * 60 * 1000  # -1: keep forever
    retention_bytes: int = -1  # -1: no size limit
    cleanup_policy: str = "delete"  # "delete", "compact" or "compact,delete"
    delete_retention_ms: int = 24 * 60 * 60 * 1000  # how long a cleaned tombstone stays readable
    min_cleanable_dirty_ratio: float = 0.5
    min_compaction_lag_ms: int = 0
    max_compaction_lag_ms: int = LONG_MAX
    message_timestamp_before_max_ms: int = LONG_MAX
    message_timestamp_after_max_ms: int = LONG_MAX
    message_timestamp_difference_max_ms: int = LONG_MAX  # deprecated: stands in for an unset before/after

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
            if name in _TYPED:
                field, parse = _TYPED[name]
                changes[field] = parse(name, text)
            elif name in _ACCEPTED:
                _ACCEPTED[name][0](name, text)
            else:
                raise KafkaError(ErrorCode.INVALID_CONFIG, f"Unknown topic config name: {name}")
        return dataclasses.replace(broker_defaults, **changes)

    @classmethod
    def from_broker_configs(cls, settings: Mapping[str, str]) -> LogConfig:
        """Broker defaults from broker-level names (log.segment.bytes, ...); others are ignored."""
        overrides = {topic: settings[broker] for topic, broker in BROKER_SYNONYMS.items() if broker in settings}
        return cls.from_topic_configs(overrides, cls())

    def topic_configs(self) -> dict[str, str]:
        """Every topic config's default-or-effective value by Kafka name (DescribeConfigs)."""
        out = {name: default for name, (_, default) in _ACCEPTED.items() if default is not None}
        for name, (field, _) in _TYPED.items():
            value = getattr(self, field)
            if name not in _DEPRECATED or value != LONG_MAX:
                out[name] = str(LONG_MAX if value is None else value)
        return out


def _invalid(name: str, text: str, why: str) -> KafkaError:
    return KafkaError(ErrorCode.INVALID_CONFIG, f"Invalid value {text} for configuration {name}: {why}")


def _number(minimum: int, maximum: int = LONG_MAX) -> Callable[[str, str], int]:
    kind = "INT" if maximum == INT_MAX else "LONG"

    def parse(name: str, text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise _invalid(name, text, f"Not a number of type {kind}") from None
        if value > maximum:
            raise _invalid(name, text, f"Not a number of type {kind}")
        if value < minimum:
            raise _invalid(name, text, f"Value must be at least {minimum}")
        return value

    return parse


def _optional_ms(name: str, text: str) -> int | None:
    value = _number(0)(name, text)
    return None if value == LONG_MAX else value


def _ratio(name: str, text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise _invalid(name, text, "Not a number of type DOUBLE") from None
    if value < 0:
        raise _invalid(name, text, "Value must be at least 0.0")
    if value > 1:
        raise _invalid(name, text, "Value must be no more than 1.0")
    return value


def _one_of(*choices: str) -> Callable[[str, str], str]:
    def parse(name: str, text: str) -> str:
        if text not in choices:
            raise _invalid(name, text, f"String must be one of: {', '.join(choices)}")
        return text

    return parse


def _cleanup_policy(name: str, text: str) -> str:
    policies = [p.strip() for p in text.split(",") if p.strip()]
    if not policies or any(p not in ("compact", "delete") for p in policies):
        raise _invalid(name, text, "[compact, delete] are the valid values")
    return ",".join(sorted(set(policies)))


def _boolean(name: str, text: str) -> bool:
    if text.strip().lower() not in ("true", "false"):
        raise _invalid(name, text, "Expected value to be either true or false")
    return text.strip().lower() == "true"


def _text(name: str, text: str) -> str:
    return text


# Kafka name -> (LogConfig field, parser). Minimums are Kafka's (TopicConfig / LogConfig.java).
_TYPED: dict[str, tuple[str, Callable[[str, str], object]]] = {
    "segment.bytes": ("segment_bytes", _number(14, INT_MAX)),
    "segment.ms": ("segment_ms", _number(1)),
    "segment.index.bytes": ("segment_index_bytes", _number(4, INT_MAX)),
    "index.interval.bytes": ("index_interval_bytes", _number(0, INT_MAX)),
    "flush.messages": ("flush_interval_messages", _number(1)),
    "flush.ms": ("flush_interval_ms", _optional_ms),
    "max.message.bytes": ("max_message_bytes", _number(0, INT_MAX)),
    "message.timestamp.type": ("message_timestamp_type", _one_of(CREATE_TIME, LOG_APPEND_TIME)),
    "retention.ms": ("retention_ms", _number(-1)),
    "retention.bytes": ("retention_bytes", _number(-(2**63))),
    "cleanup.policy": ("cleanup_policy", _cleanup_policy),
    "delete.retention.ms": ("delete_retention_ms", _number(0)),
    "min.cleanable.dirty.ratio": ("min_cleanable_dirty_ratio", _ratio),
    "min.compaction.lag.ms": ("min_compaction_lag_ms", _number(0)),
    "max.compaction.lag.ms": ("max_compaction_lag_ms", _number(1)),
    "message.timestamp.before.max.ms": ("message_timestamp_before_max_ms", _number(0)),
    "message.timestamp.after.max.ms": ("message_timestamp_after_max_ms", _number(0)),
    "message.timestamp.difference.max.ms": ("message_timestamp_difference_max_ms", _number(0)),
}

# Acted on when set, but described only then: Kafka 4 no longer has them.
_DEPRECATED = frozenset({"message.timestamp.difference.max.ms"})

# The broker config that sets each topic config's default (Kafka's ServerTopicConfigSynonyms).
BROKER_SYNONYMS: dict[str, str] = {
    "segment.bytes": "log.segment.bytes",
    "segment.ms": "log.roll.ms",
    "segment.index.bytes": "log.index.size.max.bytes",
    "index.interval.bytes": "log.index.interval.bytes",
    "flush.messages": "log.flush.interval.messages",
    "flush.ms": "log.flush.interval.ms",
    "max.message.bytes": "message.max.bytes",
    "message.timestamp.type": "log.message.timestamp.type",
    "retention.ms": "log.retention.ms",
    "retention.bytes": "log.retention.bytes",
    "cleanup.policy": "log.cleanup.policy",
    "delete.retention.ms": "log.cleaner.delete.retention.ms",
    "min.cleanable.dirty.ratio": "log.cleaner.min.cleanable.ratio",
    "min.compaction.lag.ms": "log.cleaner.min.compaction.lag.ms",
    "max.compaction.lag.ms": "log.cleaner.max.compaction.lag.ms",
    "message.timestamp.before.max.ms": "log.message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms": "log.message.timestamp.after.max.ms",
    "message.timestamp.difference.max.ms": "log.message.timestamp.difference.max.ms",
}

# Topic configs Kafka knows that this log stores but does not act on: parser and Kafka's
# default (None: Kafka 4 no longer describes it, but older tools still set it).
_ACCEPTED: dict[str, tuple[Callable[[str, str], object], str | None]] = {
    "compression.type": (_one_of("uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"), "producer"),
    "file.delete.delay.ms": (_number(0), "60000"),
    "follower.replication.throttled.replicas": (_text, ""),
    "leader.replication.throttled.replicas": (_text, ""),
    "local.retention.bytes": (_number(-2), "-2"),
    "local.retention.ms": (_number(-2), "-2"),
    "message.downconversion.enable": (_boolean, None),
    "message.format.version": (_text, None),
    "min.insync.replicas": (_number(1, INT_MAX), "1"),
    "preallocate": (_boolean, "false"),
    "remote.storage.enable": (_boolean, "false"),
    "segment.jitter.ms": (_number(0), "0"),
    "unclean.leader.election.enable": (_boolean, "false"),
}
