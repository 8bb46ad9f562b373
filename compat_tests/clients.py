"""One adapter per real client, so that a compat test reads as the flow it checks.

Every adapter drives its client with the client's **default settings**; the few settings we
change are named where they are changed, with the reason (a client-side limit, a required
setting such as librdkafka's `group.id`, or the thing under test such as `acks`).

    produce(bootstrap, topic, records, compression=..., acks=..., idempotent=...) -> [Delivery]
    consume(bootstrap, topic, {partition: (start, stop)})                       -> [Received]
    offsets_for_times / earliest / latest                                       -> {partition: ...}
    admin(bootstrap) -> Admin: create/delete topics, configs, partitions, records, cluster,
                               leader elections, log dirs

`Record` is what a test sends, `Received` is what a client read back; `Received.sent()` turns
the latter into the former so a test compares whole records. Consumers read with manual
assignment (no group) from an explicit offset.

kcat (librdkafka 2.0.2) is driven as a subprocess: it produces from delimited input (one run
per partition and header set, since `-p` and `-H` apply to a whole run) and consumes with
`-J` (JSON lines: control bytes are escaped, other bytes are raw, so the output is decoded
with surrogateescape to get every byte back). It cannot set per-record timestamps, has no
admin API and reports no offsets, which `Kcat` declares in its capability flags.
"""
from __future__ import annotations

import asyncio
import copy
import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Headers = tuple[tuple[str, bytes | None], ...]

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")

# Kafka's DescribeConfigs ConfigSource enum (DescribeConfigsResponse.json).
CONFIG_SOURCES = {
    0: "UNKNOWN", 1: "DYNAMIC_TOPIC_CONFIG", 2: "DYNAMIC_BROKER_CONFIG",
    3: "DYNAMIC_DEFAULT_BROKER_CONFIG", 4: "STATIC_BROKER_CONFIG", 5: "DEFAULT_CONFIG",
    6: "DYNAMIC_BROKER_LOGGER_CONFIG", 7: "CLIENT_METRICS_CONFIG", 8: "GROUP_CONFIG",
}

DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class Record:
    """A record as a test sends it. timestamp None = the client stamps it (CreateTime)."""
    partition: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    timestamp: int | None = None


@dataclass(frozen=True, slots=True)
class Received:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp: int
    timestamp_type: str  # "CreateTime" | "LogAppendTime"

    def sent(self, with_timestamp: bool = True) -> Record:
        return Record(self.partition, self.key, self.value, self.headers,
                      self.timestamp if with_timestamp else None)


@dataclass(frozen=True, slots=True)
class Delivery:
    """The producer's report for one record, in the order the records were given."""
    partition: int
    offset: int | None          # None: the client cannot know (acks=0, kcat)
    error_code: int | None = None
    error: str = ""
    timestamp: int | None = None  # from the delivery report, where the client gives one


class KafkaError(Exception):
    """A Kafka error as a client surfaced it: the Kafka error code and the client's text."""

    def __init__(self, code: int | None, text: str) -> None:
        super().__init__(f"[{code}] {text}")
        self.code = code
        self.text = text


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    value: str | None
    source: str          # a CONFIG_SOURCES name
    read_only: bool
    sensitive: bool


@dataclass(frozen=True, slots=True)
class Cluster:
    cluster_id: str | None
    controller_id: int | None
    brokers: tuple[tuple[int, str, int], ...]  # (node id, host, port)


class ConsumeTimeout(AssertionError):
    def __init__(self, message: str, received: list[Received]) -> None:
        super().__init__(message)
        self.received = received


def _check_ranges(received: list[Received], ranges: dict[int, tuple[int, int]], client: str,
                  topic: str, started: float, timeout: float, compacted: bool = False) -> None:
    got: dict[int, int] = {}
    last: dict[int, int] = {}
    for r in received:
        got[r.partition] = got.get(r.partition, 0) + 1
        last[r.partition] = max(last.get(r.partition, -1), r.offset)
    # A compacted log has offset gaps: there the read is whole once the range's last offset came.
    missing = {p: (start, stop, got.get(p, 0)) for p, (start, stop) in ranges.items()
               if (last.get(p, -1) < stop - 1 if compacted else got.get(p, 0) < stop - start)}
    if missing:
        detail = ", ".join(f"p{p}: {n} of [{a},{b})" for p, (a, b, n) in sorted(missing.items()))
        raise ConsumeTimeout(f"{client} read {len(received)} records from {topic} in "
                             f"{time.monotonic() - started:.1f}s (timeout {timeout}s); short: {detail}",
                             received)


class Client:
    name = ""
    # Settings (in the client's own names) merged into every producer and consumer the adapter
    # builds: security.protocol, SASL, TLS. See `with_settings`.
    settings: dict = {}
    has_admin = True
    explicit_timestamps = True
    null_header_values = True
    null_key_and_value = True   # a record with neither key nor value
    reports_offsets = True
    idempotent_by_default = False

    def __repr__(self) -> str:
        return self.name

    def with_settings(self, **settings) -> Client:
        """This adapter with `settings` added to every client it builds."""
        clone = copy.copy(self)
        clone.settings = {**self.settings, **settings}
        return clone

    # Subclasses implement these.
    def produce(self, bootstrap: str, topic: str, records: Sequence[Record], *, compression: str = "none",
                acks: int | str | None = None, idempotent: bool | None = None,
                max_request_size: int | None = None, flush_every: int | None = None,
                timeout: float = DEFAULT_TIMEOUT) -> list[Delivery]:
        """Send `records` with one producer and wait for every delivery report.

        flush_every=k: flush after every k records (several produce requests from one producer).
        """
        raise NotImplementedError

    def consume(self, bootstrap: str, topic: str, ranges: dict[int, tuple[int, int]],
                timeout: float = DEFAULT_TIMEOUT, compacted: bool = False) -> list[Received]:
        """Records [start, stop) of each partition; `compacted`: offsets may be missing, but the one
        at stop - 1 must be there (it ends the read)."""
        raise NotImplementedError

    def offsets_for_times(self, bootstrap: str, topic: str,
                          times: dict[int, int]) -> dict[int, tuple[int, int] | None]:
        raise NotImplementedError

    def earliest(self, bootstrap: str, topic: str, partitions: Iterable[int]) -> dict[int, int]:
        raise NotImplementedError

    def latest(self, bootstrap: str, topic: str, partitions: Iterable[int]) -> dict[int, int]:
        raise NotImplementedError

    def admin(self, bootstrap: str) -> Admin:
        raise NotImplementedError


