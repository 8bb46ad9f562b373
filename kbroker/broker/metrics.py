"""Prometheus metrics: what the request path counts, and what is read from the broker at scrape time.

Names follow the JMX exporter's conventional mapping of Kafka's MBeans (lowercased
`kafka_<domain>_<type>_<name>`, counters ending in `_total`), so dashboards built for Kafka
need little change: `kafka_server_brokertopicmetrics_bytesin_total{topic}`,
`kafka_network_requestmetrics_requests_total{request,version}`, `kafka_log_log_size{topic,partition}`,
`kafka_server_replicamanager_underreplicatedpartitions`, ... Consumer lag uses kafka_exporter's
`kafka_consumergroup_lag{consumergroup,topic,partition}`. Request time is a histogram in
milliseconds (Kafka's TotalTimeMs is a percentile summary: use histogram_quantile).

The hot path pays for a few integer additions in plain dicts (BrokerMetrics): a request count,
a latency bucket, and for Produce / Fetch a byte count per topic. Everything that is state (log
sizes, offsets, lag, purgatory sizes, connections, replication) is read when Prometheus scrapes,
by `_StateCollector`, so it costs nothing between scrapes. Errors are counted by walking the answer's `error_code`
fields, as Kafka's `errorCounts()` does; code 0 is not counted.
"""
from __future__ import annotations

import functools
import struct
import time
from bisect import bisect_left
from collections import Counter, defaultdict
from itertools import accumulate
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import INF, floatToGoString

from kbroker.errors import ErrorCode
from kbroker.wire.messages.fetch import FETCH
from kbroker.wire.messages.produce import PRODUCE
from kbroker.wire.records import RECORDS_COUNT_OFFSET
from kbroker.wire.schema import Api, Array, fields_of

if TYPE_CHECKING:
    from kbroker.broker.broker import Broker

LATENCY_BUCKETS_MS = (0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
FSYNC_BUCKETS_MS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 5000)
_RECORD_COUNT = struct.Struct(">i")
_ERROR_NAMES = {code.value: code.name for code in ErrorCode}


class BrokerMetrics:
    """One broker's metrics, in a registry of its own (several brokers may share a process in tests).

    The request path adds to plain dicts and lists on the loop thread (a prometheus_client Counter
    takes a lock and costs ~0.7 us per inc, a Histogram ~1.7 us per observation: several per
    request); `_StateCollector` turns them into metric families when scraped, on the same thread.
    """

    def __init__(self, broker: Broker, connections: Iterable[Any], closed_for: Mapping[Any, int]) -> None:
        self.requests: dict[tuple[str, int], int] = defaultdict(int)  # (API, version) -> count
        self.errors: dict[tuple[str, int], int] = defaultdict(int)  # (API, error code) -> count
        self.request_ms: dict[str, _Histogram] = {}  # API -> time from frame to encoded answer
        self.bytes_in: dict[str, int] = defaultdict(int)  # topic -> record bytes appended by producers
        self.messages_in: dict[str, int] = defaultdict(int)
        self.bytes_out: dict[str, int] = defaultdict(int)  # topic -> record bytes sent to consumers
        self.replication_bytes_out = 0
        self.fsync_ms = _Histogram(FSYNC_BUCKETS_MS)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_StateCollector(broker, self, connections, closed_for))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def request_done(self, api: Api, version: int, request: Any, response: Any, started: float) -> None:
        """A request was answered (`response` None: Produce with acks=0, no answer)."""
        name = api.name
        self.requests[(name, version)] += 1
        histogram = self.request_ms.get(name)
        if histogram is None:
            histogram = self.request_ms[name] = _Histogram(LATENCY_BUCKETS_MS)
        histogram.observe((time.perf_counter() - started) * 1000)
        # Produce and Fetch count their errors in the loops that count their bytes.
        if api.key == PRODUCE.key:
            self._count_produced(request, response)
        elif api.key == FETCH.key:
            self._count_fetched(request, version, response)
        elif response is not None:
            for code in _error_codes(response, type(response)):
                self.errors[(name, code)] += 1

    def fsync_done(self, seconds: float) -> None:
        self.fsync_ms.observe(seconds * 1000)

    def _count_produced(self, request: Any, response: Any) -> None:
        """Bytes and records of the partitions answered without error (all of them with acks=0)."""
        answers = {t.name: t.partition_responses for t in response.responses} if response is not None else {}
        for topic in request.topic_data:
            answered = answers.get(topic.name)
            for i, data in enumerate(topic.partition_data):
                if answered is not None and i < len(answered) and answered[i].error_code:
                    self.errors[("Produce", answered[i].error_code)] += 1
                    continue
                records = data.records
                if records is None or len(records) <= RECORDS_COUNT_OFFSET + 4:
                    continue
                self.bytes_in[topic.name] += len(records)
                self.messages_in[topic.name] += _RECORD_COUNT.unpack_from(records, RECORDS_COUNT_OFFSET)[0]

    def _count_fetched(self, request: Any, version: int, response: Any) -> None:
        if response is None:
            return
        if response.error_code:
            self.errors[("Fetch", response.error_code)] += 1
        replica = request.replica_id if version <= 14 else request.replica_state.replica_id
        for topic in response.responses:
            size = 0
            for partition in topic.partitions:
                if partition.error_code:
                    self.errors[("Fetch", partition.error_code)] += 1
                records = partition.records
                if records:  # b"" when nothing was read, else bytes or FetchSlices
                    size += len(records) if isinstance(records, (bytes, bytearray, memoryview)) else records.size
            if not size:
                continue
            if replica >= 0:
                self.replication_bytes_out += size
            else:
                self.bytes_out[topic.topic] += size


