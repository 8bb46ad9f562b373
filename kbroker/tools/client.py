"""A small synchronous Kafka client on our own codec: bootstrap, version negotiation, routing.

One blocking socket per broker, one request in flight on it: the tools send a request, wait
for its answer and decide what to do next. `Client.metadata` learns the brokers; requests go
to a partition's leader (`leader`), a group's coordinator (`coordinator`) or the controller
(`controller`). Broker-level failures raise `Unreachable`; error codes in answers are left to
the caller, which knows which ones matter (`check` turns one into a `BrokerError`).
"""
from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from kbroker import __version__
from kbroker.blocking_client import BlockingClient
from kbroker.errors import ErrorCode
from kbroker.wire.messages.api_versions import API_VERSIONS, ApiVersionsRequest
from kbroker.wire.messages.find_coordinator import FIND_COORDINATOR, FindCoordinatorRequest
from kbroker.wire.messages.list_offsets import (LIST_OFFSETS, ListOffsetsPartition, ListOffsetsRequest,
                                               ListOffsetsTopic)
from kbroker.wire.messages.metadata import METADATA, MetadataRequest, MetadataRequestTopic
from kbroker.wire.primitives import DecodeError
from kbroker.wire.schema import Api

CLIENT_ID = f"kbroker-cli/{__version__}"
DEFAULT_BOOTSTRAP = "127.0.0.1:9092"

# The version range per API key whose request shape the tools build: each request is written
# once, for every version in its range (e.g. DeleteTopics names topics up to v5, by id object
# after; Fetch names topics up to v12). Minimums are Kafka 4.0's (KIP-896) or the first
# version with a field we need.
VERSIONS: dict[int, tuple[int, int]] = {
    0: (3, 11),   # Produce: v3+ carries transactional_id
    1: (4, 12),   # Fetch: v4+ isolation level and last stable offset; v13+ topic ids
    2: (1, 10),   # ListOffsets: v1+ one offset per partition
    3: (1, 12),   # Metadata: v1+ null means all topics
    8: (2, 8),    # OffsetCommit
    9: (2, 7),    # OffsetFetch: v2+ null means all topics; v8+ batches groups
    10: (0, 3),   # FindCoordinator: v4+ batches keys
    15: (0, 5),   # DescribeGroups
    16: (0, 4),   # ListGroups
    19: (2, 7),   # CreateTopics
    20: (1, 5),   # DeleteTopics: v6+ topic ids
    32: (1, 4),   # DescribeConfigs
    42: (0, 2),   # DeleteGroups
    44: (0, 1),   # IncrementalAlterConfigs
    60: (0, 1),   # DescribeCluster
    69: (0, 0),   # ConsumerGroupDescribe (KIP-848 groups)
}

# Partition errors that mean "ask the metadata who leads now": produce and consume refresh and retry.
LEADER_MOVED = frozenset({ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.LEADER_NOT_AVAILABLE,
                          ErrorCode.FENCED_LEADER_EPOCH, ErrorCode.UNKNOWN_LEADER_EPOCH})
RETRY_BACKOFF_S = 0.2

LATEST, EARLIEST = -1, -2  # ListOffsets timestamps: the high watermark, the log start offset

Partition = tuple[str, int]  # (topic, partition)

_MAX_FRAME = 256 << 20  # a larger size prefix is not a Kafka broker talking (e.g. "HTTP")
_COORDINATOR_WAIT_S = 10.0  # a fresh broker creates __consumer_offsets on the first lookup


class ToolError(Exception):
    """A failure reported to the user as one line; `exit_code` is the process's exit status."""
    exit_code = 1


class UsageError(ToolError):
    """A value argparse cannot check (KEY=VALUE pairs, times, offsets)."""
    exit_code = 2


class Unreachable(ToolError):
    exit_code = 3


class BrokerError(ToolError):
    def __init__(self, code: int, what: str, message: str | None = None) -> None:
        self.code = code
        super().__init__(f"{what}: {error_name(code)}" + (f" ({message})" if message else ""))