class Admin:
    """Admin operations, normalised. Errors raise KafkaError with the Kafka error code."""
    incremental_alter = True

    def close(self) -> None: ...
    def __enter__(self) -> Admin: return self
    def __exit__(self, *exc) -> None: self.close()

    def create_topic(self, name: str, partitions: int = 1, replication_factor: int = 1,
                     configs: dict[str, str] | None = None) -> None: raise NotImplementedError
    def delete_topic(self, name: str) -> None: raise NotImplementedError
    def topics(self) -> dict[str, int]: raise NotImplementedError
    def describe_cluster(self) -> Cluster: raise NotImplementedError
    def topic_configs(self, name: str) -> dict[str, ConfigEntry]: raise NotImplementedError
    def broker_configs(self, broker_id: int) -> dict[str, ConfigEntry]: raise NotImplementedError
    def alter_topic_configs(self, name: str, set_: dict[str, str], delete: Sequence[str] = ()) -> None:
        self._alter("topic", name, set_, delete)

    def alter_broker_configs(self, broker_id: int | str, set_: dict[str, str], delete: Sequence[str] = ()) -> None:
        """`broker_id` "": the cluster-wide default (Kafka's `<default>` entity)."""
        self._alter("broker", str(broker_id), set_, delete)

    def _alter(self, kind: str, name: str, set_: dict[str, str], delete: Sequence[str]) -> None:
        raise NotImplementedError
    def create_partitions(self, name: str, total: int) -> None: raise NotImplementedError
    def delete_records(self, name: str, before: dict[int, int]) -> dict[int, int]: raise NotImplementedError
    def elect_leaders(self, election_type: int, partitions: list[tuple[str, int]] | None
                      ) -> dict[tuple[str, int], int]: raise NotImplementedError  # -> error code (0: elected)
    def describe_log_dirs(self, broker_id: int) -> dict[str, dict[tuple[str, int], tuple[int, int]]]:
        raise NotImplementedError  # log dir -> {(topic, partition): (size, offset lag)}


# --------------------------------------------------------------------------- kafka-python

class KafkaPython(Client):
    name = "kafka-python"
    null_header_values = False  # KafkaProducer.send() only takes (str, bytes) headers
    null_key_and_value = False  # KafkaProducer.send(): "Need at least one: key or value"
    idempotent_by_default = True  # kafka-python 3: enable_idempotence defaults to True (with acks=all)

    def produce(self, bootstrap, topic, records, *, compression="none", acks=None, idempotent=None,
                max_request_size=None, flush_every=None, timeout=DEFAULT_TIMEOUT):
        from kafka import KafkaProducer
        from kafka.errors import KafkaError as KPError

        settings: dict = {"bootstrap_servers": bootstrap, **self.settings}
        if compression != "none":
            settings["compression_type"] = compression
        if acks is not None:
            settings["acks"] = acks
        if idempotent is not None:
            settings["enable_idempotence"] = idempotent
        if max_request_size is not None:
            settings["max_request_size"] = max_request_size
        producer = KafkaProducer(**settings)
        try:
            futures = []
            for i, r in enumerate(records, 1):
                futures.append(producer.send(topic, value=r.value, key=r.key, headers=list(r.headers),
                                             partition=r.partition, timestamp_ms=r.timestamp))
                if flush_every and i % flush_every == 0:
                    producer.flush(timeout=timeout)
            producer.flush(timeout=timeout)
            out = []
            for r, f in zip(records, futures):
                try:
                    md = f.get(timeout=timeout)
                except KPError as exc:
                    out.append(Delivery(r.partition, None, getattr(exc, "errno", None), repr(exc)))
                else:
                    out.append(Delivery(md.partition, md.offset if md.offset >= 0 else None,
                                        timestamp=md.timestamp))
            return out
        finally:
            producer.close(timeout=10)

    def _consumer(self, bootstrap):
        from kafka import KafkaConsumer
        return KafkaConsumer(bootstrap_servers=bootstrap, **self.settings)

    def consume(self, bootstrap, topic, ranges, timeout=DEFAULT_TIMEOUT, compacted=False):
        from kafka import TopicPartition
        consumer = self._consumer(bootstrap)
        started = time.monotonic()
        received: list[Received] = []
        try:
            tps = {p: TopicPartition(topic, p) for p in ranges}
            consumer.assign(list(tps.values()))
            for p, (start, _) in ranges.items():
                consumer.seek(tps[p], start)
            pending = {p for p, (start, stop) in ranges.items() if stop > start}
            while pending and time.monotonic() - started < timeout:
                for tp, batch in consumer.poll(timeout_ms=500).items():
                    _, stop = ranges[tp.partition]
                    for m in batch:
                        if m.offset < stop:
                            received.append(Received(
                                m.partition, m.offset, m.key, m.value, tuple(m.headers or ()),
                                m.timestamp, "LogAppendTime" if m.timestamp_type == 1 else "CreateTime"))
                        if m.offset >= stop - 1:
                            pending.discard(tp.partition)
        finally:
            consumer.close()
        _check_ranges(received, ranges, self.name, topic, started, timeout, compacted)
        return received

    def offsets_for_times(self, bootstrap, topic, times):
        from kafka import TopicPartition
        consumer = self._consumer(bootstrap)
        try:
            answer = consumer.offsets_for_times({TopicPartition(topic, p): ts for p, ts in times.items()})
            return {tp.partition: (None if v is None else (v.offset, v.timestamp)) for tp, v in answer.items()}
        finally:
            consumer.close()

    def earliest(self, bootstrap, topic, partitions):
        from kafka import TopicPartition
        consumer = self._consumer(bootstrap)
        try:
            answer = consumer.beginning_offsets([TopicPartition(topic, p) for p in partitions])
            return {tp.partition: o for tp, o in answer.items()}
        finally:
            consumer.close()

    def latest(self, bootstrap, topic, partitions):
        from kafka import TopicPartition
        consumer = self._consumer(bootstrap)
        try:
            answer = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
            return {tp.partition: o for tp, o in answer.items()}
        finally:
            consumer.close()

    def admin(self, bootstrap):
        return KafkaPythonAdmin(bootstrap)


