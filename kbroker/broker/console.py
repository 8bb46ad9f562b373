"""The read-only web console's data: what this broker knows, as JSON for `console_page.PAGE`.

`overview` lists brokers, the topics and partitions this broker holds (offsets, sizes, leaders),
per-topic message and byte totals with the broker's clock (the page turns successive totals
into rates), and consumer
groups with members, assignments and lag. `latest_records` reads the last N records of a
partition up to its high watermark, as a consumer would see them, decoded for display. Both
run on the loop thread between requests, like a scrape.
"""
from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from kbroker.coordinator.consumer_protocol import assignment_partitions
from kbroker.errors import KafkaError
from kbroker.wire.records import BatchHeader, decode_records

if TYPE_CHECKING:
    from kbroker.broker.broker import Broker
    from kbroker.broker.metrics import BrokerMetrics

MAX_RECORDS = 500
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # not text, even if valid UTF-8


def overview(broker: Broker, metrics: BrokerMetrics) -> dict[str, Any]:
    return {"node_id": broker.node_id, "cluster_id": broker.cluster_id, "now_ms": broker.monotonic_ms(),
            "brokers": _brokers(broker),
            "topics": _topics(broker, metrics), "groups": _groups(broker)}


def _brokers(broker: Broker) -> list[dict[str, Any]]:
    if broker.cluster is None:
        advertised = broker.config.advertised
        return [{"id": broker.node_id, "host": advertised.host, "port": advertised.port, "rack": None,
                 "controller": True}]
    image = broker.cluster.image
    return [{"id": b.broker_id, "host": b.host, "port": b.port, "rack": b.rack,
             "controller": b.broker_id == image.controller_id} for b in sorted(image.brokers.values(),
                                                                             key=lambda b: b.broker_id)]


def _topics(broker: Broker, metrics: BrokerMetrics) -> list[dict[str, Any]]:
    topics: dict[str, list[dict[str, Any]]] = {}
    states = broker.cluster.image.states if broker.cluster is not None else {}
    for partition_log in broker.logs.all_logs():
        state = states.get((partition_log.topic, partition_log.partition))
        topics.setdefault(partition_log.topic, []).append({
            "partition": partition_log.partition,
            "leader": state.leader if state is not None else broker.node_id,
            "isr": list(state.isr) if state is not None else [broker.node_id],
            "log_start_offset": partition_log.log_start_offset,
            "high_watermark": partition_log.high_watermark,
            "log_end_offset": partition_log.log_end_offset,
            "size": sum(segment.size for segment in partition_log.segments),
        })
    return [{"name": name, "partitions": sorted(partitions, key=lambda p: p["partition"]),
             "messages_in": metrics.messages_in.get(name, 0), "bytes_in": metrics.bytes_in.get(name, 0),
             "bytes_out": metrics.bytes_out.get(name, 0)}
            for name, partitions in sorted(topics.items())]


def _groups(broker: Broker) -> list[dict[str, Any]]:
    coordinator = broker.groups
    found = []
    for listed in coordinator.list_groups():
        group = coordinator.groups.get(listed.group_id)
        members = []
        if group is not None:
            description = group.describe()
            for member in description.members:
                if hasattr(member, "metadata"):  # classic: the consumer protocol's assignment bytes
                    assigned = assignment_partitions(member.assignment) or {}
                else:  # KIP-848: topic ids
                    assigned = {}
                    for topic_id, partitions in member.assignment.items():
                        info = broker.logs.topic_by_id(topic_id)
                        assigned[info.name if info else str(topic_id)] = sorted(partitions)
                members.append({"member_id": member.member_id, "client_id": member.client_id,
                                "host": member.client_host, "assignment": assigned})
        lag = []
        for (topic, partition), committed in sorted(coordinator.offsets.of_group(listed.group_id).items()):
            partition_log = broker.logs.get_log(topic, partition)
            high = partition_log.high_watermark if partition_log is not None else None
            lag.append({"topic": topic, "partition": partition, "committed": committed.offset,
                        "high_watermark": high, "lag": None if high is None else max(high - committed.offset, 0)})
        found.append({"group_id": listed.group_id, "state": listed.state, "type": listed.group_type,
                      "protocol_type": listed.protocol_type, "members": members, "offsets": lag})
    return found


def latest_records(broker: Broker, topic: str, partition: int, limit: int) -> dict[str, Any]:
    """The last `limit` records below the high watermark (at most MAX_RECORDS), oldest first."""
    partition_log = broker.logs.get_log(topic, partition)
    if partition_log is None:
        raise LookupError(f"no partition {topic}-{partition} on this broker")
    limit = max(1, min(limit, MAX_RECORDS))
    high = partition_log.high_watermark
    start = max(partition_log.log_start_offset, high - limit)
    records: list[dict[str, Any]] = []
    # At most `limit` offsets back, so at most `limit` records plus the batch holding `start`.
    for batch in partition_log.read_batches(start, high) if start < high else ():
        header = BatchHeader.parse(batch)
        if header.is_control:
            continue
        try:
            decoded = decode_records(batch)
        except KafkaError as exc:
            records.append({"offset": header.base_offset, "error": exc.message})
            continue
        records.extend(_shown(record) for record in decoded if start <= record.offset < high)
    return {"topic": topic, "partition": partition, "high_watermark": high, "records": records[-limit:]}


def _shown(record: Any) -> dict[str, Any]:
    return {"offset": record.offset, "timestamp": record.timestamp, "key": _decoded(record.key),
            "value": _decoded(record.value),
            "headers": [[name, _decoded(value)] for name, value in record.headers]}


def _decoded(data: bytes | None) -> dict[str, Any] | None:
    """{"json": value} if it parses as JSON, else {"text": ...} if printable UTF-8, else {"hex": ...}."""
    if data is None:
        return None
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return {"hex": data.hex()}
    if _CONTROL.search(text):
        return {"hex": data.hex()}
    try:
        return {"json": json.loads(text)}
    except ValueError:
        return {"text": text}