def error_name(code: int) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"error code {code}"


def check(code: int, what: str, message: str | None = None) -> None:
    if code != ErrorCode.NONE:
        raise BrokerError(code, what, message)


def parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UsageError(f"bad broker address {address!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


class Connection:
    """One broker: a socket and the API versions it speaks (from ApiVersions, asked first)."""

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        self.address = f"{host}:{port}"
        try:
            self._link = BlockingClient(host, port, timeout=timeout_s, client_id=CLIENT_ID, max_frame=_MAX_FRAME)
        except OSError as exc:
            raise Unreachable(f"cannot connect to {self.address}: {exc.strerror or exc}") from None
        # ApiVersions v0: the one version every broker answers (KIP-511 answers it in header v0 too).
        answer = self._call(API_VERSIONS, 0, ApiVersionsRequest())
        check(answer.error_code, f"ApiVersions from {self.address}")
        self._ranges = {k.api_key: (k.min_version, k.max_version) for k in answer.api_keys}

    def version(self, api: Api) -> int:
        """The highest version of `api` both this broker and the tools speak."""
        version = self._common_version(api)
        if version is None:
            theirs = self._ranges.get(api.key)
            low, high = VERSIONS[api.key]
            raise ToolError(f"{self.address} does not support {api.name} versions {low}-{high}"
                            + (f" (it speaks {theirs[0]}-{theirs[1]})" if theirs else ""))
        return version

    def supports(self, api: Api) -> bool:
        return self._common_version(api) is not None

    def _common_version(self, api: Api) -> int | None:
        theirs = self._ranges.get(api.key)
        low, high = VERSIONS[api.key]
        if theirs is None or min(high, theirs[1]) < max(low, theirs[0]):
            return None
        return min(high, theirs[1])

    def request(self, api: Api, body: Any) -> Any:
        return self._call(api, self.version(api), body)

    def _call(self, api: Api, version: int, body: Any) -> Any:
        try:
            return self._link.request(api, version, body)
        except ValueError as exc:  # an absurd size prefix, or the answer to another request
            self.close()
            raise ToolError(f"{self.address} does not answer like a Kafka broker ({exc})") from None
        except DecodeError as exc:
            self.close()
            raise ToolError(f"{self.address}: malformed {api.name} v{version} answer: {exc}") from None
        except OSError as exc:
            self.close()
            raise Unreachable(f"{self.address}: {exc.strerror or exc} during {api.name}") from None
        except BaseException:  # Ctrl-C between a request and its answer: the stream is out of step
            self.close()
            raise

    @property
    def closed(self) -> bool:
        return self._link.closed

    def close(self) -> None:
        self._link.close()


class Client:
    """The cluster as the tools see it: a bootstrap connection, brokers by node id, routing."""

    def __init__(self, bootstrap: str, timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s
        self._addresses = [parse_address(a) for a in bootstrap.split(",") if a.strip()]
        if not self._addresses:
            raise UsageError("no bootstrap server given")
        self._by_address: dict[tuple[str, int], Connection] = {}
        self.brokers: dict[int, tuple[str, int]] = {}
        self._any: Connection | None = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        for connection in self._by_address.values():
            connection.close()

    def any_broker(self) -> Connection:
        if self._any is None or self._any.closed:
            failures = []
            for host, port in self._addresses:
                try:
                    self._any = self._connect(host, port)
                    break
                except Unreachable as exc:
                    failures.append(str(exc))
            else:
                raise Unreachable("broker unreachable: " + "; ".join(failures))
        return self._any

    def _connect(self, host: str, port: int) -> Connection:
        connection = self._by_address.get((host, port))
        if connection is None or connection.closed:
            connection = self._by_address[(host, port)] = Connection(host, port, self.timeout_s)
        return connection

    def node(self, node_id: int) -> Connection:
        if node_id not in self.brokers:
            self.metadata([])
        if node_id not in self.brokers:
            raise ToolError(f"broker {node_id} is not in the cluster's metadata")
        return self._connect(*self.brokers[node_id])

    def metadata(self, topics: list[str] | None, *, auto_create: bool = False) -> Any:
        """Metadata for `topics` (None: all), creating none unless `auto_create` (the broker's
        auto.create.topics.enable decides then); remembers the brokers."""
        body = MetadataRequest(topics=None if topics is None else [MetadataRequestTopic(name=t) for t in topics],
                               allow_auto_topic_creation=auto_create)
        answer = self.any_broker().request(METADATA, body)
        self.brokers = {b.node_id: (b.host, b.port) for b in answer.brokers}
        return answer

    def controller(self) -> Connection:
        """Where topic changes go: the controller when the metadata names one (ZooKeeper mode)."""
        answer = self.metadata([])
        if answer.controller_id in self.brokers:
            return self.node(answer.controller_id)
        return self.any_broker()

    def leaders(self, topic: str, *, auto_create: bool = False) -> dict[int, int]:
        """partition -> leader node id; raises for an unknown topic. A topic just created (or
        whose leaders are being elected) is asked for again until --timeout."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            (described,) = self.metadata([topic], auto_create=auto_create).topics
            leaderless = described.error_code == ErrorCode.LEADER_NOT_AVAILABLE or any(
                p.leader_id < 0 for p in described.partitions)
            if not leaderless or time.monotonic() > deadline:
                break
            time.sleep(RETRY_BACKOFF_S)
        if described.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
            raise ToolError(f"unknown topic {topic!r}")
        check(described.error_code, f"topic {topic!r}")
        offline = sorted(p.partition_index for p in described.partitions if p.leader_id < 0)
        if offline:
            raise BrokerError(ErrorCode.LEADER_NOT_AVAILABLE, f"topic {topic!r} partitions {offline}")
        return {p.partition_index: p.leader_id for p in described.partitions}

    def coordinator(self, group: str) -> Connection:
        deadline = time.monotonic() + _COORDINATOR_WAIT_S
        while True:
            answer = self.any_broker().request(FIND_COORDINATOR, FindCoordinatorRequest(key=group, key_type=0))
            retriable = answer.error_code in (ErrorCode.COORDINATOR_NOT_AVAILABLE,
                                              ErrorCode.COORDINATOR_LOAD_IN_PROGRESS)
            if not retriable or time.monotonic() > deadline:
                check(answer.error_code, f"finding the coordinator of group {group!r}", answer.error_message)
                self.brokers.setdefault(answer.node_id, (answer.host, answer.port))
                return self._connect(answer.host, answer.port)
            time.sleep(RETRY_BACKOFF_S)  # the coordinator partition is loading: ask again shortly

    def list_offsets(self, partitions: Iterable[Partition], timestamp: int) -> dict[Partition, int]:
        """The offset for `timestamp` (or LATEST, EARLIEST) of each partition, asked of its leader;
        -1 where no record has that timestamp or a later one."""
        by_leader: dict[int, dict[str, list[int]]] = {}
        leaders: dict[str, dict[int, int]] = {}
        for topic, partition in sorted(set(partitions)):
            if topic not in leaders:
                leaders[topic] = self.leaders(topic)
            leader = leaders[topic].get(partition)
            if leader is None:
                raise ToolError(f"topic {topic!r} has no partition {partition}")
            by_leader.setdefault(leader, {}).setdefault(topic, []).append(partition)
        offsets = {}
        for leader, topics in by_leader.items():
            request = ListOffsetsRequest(replica_id=-1, topics=[ListOffsetsTopic(name=topic, partitions=[
                ListOffsetsPartition(partition_index=p, timestamp=timestamp) for p in ps]) for topic, ps in topics.items()])
            for topic in self.node(leader).request(LIST_OFFSETS, request).topics:
                for answer in topic.partitions:
                    check(answer.error_code, f"offsets of {topic.name}-{answer.partition_index}")
                    offsets[(topic.name, answer.partition_index)] = answer.offset
        return offsets