def _kp_error(exc: Exception) -> KafkaError:
    return KafkaError(getattr(exc, "errno", None), f"{type(exc).__name__}: {exc}")


class KafkaPythonAdmin(Admin):
    def __init__(self, bootstrap: str) -> None:
        from kafka.admin import KafkaAdminClient
        self.client = KafkaAdminClient(bootstrap_servers=bootstrap)

    def close(self):
        self.client.close()

    def create_topic(self, name, partitions=1, replication_factor=1, configs=None):
        from kafka.errors import KafkaError as KPError
        try:
            self.client.create_topics({name: {"num_partitions": partitions,
                                              "replication_factor": replication_factor,
                                              "configs": dict(configs or {})}})
        except KPError as exc:
            raise _kp_error(exc) from exc

    def delete_topic(self, name):
        from kafka.errors import KafkaError as KPError
        try:
            self.client.delete_topics([name])
        except KPError as exc:
            raise _kp_error(exc) from exc

    def topics(self):
        return {t["name"]: len(t["partitions"]) for t in self.client.describe_topics()
                if t["error_code"] == 0}

    def describe_cluster(self):
        c = self.client.describe_cluster()
        return Cluster(c["cluster_id"], c["controller_id"],
                       tuple((b["broker_id"], b["host"], b["port"]) for b in c["brokers"]))

    def _configs(self, resource):
        from kafka.errors import KafkaError as KPError
        try:
            answer = self.client.describe_configs([resource], config_filter="all")
        except KPError as exc:
            raise _kp_error(exc) from exc
        # {resource_type: {resource_name: {config_key: {config data}}}}
        (by_name,) = answer.values()
        (entries,) = by_name.values()
        return {k: _kp_entry(v) for k, v in entries.items()}

    def topic_configs(self, name):
        from kafka.admin import ConfigResource, ConfigResourceType
        return self._configs(ConfigResource(ConfigResourceType.TOPIC, name))

    def broker_configs(self, broker_id):
        from kafka.admin import ConfigResource, ConfigResourceType
        return self._configs(ConfigResource(ConfigResourceType.BROKER, str(broker_id)))

    def _alter(self, kind, name, set_, delete):
        from kafka.admin import ConfigResource, ConfigResourceType
        from kafka.errors import KafkaError as KPError
        changes: dict = {k: ("SET", v) for k, v in set_.items()}
        changes.update({k: ("DELETE", None) for k in delete})
        resource_type = ConfigResourceType.TOPIC if kind == "topic" else ConfigResourceType.BROKER
        try:
            # raise_on_unknown=False: let the broker judge the keys (the client would look them up first)
            answer = self.client.alter_configs([ConfigResource(resource_type, name, configs=changes)],
                                               incremental=True, raise_on_unknown=False)
        except KPError as exc:
            raise _kp_error(exc) from exc
        for by_name in answer.values():
            for result in by_name.values():  # "OK" or "[Error <code>] <name>: <message>"
                if result != "OK":
                    match = re.match(r"\[Error (-?\d+)\]", str(result))
                    raise KafkaError(int(match.group(1)) if match else None, str(result))

    def create_partitions(self, name, total):
        from kafka.errors import KafkaError as KPError
        try:
            self.client.create_partitions({name: total})
        except KPError as exc:
            raise _kp_error(exc) from exc

    def delete_records(self, name, before):
        from kafka import TopicPartition
        from kafka.errors import KafkaError as KPError
        try:
            answer = self.client.delete_records({TopicPartition(name, p): o for p, o in before.items()})
        except KPError as exc:
            raise _kp_error(exc) from exc
        return {tp.partition: v["low_watermark"] if isinstance(v, dict) else v for tp, v in answer.items()}

    def elect_leaders(self, election_type, partitions):
        from kafka.errors import KafkaError as KPError
        wanted = None
        if partitions is not None:
            wanted = {}
            for topic, partition in partitions:
                wanted.setdefault(topic, []).append(partition)
        try:  # raise_errors=False: the per-partition codes are the answer
            answer = self.client.elect_leaders(election_type, wanted, raise_errors=False)
        except KPError as exc:
            raise _kp_error(exc) from exc
        return {(result.topic, p.partition_id): p.error_code
                for result in answer.replica_election_results for p in result.partition_result}

    def describe_log_dirs(self, broker_id):
        (answer,) = self.client.describe_log_dirs(brokers=[broker_id])
        return {d["log_dir"]: {(t["name"], p["partition_index"]): (p["partition_size"], p["offset_lag"])
                               for t in d["topics"] for p in t["partitions"]} for d in answer["log_dirs"]}


