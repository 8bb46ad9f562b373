"""This broker as a member of the cluster: registration, its lease, and acting on the image.

On every change of the cluster image (zk_store publishes one after each ZooKeeper change):
- the controller (controller.py) gets its turn;
- the local logs follow the topics: each topic is known locally (its id, partition count,
  configs) and the partitions whose replicas include this broker are opened or created; a topic
  gone from the store, or re-created under another id, is deleted here too (and its committed
  offsets leave the groups coordinated here); a partition no longer assigned here (reassigned to
  other brokers) is deleted once its state shows this broker neither leading nor in its ISR;
- leadership follows the partition states: a partition is led here when its state names this
  broker; a new leader writes its leader epoch into the log's epoch cache, and leading a partition
  of __consumer_offsets loads its groups (losing it unloads them), one of __transaction_state its
  transactional ids.

Fencing: a partition is only served as leader while this broker's ZooKeeper session is known to
be alive (the lease: confirmed less than 2/3 of zookeeper.session.timeout.ms ago, by the monotonic
clock, so setting the wall clock neither extends nor ends it). A broker paused
past its session timeout (SIGSTOP) therefore answers NOT_LEADER_OR_FOLLOWER from the moment it
runs again, before it has even heard that its session expired; it then registers anew.
"""
from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from kbroker.clock import Clock, MonotonicClock, monotonic_ms, wall_clock_ms
from kbroker.cluster.admin import ClusterAdmin
from kbroker.cluster.broker_client import InterBrokerLink
from kbroker.cluster.controller import Controller
from kbroker.cluster.image import BrokerRegistration, ClusterImage, Endpoint, PartitionState, TopicAssignment
from kbroker.cluster.metastore import BrokerIdInUse, MetaStore, MetaStoreError
from kbroker.cluster.producer_ids import ProducerIdBlocks
from kbroker.cluster.reassignment import removable
from kbroker.cluster.replica_fetcher import ReplicaFetcher
from kbroker.cluster.replica_state import LeaderReplicas
from kbroker.coordinator.records import OFFSETS_TOPIC
from kbroker.coordinator.txn_records import TRANSACTION_STATE_TOPIC
from kbroker.errors import KafkaError
from kbroker.log.topics import TopicInfo

if TYPE_CHECKING:
    from kbroker.config import Config
    from kbroker.coordinator.group_coordinator import GroupCoordinator
    from kbroker.coordinator.txn_coordinator import TransactionCoordinator
    from kbroker.log.log_manager import LogManager
    from kbroker.log.partition_log import PartitionLog

log = logging.getLogger("kbroker.cluster")

REREGISTER_RETRY_S = 0.5


