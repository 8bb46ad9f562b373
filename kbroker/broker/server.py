"""The network server: listens, runs the broker, and shuts down cleanly on SIGINT/SIGTERM.

This module and `connection.py` are the only ones that touch sockets. The `Acceptor` owns
the listening sockets of every listener (`listeners=PLAINTEXT://...,SASL_SSL://...`), each with
its channel (TLS context, SASL settings: kbroker/broker/authentication.py), and an accept loop
per socket (as Kafka's `Acceptor` thread), because `max.connections` is honoured by not
accepting: at the limit the loop waits for a connection to close and new clients wait in the
listen backlog (see connection_quotas.py). It also keeps the set of open connections and closes
the idle ones (`connections.max.idle.ms`). A TLS handshake runs in a task of its own, out of
the accept loop's way.

Start-up raises the soft RLIMIT_NOFILE to the hard limit: each connection is a descriptor,
and the log keeps up to a bounded number of segment files open (kbroker/log/files.py).
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import errno
import gc
import logging
import resource
import signal
import socket
import ssl
from typing import TYPE_CHECKING

from kbroker import __version__
from kbroker.broker.authentication import Channel
from kbroker.broker.broker import Broker
from kbroker.broker.connection import CloseReason, Connection
from kbroker.broker.connection_quotas import ConnectionQuotas, peer_address, resolve_overrides
from kbroker.broker.dispatch import Dispatcher
from kbroker.broker.dynamic_config import load_dynamic
from kbroker.broker.maintenance import run_maintenance
from kbroker.cluster.broker_client import InterBrokerLink
from kbroker.config import Config
from kbroker.log.files import OpenFiles, capacity_for
from kbroker.log.log_manager import LogManager
from kbroker.security.tls import server_context

if TYPE_CHECKING:
    from kbroker.broker.metrics_http import MetricsServer
    from kbroker.cluster.metastore import MetaStore

log = logging.getLogger("kbroker.server")

LISTEN_BACKLOG = 1024  # Linux caps it at net.core.somaxconn
ACCEPT_RETRY_DELAY = 1.0  # after EMFILE and the like, as asyncio's own servers do
TLS_HANDSHAKE_TIMEOUT = 10.0
CONTROLLED_SHUTDOWN_TIMEOUT_S = 5.0  # most partitions move in milliseconds; this bounds a stuck one
_RESOURCE_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class ListenError(OSError):
    """The listener could not be opened (e.g. the port is taken)."""


class StartupError(Exception):
    """The broker cannot start (e.g. ZooKeeper unreachable, its broker id taken): one line, exit 1."""


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit where allowed; return the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open file limit from %d to %d: %s", soft, hard, exc)
    return soft


class Acceptor:
    def __init__(self, config: Config, dispatcher: Dispatcher) -> None:
        self._config = config
        self._dispatcher = dispatcher
        self.connections: set[Connection] = set()
        self.closed_for: collections.Counter[CloseReason] = collections.Counter()  # closes the broker chose
        self.quotas = ConnectionQuotas(config.max_connections, config.max_connections_per_ip,
                                       resolve_overrides(config.max_connections_per_ip_overrides))
        self._slot_freed = asyncio.Event()
        self._sockets: list[socket.socket] = []
        self._listening: list[tuple[socket.socket, Channel, ssl.SSLContext | None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._handshakes: set[asyncio.Task[None]] = set()

    def reconfigure(self, config: Config) -> None:
        """Dynamic max.connections(.per.ip)(.overrides): new connections count against the new
        limits; open ones stay, as in Kafka."""
        self.quotas.max_connections = config.max_connections
        self.quotas.max_per_ip = config.max_connections_per_ip
        self.quotas.overrides = resolve_overrides(config.max_connections_per_ip_overrides)
        self._slot_freed.set()  # a raised max.connections admits the backlog at once

    def bind(self, host: str, port: int, channel: Channel, tls: ssl.SSLContext | None) -> int:
        """Open a listener's sockets (every address of `host`; all interfaces when empty); the port."""
        first = len(self._sockets)
        try:
            infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            for family, kind, proto, _, address in dict.fromkeys(infos):
                try:
                    sock = socket.socket(family, kind, proto)
                except OSError:  # a family this host lacks (no IPv6): as asyncio's create_server, skip it
                    continue
                self._sockets.append(sock)
                self._listening.append((sock, channel, tls))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if self._config.socket_receive_buffer_bytes >= 0:  # inherited by accepted sockets
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._config.socket_receive_buffer_bytes)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if port == 0 and len(self._sockets) > first + 1:  # every address on the port the first one got
                    address = (address[0], self._sockets[first].getsockname()[1], *address[2:])
                sock.bind(address)
                sock.listen(LISTEN_BACKLOG)
                sock.setblocking(False)
            if len(self._sockets) == first:
                raise OSError(f"no usable address for {host!r}")
        except OSError:
            self.close()
            raise
        return self._sockets[first].getsockname()[1]

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._accept_loop(*listening)) for listening in self._listening]
        if self._config.connections_max_idle_ms >= 0:
            self._tasks.append(loop.create_task(self._close_idle(self._config.connections_max_idle_ms)))

    def close(self) -> None:
        """Stop accepting; open connections stay (see `abort_all`)."""
        for task in (*self._tasks, *self._handshakes):
            task.cancel()
        for sock in self._sockets:
            sock.close()

    def abort_all(self) -> None:
        for connection in list(self.connections):
            connection.abort()

    async def _accept_loop(self, sock: socket.socket, channel: Channel, tls: ssl.SSLContext | None) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self.quotas.slot_available():  # max.connections: leave them in the backlog
                self._slot_freed.clear()
                await self._slot_freed.wait()
            try:
                client, address = await loop.sock_accept(sock)
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRORS:
                    log.error("cannot accept connections: %s; retrying in %.0f s", exc, ACCEPT_RETRY_DELAY)
                    await asyncio.sleep(ACCEPT_RETRY_DELAY)
                continue
            if tls is not None:  # the handshake takes round trips: not in the accept loop's way
                task = loop.create_task(self._admit_logged(client, address[0], channel, tls))
                self._handshakes.add(task)
                task.add_done_callback(self._handshakes.discard)
            else:
                await self._admit_logged(client, address[0], channel, None)

    async def _admit_logged(self, client: socket.socket, host: str, channel: Channel,
                            tls: ssl.SSLContext | None) -> None:
        try:
            await self._admit(client, host, channel, tls)
        except (ssl.SSLError, ConnectionError, TimeoutError) as exc:
            log.info("TLS handshake with %s on listener %s failed: %s", host, channel.name, exc)
        except Exception:
            log.exception("could not set up a connection from %s", host)

    async def _admit(self, client: socket.socket, host: str, channel: Channel, tls: ssl.SSLContext | None) -> None:
        address = peer_address(host)
        if not self.quotas.admit(address):
            log.info("Rejected connection from %s, address already has the configured maximum of %d connections.",
                     address, self.quotas.limit_for(address))
            client.close()
            return
        released = False
        connection: Connection | None = None

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self.quotas.release(address)
                self._slot_freed.set()
                if connection is not None and connection.closed_for is not None:
                    self.closed_for[connection.closed_for] += 1

        config = self._config
        try:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            if config.socket_send_buffer_bytes >= 0:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, config.socket_send_buffer_bytes)
            connection = Connection(self._dispatcher, config.socket_request_max_bytes, self.connections,
                                    max_in_flight=config.queued_max_requests, on_lost=release, channel=channel)
            await asyncio.get_running_loop().connect_accepted_socket(
                lambda: connection, client, ssl=tls, ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if tls else None)
        except BaseException:
            release()
            client.close()
            raise

    async def _close_idle(self, idle_ms: int) -> None:
        loop = asyncio.get_running_loop()
        idle = idle_ms / 1000
        while True:
            await asyncio.sleep(min(max(idle / 4, 0.01), 1.0))
            now = loop.time()
            for connection in list(self.connections):
                if connection.idle_for(now) >= idle:
                    connection.expire(f"idle for more than connections.max.idle.ms={idle_ms}")