def _kp_entry(v: dict) -> ConfigEntry:
    # kafka-python has already turned config_source into its enum name (ConfigSourceType).
    source = v["config_source"]
    return ConfigEntry(v["value"], CONFIG_SOURCES.get(source, source) if isinstance(source, int) else source,
                       bool(v["read_only"]), bool(v["is_sensitive"]))


# --------------------------------------------------------------------------- confluent-kafka

class ConfluentKafka(Client):
    name = "confluent-kafka"

    def produce(self, bootstrap, topic, records, *, compression="none", acks=None, idempotent=None,
                max_request_size=None, flush_every=None, timeout=DEFAULT_TIMEOUT):
        from confluent_kafka import Producer
        settings = {"bootstrap.servers": bootstrap, **self.settings}
        if compression != "none":
            settings["compression.type"] = compression
        if acks is not None:
            settings["acks"] = str(acks)
        if idempotent is not None:
            settings["enable.idempotence"] = idempotent
        if max_request_size is not None:
            settings["message.max.bytes"] = max_request_size
        producer = Producer(settings)
        reports: list[Delivery | None] = [None] * len(records)

        def report(index):
            def cb(err, msg):
                ts_type, ts = msg.timestamp()
                if err is not None:
                    reports[index] = Delivery(msg.partition(), None, err.code(), f"{err.name()}: {err.str()}")
                else:
                    offset = msg.offset()  # None with acks=0
                    reports[index] = Delivery(msg.partition(), offset if offset is not None and offset >= 0 else None,
                                              timestamp=ts if ts_type != 0 else None)
            return cb

        for i, r in enumerate(records):
            kwargs = {"partition": r.partition, "headers": list(r.headers), "on_delivery": report(i)}
            if r.timestamp is not None:
                kwargs["timestamp"] = r.timestamp
            while True:
                try:
                    producer.produce(topic, value=r.value, key=r.key, **kwargs)
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
            if flush_every and (i + 1) % flush_every == 0 and producer.flush(timeout):
                raise AssertionError(f"confluent-kafka: records still undelivered after {timeout}s")
        remaining = producer.flush(timeout)
        if remaining:
            raise AssertionError(f"confluent-kafka: {remaining} records still undelivered after {timeout}s")
        return list(reports)

    def _consumer(self, bootstrap):
        from confluent_kafka import Consumer
        # group.id is required by confluent-kafka's Consumer even for assign(); no group is joined.
        return Consumer({"bootstrap.servers": bootstrap, "group.id": f"compat-{uuid.uuid4().hex[:8]}",
                         **self.settings})

    def consume(self, bootstrap, topic, ranges, timeout=DEFAULT_TIMEOUT, compacted=False):
        from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, TopicPartition
        consumer = self._consumer(bootstrap)
        started = time.monotonic()
        received: list[Received] = []
        try:
            consumer.assign([TopicPartition(topic, p, start) for p, (start, _) in ranges.items()])
            pending = {p for p, (start, stop) in ranges.items() if stop > start}
            while pending and time.monotonic() - started < timeout:
                for m in consumer.consume(num_messages=1000, timeout=0.5):
                    if m.error() is not None:
                        raise KafkaError(m.error().code(), f"{m.error().name()}: {m.error().str()}")
                    p, offset = m.partition(), m.offset()
                    _, stop = ranges[p]
                    ts_type, ts = m.timestamp()
                    if offset < stop:
                        received.append(Received(
                            p, offset, m.key(), m.value(), tuple(m.headers() or ()), ts,
                            "LogAppendTime" if ts_type == TIMESTAMP_LOG_APPEND_TIME else "CreateTime"))
                    if offset >= stop - 1:
                        pending.discard(p)
        finally:
            consumer.close()
        _check_ranges(received, ranges, self.name, topic, started, timeout, compacted)
        return received

    def offsets_for_times(self, bootstrap, topic, times):
        from confluent_kafka import TopicPartition
        consumer = self._consumer(bootstrap)
        try:
            answer = consumer.offsets_for_times([TopicPartition(topic, p, ts) for p, ts in times.items()],
                                                timeout=DEFAULT_TIMEOUT)
        finally:
            consumer.close()
        out = {}
        for tp in answer:
            if tp.error is not None:
                raise KafkaError(tp.error.code(), tp.error.str())
            # librdkafka gives the offset only (-1 = no such record); the timestamp is not returned.
            out[tp.partition] = None if tp.offset < 0 else (tp.offset, None)
        return out

    def _watermarks(self, bootstrap, topic, partitions):
        from confluent_kafka import TopicPartition
        consumer = self._consumer(bootstrap)
        try:
            return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=DEFAULT_TIMEOUT)
                    for p in partitions}
        finally:
            consumer.close()

    def earliest(self, bootstrap, topic, partitions):
        return {p: low for p, (low, _) in self._watermarks(bootstrap, topic, partitions).items()}

    def latest(self, bootstrap, topic, partitions):
        return {p: high for p, (_, high) in self._watermarks(bootstrap, topic, partitions).items()}

    def admin(self, bootstrap):
        return ConfluentAdmin(bootstrap)


def _ck_error(exc: Exception) -> KafkaError:
    err = exc.args[0] if exc.args else None
    if hasattr(err, "code"):
        return KafkaError(err.code(), f"{err.name()}: {err.str()}")
    return KafkaError(None, repr(exc))


