"""The broker's shared state: what every handler can reach through `ctx.broker`."""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from kbroker.broker.dispatch import Dispatcher
from kbroker.broker.dynamic_config import DynamicBrokerConfig
from kbroker.broker.flusher import Flusher
from kbroker.broker.handlers.txn_markers import write_txn_markers
from kbroker.broker.log_cleaner import LogCleanerService
from kbroker.broker.partitions import PartitionService
from kbroker.broker.producer_ids import ProducerIdAllocator
from kbroker.broker.purgatory import FetchPurgatory
from kbroker.broker.routes import ROUTES
from kbroker.clock import Clock, MonotonicClock, monotonic_ms
from kbroker.cluster.broker_client import InterBrokerLink
from kbroker.cluster.image import NO_LEADER
from kbroker.cluster.marker_channel import MarkerChannel
from kbroker.cluster.member import ClusterMember
from kbroker.coordinator.group_coordinator import GroupCoordinator
from kbroker.coordinator.records import OFFSETS_TOPIC
from kbroker.coordinator.txn_coordinator import TransactionCoordinator
from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.topics import INTERNAL_TOPICS
from kbroker.cluster.acls import ClusterAclStore
from kbroker.cluster.client_quotas import ClusterQuotaStore
from kbroker.cluster.credentials import ClusterCredentialStore
from kbroker.security.acl_store import FileAclStore
from kbroker.security.acls import Authorizer
from kbroker.security.credentials import CredentialStore, FileCredentialStore
from kbroker.security.quota_store import FileQuotaStore
from kbroker.security.quotas import CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE, QuotaManager

if TYPE_CHECKING:
    from kbroker.broker.metrics import BrokerMetrics
    from kbroker.cluster.metastore import MetaStore
    from kbroker.config import Config
    from kbroker.log.log_manager import LogManager
    from kbroker.log.topics import TopicInfo

log = logging.getLogger("kbroker.broker")


