"""The metadata store on ZooKeeper, through kazoo: the only module that imports kazoo.

Kafka's ZooKeeper layout (ZkData.scala) under the chroot of `zookeeper.connect`, in Kafka's JSON:
    /cluster/id                                 {"version":"1","id":"<cluster id>"}
    /brokers/ids/<id>                           ephemeral {"version":5,"host":..,"port":..,"endpoints":[..],"rack":..}
    /controller                                 ephemeral {"version":1,"brokerid":<id>,"timestamp":".."}
    /controller_epoch                           "<epoch>"
    /brokers/topics/<t>                         {"version":3,"topic_id":"..","partitions":{"0":[1,2]},..}
    /brokers/topics/<t>/partitions/<p>/state    {"controller_epoch":..,"leader":..,"version":1,"leader_epoch":..,"isr":[..]}
    /config/topics/<t>                          {"version":1,"config":{..}}
    /config/users/<user>                        {"version":1,"config":{"SCRAM-SHA-256":"salt=..",
                                                 "producer_byte_rate":".."}}
    /config/users/<user>/clients/<client id>    {"version":1,"config":{"consumer_byte_rate":".."}}
    /config/clients/<client id>                 (the same; names sanitized, `<default>` the default entity)
    /config/brokers/<id>                        {"version":1,"config":{"log.retention.ms":".."}} (dynamic
                                                 broker configs; `<default>` the cluster-wide default)
    /kafka-acl/<ResourceType>/<name>            {"version":1,"acls":[{"principal":"User:alice",
                                                 "permissionType":"Allow","operation":"Read","host":"*"},..]}
                                                (LITERAL patterns)
    /kafka-acl-extended/prefixed/<ResourceType>/<name>   (the same, PREFIXED patterns)
    /admin/delete_topics/<t>                    (empty)
    /admin/preferred_replica_election           {"version":1,"partitions":[{"topic":..,"partition":..},..]}
                                                (an unclean election: "election_type":1 in its entry)
    /admin/reassign_partitions                  {"version":1,"partitions":[{"topic":..,"partition":..,"replicas":[..]},..]}
                                                (a cancel: "replicas":null, ours, as in AlterPartitionReassignments)
    /latest_producer_id_block                   {"version":1,"broker":..,"block_start":"..","block_end":".."}

Threads: kazoo runs its connection and its watch callbacks in threads of its own. Here the
callbacks only update the dicts below under `_lock` and ask the event loop (call_soon_threadsafe)
to publish a new `ClusterImage`; blocking calls run in worker threads (asyncio.to_thread). No
other module sees a thread.

Watches (`_Watches`: kazoo's DataWatch and ChildrenWatch with their reads pipelined): a children
watch on /brokers/ids, /brokers/topics and /admin/delete_topics starts a data watch per broker,
per topic (its assignment and its config) and per partition state. A topic's
watches stop once the topic is gone from /brokers/topics; a state watch belongs to one topic id,
so a topic deleted and created again under the same name gets fresh ones. A data watch on
/admin/preferred_replica_election follows the elections asked for, one on /admin/reassign_partitions
the reassignments asked for. A corrupt znode is logged and
read as absent, never raised.

ACLs and config entities are followed by watches too, not by Kafka's change notification znodes
(`/kafka-acl-changes`, `/config/changes`), which would need purging: a children watch per resource
type (the paths made at start, as Kafka's authorizer makes them) and per entity type, a data watch
per resource or entity. Those data watches never stop: a resource whose last ACL is deleted
is often given a new one at once, and the watch reads it back whatever the order of the events.
A user's client entities are found by a watch on `/config/users/<user>/clients`, started once it exists.
"""
from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import types
import uuid
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (BadVersionError, ConnectionClosedError, ConnectionLoss, KazooException, NodeExistsError,
                              NoNodeError, SessionExpiredError)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.interfaces import IAsyncResult
from kazoo.protocol.states import EventType, WatchedEvent
from kazoo.retry import KazooRetry

from kbroker.clock import Clock, MonotonicClock, monotonic_ms, wall_clock_ms
from kbroker.cluster.config_entities import is_entity
from kbroker.cluster.image import NO_LEADER, BrokerRegistration, ClusterImage, Endpoint, PartitionState, TopicAssignment
from kbroker.cluster.metastore import AclEntry, AclResource, BrokerIdInUse, MetaStoreError, StaleWrite
from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.checkpoints import uuid_from_base64, uuid_to_base64

log = logging.getLogger("kbroker.zookeeper")

ACL_ROOTS = {"LITERAL": "/kafka-acl", "PREFIXED": "/kafka-acl-extended/prefixed"}
ACL_RESOURCE_TYPES = ("Topic", "Group", "Cluster", "TransactionalId", "DelegationToken", "User")
ENTITY_TYPE_PATHS = ("/config/users", "/config/clients", "/config/brokers")
PERSISTENT_PATHS = ("/brokers/ids", "/brokers/topics", "/config/topics", "/config/brokers", *ENTITY_TYPE_PATHS,
                    "/admin/delete_topics", "/cluster",
                    *(f"{root}/{kind}" for root in ACL_ROOTS.values() for kind in ACL_RESOURCE_TYPES))
ELECTIONS_PATH = "/admin/preferred_replica_election"
REASSIGNMENTS_PATH = "/admin/reassign_partitions"
TRANSACTION_CHUNK = 500  # partition states per multi-op, well below ZooKeeper's 1 MB request limit
_UNREAD = object()  # what a watch has "seen" before its first read


def split_connect(connect: str) -> tuple[str, str]:
    """`host:port[,host:port]/chroot` -> (hosts, chroot); the chroot is '' when not given."""
    hosts, slash, chroot = connect.partition("/")
    chroot = ("/" + chroot).rstrip("/") if slash else ""
    return hosts, chroot


def _json(data: bytes | None, path: str) -> Any:
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        log.error("ignoring znode %s: not JSON: %r", path, data[:200])
        return None