async def _connect_store(config: Config) -> tuple[MetaStore, str]:
    """Cluster mode: connect to ZooKeeper and learn the cluster id (proposing one if it has none)."""
    from kbroker.cluster.metastore import MetaStoreError
    from kbroker.cluster.zk_store import ZkMetaStore  # the only import of kazoo, and only in cluster mode
    from kbroker.log.checkpoints import uuid_to_base64
    from kbroker.log.topics import new_topic_id

    store = ZkMetaStore(config.zookeeper_connect, session_timeout_ms=config.zookeeper_session_timeout_ms,
                        connection_timeout_ms=config.effective_zookeeper_connection_timeout_ms)
    try:
        await store.start()
        return store, await store.cluster_id(uuid_to_base64(new_topic_id()))
    except MetaStoreError as exc:
        await store.close()
        raise StartupError(str(exc)) from exc


async def _join_cluster(broker: Broker, logs: LogManager) -> None:
    from kbroker.cluster.metastore import BrokerIdInUse, MetaStoreError

    from kbroker.cluster.image import Endpoint

    config = broker.config
    advertised = config.advertised_for(config.inter_broker_listener)
    endpoints = tuple(Endpoint(listener.name, endpoint.host, endpoint.port, config.security_protocol(listener.name))
                      for listener in config.listeners for endpoint in [config.advertised_for(listener.name)])
    try:
        await broker.cluster.start(advertised.host, advertised.port, endpoints)
    except (BrokerIdInUse, MetaStoreError) as exc:
        await broker.cluster.close()
        logs.shutdown()
        raise StartupError(str(exc)) from exc