class Broker:
    def __init__(self, config: Config, logs: LogManager, store: MetaStore | None = None,
                 link: InterBrokerLink | None = None, *, monotonic: MonotonicClock = monotonic_ms) -> None:
        """`link`: how this broker reaches the others in a cluster (default: from `config`).
        The clocks (kbroker/clock.py): the wall clock is the LogManager's, `monotonic` times intervals and leases."""
        self.dynamic_config = DynamicBrokerConfig(config, store)
        self.dynamic_config.subscribe(lambda new: logs.set_defaults(new.log_defaults()))
        self.logs = logs
        self.now_ms: Clock = logs.clock
        self.monotonic_ms = monotonic
        self.node_id = config.node_id
        self.fetch_waiters = FetchPurgatory()
        self.flusher = Flusher(config, logs, monotonic)
        # Every write to a partition led here: append -> flush -> high watermark -> (acks=all) the ISR.
        self.partitions = PartitionService(logs, self.flusher, self.fetch_waiters)
        self.log_cleaner = LogCleanerService(config, logs)
        self.producer_ids = ProducerIdAllocator(config.data_dir)
        append = self.partitions.append_coordinator_batch
        self.groups = GroupCoordinator(config, logs, append, now_ms=self.now_ms)
        self.transactions = TransactionCoordinator(config, logs, append, self._write_markers,
                                                   self._allocate_producer_id, now_ms=self.now_ms,
                                                   clustered=store is not None)
        self.dispatcher = Dispatcher(self, ROUTES)
        # ACLs, client quotas and SCRAM users: in the data dir on a single node, in ZooKeeper in a cluster.
        self.acl_store: FileAclStore | ClusterAclStore = (FileAclStore(config.data_dir) if store is None
                                                          else ClusterAclStore(store))
        # authorizer.class.name set: every request is checked against the ACLs; None: all allowed.
        self.authorizer = Authorizer(self.acl_store.load(), config.super_users, config.allow_everyone_if_no_acl_found
                                     ) if config.authorizer_class_name else None
        self.client_quotas: FileQuotaStore | ClusterQuotaStore = (FileQuotaStore(config.data_dir) if store is None
                                                                   else ClusterQuotaStore(store))
        self.credentials: CredentialStore = (FileCredentialStore(config.data_dir) if store is None
                                             else ClusterCredentialStore(store))
        window = {"window_ms": config.quota_window_size_seconds * 1000, "samples": config.quota_window_num}
        self.produce_quota = QuotaManager(PRODUCER_BYTE_RATE, self.client_quotas.settings, **window)
        self.fetch_quota = QuotaManager(CONSUMER_BYTE_RATE, self.client_quotas.settings, **window)
        self.request_quota = QuotaManager(REQUEST_PERCENTAGE, self.client_quotas.settings, **window)
        self.metrics: BrokerMetrics | None = None  # metrics.listener set: see attach_metrics
        # Cluster mode (zookeeper.connect): this broker's membership; None on a single node.
        if store is not None and link is None:
            link = InterBrokerLink(config.inter_broker_security, monotonic=monotonic)
        self.cluster = None if store is None else ClusterMember(
            store, config, logs, self.groups, self._leadership_lost, self.topic_deleted,
            self.partitions.replicas_moved,
            transactions=self.transactions, on_change=self._follow_security, link=link, clock=self.now_ms,
            monotonic=monotonic)
        self.partitions.cluster = self.cluster
        self.markers = None if store is None else MarkerChannel(config.node_id, lambda: self.cluster.image,
                                                                link)  # type: ignore[arg-type]

    @property
    def config(self) -> Config:
        """The config in force: the static one with any dynamic changes (dynamic_config.py)."""
        return self.dynamic_config.current

    def _follow_security(self) -> None:
        """Cluster: put the ACLs, quotas and dynamic broker configs ZooKeeper has now (changed through
        any broker) in force here."""
        if self.authorizer is not None:
            self.acl_store.refresh(self.authorizer)
        self.client_quotas.refresh()
        self.dynamic_config.refresh()

    async def _allocate_producer_id(self) -> int:
        if self.cluster is not None:
            return await self.cluster.producer_ids.allocate()
        return self.producer_ids.allocate()

    async def _write_markers(self, producer_id: int, producer_epoch: int, coordinator_epoch: int, commit: bool,
                             partitions: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The transaction coordinator's markers: written here for the partitions led here, sent to
        their leaders (WriteTxnMarkers) for the others."""
        if self.cluster is None:
            return await write_txn_markers(self, producer_id, producer_epoch, coordinator_epoch, commit, partitions)
        image = self.cluster.image
        results: dict[tuple[str, int], int] = {}
        by_leader: dict[int, list[tuple[str, int]]] = {}
        for key in partitions:
            if key[0] not in image.topics:
                results[key] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            else:
                by_leader.setdefault(image.leader_of(*key), []).append(key)
        for key in by_leader.pop(NO_LEADER, []):
            results[key] = ErrorCode.NOT_LEADER_OR_FOLLOWER
        local = by_leader.pop(self.node_id, [])
        sent = [self.markers.send(leader, producer_id, producer_epoch, coordinator_epoch, commit, keys)
                for leader, keys in by_leader.items()]
        if local:
            sent.append(write_txn_markers(self, producer_id, producer_epoch, coordinator_epoch, commit, local))
        for answer in await asyncio.gather(*sent):
            results.update(answer)
        return results

    def attach_metrics(self, metrics: BrokerMetrics) -> None:
        self.metrics = metrics
        self.flusher.on_fsync = metrics.fsync_done

    def not_ready(self) -> list[str]:
        """Why this broker cannot serve everything yet (empty: ready), for /readyz."""
        problems = []
        if self.groups.loading_any():
            problems.append("group coordinator partitions are still loading")
        if self.transactions.loading_any():
            problems.append("transaction coordinator partitions are still loading")
        if self.cluster is not None and not self.cluster.lease_valid():
            problems.append("ZooKeeper has not confirmed this broker's session lately")
        return problems

    @property
    def cluster_id(self) -> str:
        return self.logs.cluster_id

    def _leadership_lost(self, partitions: set[tuple[str, int]]) -> None:
        for key in partitions:  # parked fetches answer now, with NOT_LEADER_OR_FOLLOWER
            self.fetch_waiters.notify(key)

    def topic_exists(self, name: str) -> bool:
        if self.cluster is not None:
            return name in self.cluster.image.topics
        return self.logs.topic(name) is not None

    def auto_create_topic(self, name: str) -> bool:
        """Create `name` with the broker defaults if auto-creation is on; True if it exists now.

        An internal topic is created only with its owner's settings, as Kafka's
        AutoTopicCreationManager does: `__consumer_offsets` by the group coordinator (in a cluster:
        the controller), `__transaction_state` by the transaction coordinator on its first lookup.
        In a cluster the creation goes through the store and is not visible at once: False, and
        the client asks again (Kafka answers LEADER_NOT_AVAILABLE meanwhile).
        """
        if self.topic_exists(name):
            return True
        if not self.config.auto_create_topics_enable:
            return False
        if name == OFFSETS_TOPIC:
            if self.cluster is not None:
                self.cluster.admin.create_offsets_topic(self.config)
                return False
            self.groups.ensure_offsets_topic()
            return True
        if name in INTERNAL_TOPICS:
            return False
        if self.cluster is not None:
            self.cluster.admin.auto_create(name, self.config.num_partitions, self.config.default_replication_factor)
            return False
        try:
            self.logs.create_topic(name, self.config.num_partitions, {})
        except KafkaError as exc:
            if exc.code == ErrorCode.TOPIC_ALREADY_EXISTS:
                return True
            raise
        log.info("auto-created topic %s with %d partitions", name, self.config.num_partitions)
        return True

    async def delete_topic(self, topic: TopicInfo) -> None:
        """Single node: delete the topic's logs, then what refers to it (`topic_deleted`)."""
        self.logs.delete_topic(topic.name)
        await self.topic_deleted(topic)

    async def topic_deleted(self, topic: TopicInfo) -> None:
        """Fetches waiting on the topic are answered at once (it is gone, Kafka's DelayedFetch), and
        its committed offsets leave every group (in a cluster: every group coordinated here)."""
        for partition in range(topic.partition_count):
            self.fetch_waiters.notify((topic.name, partition))
        await self.groups.delete_topic_offsets(topic.name)