class ConfluentAdmin(Admin):
    def __init__(self, bootstrap: str) -> None:
        from confluent_kafka.admin import AdminClient
        self.client = AdminClient({"bootstrap.servers": bootstrap})

    def _wait(self, futures):
        from confluent_kafka import KafkaException
        results = {}
        for k, f in futures.items():
            try:
                results[k] = f.result(timeout=DEFAULT_TIMEOUT)
            except KafkaException as exc:
                raise _ck_error(exc) from exc
        return results

    def create_topic(self, name, partitions=1, replication_factor=1, configs=None):
        from confluent_kafka.admin import NewTopic
        self._wait(self.client.create_topics(
            [NewTopic(name, partitions, replication_factor, config=dict(configs or {}))]))

    def delete_topic(self, name):
        self._wait(self.client.delete_topics([name]))

    def topics(self):
        md = self.client.list_topics(timeout=DEFAULT_TIMEOUT)
        return {name: len(t.partitions) for name, t in md.topics.items() if t.error is None}

    def describe_cluster(self):
        from confluent_kafka import KafkaException
        try:
            d = self.client.describe_cluster().result(timeout=DEFAULT_TIMEOUT)
        except KafkaException as exc:
            raise _ck_error(exc) from exc
        return Cluster(d.cluster_id, d.controller.id if d.controller is not None else None,
                       tuple((n.id, n.host, n.port) for n in d.nodes))

    def _configs(self, resource):
        (entries,) = self._wait(self.client.describe_configs([resource])).values()
        return {k: ConfigEntry(e.value, CONFIG_SOURCES.get(int(e.source), str(e.source)),
                               bool(e.is_read_only), bool(e.is_sensitive)) for k, e in entries.items()}

    def topic_configs(self, name):
        from confluent_kafka.admin import ConfigResource, ResourceType
        return self._configs(ConfigResource(ResourceType.TOPIC, name))

    def broker_configs(self, broker_id):
        from confluent_kafka.admin import ConfigResource, ResourceType
        return self._configs(ConfigResource(ResourceType.BROKER, str(broker_id)))

    def _alter(self, kind, name, set_, delete):
        from confluent_kafka.admin import AlterConfigOpType, ConfigEntry as CkEntry, ConfigResource, ResourceType
        entries = [CkEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in set_.items()]
        entries += [CkEntry(k, None, incremental_operation=AlterConfigOpType.DELETE) for k in delete]
        resource_type = ResourceType.TOPIC if kind == "topic" else ResourceType.BROKER
        self._wait(self.client.incremental_alter_configs(
            [ConfigResource(resource_type, name, incremental_configs=entries)]))

    def create_partitions(self, name, total):
        from confluent_kafka.admin import NewPartitions
        self._wait(self.client.create_partitions([NewPartitions(name, total)]))

    def delete_records(self, name, before):
        from confluent_kafka import TopicPartition
        answer = self._wait(self.client.delete_records([TopicPartition(name, p, o) for p, o in before.items()]))
        return {tp.partition: result.low_watermark for tp, result in answer.items()}

    def elect_leaders(self, election_type, partitions):
        from confluent_kafka import ElectionType, KafkaException, TopicPartition
        future = self.client.elect_leaders(ElectionType(election_type), None if partitions is None else
                                           [TopicPartition(t, p) for t, p in partitions])
        try:
            answer = future.result(timeout=DEFAULT_TIMEOUT)
        except KafkaException as exc:
            raise _ck_error(exc) from exc
        return {(tp.topic, tp.partition): 0 if error is None else error.code()  # a KafkaError, not raised
                for tp, error in answer.items()}


# --------------------------------------------------------------------------- aiokafka

