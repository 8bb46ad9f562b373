"""Topic administration in a cluster: any broker takes the request and writes it to the store.

As Kafka's brokers did in ZooKeeper mode (AdminZkClient): the broker that receives CreateTopics
computes the replica assignment over the live brokers and writes the topic's znodes; the
controller sees them and elects leaders; the request is answered once this broker's image shows
every partition led (or with REQUEST_TIMED_OUT after the request's timeout). Deletion is queued
in /admin/delete_topics for the controller and answered once the topic is gone.

Leader elections (ElectLeaders) are judged here first on this broker's image: a partition whose
election is not needed or not possible gets its error at once; the others are queued in
/admin/preferred_replica_election for the controller, and each is answered once the image shows
its outcome (the preferred replica leads; a live leader after an unclean election; or the
election no longer possible), REQUEST_TIMED_OUT for those still open after the request's timeout.

Partition reassignments (AlterPartitionReassignments, KIP-455) are checked here (the partition
exists; the target names registered brokers, each once; a cancel has something to cancel), queued
in /admin/reassign_partitions, and answered once the controller has started them (or, for a
cancel, put the original replicas back): the move itself goes on afterwards, as in Kafka.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from kbroker.cluster.election import PREFERRED, elect
from kbroker.cluster.image import ClusterImage, PartitionState, TopicAssignment
from kbroker.cluster.metastore import MetaStore, MetaStoreError, StaleWrite
from kbroker.cluster.placement import assign_replicas
from kbroker.cluster.reassignment import ongoing, target_replicas
from kbroker.coordinator.records import OFFSETS_TOPIC
from kbroker.coordinator.txn_coordinator import TransactionCoordinator
from kbroker.coordinator.txn_records import TRANSACTION_STATE_TOPIC
from kbroker.errors import ErrorCode, KafkaError
from kbroker.log.config import LogConfig
from kbroker.log.topics import colliding_name, new_topic_id, validate_topic_name

if TYPE_CHECKING:
    from kbroker.config import Config

log = logging.getLogger("kbroker.cluster.admin")


ELECTION_MESSAGES = {
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: "The partition does not exist.",
    ErrorCode.ELECTION_NOT_NEEDED: "Leader election not needed for topic partition.",
    ErrorCode.PREFERRED_LEADER_NOT_AVAILABLE: "The preferred leader was not available.",
    ErrorCode.ELIGIBLE_LEADERS_NOT_AVAILABLE: "Eligible topic partition leaders are not available.",
    ErrorCode.REQUEST_TIMED_OUT: "The election did not complete within the request's timeout.",
}


def _unavailable(exc: MetaStoreError) -> KafkaError:
    return KafkaError(ErrorCode.REQUEST_TIMED_OUT, f"ZooKeeper: {exc}")


def _started(image: ClusterImage, key: tuple[str, int], target: tuple[int, ...] | None) -> bool:
    """The controller took the reassignment into the topic's assignment (or the topic is gone)."""
    assignment = image.topics.get(key[0])
    if assignment is None or key in image.reassignments:
        return assignment is None
    if target is None:
        return not ongoing(assignment, key[1])
    return target_replicas(assignment, key[1]) == target