def _encode(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def _topic_path(name: str) -> str:
    return f"/brokers/topics/{name}"


def _state_path(name: str, partition: int) -> str:
    return f"/brokers/topics/{name}/partitions/{partition}/state"


def _parse_broker(broker_id: int, document: Any, epoch: int) -> BrokerRegistration | None:
    try:
        protocols = document.get("listener_security_protocol_map") or {}
        endpoints = []
        for url in document.get("endpoints") or ():
            name, _, address = str(url).partition("://")
            host, _, port = address.rpartition(":")
            endpoints.append(Endpoint(name, host.strip("[]"), int(port), protocols.get(name, name)))
        return BrokerRegistration(broker_id, str(document["host"]), int(document["port"]), document.get("rack"), epoch,
                                  tuple(endpoints))
    except (KeyError, TypeError, ValueError, AttributeError):
        log.error("ignoring the registration of broker %d: %r", broker_id, document)
        return None


def _parse_topic(name: str, document: Any, version: int) -> TopicAssignment | None:
    try:
        partitions = document["partitions"]
        replicas = tuple(tuple(int(b) for b in partitions[str(p)]) for p in range(len(partitions)))
        adding, removing = ({int(p): tuple(int(b) for b in r) for p, r in (document.get(key) or {}).items() if r}
                            for key in ("adding_replicas", "removing_replicas"))
        return TopicAssignment(name, uuid_from_base64(document["topic_id"]), replicas, version, adding, removing)
    except (KeyError, TypeError, ValueError, AttributeError):
        log.error("ignoring topic %s: its assignment znode is malformed: %r", name, document)
        return None


def _parse_state(document: Any, version: int) -> PartitionState | None:
    try:
        return PartitionState(int(document["leader"]), int(document["leader_epoch"]),
                              tuple(int(b) for b in document["isr"]), int(document["controller_epoch"]), version)
    except (KeyError, TypeError, ValueError):
        log.error("ignoring a malformed partition state: %r", document)
        return None


def _parse_elections(document: Any) -> dict[tuple[str, int], int]:
    """Kafka's preferred replica election document; entries with an "election_type" are ours (KIP-460)."""
    try:
        return {(str(entry["topic"]), int(entry["partition"])): int(entry.get("election_type", 0))
                for entry in document["partitions"]}
    except (KeyError, TypeError, ValueError, AttributeError):
        log.error("ignoring a malformed %s: %r", ELECTIONS_PATH, document)
        return {}


def _elections_document(elections: Mapping[tuple[str, int], int]) -> dict[str, Any]:
    return {"version": 1, "partitions": [
        {"topic": topic, "partition": partition, **({"election_type": kind} if kind else {})}
        for (topic, partition), kind in sorted(elections.items())]}


def _parse_reassignments(document: Any) -> dict[tuple[str, int], tuple[int, ...] | None]:
    try:
        return {(str(entry["topic"]), int(entry["partition"])):
                None if entry.get("replicas") is None else tuple(int(b) for b in entry["replicas"])
                for entry in document["partitions"]}
    except (KeyError, TypeError, ValueError, AttributeError):
        log.error("ignoring a malformed %s: %r", REASSIGNMENTS_PATH, document)
        return {}


def _reassignments_document(reassignments: Mapping[tuple[str, int], tuple[int, ...] | None]) -> dict[str, Any]:
    return {"version": 1, "partitions": [
        {"topic": topic, "partition": partition, "replicas": None if replicas is None else list(replicas)}
        for (topic, partition), replicas in sorted(reassignments.items(), key=lambda item: item[0])]}


def _acl_path(resource: AclResource) -> str:
    if resource.pattern_type not in ACL_ROOTS or resource.resource_type not in ACL_RESOURCE_TYPES \
            or not resource.name or "/" in resource.name:
        raise MetaStoreError(f"no ZooKeeper path for ACLs on {resource}")
    return f"{ACL_ROOTS[resource.pattern_type]}/{resource.resource_type}/{resource.name}"


def _parse_acls(data: bytes | None, path: str) -> frozenset[AclEntry]:
    document = _json(data, path)
    if document is None:
        return frozenset()
    try:
        return frozenset(AclEntry(str(e["principal"]), str(e["permissionType"]), str(e["operation"]), str(e["host"]))
                         for e in document["acls"])
    except (KeyError, TypeError):
        log.error("ignoring the ACLs of %s: malformed: %r", path, document)
        return frozenset()


def _acls_document(entries: Collection[AclEntry]) -> dict[str, Any]:
    return {"version": 1, "acls": [{"principal": e.principal, "permissionType": e.permission_type,
                                    "operation": e.operation, "host": e.host} for e in sorted(entries)]}


def _entity_path(entity: str) -> str:
    if not is_entity(entity):
        raise MetaStoreError(f"{entity!r} is not a config entity")
    return f"/config/{entity}"


def _parse_entity(data: bytes | None, path: str) -> dict[str, str]:
    """An entity's configs; empty for a znode without data (a parent Kafka made for a user's client)."""
    document = _json(data, path)
    configs = document.get("config") if isinstance(document, dict) else None
    if document is not None and not isinstance(configs, dict):
        log.error("ignoring the configs of %s: malformed: %r", path, document)
    return {str(k): str(v) for k, v in configs.items()} if isinstance(configs, dict) else {}


def _state_document(state: PartitionState) -> dict[str, Any]:
    return {"controller_epoch": state.controller_epoch, "leader": state.leader, "version": 1,
            "leader_epoch": state.leader_epoch, "isr": list(state.isr)}


class _Watches:
    """kazoo's DataWatch and ChildrenWatch, their reads pipelined.

    kazoo's recipes read a znode synchronously, once when made and again on each event, one round
    trip after another: a broker restarted in a cluster of 3,000 partitions spent 3,000 round trips
    reading their states before it could register. Here each read is an asynchronous request that
    sets the watch itself (so a change made while the first read is under way is not lost), any
    number of them in flight; their answers are handled in the order the requests were sent. A
    session's requests are served in order, so the callbacks see the znodes change in ZooKeeper's
    order, one at a time, as they did when kazoo's recipes ran them all in its one event thread.
    Here they run in kazoo's completion thread.

    A data watch calls back `(data, stat)` (both None while the znode is absent) when first read and
    after each change of the znode (its mzxid); a children watch `(children)` when first read and
    after each change of the list, and stops with its znode. Either stops when its callback returns
    False. kazoo forgets every watch when its connection drops: `read_all` reads every live one
    again once it is back. The first image is whole once every watch made before `started`, and
    every watch made by their first callbacks, has been read once: `started`'s callback says so.
    """

    def __init__(self, client: KazooClient) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._sent: deque[tuple[IAsyncResult, Callable[[IAsyncResult], None]]] = deque()
        self._live: set[_Watch] = set()
        self._unread = 1  # watches not yet read once, plus one until `started`
        self._on_whole: Callable[[], None] = lambda: None

    def data(self, path: str, callback: Callable[[bytes | None, Any], bool | None]) -> None:
        self._add(_Watch(self, self._client, path, callback, children=False))

    def children(self, path: str, callback: Callable[[list[str]], bool | None]) -> None:
        self._add(_Watch(self, self._client, path, callback, children=True))

    def _add(self, watch: _Watch) -> None:
        with self._lock:
            self._live.add(watch)
            self._unread += 1
        watch.read()

    def started(self, on_whole: Callable[[], None]) -> None:
        """The first watches are made: call `on_whole` (in any thread) once they are all read."""
        with self._lock:
            self._on_whole = on_whole
        self.read_once()

    def read_once(self) -> None:
        with self._lock:
            self._unread -= 1
            whole = self._on_whole if self._unread == 0 else None
            if whole is not None:
                self._on_whole = lambda: None
        if whole is not None:
            whole()

    def stopped(self, watch: _Watch) -> None:
        with self._lock:
            self._live.discard(watch)

    def read_all(self) -> None:
        with self._lock:
            live = list(self._live)
        for watch in live:
            watch.read()

    def send(self, request: Callable[[], IAsyncResult], handle: Callable[[IAsyncResult], None]) -> None:
        """Send a request (kazoo's queue keeps the order of the calls: hence the lock) and have
        `handle` take its answer after the answers of every request sent before it."""
        with self._lock:
            result = request()
            self._sent.append((result, handle))
        result.rawlink(self._drain)

    def _drain(self, _result: IAsyncResult) -> None:
        # rawlink's callbacks run in kazoo's completion thread, but one may run before the callback
        # of an answer that came earlier (linked late): answers are taken from the head, in order.
        while True:
            with self._lock:
                if not self._sent or not self._sent[0][0].ready():
                    return
                result, handle = self._sent.popleft()
            handle(result)


class _Watch:
    """One znode's data or children, followed by `_Watches`."""

    def __init__(self, watches: _Watches, client: KazooClient, path: str, callback: Callable[..., bool | None],
                 *, children: bool) -> None:
        self._watches = watches
        self._client = client
        self._path = path
        self._callback = callback
        self._children = children
        self._seen: Any = _UNREAD  # the mzxid or the children last called back with
        self._stopped = False

    def read(self) -> None:
        if self._stopped:
            return
        if self._children:
            self._watches.send(lambda: self._client.get_children_async(self._path, self._on_event),
                               self._answered(self._on_children))
        else:
            self._watches.send(lambda: self._client.get_async(self._path, self._on_event),
                               self._answered(self._on_data))

    def _on_event(self, event: WatchedEvent) -> None:
        if event.type != EventType.NONE:  # NONE: the connection dropped; `read_all` reads again once back
            self.read()

    def _answered(self, handle: Callable[[Any], None]) -> Callable[[IAsyncResult], None]:
        def on_answer(result: IAsyncResult) -> None:
            if self._stopped:
                return
            try:
                answer = result.get_nowait()
            except NoNodeError:
                self._on_absent()
            except (ConnectionLoss, SessionExpiredError, ConnectionClosedError):
                pass  # `read_all` reads again once connected (never, once closed)
            except KazooException as exc:
                log.error("giving up the watch of %s: %s %s", self._path, type(exc).__name__, exc)
                self._stop()
            else:
                handle(answer)
        return on_answer

    def _on_absent(self) -> None:
        if self._children:
            self._stop()  # as ChildrenWatch: it ends with its znode
        else:  # watch for its creation, then read it if it came meanwhile
            self._watches.send(lambda: self._client.exists_async(self._path, self._on_event),
                               self._answered(lambda stat: self._call_back(None, None, None) if stat is None
                                              else self.read()))

    def _on_data(self, answer: tuple[bytes, Any]) -> None:
        data, stat = answer
        self._call_back(stat.mzxid, data, stat)

    def _on_children(self, children: list[str]) -> None:
        self._call_back(sorted(children), children)

    def _call_back(self, seen: Any, *args: Any) -> None:
        if seen == self._seen:
            return  # read again (an event, a reconnection) but unchanged
        first, self._seen = self._seen is _UNREAD, seen
        try:
            keep = self._callback(*args) is not False
        except Exception:  # a bug of ours: logged, the watch kept, the first image not held up
            log.exception("in the watch of %s", self._path)
            keep = True
        if not keep:
            self._stop()
        if first:
            self._watches.read_once()

    def _stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._watches.stopped(self)
        if self._seen is _UNREAD:
            self._watches.read_once()


class ZkMetaStore:
    def __init__(self, connect: str, *, session_timeout_ms: int, connection_timeout_ms: int,
                 clock: Clock = wall_clock_ms, monotonic: MonotonicClock = monotonic_ms) -> None:
        """`clock` stamps the registrations (Kafka's "timestamp" field); `monotonic` times waits."""
        hosts, self._chroot = split_connect(connect)
        self._clock = clock
        self._monotonic = monotonic
        self._connect = connect
        self._connection_timeout_ms = connection_timeout_ms
        self._session_timeout_ms = session_timeout_ms
        self._client = KazooClient(hosts=hosts, timeout=session_timeout_ms / 1000,
                                   connection_retry=KazooRetry(max_tries=-1, delay=0.1, max_delay=1.0),
                                   command_retry=KazooRetry(max_tries=3, delay=0.1, max_delay=1.0))
        self._lock = threading.Lock()
        self._watches = _Watches(self._client)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_change: Callable[[], None] = lambda: None
        self._on_session_lost: Callable[[], None] = lambda: None
        self._publish_pending = True  # nothing is published until the first image is whole (`watch`)
        self._image = ClusterImage()
        self._brokers: dict[int, BrokerRegistration] = {}
        self._watched_brokers: set[int] = set()
        self._controller_id = NO_LEADER
        self._topic_children: set[str] = set()
        self._watched_topics: set[str] = set()
        self._topics: dict[str, TopicAssignment] = {}
        self._configs: dict[str, dict[str, str]] = {}
        self._acls: dict[AclResource, frozenset[AclEntry]] = {}
        self._entities: dict[str, dict[str, str]] = {}  # by path below /config
        self._views: dict[str, Mapping] = {}  # read-only copies of the two above, made when read after a change
        self._followed: set[str] = set()  # paths with a watch of their own (ACL resources, entities)
        self._security_events = 0  # ACL and entity watch callbacks so far (see _is_latest)
        self._states: dict[tuple[str, int], PartitionState] = {}
        self._state_watches: dict[tuple[str, int], uuid.UUID] = {}
        self._deleting: frozenset[str] = frozenset()
        self._elections: dict[tuple[str, int], int] = {}
        self._elections_version = -1
        self._reassignments: dict[tuple[str, int], tuple[int, ...] | None] = {}
        self._reassignments_version = -1
        self._controller_epoch_version = -1

    @property
    def image(self) -> ClusterImage:
        return self._image

    # -- connection ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect (within zookeeper.connection.timeout.ms) and create the persistent paths."""
        try:
            await asyncio.to_thread(self._client.start, self._connection_timeout_ms / 1000)
        except KazooTimeoutError:
            await asyncio.to_thread(self._client.stop)
            raise MetaStoreError(f"cannot connect to ZooKeeper at {self._connect} within "
                                 f"zookeeper.connection.timeout.ms={self._connection_timeout_ms}") from None
        await self._call(self._prepare)

    def _prepare(self) -> None:
        if self._chroot:
            self._client.ensure_path(self._chroot)
            self._client.chroot = self._chroot
        for path in PERSISTENT_PATHS:
            self._client.ensure_path(path)

    async def watch(self, on_change: Callable[[], None], on_session_lost: Callable[[], None]) -> None:
        """Follow the cluster: `image` is complete (every topic name known) when this returns."""
        self._loop = asyncio.get_running_loop()
        self._on_session_lost = on_session_lost
        self._client.add_listener(self._on_state)
        whole = self._loop.create_future()
        self._start_watches()
        self._watches.started(lambda: self._loop.call_soon_threadsafe(lambda: whole.done() or whole.set_result(None)))
        await whole
        # Every watch has fired once: the image is whole from here on. Before, a listener could
        # have seen brokers but not yet the topics, and taken every local topic for deleted.
        self._image = self._snapshot()
        self._on_change = on_change

    def _start_watches(self) -> None:
        self._watches.children("/brokers/ids", self._on_broker_ids)
        self._watches.children("/brokers/topics", self._on_topic_names)
        self._watches.children("/admin/delete_topics", self._on_deletions)
        self._watches.data("/controller", self._on_controller)
        self._watches.data(ELECTIONS_PATH, self._on_elections)
        self._watches.data(REASSIGNMENTS_PATH, self._on_reassignments)
        for pattern_type, root in ACL_ROOTS.items():
            for kind in ACL_RESOURCE_TYPES:
                self._follow_children(f"{root}/{kind}", lambda path, p=pattern_type, k=kind: self._watch_acl(
                    AclResource(p, k, path.rpartition("/")[2]), path))
        for path in ENTITY_TYPE_PATHS:
            self._follow_children(path, self._watch_entity)

    async def close(self) -> None:
        await asyncio.to_thread(self._shutdown)

    def _shutdown(self) -> None:
        try:
            self._client.stop()
            self._client.close()
        except KazooException as exc:
            log.warning("closing the ZooKeeper session: %s", exc)

    def _on_state(self, state: str) -> None:
        if state == KazooState.LOST:
            log.warning("ZooKeeper session lost")
            self._loop.call_soon_threadsafe(self._on_session_lost)
        elif state == KazooState.SUSPENDED:
            log.warning("ZooKeeper connection suspended")
        elif state == KazooState.CONNECTED:  # kazoo forgot every watch when the connection dropped
            self._client.handler.spawn(self._watches.read_all)

    # -- watches (kazoo threads) ---------------------------------------------------------------

    def _changed(self) -> None:
        with self._lock:
            if self._publish_pending:
                return
            self._publish_pending = True
        self._loop.call_soon_threadsafe(self._publish)

    def _snapshot(self) -> ClusterImage:
        with self._lock:
            self._publish_pending = False
            return ClusterImage.of(self._brokers, self._controller_id, frozenset(self._topic_children),
                                   self._topics, self._configs, self._states, self._deleting,
                                   self._elections, self._elections_version, self._reassignments,
                                   self._reassignments_version)

    def _publish(self) -> None:
        self._image = self._snapshot()
        self._on_change()

    def _on_broker_ids(self, children: list[str]) -> None:
        for child in children:
            try:
                broker_id = int(child)
            except ValueError:
                log.error("ignoring /brokers/ids/%s: not a broker id", child)
                continue
            if broker_id not in self._watched_brokers:
                self._watched_brokers.add(broker_id)
                self._watches.data(f"/brokers/ids/{broker_id}",
                                   lambda data, stat, b=broker_id: self._on_broker(b, data, stat))

    def _on_broker(self, broker_id: int, data: bytes | None, stat: Any) -> None:
        registration = _parse_broker(broker_id, _json(data, f"/brokers/ids/{broker_id}"), stat.czxid) if data else None
        with self._lock:
            if registration is None:
                self._brokers.pop(broker_id, None)
            else:
                self._brokers[broker_id] = registration
        self._changed()

    def _on_controller(self, data: bytes | None, _stat: Any) -> None:
        document = _json(data, "/controller")
        try:
            controller = int(document["brokerid"]) if document else NO_LEADER
        except (KeyError, TypeError, ValueError):
            log.error("ignoring a malformed /controller: %r", document)
            controller = NO_LEADER
        with self._lock:
            self._controller_id = controller
        self._changed()

    def _on_deletions(self, children: list[str]) -> None:
        with self._lock:
            self._deleting = frozenset(children)
        self._changed()

    def _on_reassignments(self, data: bytes | None, stat: Any) -> None:
        reassignments = _parse_reassignments(_json(data, REASSIGNMENTS_PATH)) if data else {}
        with self._lock:
            self._reassignments = reassignments
            self._reassignments_version = stat.version if stat is not None else -1
        self._changed()

    def _on_elections(self, data: bytes | None, stat: Any) -> None:
        elections = _parse_elections(_json(data, ELECTIONS_PATH)) if data else {}
        with self._lock:
            self._elections = elections
            self._elections_version = stat.version if stat is not None else -1
        self._changed()

    def _on_topic_names(self, children: list[str]) -> bool:
        with self._lock:
            self._topic_children = set(children)
            new = [name for name in children if name not in self._watched_topics]
            self._watched_topics.update(new)
        for name in new:
            self._watches.data(_topic_path(name), lambda data, stat, n=name: self._on_topic(n, data, stat))
            self._watches.data(f"/config/topics/{name}", lambda data, _stat, n=name: self._on_topic_config(n, data))
        self._changed()
        return True

    def _on_topic(self, name: str, data: bytes | None, stat: Any) -> bool:
        assignment = _parse_topic(name, _json(data, _topic_path(name)), stat.version) if data else None
        watch_states = []
        with self._lock:
            if assignment is None:
                self._topics.pop(name, None)
                for key in [k for k in self._states if k[0] == name]:
                    del self._states[key]
                    self._state_watches.pop(key, None)
                keep_watching = name in self._topic_children
                if not keep_watching:
                    self._watched_topics.discard(name)
            else:
                keep_watching = True
                self._topics[name] = assignment
                for partition in range(assignment.partition_count):
                    if self._state_watches.get((name, partition)) != assignment.topic_id:
                        self._states.pop((name, partition), None)
                        self._state_watches[(name, partition)] = assignment.topic_id
                        watch_states.append(partition)
        for partition in watch_states:
            self._watches.data(_state_path(name, partition), lambda data, stat, p=partition, t=assignment.topic_id:
                               self._on_state_znode(name, p, t, data, stat))
        self._changed()
        return keep_watching

    def _follow_children(self, path: str, follow: Callable[[str], None]) -> None:
        """A children watch on `path` calling `follow(child's path)` once for each child it sees."""
        def on_children(children: list[str]) -> None:
            with self._lock:
                new = [f"{path}/{child}" for child in children if f"{path}/{child}" not in self._followed]
                self._followed.update(new)
            for child in new:
                follow(child)
        self._watches.children(path, on_children)

    def _watch_acl(self, resource: AclResource, path: str) -> None:
        def on_data(data: bytes | None, stat: Any) -> None:
            entries = _parse_acls(data, path) if stat is not None else frozenset()
            with self._lock:
                self._security_events += 1
                if entries:
                    self._acls[resource] = entries
                else:
                    self._acls.pop(resource, None)
                self._views.pop("acls", None)
            self._changed()
        self._watches.data(path, on_data)

    def _watch_entity(self, path: str) -> None:
        entity = path.removeprefix("/config/")

        def on_data(data: bytes | None, stat: Any) -> None:
            with self._lock:
                self._security_events += 1
                if stat is None:
                    self._entities.pop(entity, None)
                else:
                    self._entities[entity] = _parse_entity(data, path)
                self._views.pop("entities", None)
            self._changed()
        self._watches.data(path, on_data)
        if entity.count("/") == 1 and entity.startswith("users/"):
            self._watches.data(f"{path}/clients", lambda _data, stat: self._on_user_clients(f"{path}/clients", stat))

    def _on_user_clients(self, path: str, stat: Any) -> None:
        """`/config/users/<user>/clients` came or went: follow its children while it exists (a
        children watch stops with its znode)."""
        with self._lock:
            start = stat is not None and path not in self._followed
            if start:
                self._followed.add(path)
            elif stat is None:
                self._followed.discard(path)
        if start:
            self._follow_children(path, self._watch_entity)

    def acls(self) -> Mapping[AclResource, frozenset[AclEntry]]:
        with self._lock:
            view = self._views.get("acls")
            if view is None:
                view = self._views["acls"] = types.MappingProxyType(dict(self._acls))
            return view

    def entity_configs(self) -> Mapping[str, Mapping[str, str]]:
        with self._lock:
            view = self._views.get("entities")
            if view is None:
                view = self._views["entities"] = types.MappingProxyType(
                    {entity: types.MappingProxyType(dict(configs)) for entity, configs in self._entities.items()})
            return view

    async def update_acls(self, resource: AclResource, add: Collection[AclEntry],
                          remove: Collection[AclEntry]) -> None:
        await self._call(self._update_acls, resource, frozenset(add), frozenset(remove))

    def _update_acls(self, resource: AclResource, add: frozenset[AclEntry], remove: frozenset[AclEntry]) -> None:
        """Read the resource's znode, then write it conditional on the version read (create it, or
        delete it once empty, as Kafka's AclAuthorizer does); read again when another broker won."""
        path = _acl_path(resource)
        while True:
            events = self._security_events
            try:
                data, stat = self._client.get(path)
                current = _parse_acls(data, path)
            except NoNodeError:
                stat, current = None, frozenset()
            updated = (current - remove) | add
            try:
                if updated == current:
                    pass
                elif stat is None:
                    self._client.create(path, _encode(_acls_document(updated)))
                elif not updated:
                    self._client.delete(path, version=stat.version)
                else:
                    self._client.set(path, _encode(_acls_document(updated)), version=stat.version)
            except (BadVersionError, NodeExistsError, NoNodeError):
                continue
            with self._lock:
                if self._is_latest(events):
                    if updated:
                        self._acls[resource] = updated
                    else:
                        self._acls.pop(resource, None)
                    self._views.pop("acls", None)
            return

    def _is_latest(self, events: int) -> bool:
        """Whether a write begun when `events` watch callbacks had run may go into the cache at once
        (read-your-writes on this broker). Not when a callback ran meanwhile: it may have brought a
        newer write of another broker, which ours must not hide; the watch brings ours soon after."""
        return self._security_events == events

    async def alter_entity_configs(self, entity: str, changes: Mapping[str, str | None]) -> None:
        await self._call(self._alter_entity, entity, dict(changes))

    def _alter_entity(self, entity: str, changes: dict[str, str | None]) -> None:
        """Merge into the entity's znode conditional on the version read: a SCRAM credential and a
        quota written at once on two brokers both land. Parents are made empty, as Kafka makes them."""
        path = _entity_path(entity)
        while True:
            events = self._security_events
            try:
                data, stat = self._client.get(path)
                configs = _parse_entity(data, path)
            except NoNodeError:
                stat, configs = None, {}
            updated = {key: value for key, value in {**configs, **changes}.items() if value is not None}
            document = _encode({"version": 1, "config": updated})
            try:
                if stat is None:
                    self._client.create(path, document, makepath=True)
                elif updated != configs:
                    self._client.set(path, document, version=stat.version)
            except (BadVersionError, NodeExistsError, NoNodeError):
                continue
            with self._lock:
                if self._is_latest(events):
                    self._entities[entity] = updated
                    self._views.pop("entities", None)
            return

    def _on_topic_config(self, name: str, data: bytes | None) -> bool:
        document = _json(data, f"/config/topics/{name}")
        configs = document.get("config") if isinstance(document, dict) else None
        with self._lock:
            if isinstance(configs, dict):
                self._configs[name] = {str(k): str(v) for k, v in configs.items()}
            else:
                self._configs.pop(name, None)
            keep_watching = name in self._watched_topics
        self._changed()
        return keep_watching

    def _on_state_znode(self, name: str, partition: int, topic_id: uuid.UUID, data: bytes | None, stat: Any) -> bool:
        key = (name, partition)
        with self._lock:
            if self._state_watches.get(key) != topic_id:
                return False
            state = _parse_state(_json(data, _state_path(name, partition)), stat.version) if data else None
            if state is None and stat is not None:  # unreadable: offline, the ISR unknown, until rewritten
                state = PartitionState(NO_LEADER, 0, (), 0, stat.version)
            if state is None:
                self._states.pop(key, None)
            else:
                self._states[key] = state
        self._changed()
        return True

    # -- writes --------------------------------------------------------------------------------

    async def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        try:
            return await asyncio.to_thread(function, *args)
        except (StaleWrite, MetaStoreError):
            raise
        except BadVersionError as exc:
            raise StaleWrite(str(exc) or "the znode changed") from exc
        except KazooException as exc:
            raise MetaStoreError(f"ZooKeeper: {type(exc).__name__} {exc}") from exc

    async def cluster_id(self, proposed: str) -> str:
        return await self._call(self._cluster_id, proposed)

    def _cluster_id(self, proposed: str) -> str:
        try:
            self._client.create("/cluster/id", _encode({"version": "1", "id": proposed}))
            return proposed
        except NodeExistsError:
            data, _ = self._client.get("/cluster/id")
            document = _json(data, "/cluster/id")
            if not isinstance(document, dict) or not isinstance(document.get("id"), str):
                raise MetaStoreError(f"/cluster/id is malformed: {data[:200]!r}")
            return document["id"]

    async def register_broker(self, registration: BrokerRegistration) -> int:
        return await self._call(self._register, registration)

    def _register(self, r: BrokerRegistration) -> int:
        path = f"/brokers/ids/{r.broker_id}"
        endpoints = r.endpoints or (Endpoint("PLAINTEXT", r.host, r.port),)
        document = {"version": 5, "host": r.host, "port": r.port, "jmx_port": -1,
                    "timestamp": str(self._clock()),
                    "endpoints": [f"{e.name}://{e.host}:{e.port}" for e in endpoints],
                    "listener_security_protocol_map": {e.name: e.protocol for e in endpoints}, "rack": r.rack,
                    "features": {}}
        # A registration of our own endpoint (the port we are listening on) is our predecessor's,
        # killed before its session expired: wait that out, as no live broker can hold it.
        deadline = self._monotonic() + self._session_timeout_ms * 1.5
        waiting = False
        while True:
            try:
                _, stat = self._client.create(path, _encode(document), ephemeral=True, include_data=True)
                return stat.czxid
            except NodeExistsError:
                try:
                    data, stat = self._client.get(path)
                except NoNodeError:
                    continue  # it just expired
            if stat.ephemeralOwner == self._client.client_id[0]:
                return stat.czxid
            held = _parse_broker(r.broker_id, _json(data, path), stat.czxid)
            if held is None or (held.host, held.port) != (r.host, r.port) or self._monotonic() > deadline:
                raise BrokerIdInUse(f"broker id {r.broker_id} is already registered in ZooKeeper by another live "
                                    f"broker ({held.host}:{held.port})" if held else
                                    f"broker id {r.broker_id} is already registered in ZooKeeper")
            if not waiting:
                log.info("broker id %d is still registered by our previous run; waiting for its session to "
                         "expire", r.broker_id)
                waiting = True
            time.sleep(0.25)

    async def unregister_broker(self, broker_id: int) -> None:
        await self._call(self._unregister, broker_id)

    def _unregister(self, broker_id: int) -> None:
        path = f"/brokers/ids/{broker_id}"
        stat = self._client.exists(path)
        if stat is not None and stat.ephemeralOwner == self._client.client_id[0]:
            try:
                self._client.delete(path, version=stat.version)
            except (NoNodeError, BadVersionError):
                pass  # gone or replaced meanwhile: not ours to delete any more

    async def confirm_session(self, broker_id: int) -> bool:
        """True when ZooKeeper answers and this session still owns our registration."""
        stat = await self._call(self._client.exists, f"/brokers/ids/{broker_id}")
        return stat is not None and stat.ephemeralOwner == self._client.client_id[0]

    async def elect_controller(self, broker_id: int) -> int | None:
        return await self._call(self._elect, broker_id)

    def _elect(self, broker_id: int) -> int | None:
        """Create /controller and bump /controller_epoch in one transaction, as Kafka does: an
        election cut short (a reply lost) must not leave this broker holding /controller without
        an epoch, the cluster then without a controller for as long as its session lives."""
        document = _encode({"version": 1, "brokerid": broker_id, "timestamp": str(self._clock())})
        while True:
            try:
                data, stat = self._client.get("/controller_epoch")
                epoch, version = int(data) + 1, stat.version
            except NoNodeError:
                epoch, version = 1, None
            except ValueError:  # unreadable: start over, which still fences every older controller's writes
                log.error("/controller_epoch is not a number (%r); writing epoch 1 over it", data[:50])
                epoch, version = 1, stat.version
            transaction = self._client.transaction()
            transaction.create("/controller", document, ephemeral=True)
            if version is None:
                transaction.create("/controller_epoch", b"1")
            elif epoch == 1:
                transaction.set_data("/controller_epoch", b"1", version=version)
            else:
                transaction.set_data("/controller_epoch", str(epoch).encode(), version=version)
            results = transaction.commit()
            if isinstance(results[0], NodeExistsError):
                return None
            if isinstance(results[1], (BadVersionError, NodeExistsError)):
                continue  # /controller_epoch changed after we read it: read it again
            if any(isinstance(r, Exception) for r in results):
                raise MetaStoreError(f"electing the controller: {results}")
            self._controller_epoch_version = 0 if version is None else results[1].version
            return epoch

    async def write_partition_states(self, states: Mapping[tuple[str, int], PartitionState],
                                     controller_epoch: int) -> dict[tuple[str, int], int]:
        return await self._call(self._write_states, dict(states))

    def _write_states(self, states: dict[tuple[str, int], PartitionState]) -> dict[tuple[str, int], int]:
        made = self._make_partition_paths([key for key, state in states.items() if state.version < 0])
        items = [(key, state) for key, state in sorted(states.items()) if state.version >= 0 or key in made]
        versions = {}
        for start in range(0, len(items), TRANSACTION_CHUNK):
            chunk = items[start:start + TRANSACTION_CHUNK]
            if not self._commit_states(chunk, versions):
                # One stale state must not hold back the others: write them one by one.
                for entry in chunk:
                    self._commit_states([entry], versions)
        return versions

    def _make_partition_paths(self, keys: list[tuple[str, int]]) -> set[tuple[str, int]]:
        """Create the parents of first states below their topics' znodes; the keys whose topic is
        still there. The creates are pipelined (a new topic of 1,000 partitions is 1,001 of them),
        each topic's `partitions` before its children: a session's requests are served in order.

        Never the topic's znode itself (ensure_path would): a deposed controller writing the first
        states of a topic deleted meanwhile would bring its name back, empty, for good."""
        sent = [(None, self._client.create_async(f"{_topic_path(name)}/partitions"))
                for name in sorted({name for name, _ in keys})]
        sent += [(key, self._client.create_async(f"{_topic_path(key[0])}/partitions/{key[1]}")) for key in keys]
        made = set()
        for key, result in sent:
            try:
                result.get()
            except NodeExistsError:
                pass
            except NoNodeError:
                continue
            if key is not None:
                made.add(key)
        return made

    def _commit_states(self, items: list[tuple[tuple[str, int], PartitionState]], versions: dict) -> bool:
        """One multi-op, conditional on the controller epoch and each state's version; True if it took."""
        transaction = self._client.transaction()
        transaction.check("/controller_epoch", self._controller_epoch_version)
        for (name, partition), state in items:
            data = _encode(_state_document(state))
            if state.version < 0:
                transaction.create(_state_path(name, partition), data)
            else:
                transaction.set_data(_state_path(name, partition), data, version=state.version)
        results = transaction.commit()
        if isinstance(results[0], (BadVersionError, NoNodeError)):
            raise StaleWrite("the controller epoch moved on: another broker is the controller")
        if any(isinstance(r, Exception) for r in results):
            return False
        for (key, state), result in zip(items, results[1:]):
            versions[key] = 0 if state.version < 0 else result.version
        return True

    async def update_partition_state(self, topic: str, partition: int, state: PartitionState) -> int:
        """A leader's ISR change: conditional on the state's znode version only (as Kafka's leaders
        wrote it), so a leader whose state moved on (a new epoch, a new leader) cannot write."""
        stat = await self._call(self._client.set, _state_path(topic, partition), _encode(_state_document(state)),
                                state.version)
        return stat.version

    async def create_topic(self, assignment: TopicAssignment, configs: Mapping[str, str]) -> None:
        await self._call(self._create_topic, assignment, dict(configs))

    def _create_topic(self, assignment: TopicAssignment, configs: dict[str, str]) -> None:
        transaction = self._client.transaction()
        transaction.create(f"/config/topics/{assignment.name}", _encode({"version": 1, "config": configs}))
        transaction.create(_topic_path(assignment.name), _encode(self._topic_document(assignment)))
        results = transaction.commit()
        if any(isinstance(r, NodeExistsError) for r in results):
            raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{assignment.name}' already exists.")
        if any(isinstance(r, Exception) for r in results):
            raise MetaStoreError(f"creating topic {assignment.name}: {results}")

    @staticmethod
    def _topic_document(assignment: TopicAssignment) -> dict[str, Any]:
        return {"version": 3, "topic_id": uuid_to_base64(assignment.topic_id),
                "partitions": {str(p): list(r) for p, r in enumerate(assignment.replicas)},
                "adding_replicas": {str(p): list(r) for p, r in sorted(assignment.adding.items())},
                "removing_replicas": {str(p): list(r) for p, r in sorted(assignment.removing.items())}}

    async def add_partitions(self, name: str, replicas: Sequence[Sequence[int]], expected_version: int) -> None:
        current = self._image.topics.get(name)
        if current is None:
            raise StaleWrite(f"topic {name} is gone")
        grown = TopicAssignment(name, current.topic_id, tuple(tuple(r) for r in replicas))
        await self._call(lambda: self._client.set(_topic_path(name), _encode(self._topic_document(grown)),
                                                  version=expected_version))

    async def set_topic_configs(self, name: str, configs: Mapping[str, str]) -> None:
        data = _encode({"version": 1, "config": dict(configs)})
        await self._call(lambda: self._client.set(f"/config/topics/{name}", data))

    async def request_topic_deletion(self, name: str) -> None:
        def request() -> None:
            try:
                self._client.create(f"/admin/delete_topics/{name}")
            except NodeExistsError:
                pass  # already being deleted
        await self._call(request)

    async def delete_topic(self, name: str, controller_epoch: int) -> None:
        await self._call(self._delete_topic, name)

    def _delete_topic(self, name: str) -> None:
        """Remove the topic's znodes, children first, in multi-ops each conditional on the controller
        epoch: a deposed controller deletes nothing."""
        paths = self._subtrees([_topic_path(name), f"/config/topics/{name}", f"/admin/delete_topics/{name}"])
        for start in range(0, len(paths), TRANSACTION_CHUNK):
            transaction = self._client.transaction()
            transaction.check("/controller_epoch", self._controller_epoch_version)
            for path in paths[start:start + TRANSACTION_CHUNK]:
                transaction.delete(path)
            results = transaction.commit()
            if isinstance(results[0], (BadVersionError, NoNodeError)):
                raise StaleWrite("the controller epoch moved on: another broker is the controller")
            if any(isinstance(r, Exception) for r in results):
                raise StaleWrite(f"deleting topic {name}: its znodes changed meanwhile")

    def _subtrees(self, roots: list[str]) -> list[str]:
        """The existing znodes at and below `roots`, every child before its parent; read a level at
        a time, its reads pipelined (a topic of 1,000 partitions is 4 levels, not 2,002 round trips)."""
        levels: list[list[str]] = []
        level = roots
        while level:
            sent = [(path, self._client.get_children_async(path)) for path in level]
            found, level = [], []
            for path, result in sent:
                try:
                    children = result.get()
                except NoNodeError:
                    continue
                found.append(path)
                level += [f"{path}/{child}" for child in children]
            levels.append(found)
        return [path for found in reversed(levels) for path in found]

    async def request_leader_elections(self, elections: Mapping[tuple[str, int], int]) -> None:
        await self._call(self._request_elections, dict(elections))

    def _request_elections(self, elections: dict[tuple[str, int], int]) -> None:
        """Add to the pending elections: create the znode, or merge into it (conditional on its version)."""
        while True:
            try:
                data, stat = self._client.get(ELECTIONS_PATH)
            except NoNodeError:
                try:
                    self._client.create(ELECTIONS_PATH, _encode(_elections_document(elections)))
                    return
                except NodeExistsError:
                    continue
            merged = {**_parse_elections(_json(data, ELECTIONS_PATH)), **elections}
            try:
                self._client.set(ELECTIONS_PATH, _encode(_elections_document(merged)), version=stat.version)
                return
            except BadVersionError:
                continue  # the controller completed them, or another broker added some: read again
            except NoNodeError:
                continue

    async def request_reassignments(self, reassignments: Mapping[tuple[str, int], tuple[int, ...] | None]) -> None:
        await self._call(self._merge, REASSIGNMENTS_PATH, _parse_reassignments, _reassignments_document,
                         dict(reassignments))

    def _merge(self, path: str, parse: Callable[[Any], dict], document: Callable[[Mapping], Any],
               entries: dict) -> None:
        """Add to a pending-requests znode: create it, or merge into it (conditional on its version)."""
        while True:
            try:
                data, stat = self._client.get(path)
            except NoNodeError:
                try:
                    self._client.create(path, _encode(document(entries)))
                    return
                except NodeExistsError:
                    continue
            merged = {**parse(_json(data, path)), **entries}
            try:
                self._client.set(path, _encode(document(merged)), version=stat.version)
                return
            except (BadVersionError, NoNodeError):
                continue  # the controller took them, or another broker added some: read again

    async def write_reassignments(self, assignments: Mapping[str, TopicAssignment], controller_epoch: int,
                                  requests_version: int) -> None:
        await self._call(self._write_reassignments, dict(assignments), requests_version)

    def _write_reassignments(self, assignments: dict[str, TopicAssignment], requests_version: int) -> None:
        """The topics' assignments (each conditional on its znode version) and, when `requests_version`
        is not -1, the removal of the requests they carry out, in one multi-op conditional on the
        controller epoch."""
        transaction = self._client.transaction()
        transaction.check("/controller_epoch", self._controller_epoch_version)
        for name, assignment in sorted(assignments.items()):
            transaction.set_data(_topic_path(name), _encode(self._topic_document(assignment)),
                                 version=assignment.version)
        if requests_version >= 0:
            transaction.delete(REASSIGNMENTS_PATH, version=requests_version)
        results = transaction.commit()
        if isinstance(results[0], (BadVersionError, NoNodeError)):
            raise StaleWrite("the controller epoch moved on: another broker is the controller")
        if any(isinstance(r, Exception) for r in results):
            raise StaleWrite(f"reassigning partitions of {sorted(assignments)}: their znodes changed meanwhile")

    async def complete_leader_elections(self, version: int) -> None:
        """The controller acted on the elections of this version of the znode: remove it (StaleWrite
        when more were asked for meanwhile; the controller acts on those, then completes again)."""
        def complete() -> None:
            try:
                self._client.delete(ELECTIONS_PATH, version=version)
            except NoNodeError:
                pass
        await self._call(complete)

    async def claim_producer_id_block(self, broker_id: int, size: int) -> int:
        return await self._call(self._claim_block, broker_id, size)

    def _claim_block(self, broker_id: int, size: int) -> int:
        path = "/latest_producer_id_block"
        while True:
            try:
                data, stat = self._client.get(path)
            except NoNodeError:
                try:
                    self._client.create(path, self._block(broker_id, 0, size))
                    return 0
                except NodeExistsError:
                    continue
            try:
                start = int(_json(data, path)["block_end"]) + 1
            except (KeyError, TypeError, ValueError):  # restarting from 0 would hand out ids again
                raise MetaStoreError(f"{path} is unreadable ({data[:100]!r}): no producer ids until it is "
                                     "repaired") from None
            try:
                self._client.set(path, self._block(broker_id, start, size), version=stat.version)
                return start
            except BadVersionError:
                continue  # another broker took a block first

    @staticmethod
    def _block(broker_id: int, start: int, size: int) -> bytes:
        return _encode({"version": 1, "broker": broker_id, "block_start": str(start),
                        "block_end": str(start + size - 1)})