class _Histogram:
    """Cumulative-bucket histogram data, filled on the loop thread and exported at scrape time."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        cumulative = list(accumulate(self.counts))
        return [(floatToGoString(bound), count) for bound, count in zip((*self.bounds, INF), cumulative)]


@functools.cache
def _error_fields(cls: type) -> tuple[tuple[str, type | None], ...]:
    """The fields of a response struct that hold error codes (element type None) or structs that may."""
    found: list[tuple[str, type | None]] = []
    for field in fields_of(cls):
        element = field.type.element if isinstance(field.type, Array) else field.type
        if field.name == "error_code":
            found.append((field.name, None))
        elif hasattr(element, "__fields_decl__") and _error_fields(element):
            found.append((field.name, element))
    return tuple(found)


def _error_codes(value: Any, cls: type) -> Iterator[int]:
    for name, element in _error_fields(cls):
        item = getattr(value, name)
        if element is None:
            if item:
                yield item
        elif isinstance(item, list):
            for entry in item:
                yield from _error_codes(entry, element)
        elif item is not None:
            yield from _error_codes(item, element)


class _StateCollector(Collector):
    """Gauges read from the broker when scraped: logs, groups, purgatory, connections, replication."""

    def __init__(self, broker: Broker, counted: BrokerMetrics, connections: Iterable[Any],
                 closed_for: Mapping[Any, int]) -> None:
        self._broker = broker
        self._counted = counted
        self._connections = connections
        self._closed_for = closed_for  # CloseReason -> connections the broker closed for it

    def collect(self) -> Iterator[Metric]:
        broker = self._broker
        yield from self._requests()
        connections = GaugeMetricFamily("kafka_server_socketservermetrics_connection_count",
                                        "Open client connections", labels=["listener"])
        default = broker.config.listeners[0].name  # a connection without a channel came in on the first one
        by_listener = Counter(connection.listener_name or default for connection in list(self._connections))
        for listener in broker.config.listeners:
            connections.add_metric([listener.name], by_listener[listener.name])
        yield connections
        closed = CounterMetricFamily("kbroker_connections_closed", "Connections the broker closed, by reason "
                                     "(bad frames, unserved APIs or versions, authentication, idle, ...)",
                                     labels=["reason"])
        for reason, count in list(self._closed_for.items()):
            closed.add_metric([reason.name.lower()], count)
        yield closed
        purgatory = GaugeMetricFamily("kafka_server_delayedoperationpurgatory_purgatorysize",
                                      "Requests waiting in a purgatory", labels=["delayedoperation"])
        for operation in ("Fetch", "Produce"):
            purgatory.add_metric([operation], broker.fetch_waiters.waiting(operation))
        yield purgatory
        yield from self._logs()
        yield from self._groups()
        yield from self._cleaner()
        if broker.cluster is not None:
            yield from self._replication()

    def _requests(self) -> Iterator[Metric]:
        counted = self._counted
        requests = CounterMetricFamily("kafka_network_requestmetrics_requests", "Requests handled, by API and version",
                                       labels=["request", "version"])
        for (name, version), count in counted.requests.items():
            requests.add_metric([name, str(version)], count)
        errors = CounterMetricFamily("kafka_network_requestmetrics_errors", "Error codes in answers, by API",
                                     labels=["request", "error"])
        for (name, code), count in counted.errors.items():
            errors.add_metric([name, _ERROR_NAMES.get(code, str(code))], count)
        times = HistogramMetricFamily("kafka_network_requestmetrics_totaltimems",
                                      "From a request's frame to its encoded answer (ms)", labels=["request"])
        for name, histogram in counted.request_ms.items():
            times.add_metric([name], histogram.buckets(), histogram.sum)
        yield from (requests, errors, times)
        for metric, help_text, per_topic in (
                ("bytesin", "Record bytes appended by producers", counted.bytes_in),
                ("messagesin", "Records appended by producers", counted.messages_in),
                ("bytesout", "Record bytes sent to consumers", counted.bytes_out)):
            family = CounterMetricFamily(f"kafka_server_brokertopicmetrics_{metric}", help_text, labels=["topic"])
            for topic, count in per_topic.items():
                family.add_metric([topic], count)
            yield family
        yield CounterMetricFamily("kafka_server_brokertopicmetrics_replicationbytesout",
                                  "Record bytes sent to follower replicas", value=counted.replication_bytes_out)
        fsync = HistogramMetricFamily("kafka_log_logflushstats_logflushrateandtimems", "Partition fsync time (ms)")
        fsync.add_metric([], counted.fsync_ms.buckets(), counted.fsync_ms.sum)
        yield fsync

    def _logs(self) -> Iterator[Metric]:
        labels = ["topic", "partition"]
        size = GaugeMetricFamily("kafka_log_log_size", "Bytes of the partition's segments", labels=labels)
        segments = GaugeMetricFamily("kafka_log_log_numlogsegments", "Segments of the partition", labels=labels)
        end = GaugeMetricFamily("kafka_log_log_logendoffset", "Log end offset", labels=labels)
        start = GaugeMetricFamily("kafka_log_log_logstartoffset", "Log start offset", labels=labels)
        high = GaugeMetricFamily("kafka_log_log_highwatermark", "High watermark", labels=labels)
        for partition_log in self._broker.logs.all_logs():
            key = [partition_log.topic, str(partition_log.partition)]
            in_order = partition_log.segments
            size.add_metric(key, sum(segment.size for segment in in_order))
            segments.add_metric(key, len(in_order))
            end.add_metric(key, partition_log.log_end_offset)
            start.add_metric(key, partition_log.log_start_offset)
            high.add_metric(key, partition_log.high_watermark)
        yield from (size, segments, end, start, high)

    def _groups(self) -> Iterator[Metric]:
        labels = ["consumergroup", "topic", "partition"]
        current = GaugeMetricFamily("kafka_consumergroup_current_offset", "Committed offset", labels=labels)
        lag = GaugeMetricFamily("kafka_consumergroup_lag", "High watermark minus the committed offset",
                                labels=labels)
        logs = self._broker.logs
        offsets = self._broker.groups.offsets
        for group_id in offsets.group_ids():
            for (topic, partition), committed in offsets.of_group(group_id).items():
                key = [group_id, topic, str(partition)]
                current.add_metric(key, committed.offset)
                partition_log = logs.get_log(topic, partition)
                if partition_log is not None:  # in a cluster, only partitions this broker holds
                    lag.add_metric(key, max(partition_log.high_watermark - committed.offset, 0))
        yield from (current, lag)

    def _cleaner(self) -> Iterator[Metric]:
        cleaner = self._broker.log_cleaner.cleaner
        yield GaugeMetricFamily("kafka_log_logcleanermanager_max_dirty_percent",
                                "Dirty share of the dirtiest compacted log at the cleaner's last look",
                                value=cleaner.max_dirty_ratio * 100)
        stats = cleaner.last_stats
        if stats is not None:
            yield GaugeMetricFamily("kafka_log_logcleaner_cleaner_recopy_percent",
                                    "Bytes written over bytes read by the last cleaning",
                                    value=100 * stats.bytes_written / stats.bytes_read if stats.bytes_read else 0)
            yield GaugeMetricFamily("kafka_log_logcleaner_max_clean_time_secs", "Duration of the last cleaning",
                                    value=stats.elapsed)

    def _replication(self) -> Iterator[Metric]:
        member = self._broker.cluster
        image = member.image
        led = [state for key, state in image.states.items()
               if state.leader == member.broker_id and member.leads(*key)]
        assignments = image.topics
        under = sum(1 for (topic, partition), state in image.states.items()
                    if state.leader == member.broker_id and topic in assignments
                    and len(state.isr) < len(assignments[topic].replicas[partition]))
        yield GaugeMetricFamily("kafka_server_replicamanager_leadercount", "Partitions this broker leads",
                                value=len(led))
        yield GaugeMetricFamily("kafka_server_replicamanager_partitioncount", "Partitions this broker holds",
                                value=sum(1 for _ in self._broker.logs.all_logs()))
        yield GaugeMetricFamily("kafka_server_replicamanager_underreplicatedpartitions",
                                "Partitions led here whose ISR is smaller than their replica set", value=under)
        yield CounterMetricFamily("kafka_server_replicamanager_isrshrinks", "ISR shrinks written by this leader",
                                  value=member.isr_shrinks)
        yield CounterMetricFamily("kafka_server_replicamanager_isrexpands", "ISR expansions written by this leader",
                                  value=member.isr_expands)
        active = member.controller.active
        yield GaugeMetricFamily("kafka_controller_kafkacontroller_activecontrollercount",
                                "1 on the controller", value=1 if active else 0)
        offline = sum(1 for state in image.states.values() if state.leader < 0) if active else 0
        yield GaugeMetricFamily("kafka_controller_kafkacontroller_offlinepartitionscount",
                                "Partitions without a leader (reported by the controller)", value=offline)