class ClusterAdmin:
    def __init__(self, store: MetaStore, defaults: LogConfig) -> None:
        self._store = store
        self._defaults = defaults
        self._waiters: list[tuple[Callable[[ClusterImage], bool], asyncio.Future[None]]] = []
        self._creating: set[str] = set()

    def on_change(self) -> None:
        image = self._store.image
        for predicate, future in list(self._waiters):
            if not future.done() and predicate(image):
                future.set_result(None)

    async def _wait_for(self, predicate: Callable[[ClusterImage], bool], timeout_ms: int, what: str) -> None:
        if predicate(self._store.image):
            return
        future = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(future, max(timeout_ms, 0) / 1000)
        except asyncio.TimeoutError:
            raise KafkaError(ErrorCode.REQUEST_TIMED_OUT, f"{what} did not complete within {timeout_ms} ms") from None
        finally:
            self._waiters.remove(entry)

    def _live_racks(self) -> dict[int, str | None]:
        return {b.broker_id: b.rack for b in self._store.image.brokers.values()}

    def _check_assignment(self, replicas: Sequence[Sequence[int]]) -> None:
        live = self._store.image.brokers
        for partition_replicas in replicas:
            if not partition_replicas or len(set(partition_replicas)) != len(partition_replicas):
                raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                 f"Duplicate or empty replica list {list(partition_replicas)}")
            unknown = [b for b in partition_replicas if b not in live]
            if unknown:
                raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, f"Unknown broker(s) in assignment: {unknown}")
        if len({len(r) for r in replicas}) > 1:
            raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, "All partitions should have the same number of replicas")

    async def create_topic(self, name: str, partitions: int, replication_factor: int,
                           assignments: Sequence[Sequence[int]] | None, configs: Mapping[str, str], *,
                           validate_only: bool, timeout_ms: int) -> TopicAssignment:
        validate_topic_name(name)
        image = self._store.image
        if name in image.topic_names:
            raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
        other = colliding_name(name, image.topic_names)
        if other is not None:
            raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION, f"Topic '{name}' collides with existing topic: {other}")
        LogConfig.from_topic_configs(configs, self._defaults)
        if assignments:
            replicas = [list(r) for r in assignments]
            self._check_assignment(replicas)
        else:
            replicas = assign_replicas(self._live_racks(), partitions, replication_factor)
        assignment = TopicAssignment(name, new_topic_id(), tuple(tuple(r) for r in replicas))
        if validate_only:
            return assignment
        try:
            await self._store.create_topic(assignment, configs)
        except MetaStoreError as exc:
            raise _unavailable(exc) from exc
        log.info("created topic %s with %d partitions, replicas %s", name, len(replicas), replicas)
        await self._wait_for(lambda i: i.fully_led(name), timeout_ms, f"creating topic {name}")
        return assignment

    def creating(self, name: str) -> bool:
        """A background creation of `name` is under way."""
        return name in self._creating

    def auto_create(self, name: str, partitions: int, replication_factor: int,
                    configs: Mapping[str, str] | None = None) -> None:
        """Create `name` in the background (a Metadata or Produce for a topic that does not exist)."""
        if name in self._creating:
            return
        self._creating.add(name)

        async def create() -> None:
            try:
                await self.create_topic(name, partitions, replication_factor, None, configs or {},
                                        validate_only=False, timeout_ms=30_000)
            except KafkaError as exc:
                if exc.code != ErrorCode.TOPIC_ALREADY_EXISTS:
                    log.warning("auto-creating topic %s failed: %s", name, exc.message or exc.code.name)
            finally:
                self._creating.discard(name)
        task = asyncio.get_running_loop().create_task(create())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    def create_offsets_topic(self, config: Config) -> None:
        self.auto_create(OFFSETS_TOPIC, config.offsets_topic_num_partitions, config.offsets_topic_replication_factor,
                         {"cleanup.policy": "compact", "segment.bytes": str(config.offsets_topic_segment_bytes),
                          "compression.type": "producer"})

    def create_transaction_state_topic(self, config: Config) -> None:
        self.auto_create(TRANSACTION_STATE_TOPIC, config.transaction_state_log_num_partitions,
                         config.transaction_state_log_replication_factor,
                         TransactionCoordinator.topic_configs(config))

    async def delete_topic(self, name: str, timeout_ms: int) -> None:
        if name not in self._store.image.topic_names:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic '{name}' does not exist.")
        try:
            await self._store.request_topic_deletion(name)
        except MetaStoreError as exc:
            raise _unavailable(exc) from exc
        await self._wait_for(lambda i: name not in i.topic_names, timeout_ms, f"deleting topic {name}")

    async def create_partitions(self, name: str, total: int, assignments: Sequence[Sequence[int]] | None, *,
                                validate_only: bool, timeout_ms: int) -> None:
        current = self._store.image.topics.get(name)
        if current is None:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist.")
        if current.adding or current.removing:
            raise KafkaError(ErrorCode.REASSIGNMENT_IN_PROGRESS, f"A partition reassignment is in progress for the "
                                                                 f"topic '{name}'.")
        if total <= current.partition_count:
            raise KafkaError(ErrorCode.INVALID_PARTITIONS,
                             f"Topic currently has {current.partition_count} partitions, which is higher than or "
                             f"equal to the requested {total}.")
        added = total - current.partition_count
        if assignments is not None:
            if len(assignments) != added:
                raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT, "one assignment is needed for each new partition")
            new = [list(r) for r in assignments]
            self._check_assignment(new)
            factor = len(current.replicas[0])
            bad = [(current.partition_count + i, len(r)) for i, r in enumerate(new) if len(r) != factor]
            if bad:
                raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                 f"Inconsistent replication factor between partitions, partition 0 has {factor} "
                                 f"while partitions [{', '.join(str(p) for p, _ in bad)}] have replication factors "
                                 f"[{', '.join(str(n) for _, n in bad)}], respectively.")
        else:
            # As Kafka's AdminZkClient: start (and shift) where partition 0's leader sits among the
            # brokers, not at random, so that the topic's leaders stay spread as it grows.
            live = self._live_racks()
            first_leader = current.replicas[0][0]
            start = next((i for i, b in enumerate(sorted(live)) if b >= first_leader), 0)
            new = assign_replicas(live, added, len(current.replicas[0]), first_partition=current.partition_count,
                                  start=start, shift=start)
        if validate_only:
            return
        try:
            await self._store.add_partitions(name, [*current.replicas, *new], current.version)
        except StaleWrite as exc:
            raise KafkaError(ErrorCode.REASSIGNMENT_IN_PROGRESS,
                             f"topic {name} changed meanwhile: {exc}") from exc
        except MetaStoreError as exc:
            raise _unavailable(exc) from exc
        await self._wait_for(lambda i: name in i.topics and i.topics[name].partition_count == total
                             and i.fully_led(name), timeout_ms, f"adding partitions to {name}")

    async def alter_configs(self, name: str, configs: Mapping[str, str], *, validate_only: bool) -> None:
        if name not in self._store.image.topics:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {name} does not exist")
        LogConfig.from_topic_configs(configs, self._defaults)
        if validate_only:
            return
        try:
            await self._store.set_topic_configs(name, configs)
        except MetaStoreError as exc:
            raise _unavailable(exc) from exc
        await self._wait_for(lambda i: dict(i.configs.get(name, {})) == dict(configs), 30_000,
                             f"changing the configs of {name}")

    async def elect_leaders(self, election_type: int, partitions: Sequence[tuple[str, int]] | None,
                            timeout_ms: int) -> dict[tuple[str, int], tuple[ErrorCode, str | None]]:
        """Each partition's outcome: NONE (elected), or its error with Kafka's message."""
        image = self._store.image
        if partitions is None:
            partitions = [(name, p) for name, assignment in image.topics.items() if name not in image.deleting
                          for p in range(assignment.partition_count)]
        results: dict[tuple[str, int], tuple[ErrorCode, str | None]] = {}
        pending = []
        for key in dict.fromkeys(partitions):
            outcome = elect(election_type, image, key[0], key[1], 0)
            if isinstance(outcome, PartitionState):
                pending.append(key)
            else:
                results[key] = (outcome, ELECTION_MESSAGES.get(outcome))
        if not pending:
            return results

        def settled(i: ClusterImage) -> bool:
            return all(not isinstance(elect(election_type, i, t, p, 0), PartitionState) for t, p in pending)
        try:
            await self._store.request_leader_elections({key: election_type for key in pending})
            log.info("%s leader election asked for %d partitions: %s", "preferred" if election_type == PREFERRED
                     else "unclean", len(pending), ", ".join(f"{t}-{p}" for t, p in pending[:10]))
            await self._wait_for(settled, timeout_ms, "electing leaders")
        except (MetaStoreError, KafkaError) as exc:
            log.info("leader election: %s", exc)
        image = self._store.image
        for key in pending:
            outcome = elect(election_type, image, key[0], key[1], 0)
            if outcome == ErrorCode.ELECTION_NOT_NEEDED:  # what was asked for is what the image shows
                results[key] = (ErrorCode.NONE, None)
            else:
                code = ErrorCode.REQUEST_TIMED_OUT if isinstance(outcome, PartitionState) else outcome
                results[key] = (code, ELECTION_MESSAGES.get(code))
        return results

    def _check_reassignment(self, image: ClusterImage, topic: str, partition: int,
                            target: Sequence[int] | None) -> tuple[ErrorCode, str] | None:
        assignment = image.topics.get(topic)
        if assignment is None or topic in image.deleting or not 0 <= partition < assignment.partition_count:
            return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The partition {topic}-{partition} does not exist."
        if target is None:
            if not ongoing(assignment, partition):
                return (ErrorCode.NO_REASSIGNMENT_IN_PROGRESS,
                        f"Unable to cancel reassignment of {topic}-{partition}: no reassignment is in progress.")
            return None
        if not target or len(set(target)) != len(target):
            return (ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                    f"Duplicate or empty replica list in partition reassignment: {list(target)}")
        unknown = [b for b in target if b not in image.brokers]
        if unknown:
            return ErrorCode.INVALID_REPLICA_ASSIGNMENT, f"Unknown broker(s) in partition reassignment: {unknown}"
        return None

    async def alter_reassignments(self, requests: Mapping[tuple[str, int], Sequence[int] | None],
                                  timeout_ms: int) -> dict[tuple[str, int], tuple[ErrorCode, str | None]]:
        """Each partition's outcome: NONE (started, or cancelled), or its error with a message."""
        image = self._store.image
        results: dict[tuple[str, int], tuple[ErrorCode, str | None]] = {}
        pending: dict[tuple[str, int], tuple[int, ...] | None] = {}
        for (topic, partition), target in requests.items():
            error = self._check_reassignment(image, topic, partition, target)
            if error is not None:
                results[(topic, partition)] = error
            else:
                pending[(topic, partition)] = None if target is None else tuple(target)
        if not pending:
            return results
        try:
            await self._store.request_reassignments(pending)
            log.info("partition reassignments asked for: %s", ", ".join(
                f"{t}-{p} -> {'cancel' if r is None else list(r)}" for (t, p), r in list(pending.items())[:10]))
            await self._wait_for(lambda i: all(_started(i, key, target) for key, target in pending.items()),
                                 timeout_ms, "reassigning partitions")
            code, message = ErrorCode.NONE, None
        except MetaStoreError as exc:
            code, message = ErrorCode.REQUEST_TIMED_OUT, f"ZooKeeper: {exc}"
        except KafkaError as exc:
            code, message = exc.code, exc.message
        for key in pending:
            results[key] = (code, message)
        return results

    def list_reassignments(self, partitions: Sequence[tuple[str, int]] | None
                           ) -> dict[tuple[str, int], tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]:
        """The reassignments under way (of `partitions`; None: all): replicas, adding, removing."""
        image = self._store.image
        if partitions is None:
            partitions = [(name, p) for name, assignment in image.topics.items()
                          for p in sorted(set(assignment.adding) | set(assignment.removing))]
        listed = {}
        for topic, partition in partitions:
            assignment = image.topics.get(topic)
            if assignment is None or not 0 <= partition < assignment.partition_count or not ongoing(assignment,
                                                                                                    partition):
                continue
            listed[(topic, partition)] = (assignment.replicas[partition], assignment.adding.get(partition, ()),
                                          assignment.removing.get(partition, ()))
        return listed
