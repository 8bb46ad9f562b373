"""Committed offsets of every group coordinated here (Kafka's OffsetMetadataManager): an in-memory
map, rebuilt from `__consumer_offsets` at start-up and changed only by replaying records. A commit
or a deletion is a `CoordinatorResult` of records; the group coordinator appends them and, once they
are durable, replays them here (`replay`), as the start-up replay does: a failed write changes nothing.

Expiry follows Kafka's `offsets.retention.minutes` rules (OffsetExpirationConditionImpl): an
offset expires once `retention` has passed since its base time, which is when its group became
Empty (a classic group with a protocol type), or its own commit time (a group of manual commits
only, or a consumer group for topics it no longer subscribes to). A commit that carried its own
expiry time (OffsetCommit v2-4 retention_time_ms, record value v1) expires at that time.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from kbroker.coordinator import records as rec
from kbroker.coordinator.result import CoordinatorResult
from kbroker.errors import ErrorCode

TopicPartition = tuple[str, int]
NO_PRODUCER_ID = -1


@dataclass(frozen=True, slots=True)
class OffsetToCommit:
    topic: str
    partition: int
    offset: int
    leader_epoch: int
    metadata: str | None


@dataclass(frozen=True, slots=True)
class CommittedOffset:
    offset: int
    leader_epoch: int  # -1: unknown
    metadata: str
    commit_timestamp: int
    expire_timestamp: int = -1  # -1: the broker's retention applies


class OffsetStore:
    def __init__(self) -> None:
        self._groups: dict[str, dict[TopicPartition, CommittedOffset]] = {}
        # Transactional commits not yet decided: producer id -> group -> partition -> offset.
        self._pending: dict[int, dict[str, dict[TopicPartition, CommittedOffset]]] = {}

    # -- results: what a commit or a deletion writes ----------------------------------------------

    @staticmethod
    def commit(group_id: str, offsets: Sequence[OffsetToCommit], now_ms: int, expire_timestamp: int,
               item_error: Callable[[OffsetToCommit, str], ErrorCode]) -> CoordinatorResult[list[ErrorCode]]:
        """OffsetCommit / TxnOffsetCommit: a record for each offset `item_error` accepts (it sees
        the offset and its metadata, a null one as ""), and an error per offset."""
        records = []
        errors = []
        for item in offsets:
            metadata = item.metadata or ""
            code = item_error(item, metadata)
            errors.append(code)
            if code:
                continue
            records.append(rec.offset_commit(group_id, item.topic, item.partition, rec.OffsetCommitValue(
                offset=item.offset, leader_epoch=item.leader_epoch, metadata=metadata, commit_timestamp=now_ms,
                expire_timestamp=expire_timestamp)))
        return CoordinatorResult(tuple(records), errors)

    def delete(self, group_id: str, partitions: Iterable[TopicPartition]) -> CoordinatorResult[None]:
        """Tombstones for the group's committed offsets of `partitions` (those it has)."""
        return CoordinatorResult(tuple(rec.offset_commit(group_id, topic, partition, None)
                                       for topic, partition in partitions
                                       if self.get(group_id, topic, partition) is not None))

    def replay(self, record: rec.CoordinatorRecord, producer_id: int = NO_PRODUCER_ID) -> None:
        """Apply a written OffsetCommit record (or its tombstone); a transactional one (`producer_id`)
        is staged until its producer's marker."""
        key, value = record.key, record.value
        if value is None:
            self.remove(key.group, key.topic, key.partition)
            return
        committed = CommittedOffset(value.offset, value.leader_epoch, value.metadata, value.commit_timestamp,
                                    value.expire_timestamp)
        if producer_id == NO_PRODUCER_ID:
            self.put(key.group, key.topic, key.partition, committed)
        else:
            self.stage(producer_id, key.group, key.topic, key.partition, committed)

    # -- transactional commits (TxnOffsetCommit): staged until the producer's marker --------------

    def stage(self, producer_id: int, group_id: str, topic: str, partition: int, committed: CommittedOffset) -> None:
        self._pending.setdefault(producer_id, {}).setdefault(group_id, {})[(topic, partition)] = committed

    def has_pending(self, group_id: str, topic: str, partition: int) -> bool:
        return any((topic, partition) in groups.get(group_id, ()) for groups in self._pending.values())

    def end_transaction(self, producer_id: int, commit: bool, in_scope: Callable[[str], bool]) -> list[str]:
        """The producer's marker reached the groups `in_scope` (those of one `__consumer_offsets`
        partition): their staged offsets become committed, or are dropped. The groups touched."""
        groups = self._pending.get(producer_id)
        if not groups:
            return []
        done = [g for g in groups if in_scope(g)]
        for group_id in done:
            staged = groups.pop(group_id)
            if commit:
                for (topic, partition), committed in staged.items():
                    self.put(group_id, topic, partition, committed)
        if not groups:
            del self._pending[producer_id]
        return done

    def drop_pending(self, in_scope: Callable[[str], bool]) -> None:
        """Forget staged offsets of the groups `in_scope` (their partition is no longer coordinated here)."""
        for producer_id in list(self._pending):
            groups = self._pending[producer_id]
            for group_id in [g for g in groups if in_scope(g)]:
                del groups[group_id]
            if not groups:
                del self._pending[producer_id]

    def put(self, group_id: str, topic: str, partition: int, committed: CommittedOffset) -> None:
        self._groups.setdefault(group_id, {})[(topic, partition)] = committed

    def remove(self, group_id: str, topic: str, partition: int) -> bool:
        offsets = self._groups.get(group_id)
        if offsets is None or offsets.pop((topic, partition), None) is None:
            return False
        if not offsets:
            del self._groups[group_id]
        return True

    def get(self, group_id: str, topic: str, partition: int) -> CommittedOffset | None:
        offsets = self._groups.get(group_id)
        return offsets.get((topic, partition)) if offsets else None

    def of_group(self, group_id: str) -> dict[TopicPartition, CommittedOffset]:
        return dict(self._groups.get(group_id, {}))

    def group_ids(self) -> list[str]:
        return list(self._groups)

    def drop_group(self, group_id: str) -> list[TopicPartition]:
        """Forget a group's offsets; returns their partitions (for the tombstones)."""
        return list(self._groups.pop(group_id, {}))

    def __iter__(self) -> Iterator[tuple[str, TopicPartition, CommittedOffset]]:
        for group_id, offsets in self._groups.items():
            for tp, committed in offsets.items():
                yield group_id, tp, committed

    def expired(self, group_id: str, now_ms: int, retention_ms: int, base: str | None,
                state_timestamp_ms: int | None, is_subscribed: Callable[[str], bool]) -> list[TopicPartition]:
        """The group's offsets past retention. `base` is "state" (since the group became Empty),
        "commit" (since each commit) or None (nothing expires)."""
        if base is None:
            return []
        out = []
        for (topic, partition), committed in self._groups.get(group_id, {}).items():
            if is_subscribed(topic):
                continue
            if committed.expire_timestamp >= 0:
                if now_ms >= committed.expire_timestamp:
                    out.append((topic, partition))
                continue
            since = state_timestamp_ms if base == "state" and state_timestamp_ms is not None \
                else committed.commit_timestamp
            if now_ms - since >= retention_ms:
                out.append((topic, partition))
        return out