class AioKafka(Client):
    name = "aiokafka"
    null_key_and_value = False  # AIOKafkaProducer.send(): "Need at least one: key or value"

    def produce(self, bootstrap, topic, records, *, compression="none", acks=None, idempotent=None,
                max_request_size=None, flush_every=None, timeout=DEFAULT_TIMEOUT):
        return asyncio.run(asyncio.wait_for(
            self._produce(bootstrap, topic, records, compression, acks, idempotent, max_request_size, flush_every),
            timeout))

    async def _produce(self, bootstrap, topic, records, compression, acks, idempotent, max_request_size,
                       flush_every):
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import KafkaError as AKError
        settings: dict = {"bootstrap_servers": bootstrap, **self.settings}
        if compression != "none":
            settings["compression_type"] = compression
        if acks is not None:
            settings["acks"] = acks
        if idempotent is not None:
            settings["enable_idempotence"] = idempotent
        if max_request_size is not None:
            settings["max_request_size"] = max_request_size
        producer = AIOKafkaProducer(**settings)
        await producer.start()
        try:
            futures = []
            for i, r in enumerate(records, 1):
                futures.append(await producer.send(topic, value=r.value, key=r.key, partition=r.partition,
                                                   timestamp_ms=r.timestamp, headers=list(r.headers)))
                if flush_every and i % flush_every == 0:
                    await producer.flush()
            await producer.flush()
            out = []
            for r, f in zip(records, futures):
                try:
                    md = await f
                except AKError as exc:
                    out.append(Delivery(r.partition, None, getattr(exc, "errno", None), repr(exc)))
                else:
                    if md is None:  # acks=0: no metadata at all
                        out.append(Delivery(r.partition, None))
                        continue
                    out.append(Delivery(md.partition, md.offset if md.offset >= 0 else None,
                                        timestamp=md.timestamp))
            return out
        finally:
            await producer.stop()

    def consume(self, bootstrap, topic, ranges, timeout=DEFAULT_TIMEOUT, compacted=False):
        received: list[Received] = []
        started = time.monotonic()
        try:
            asyncio.run(asyncio.wait_for(self._consume(bootstrap, topic, ranges, received), timeout))
        except (asyncio.TimeoutError, TimeoutError):
            pass
        _check_ranges(received, ranges, self.name, topic, started, timeout, compacted)
        return received

    async def _consume(self, bootstrap, topic, ranges, received):
        from aiokafka import AIOKafkaConsumer, TopicPartition
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **self.settings)
        await consumer.start()
        try:
            tps = {p: TopicPartition(topic, p) for p in ranges}
            consumer.assign(list(tps.values()))
            for p, (start, _) in ranges.items():
                consumer.seek(tps[p], start)
            pending = {p for p, (start, stop) in ranges.items() if stop > start}
            while pending:
                for tp, batch in (await consumer.getmany(timeout_ms=500)).items():
                    _, stop = ranges[tp.partition]
                    for m in batch:
                        if m.offset < stop:
                            received.append(Received(
                                m.partition, m.offset, m.key, m.value, tuple(m.headers or ()),
                                m.timestamp, "LogAppendTime" if m.timestamp_type == 1 else "CreateTime"))
                        if m.offset >= stop - 1:
                            pending.discard(tp.partition)
        finally:
            await consumer.stop()

    async def _with_consumer(self, bootstrap, fn):
        from aiokafka import AIOKafkaConsumer
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, **self.settings)
        await consumer.start()
        try:
            return await fn(consumer)
        finally:
            await consumer.stop()

    def offsets_for_times(self, bootstrap, topic, times):
        from aiokafka import TopicPartition

        async def run(c):
            return await c.offsets_for_times({TopicPartition(topic, p): ts for p, ts in times.items()})
        answer = asyncio.run(asyncio.wait_for(self._with_consumer(bootstrap, run), DEFAULT_TIMEOUT))
        return {tp.partition: (None if v is None else (v.offset, v.timestamp)) for tp, v in answer.items()}

    def earliest(self, bootstrap, topic, partitions):
        from aiokafka import TopicPartition

        async def run(c):
            return await c.beginning_offsets([TopicPartition(topic, p) for p in partitions])
        answer = asyncio.run(asyncio.wait_for(self._with_consumer(bootstrap, run), DEFAULT_TIMEOUT))
        return {tp.partition: o for tp, o in answer.items()}

    def latest(self, bootstrap, topic, partitions):
        from aiokafka import TopicPartition

        async def run(c):
            return await c.end_offsets([TopicPartition(topic, p) for p in partitions])
        answer = asyncio.run(asyncio.wait_for(self._with_consumer(bootstrap, run), DEFAULT_TIMEOUT))
        return {tp.partition: o for tp, o in answer.items()}

    def admin(self, bootstrap):
        return AioKafkaAdmin(bootstrap)