def _tls_contexts(config: Config) -> dict[str, ssl.SSLContext]:
    """Each TLS listener's context: keys and certificates are read now, so a bad one stops the start."""
    contexts = {}
    for name, security in config.security.items():
        if security.tls is not None:
            try:
                contexts[name] = server_context(security.tls)
            except ValueError as exc:
                raise StartupError(f"listener {name}: {exc}") from exc
    return contexts
def _inter_broker_link(config: Config) -> InterBrokerLink:
    """How this broker reaches the others; its TLS client side is loaded now, so a bad one stops the start."""
    try:
        return InterBrokerLink(config.inter_broker_security)
    except ValueError as exc:
        raise StartupError(f"inter-broker listener {config.inter_broker_listener}: {exc}") from exc


async def _load_coordinators(broker: Broker) -> None:
    """Groups first: a transaction completed on load writes markers that apply staged offsets."""
    await broker.groups.load()
    await broker.transactions.load()


async def _start_metrics(broker: Broker, acceptor: Acceptor) -> MetricsServer:
    from kbroker.broker.metrics import BrokerMetrics  # prometheus_client: only when metrics are on
    from kbroker.broker.metrics_http import MetricsServer

    listener = broker.config.metrics_listener
    metrics = BrokerMetrics(broker, acceptor.connections, acceptor.closed_for)
    server = MetricsServer(broker, metrics)
    try:
        port = await server.start(listener.host, listener.port)
    except OSError as exc:
        raise ListenError(f"cannot listen on metrics.listener {listener}: {exc.strerror or exc}") from exc
    broker.attach_metrics(metrics)
    log.info("metrics on http://%s:%d/metrics (also /healthz, /readyz)", listener.host, port)
    return server