class ClusterMember:
    def __init__(self, store: MetaStore, config: Config, logs: LogManager, groups: GroupCoordinator,
                 on_leadership_lost: Callable[[set[tuple[str, int]]], None],
                 on_topic_deleted: Callable[[TopicInfo], Awaitable[None]],
                 on_high_watermark: Callable[[PartitionLog], None], *,
                 transactions: TransactionCoordinator | None = None, on_change: Callable[[], None] = lambda: None,
                 link: InterBrokerLink | None = None, clock: Clock = wall_clock_ms,
                 monotonic: MonotonicClock = monotonic_ms) -> None:
        """`clock` stamps what followers append; `monotonic` times the lease, the ISR lag and deadlines."""
        broker_id, rack, session_timeout_ms = config.node_id, config.broker_rack, config.zookeeper_session_timeout_ms
        self.store = store
        self.broker_id = broker_id
        self._rack = rack
        self._clock = clock
        self._monotonic = monotonic
        self._lease_ms = session_timeout_ms * 2 / 3
        self._confirm_every_s = session_timeout_ms / 1000 / 4
        self._logs = logs
        self._groups = groups
        self._transactions = transactions
        self._on_leadership_lost = on_leadership_lost
        self._on_topic_deleted = on_topic_deleted
        self._on_high_watermark = on_high_watermark
        self._on_store_change = on_change  # the broker's part: ACLs, quotas
        self._lag_ms = config.replica_lag_time_max_ms
        self._min_insync_default = config.min_insync_replicas
        self._replicas: dict[tuple[str, int], LeaderReplicas] = {}
        self._isr_writes: set[tuple[str, int]] = set()  # one ISR write in flight per partition
        self.isr_shrinks = self.isr_expands = 0  # ISR changes this leader wrote (the metrics)
        self._fetchers: dict[int, ReplicaFetcher] = {}  # by leader
        self._link = link or InterBrokerLink()  # how the fetchers reach their leaders
        self.controller = Controller(store, broker_id, auto_rebalance=config.auto_leader_rebalance_enable,
                                     rebalance_interval_s=config.leader_imbalance_check_interval_seconds,
                                     imbalance_percentage=config.leader_imbalance_per_broker_percentage,
                                     clock=lambda: monotonic() / 1000)
        self.admin = ClusterAdmin(store, logs.defaults)
        self.producer_ids = ProducerIdBlocks(store, broker_id)
        self._registration: BrokerRegistration | None = None
        self._confirmed_at = -math.inf
        self._led: dict[tuple[str, int], int] = {}  # partition -> the leader epoch we lead it in
        self._tasks: set[asyncio.Task] = set()
        self._lease_task: asyncio.Task[None] | None = None
        self._reregistering = False
        self._closing = False
        self._image_changed = asyncio.Event()

    @property
    def image(self) -> ClusterImage:
        return self.store.image

    def leads(self, topic: str, partition: int) -> bool:
        return (topic, partition) in self._led and self.lease_valid()

    def lease_valid(self) -> bool:
        return self._monotonic() - self._confirmed_at < self._lease_ms

    # -- life cycle ----------------------------------------------------------------------------

    async def start(self, host: str, port: int, endpoints: tuple[Endpoint, ...] = ()) -> None:
        """Register (BrokerIdInUse if the id is taken), follow the cluster, run for controller.
        host:port is the inter-broker endpoint; `endpoints` every advertised listener."""
        await self.store.watch(self._on_change, self._on_session_lost)
        self._registration = BrokerRegistration(self.broker_id, host, port, self._rack, endpoints=endpoints)
        started = self._monotonic()
        epoch = await self.store.register_broker(self._registration)
        self._confirmed_at = started
        log.info("registered broker %d at %s:%d in ZooKeeper (broker epoch %d)", self.broker_id, host, port, epoch)
        self._lease_task = asyncio.get_running_loop().create_task(self._keep_lease())
        self._spawn(self._check_isr())
        self._on_change()

    async def shut_down_controlled(self, timeout_s: float) -> None:
        """Kafka's controlled shutdown: leave the live brokers (the registration goes, the session
        stays, so this broker still sees the cluster) and keep serving until the controller has
        moved every partition led here that has another live replica in its ISR. Meanwhile
        clients get NOT_LEADER_OR_FOLLOWER naming the new leader (KIP-951) instead of a closed
        connection, and move over at once. Bounded by `timeout_s`; then `close`."""
        self._closing = True  # the registration goes on purpose: no registering again
        if not self.lease_valid():  # ZooKeeper out of reach: no controller could move anything now
            log.info("controlled shutdown skipped: the ZooKeeper session is not confirmed")
            return
        image = self.image
        moving = {key for key in self._led if (state := image.states.get(key)) is not None and any(
            replica != self.broker_id and replica in image.brokers for replica in state.isr)}
        try:
            await asyncio.wait_for(self.store.unregister_broker(self.broker_id), timeout_s)
        except (MetaStoreError, asyncio.TimeoutError) as exc:
            log.warning("controlled shutdown: could not leave the live brokers: %s", exc or "timed out")
            return
        log.info("controlled shutdown: waiting for %d partitions to move to other leaders", len(moving))
        deadline = self._monotonic() + timeout_s * 1000
        while moving:
            states = self.image.states
            moving = {key for key in moving if key in states and states[key].leader == self.broker_id}
            remaining_ms = deadline - self._monotonic()
            if not moving or remaining_ms <= 0:
                break
            self._image_changed.clear()
            try:
                await asyncio.wait_for(self._image_changed.wait(), remaining_ms / 1000)
            except asyncio.TimeoutError:
                pass
        if moving:
            log.warning("controlled shutdown: %d partitions still name this broker as leader after %.1f s",
                        len(moving), timeout_s)

    async def close(self) -> None:
        self._closing = True  # the session ends here on purpose: no registering again
        if self._lease_task is not None:
            self._lease_task.cancel()
        for task in list(self._tasks):
            task.cancel()
        await self.controller.close()
        for fetcher in self._fetchers.values():
            await fetcher.close()
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
            sent = self._monotonic()
            try:
                alive = await asyncio.wait_for(self.store.confirm_session(self.broker_id), self._lease_ms / 1000)
            except (MetaStoreError, asyncio.TimeoutError) as exc:
                log.debug("could not confirm the ZooKeeper session: %s", exc)
                continue
            if alive:
                self._confirmed_at = sent
            elif not self._reregistering:  # the session is new (the old one expired): register again
                self._on_session_lost()

    def _on_session_lost(self) -> None:
        self._confirmed_at = -math.inf
        if self._closing:
            return
        self.controller.resign()
        if not self._reregistering and self._registration is not None:
            self._reregistering = True
            self._spawn(self._reregister())

    async def _reregister(self) -> None:
        try:
            while True:
                started = self._monotonic()
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
        self._image_changed.set()
        self.controller.on_change()
        image = self.image
        self._follow_topics(image)
        self._follow_leadership(image)
        self.admin.on_change()
        self._on_store_change()

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
                continue
            self._remove_unassigned(image, assignment)

    def _remove_unassigned(self, image: ClusterImage, assignment: TopicAssignment) -> None:
        """Delete the copies of `assignment`'s partitions that a reassignment moved away from here,
        once reassignment.removable allows it."""
        for partition in range(assignment.partition_count):
            key = (assignment.name, partition)
            if self._logs.get_log(*key) is None or not removable(image, self.broker_id, *key):
                continue
            log.info("%s-%d is no longer assigned to broker %d (replicas %s): deleting it here", *key,
                     self.broker_id, list(assignment.replicas[partition]))
            try:
                self._logs.delete_partition(*key)
            except KafkaError as exc:
                log.error("cannot delete %s-%d here: %s", *key, exc.message or exc.code.name)

    def _follow_leadership(self, image: ClusterImage) -> None:
        led: dict[tuple[str, int], int] = {}
        followed: dict[int, dict[tuple[str, int], int]] = {}
        for key, state in image.states.items():
            assignment = image.topics.get(key[0])
            if assignment is None or key[1] >= assignment.partition_count or self._logs.get_log(*key) is None:
                continue
            replicas = assignment.replicas[key[1]]
            if state.leader == self.broker_id and self.broker_id in image.brokers:  # registered: not a leftover
                led[key] = state.leader_epoch
                self._track_followers(key, replicas, state)
            elif self.broker_id in replicas and state.leader in image.brokers and not self._closing:
                followed.setdefault(state.leader, {})[key] = state.leader_epoch
        for key, epoch in led.items():
            if self._led.get(key) != epoch:
                self._logs.get_log(*key).become_leader(epoch)
                if key not in self._led:
                    log.info("leading %s-%d in leader epoch %d", key[0], key[1], epoch)
                    if key[0] == OFFSETS_TOPIC:
                        self._spawn(self._groups.load_partition(key[1]))
                    elif key[0] == TRANSACTION_STATE_TOPIC and self._transactions is not None:
                        self._spawn(self._transactions.load_partition(key[1]))
        lost = set(self._led) - set(led)
        for topic, partition in lost:
            log.info("no longer leading %s-%d", topic, partition)
            self._replicas.pop((topic, partition), None)
            if topic == OFFSETS_TOPIC:
                self._groups.unload_partition(partition)
            elif topic == TRANSACTION_STATE_TOPIC and self._transactions is not None:
                self._transactions.unload_partition(partition)
        self._led = led
        if lost:
            self._on_leadership_lost(lost)
        self._follow_leaders(image, followed)

    def _follow_leaders(self, image: ClusterImage, followed: dict[int, dict[tuple[str, int], int]]) -> None:
        for leader, fetcher in list(self._fetchers.items()):
            if leader not in followed or fetcher.leader != image.brokers.get(leader):
                del self._fetchers[leader]
                self._spawn(fetcher.close())
        for leader, partitions in followed.items():
            fetcher = self._fetchers.get(leader)
            if fetcher is None:
                fetcher = self._fetchers[leader] = ReplicaFetcher(self.broker_id, image.brokers[leader], self._logs,
                                                                  self._link, self._clock)
            if fetcher.partitions != partitions:
                fetcher.set_partitions(partitions)

    # -- the leader's view of its followers ----------------------------------------------------

    def _track_followers(self, key: tuple[str, int], replicas: tuple[int, ...], state: PartitionState) -> None:
        replica_state = self._replicas.get(key)
        if len(replicas) < 2 and replica_state is None:
            return
        if replica_state is None or self._led.get(key) != state.leader_epoch:
            replica_state = LeaderReplicas(self.broker_id, replicas, state.isr, self._monotonic())
            replica_state.leader_end = self._logs.get_log(*key).log_end_offset  # as elected, the truth
            self._replicas[key] = replica_state
        else:
            replica_state.set_replicas(replicas)  # a reassignment adds or removes some
        replica_state.sync_isr(state.isr, state.version)

    def replicas_of(self, topic: str, partition: int) -> LeaderReplicas | None:
        """The followers of a replicated partition led here (None: not replicated, or not led here)."""
        return self._replicas.get((topic, partition))

    def offset_lag(self, partition_log: PartitionLog) -> int:
        """How far this replica's log end is behind the high watermark it knows: 0 where it leads
        (its high watermark never passes its log end); on a follower, the leader's as last fetched."""
        key = (partition_log.topic, partition_log.partition)
        known = partition_log.high_watermark
        for fetcher in self._fetchers.values():
            if key in fetcher.partitions:
                known = max(known, fetcher.leader_high_watermarks.get(key, known))
        return max(known - partition_log.log_end_offset, 0)

    def min_insync_replicas(self, topic: str) -> int:
        configured = self.image.configs.get(topic, {}).get("min.insync.replicas")
        return int(configured) if configured is not None else self._min_insync_default

    def on_follower_fetch(self, topic: str, partition: int, replica: int, fetch_offset: int) -> None:
        """The leader served a follower's Fetch: note its log end; the ISR may grow."""
        key = (topic, partition)
        replica_state = self._replicas.get(key)
        partition_log = self._logs.get_log(topic, partition)
        if replica_state is None or partition_log is None:
            return
        now = self._monotonic()
        replica_state.on_fetch(replica, fetch_offset, partition_log.log_end_offset, now)
        self._on_high_watermark(partition_log)
        joining = replica_state.to_add(partition_log.high_watermark, now, self._lag_ms) & self.image.brokers.keys()
        assignment = self.image.topics.get(topic)
        if assignment is not None:  # a replica being reassigned away does not join again once it left
            joining -= set(assignment.removing.get(partition, ()))
        if joining and key not in self._isr_writes:
            # Counted from now on, before any further append can be acknowledged without them.
            replica_state.start_joining(joining, self.image.states[key].version)
            self._spawn(self._write_isr(key, replica_state.isr | joining))

    async def _check_isr(self) -> None:
        """Every replica.lag.time.max.ms / 2: drop followers that stopped keeping up."""
        while True:
            await asyncio.sleep(self._lag_ms / 2000)
            now = self._monotonic()
            for key, replica_state in list(self._replicas.items()):
                lagging = replica_state.to_remove(now, self._lag_ms)
                if lagging and key not in self._isr_writes and self.leads(*key):
                    log.info("%s-%d: followers %s have not caught up for %d ms", key[0], key[1], sorted(lagging),
                             self._lag_ms)
                    self._spawn(self._write_isr(key, replica_state.isr - lagging))

    async def _write_isr(self, key: tuple[str, int], isr: set[int]) -> None:
        """Write the ISR as the leader (conditional on the state's version); act on it once written:
        the high watermark must never pass a replica the controller could still elect."""
        self._isr_writes.add(key)
        try:
            state = self.image.states.get(key)
            replica_state = self._replicas.get(key)
            if state is None or state.leader != self.broker_id or replica_state is None:
                return
            new = PartitionState(self.broker_id, state.leader_epoch, tuple(sorted(isr)), state.controller_epoch,
                                 state.version)
            replica_state.written_version = await self.store.update_partition_state(key[0], key[1], new)
            log.info("%s-%d: ISR %s -> %s", key[0], key[1], list(state.isr), sorted(isr))
            if len(isr) < len(state.isr):
                self.isr_shrinks += 1
            elif len(isr) > len(state.isr):
                self.isr_expands += 1
            replica_state.isr = set(isr) | {self.broker_id}
            partition_log = self._logs.get_log(*key)
            if partition_log is not None:
                self._on_high_watermark(partition_log)
        except MetaStoreError as exc:  # StaleWrite: the controller moved it on; the image will tell
            log.info("%s-%d: ISR change to %s not written: %s", key[0], key[1], sorted(isr), exc)
        finally:
            self._isr_writes.discard(key)
