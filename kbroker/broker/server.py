"""The network server: listens, runs the broker, and shuts down cleanly on SIGINT/SIGTERM.

This module and `connection.py` are the only ones that touch sockets.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal

from kbroker import __version__
from kbroker.broker.broker import Broker
from kbroker.broker.connection import Connection
from kbroker.broker.dispatch import Dispatcher
from kbroker.broker.maintenance import run_maintenance
from kbroker.broker.routes import ROUTES
from kbroker.config import Config, Listener
from kbroker.log.log_manager import LogManager

log = logging.getLogger("kbroker.server")


class ListenError(OSError):
    """The listener could not be opened (e.g. the port is taken)."""


async def serve(config: Config) -> None:
    loop = asyncio.get_running_loop()
    logs = LogManager(config.data_dir, config.log_defaults(), node_id=config.node_id).load()
    broker = Broker(config, logs)
    connections: set[Connection] = set()

    def accept() -> Connection:
        return Connection(broker.dispatcher, config.socket_request_max_bytes, connections)

    listener = config.listeners
    try:
        server = await loop.create_server(accept, host=listener.host or None, port=listener.port, reuse_address=True)
    except OSError as exc:
        logs.shutdown()
        raise ListenError(f"cannot listen on {listener}: {exc.strerror or exc}") from exc
    port = server.sockets[0].getsockname()[1]
    if port != listener.port:  # listening on port 0: advertise the port the OS chose
        listener = Listener(listener.host, port)
        advertised = config.advertised_listeners
        if advertised is not None and advertised.port == 0:
            advertised = Listener(advertised.host, port)
        broker.config = config = dataclasses.replace(config, listeners=listener, advertised_listeners=advertised)
    log.info("kbroker %s listening on %s:%d (advertised %s), data dir %s, cluster id %s",
             __version__, listener.host, port, config.advertised, config.data_dir.resolve(), broker.cluster_id)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    background = loop.create_task(run_maintenance(broker))
    loading = loop.create_task(broker.groups.load())  # group requests wait (LOAD_IN_PROGRESS) until done
    broker.groups.start()
    broker.log_cleaner.start()
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        background.cancel()
        loading.cancel()
        await broker.groups.close()  # held JoinGroup/SyncGroup get NOT_COORDINATOR
        server.close()
        for connection in list(connections):  # nothing may append once the logs close
            connection.abort()
        await asyncio.sleep(0)
        broker.log_cleaner.close()
        broker.flusher.close()
        logs.shutdown()
        log.info("stopped cleanly")
