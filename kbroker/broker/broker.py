"""The broker's shared state: what every handler can reach through `ctx.broker`."""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from kbroker.broker.dispatch import Dispatcher
from kbroker.broker.flusher import Flusher
from kbroker.broker.log_cleaner import LogCleanerService
from kbroker.broker.producer_ids import ProducerIdAllocator
from kbroker.broker.purgatory import FetchPurgatory
from kbroker.broker.routes import ROUTES
from kbroker.coordinator.group_coordinator import GroupCoordinator
from kbroker.coordinator.records import OFFSETS_TOPIC
from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.topics import INTERNAL_TOPICS

if TYPE_CHECKING:
    from kbroker.config import Config
    from kbroker.log.log_manager import LogManager
    from kbroker.log.partition_log import PartitionLog
    from kbroker.log.topics import TopicInfo

log = logging.getLogger("kbroker.broker")


class Broker:
    def __init__(self, config: Config, logs: LogManager) -> None:
        self.config = config
        self.logs = logs
        self.node_id = config.node_id
        self.fetch_waiters = FetchPurgatory()
        self.flusher = Flusher(config, logs)
        self.log_cleaner = LogCleanerService(config, logs)
        self.producer_ids = ProducerIdAllocator(config.data_dir)
        self.groups = GroupCoordinator(config, logs, self.make_durable, now_ms=self.now_ms)
        self.dispatcher = Dispatcher(self, ROUTES)

    @property
    def cluster_id(self) -> str:
        return self.logs.cluster_id

    @staticmethod
    def now_ms() -> int:
        return int(time.time() * 1000)

    def auto_create_topic(self, name: str) -> bool:
        """Create `name` with the broker defaults if auto-creation is on; True if it exists now.

        An internal topic is created only with its owner's settings, as Kafka's
        AutoTopicCreationManager does: `__consumer_offsets` by the group coordinator; nothing
        here owns `__transaction_state`, so it is not created at all.
        """
        if self.logs.topic(name) is not None:
            return True
        if not self.config.auto_create_topics_enable:
            return False
        if name == OFFSETS_TOPIC:
            self.groups.ensure_offsets_topic()
            return True
        if name in INTERNAL_TOPICS:
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
        """Delete the topic's logs; Fetches waiting on it are answered at once (the topic is gone,
        Kafka's DelayedFetch), and its committed offsets leave every group."""
        self.logs.delete_topic(topic.name)
        for partition in range(topic.partition_count):
            self.fetch_waiters.notify((topic.name, partition))
        await self.groups.delete_topic_offsets(topic.name)

    async def make_durable(self, partition_log: PartitionLog, end_offset: int) -> None:
        """After an internal append (group records): fsync if flush.messages asks, then expose it."""
        if self.flusher.needs_flush(partition_log):
            await self.flusher.flush_through(partition_log, end_offset)
            self.advance_high_watermark(partition_log, min(partition_log.recovery_point, partition_log.log_end_offset))
        else:
            self.advance_high_watermark(partition_log, partition_log.log_end_offset)

    def advance_high_watermark(self, partition_log: PartitionLog, offset: int) -> None:
        """Single node: the high watermark follows the log end (or the fsynced end)."""
        if offset > partition_log.high_watermark:
            partition_log.update_high_watermark(offset)
            self.fetch_waiters.notify((partition_log.topic, partition_log.partition))