class AioKafkaAdmin(Admin):
    """aiokafka's admin returns raw responses; per-item error codes are raised here."""
    incremental_alter = False  # alter_configs sends AlterConfigs (api 33): omitted keys reset to defaults

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.loop = asyncio.new_event_loop()
        from aiokafka.admin import AIOKafkaAdminClient

        async def make():
            client = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
            await client.start()
            return client
        self.client = self._run(make())

    def _run(self, coro):
        return self.loop.run_until_complete(asyncio.wait_for(coro, DEFAULT_TIMEOUT))

    def close(self):
        try:
            self._run(self.client.close())
        finally:
            self.loop.close()

    def _call(self, coro):
        from aiokafka.errors import KafkaError as AKError
        try:
            return self._run(coro)
        except AKError as exc:
            raise KafkaError(getattr(exc, "errno", None), f"{type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _raise(code: int, message: str | None, what: str) -> None:
        if code:
            from aiokafka.errors import for_code
            raise KafkaError(code, f"{for_code(code).__name__}: {message or ''} ({what})")

    def create_topic(self, name, partitions=1, replication_factor=1, configs=None):
        from aiokafka.admin import NewTopic
        response = self._call(self.client.create_topics(
            [NewTopic(name, partitions, replication_factor, topic_configs=dict(configs or {}))]))
        for item in response.topic_errors:
            self._raise(item[1], item[2] if len(item) > 2 else None, item[0])

    def delete_topic(self, name):
        response = self._call(self.client.delete_topics([name]))
        for item in response.topic_error_codes:
            self._raise(item[1], None, item[0])

    def topics(self):
        return {t["topic"]: len(t["partitions"]) for t in self._call(self.client.describe_topics())
                if t.get("error_code", 0) == 0}

    def describe_cluster(self):
        c = self._call(self.client.describe_cluster())
        return Cluster(c.get("cluster_id"), c.get("controller_id"),
                       tuple((b["node_id"], b["host"], b["port"]) for b in c["brokers"]))

    def _configs(self, resource):
        responses = self._call(self.client.describe_configs([resource]))
        (response,) = responses
        (res,) = response.resources
        error_code, error_message, _type, _name, entries = res[:5]
        self._raise(error_code, error_message, f"describe {resource.name}")
        out = {}
        for e in entries:
            # v0: (name, value, read_only, is_default, sensitive); v1+: (name, value, read_only, source, sensitive, synonyms)
            if response.API_VERSION == 0:
                source = 5 if e[3] else 0
            else:
                source = e[3]
            out[e[0]] = ConfigEntry(e[1], CONFIG_SOURCES.get(int(source), str(source)), bool(e[2]), bool(e[4]))
        return out

    def topic_configs(self, name):
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
        return self._configs(ConfigResource(ConfigResourceType.TOPIC, name))

    def broker_configs(self, broker_id):
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
        return self._configs(ConfigResource(ConfigResourceType.BROKER, str(broker_id)))

    def _alter(self, kind, name, set_, delete):
        if delete:
            raise NotImplementedError("aiokafka has AlterConfigs only: no per-key DELETE")
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
        resource_type = ConfigResourceType.TOPIC if kind == "topic" else ConfigResourceType.BROKER
        responses = self._call(self.client.alter_configs([ConfigResource(resource_type, name, set_)]))
        for response in responses:
            for res in response.resources:
                self._raise(res[0], res[1], f"alter {name}")

    def create_partitions(self, name, total):
        from aiokafka.admin import NewPartitions
        response = self._call(self.client.create_partitions({name: NewPartitions(total)}))
        for item in response.topic_errors:
            self._raise(item[1], item[2], item[0])

    def delete_records(self, name, before):
        from aiokafka import TopicPartition
        from aiokafka.admin import RecordsToDelete
        answer = self._call(self.client.delete_records(
            {TopicPartition(name, p): RecordsToDelete(o) for p, o in before.items()}))
        return {tp.partition: low for tp, low in answer.items()}


# --------------------------------------------------------------------------- kcat

KCAT = shutil.which("kcat")
_MSG_DELIM = b"\x1e\x1d"   # -D: between records
_KEY_DELIM = b"\x1f\x1d"   # -K: between key and value
_KCAT_FORBIDDEN = frozenset(b"\x1d\x1e\x1f")

# librdkafka's rd_kafka_err2str() texts for the broker errors a test may expect from kcat.
_LIBRDKAFKA_TEXTS = {"Broker: Message size too large": 10, "Broker: Unknown topic or partition": 3,
                     "Broker: Invalid record": 87, "Broker: Topic authorization failed": 29}


class Kcat(Client):
    """kcat 1.7.1 / librdkafka 2.0.2 as a subprocess (Debian's package).

    produce() starts one kcat run per consecutive block of records that share partition, header
    set and -Z mode (and per flush_every records): each run is a new producer.
    """
    name = "kcat"
    has_admin = False
    explicit_timestamps = False  # librdkafka stamps CreateTime at produce() time
    reports_offsets = False

    def __init__(self, exit_on_error: bool = True) -> None:
        # kcat exits as soon as its only broker connection drops; -E keeps it going (and retrying)
        self.exit_on_error = exit_on_error

    @staticmethod
    def _run(args: list, stdin: bytes = b"", timeout: float = DEFAULT_TIMEOUT) -> subprocess.CompletedProcess:
        if KCAT is None:
            raise AssertionError("kcat is not installed (Debian package `kcat`; scripts/test.sh installs it)")
        return subprocess.run([KCAT, *args], input=stdin, capture_output=True, timeout=timeout)

    def _run_configured(self, args: list, stdin: bytes = b"", timeout: float = DEFAULT_TIMEOUT
                        ) -> subprocess.CompletedProcess:
        """`_run` with this adapter's settings as -X properties."""
        return self._run([*args, *(f"-X{key}={value}" for key, value in self.settings.items())], stdin, timeout)

    @staticmethod
    def line_for(r: Record) -> tuple[bytes, bool]:
        """Encode one record as kcat input: (bytes, needs -Z). Raises ValueError if kcat cannot send it."""
        if any(_KCAT_FORBIDDEN.intersection(part or b"") for part in (r.key, r.value)):
            raise ValueError("key or value contains bytes of kcat's delimiters (0x1d-0x1f)")
        if r.key is None and r.value is None:
            return _KEY_DELIM, True      # -Z: empty key and empty value are sent as NULL
        if r.key is None:
            if r.value == b"":
                raise ValueError("kcat cannot send a null key with an empty value")
            return r.value, False        # no key delimiter in the input: NULL key
        if r.value is None:
            if r.key == b"":
                raise ValueError("kcat cannot send an empty key with a null value")
            return r.key + _KEY_DELIM, True
        return r.key + _KEY_DELIM + r.value, False

    @staticmethod
    def can_send(r: Record) -> bool:
        """kcat sends what line_for() encodes, headers from argv (no NUL, no '=' in names), no timestamps."""
        try:
            Kcat.line_for(r)
        except ValueError:
            return False
        return r.timestamp is None and all(b"\x00" not in (v or b"") and "=" not in k and "\x00" not in k
                                           for k, v in r.headers)

    def produce(self, bootstrap, topic, records, *, compression="none", acks=None, idempotent=None,
                max_request_size=None, flush_every=None, timeout=DEFAULT_TIMEOUT):
        runs: list[tuple[tuple[int, Headers, bool], list[bytes]]] = []
        for r in records:
            if r.timestamp is not None:
                raise ValueError("kcat cannot set record timestamps")
            line, null_mode = self.line_for(r)
            key = (r.partition, r.headers, null_mode)
            if runs and runs[-1][0] == key and not (flush_every and len(runs[-1][1]) >= flush_every):
                runs[-1][1].append(line)
            else:
                runs.append((key, [line]))
        out: list[Delivery] = []
        for (partition, headers, null_mode), lines in runs:
            args = ["-P", "-b", bootstrap, "-t", topic, "-p", str(partition),
                    "-D", "\\x1e\\x1d", "-K", "\\x1f\\x1d"]
            if null_mode:
                args.append("-Z")
            if not self.exit_on_error:
                args.append("-E")
            if compression != "none":
                args += ["-z", compression]
            if acks is not None:
                args += ["-X", f"acks={-1 if acks == 'all' else acks}"]
            if idempotent is not None:
                args += ["-X", f"enable.idempotence={'true' if idempotent else 'false'}"]
            if max_request_size is not None:
                args += ["-X", f"message.max.bytes={max_request_size}"]
            for k, v in headers:  # bytes arguments: header values go to kcat byte for byte
                args += [b"-H", k.encode() if v is None else k.encode() + b"=" + v]
            done = self._run_configured(args, _MSG_DELIM.join(lines) + _MSG_DELIM, timeout)
            stderr = done.stderr.decode(errors="replace")
            failures = re.findall(r"Delivery failed for message: (.*)", stderr)
            if done.returncode != 0 and not failures:
                raise AssertionError(f"kcat -P exited {done.returncode}: {stderr[-2000:]}")
            # kcat reports failures by count, not by record: the first len(failures) of the run are marked.
            for i, _ in enumerate(lines):
                if i < len(failures):
                    text = failures[i].strip()
                    out.append(Delivery(partition, None, _LIBRDKAFKA_TEXTS.get(text), text))
                else:
                    out.append(Delivery(partition, None))
        return out

    @staticmethod
    def _parse_json_lines(stdout: bytes) -> list[dict]:
        out = []
        for line in stdout.split(b"\n"):
            if line.strip():
                out.append(json.loads(line.decode("utf-8", "surrogateescape")))
        return out

    @staticmethod
    def _bytes(s: str | None) -> bytes | None:
        return None if s is None else s.encode("utf-8", "surrogateescape")

    def received(self, m: dict) -> Received:
        flat = m.get("headers") or []
        headers = tuple((flat[i], self._bytes(flat[i + 1])) for i in range(0, len(flat), 2))
        return Received(m["partition"], m["offset"], self._bytes(m["key"]), self._bytes(m["payload"]),
                        headers, m.get("ts", -1), {"logappend": "LogAppendTime"}.get(m.get("tstype"), "CreateTime"))

    def consume(self, bootstrap, topic, ranges, timeout=DEFAULT_TIMEOUT, compacted=False):
        started = time.monotonic()
        received: list[Received] = []
        for p, (start, stop) in sorted(ranges.items()):
            if stop <= start:
                continue
            args = ["-C", "-b", bootstrap, "-t", topic, "-p", str(p), "-o", str(start),
                    "-c", str(stop - start), "-e", "-J", "-q"]
            try:
                done = self._run_configured(args, timeout=max(1.0, timeout - (time.monotonic() - started)))
            except subprocess.TimeoutExpired as exc:
                received += [self.received(m) for m in self._parse_json_lines(exc.stdout or b"")]
                break
            if done.returncode != 0:
                raise KafkaError(None, f"kcat -C exited {done.returncode}: "
                                       f"{done.stderr.decode(errors='replace')[-2000:]}")
            received += [r for r in map(self.received, self._parse_json_lines(done.stdout)) if r.offset < stop]
        _check_ranges(received, ranges, self.name, topic, started, timeout, compacted)
        return received

    def consume_from_time(self, bootstrap, topic, partition, timestamp, count):
        """`kcat -o s@<ts>`: read up to `count` records starting at the first one stamped >= timestamp."""
        done = self._run_configured(["-C", "-b", bootstrap, "-t", topic, "-p", str(partition),
                                     "-o", f"s@{timestamp}", "-c", str(count), "-e", "-J", "-q"])
        if done.returncode != 0:
            raise KafkaError(None, f"kcat -C -o s@ exited {done.returncode}: {done.stderr.decode(errors='replace')}")
        return [self.received(m) for m in self._parse_json_lines(done.stdout)]

    def _query(self, bootstrap, topic, times):
        args = ["-Q", "-b", bootstrap, "-J"]
        for p, ts in times.items():
            args += ["-t", f"{topic}:{p}:{ts}"]
        done = self._run_configured(args)
        if done.returncode != 0:
            raise KafkaError(None, f"kcat -Q exited {done.returncode}: {done.stderr.decode(errors='replace')}")
        answer = json.loads(done.stdout)[topic]
        out = {}
        for p in times:
            entry = answer[str(p)]
            if "error" in entry:
                raise KafkaError(None, f"kcat -Q partition {p}: {entry['error']}")
            out[p] = entry["offset"]
        return out

    def offsets_for_times(self, bootstrap, topic, times):
        # -Q answers the offset only; -1 (OFFSET_END) = no record at or after the timestamp.
        return {p: None if o < 0 else (o, None) for p, o in self._query(bootstrap, topic, times).items()}

    def earliest(self, bootstrap, topic, partitions):
        return self._query(bootstrap, topic, {p: -2 for p in partitions})

    def latest(self, bootstrap, topic, partitions):
        return self._query(bootstrap, topic, {p: -1 for p in partitions})

    def metadata(self, bootstrap: str, topic: str | None = None, as_json: bool = False) -> str:
        args = ["-L", "-b", bootstrap] + (["-t", topic] if topic else []) + (["-J"] if as_json else [])
        done = self._run_configured(args)
        if done.returncode != 0:
            raise KafkaError(None, f"kcat -L exited {done.returncode}: {done.stderr.decode(errors='replace')}")
        return done.stdout.decode()


ALL_CLIENTS: tuple[Client, ...] = (KafkaPython(), ConfluentKafka(), AioKafka(), Kcat())
ADMIN_CLIENTS: tuple[Client, ...] = tuple(c for c in ALL_CLIENTS if c.has_admin)
BY_NAME = {c.name: c for c in ALL_CLIENTS}


def admin_for(client: Client, bootstrap: str) -> Admin:
    """The client's own admin; for kcat (no admin API) confluent-kafka's, the other librdkafka client."""
    return (client if client.has_admin else BY_NAME["confluent-kafka"]).admin(bootstrap)


def create_topic(client: Client, bootstrap: str, name: str, partitions: int = 1,
                 configs: dict[str, str] | None = None) -> None:
    with admin_for(client, bootstrap) as admin:
        admin.create_topic(name, partitions, 1, configs)