async def serve(config: Config) -> None:
    loop = asyncio.get_running_loop()
    tls_contexts = _tls_contexts(config)
    link = _inter_broker_link(config) if config.zookeeper_connect else None
    open_files = raise_open_file_limit()
    segment_files = OpenFiles(capacity_for(open_files))
    store, cluster_id = await _connect_store(config) if config.zookeeper_connect else (None, None)
    if store is None:
        config = load_dynamic(config)
    started = loop.time()
    try:
        logs = LogManager(config.data_dir, config.log_defaults(), node_id=config.node_id, cluster_id=cluster_id,
                          hosts_every_partition=store is None, files=segment_files).load()
    except BaseException:
        if store is not None:  # kazoo's threads would keep the process alive
            await store.close()
        raise
    log.info("log loaded in %.2f s; %d segment files open (at most %d)", loop.time() - started,
             len(segment_files), segment_files.capacity)
    broker = Broker(config, logs, store, link)
    acceptor = Acceptor(config, broker.dispatcher)
    broker.dynamic_config.subscribe(acceptor.reconfigure)
    listeners, advertised = list(config.listeners), list(config.advertised_listeners or ())
    for index, listener in enumerate(config.listeners):
        channel = Channel(config.security[listener.name], broker.credentials, config.connections_max_reauth_ms,
                          config.connection_failed_authentication_delay_ms)
        try:
            port = acceptor.bind(listener.host, listener.port, channel, tls_contexts.get(listener.name))
        except OSError as exc:
            logs.shutdown()
            if store is not None:
                await store.close()
            raise ListenError(f"cannot listen on {listener}: {exc.strerror or exc}") from exc
        if port != listener.port:  # listening on port 0: advertise the port the OS chose
            listeners[index] = dataclasses.replace(listener, port=port)
            advertised = [dataclasses.replace(item, port=port) if item.name == listener.name and item.port == 0
                          else item for item in advertised]
    if listeners != list(config.listeners):  # every reader goes through broker.config: none keeps port 0
        config = dataclasses.replace(config, listeners=tuple(listeners), advertised_listeners=tuple(advertised) or None)
        broker.dynamic_config.replace(config)
    try:
        metrics_server = await _start_metrics(broker, acceptor) if config.metrics_listener else None
    except ListenError:
        acceptor.close()
        logs.shutdown()
        if store is not None:
            await store.close()
        raise
    # Everything loaded so far (segments, indexes, topic state: a lot with many partitions)
    # lives as long as the broker: keep it out of the collector's full passes, which would
    # otherwise walk it all and stall the loop for every client.
    if broker.cluster is not None:
        await _join_cluster(broker, logs)
    gc.freeze()
    acceptor.start()
    # The first listener as before (kbroker.embedded reads this line); the others named after it.
    others = "".join(f", {item.url} (advertised {config.advertised_for(item.name)})" for item in config.listeners[1:])
    log.info("kbroker %s listening on %s (advertised %s)%s, data dir %s, cluster id %s, open file limit %d",
             __version__, config.listeners[0], config.advertised, others, config.data_dir.resolve(),
             broker.cluster_id, open_files)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    background = loop.create_task(run_maintenance(broker))
    # Single node: every group and transactional id loads now (requests wait with LOAD_IN_PROGRESS
    # until done); in a cluster a partition of __consumer_offsets or __transaction_state loads
    # when this broker becomes its leader (member.py).
    loading = loop.create_task(_load_coordinators(broker) if broker.cluster is None else asyncio.sleep(0))
    broker.groups.start()
    broker.transactions.start()
    broker.log_cleaner.start()
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        if broker.cluster is not None and config.controlled_shutdown_enable:
            await broker.cluster.shut_down_controlled(CONTROLLED_SHUTDOWN_TIMEOUT_S)
        background.cancel()
        loading.cancel()
        await broker.transactions.close()  # open transactions stay in __transaction_state for the next start
        if broker.markers is not None:
            broker.markers.close()
        if metrics_server is not None:
            metrics_server.close()
        await broker.groups.close()  # held JoinGroup/SyncGroup get NOT_COORDINATOR
        if broker.cluster is not None:  # leave the cluster first: the controller moves on at once
            await broker.cluster.close()
        acceptor.close()
        acceptor.abort_all()  # nothing may append once the logs close
        await asyncio.sleep(0)
        broker.log_cleaner.close()
        await broker.partitions.close()  # acks=0 fsyncs still running
        broker.flusher.close()
        logs.shutdown()
        log.info("stopped cleanly")
