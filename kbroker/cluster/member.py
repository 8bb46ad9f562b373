"""This broker as a member of the cluster: registration, its lease, and acting on the image.

On every change of the cluster image (zk_store publishes one after each ZooKeeper change):
- the controller (controller.py) gets its turn;
- the local logs follow the topics: each topic is known locally (its id, partition count,
  configs) and the partitions whose replicas include this broker are opened or created; a topic
  gone from the store, or re-created under another id, is deleted here too (and its committed
  offsets leave the groups coordinated here);
- leadership follows the partition states: a partition is led here when its state names this
  broker; a new leader writes its leader epoch into the log's epoch cache, and leading a partition
  of __consumer_offsets loads its groups (losing it unloads them).

Fencing: a partition is only served as leader while this broker's ZooKeeper session is known to
be alive (the lease: confirmed less than 2/3 of zookeeper.session.timeout.ms ago). A broker paused
past its session timeout (SIGSTOP) therefore answers NOT_LEADER_OR_FOLLOWER from the moment it
runs again, before it has even heard that its session expired; it then registers anew.
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from kbroker.cluster.admin import ClusterAdmin
from kbroker.cluster.controller import Controller
from kbroker.cluster.image import BrokerRegistration, ClusterImage
from kbroker.cluster.metastore import BrokerIdInUse, MetaStore, MetaStoreError
from kbroker.cluster.producer_ids import ProducerIdBlocks
from kbroker.coordinator.records import OFFSETS_TOPIC
from kbroker.errors import KafkaError
from kbroker.log.topics import TopicInfo

if TYPE_CHECKING:
    from kbroker.coordinator.group_coordinator import GroupCoordinator
    from kbroker.log.log_manager import LogManager

log = logging.getLogger("kbroker.cluster")

REREGISTER_RETRY_S = 0.5


class ClusterMember:
    def __init__(self, store: MetaStore, broker_id: int, rack: str | None, session_timeout_ms: int,
                 logs: LogManager, groups: GroupCoordinator,
                 on_leadership_lost: Callable[[set[tuple[str, int]]], None],
                 on_topic_deleted: Callable[[TopicInfo], Awaitable[None]]) -> None:
        self.store = store
        self.broker_id = broker_id
        self._rack = rack
        self._lease_s = session_timeout_ms / 1000 * 2 / 3
        self._confirm_every_s = session_timeout_ms / 1000 / 4
        self._logs = logs
        self._groups = groups
        self._on_leadership_lost = on_leadership_lost
        self._on_topic_deleted = on_topic_deleted
        self.controller = Controller(store, broker_id)
        self.admin = ClusterAdmin(store, logs.defaults)
        self.producer_ids = ProducerIdBlocks(store, broker_id)
        self._registration: BrokerRegistration | None = None
        self._confirmed_at = -math.inf
        self._led: dict[tuple[str, int], int] = {}  # partition -> the leader epoch we lead it in
        self._tasks: set[asyncio.Task] = set()
        self._lease_task: asyncio.Task[None] | None = None
        self._reregistering = False

    @property
    def image(self) -> ClusterImage:
        return self.store.image

    def leads(self, topic: str, partition: int) -> bool:
        return (topic, partition) in self._led and self.lease_valid()

    def lease_valid(self) -> bool:
        return time.monotonic() - self._confirmed_at < self._lease_s

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self, host: str, port: int) -> None:
        """Register (BrokerIdInUse if the id is taken), follow the cluster, run for controller."""
        await self.store.watch(self._on_change, self._on_session_lost)
        self._registration = BrokerRegistration(self.broker_id, host, port, self._rack)
        started = time.monotonic()
        epoch = await self.store.register_broker(self._registration)
        self._confirmed_at = started
        log.info("registered broker %d at %s:%d in ZooKeeper (broker epoch %d)", self.broker_id, host, port, epoch)
        self._lease_task = asyncio.get_running_loop().create_task(self._keep_lease())
        self._on_change()

    async def close(self) -> None:
        if self._lease_task is not None:
            self._lease_task.cancel()
        for task in list(self._tasks):
            task.cancel()
        await self.controller.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.store.close()  # the registration and any /controller vanish with the session

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the lease -----------------------------------------------------------------------------

    async def _keep_lease(self) -> None:
        while True:
            await asyncio.sleep(self._confirm_every_s)
            sent = time.monotonic()
            try:
                alive = await asyncio.wait_for(self.store.confirm_session(self.broker_id), self._lease_s)
            except (MetaStoreError, asyncio.TimeoutError) as exc:
                log.debug("could not confirm the ZooKeeper session: %s", exc)
                continue
            if alive:
                self._confirmed_at = sent
            elif not self._reregistering:  # the session is new (the old one expired): register again
                self._on_session_lost()

    def _on_session_lost(self) -> None:
        self._confirmed_at = -math.inf
        self.controller.resign()
        if not self._reregistering and self._registration is not None:
            self._reregistering = True
            self._spawn(self._reregister())

    async def _reregister(self) -> None:
        try:
            while True:
                started = time.monotonic()
                try:
                    epoch = await self.store.register_broker(self._registration)
                except BrokerIdInUse as exc:
                    log.error("%s; retrying", exc)
                except MetaStoreError as exc:
                    log.info("registering again: %s; retrying", exc)
                else:
                    self._confirmed_at = started
                    log.info("registered broker %d again (broker epoch %d)", self.broker_id, epoch)
                    self._on_change()
                    return
                await asyncio.sleep(REREGISTER_RETRY_S)
        finally:
            self._reregistering = False

    # -- acting on the image -------------------------------------------------------------------

    def _on_change(self) -> None:
        self.controller.on_change()
        image = self.image
        self._follow_topics(image)
        self._follow_leadership(image)
        self.admin.on_change()

    def _follow_topics(self, image: ClusterImage) -> None:
        for info in self._logs.topics():
            current = image.topics.get(info.name)
            if info.name not in image.topic_names or (current is not None and current.topic_id != info.topic_id):
                log.info("topic %s (%s) is gone from the cluster%s: deleting it here", info.name, info.topic_id,
                         "" if current is None else f" (it is {current.topic_id} now)")
                self._logs.delete_topic(info.name)
                self._spawn(self._on_topic_deleted(info))
        for name, assignment in image.topics.items():
            info = TopicInfo.of(name, assignment.topic_id, assignment.partition_count, image.configs.get(name, {}))
            local = [p for p, replicas in enumerate(assignment.replicas) if self.broker_id in replicas]
            try:
                self._logs.host_partitions(info, local)
            except KafkaError as exc:
                log.error("cannot host the partitions of %s here: %s", name, exc.message or exc.code.name)

    def _follow_leadership(self, image: ClusterImage) -> None:
        led = {}
        for (topic, partition), state in image.states.items():
            if state.leader == self.broker_id and self._logs.get_log(topic, partition) is not None:
                led[(topic, partition)] = state.leader_epoch
        for key, epoch in led.items():
            if self._led.get(key) != epoch:
                self._logs.get_log(*key).become_leader(epoch)
                if key not in self._led:
                    log.info("leading %s-%d in leader epoch %d", key[0], key[1], epoch)
                    if key[0] == OFFSETS_TOPIC:
                        self._spawn(self._groups.load_partition(key[1]))
        lost = set(self._led) - set(led)
        for topic, partition in lost:
            log.info("no longer leading %s-%d", topic, partition)
            if topic == OFFSETS_TOPIC:
                self._groups.unload_partition(partition)
        self._led = led
        if lost:
            self._on_leadership_lost(lost)
