"""What a broker knows of the cluster: an immutable snapshot, rebuilt whenever ZooKeeper changes.

Kafka's ZooKeeper layout (ZkData.scala) holds each part; the store reads them into these values:
    /brokers/ids/<id>                         BrokerRegistration (ephemeral; czxid = broker epoch)
    /controller, /controller_epoch            controller_id, controller epoch
    /brokers/topics/<t>                       TopicAssignment (topic id, replicas per partition)
    /brokers/topics/<t>/partitions/<p>/state  PartitionState (leader, leader epoch, ISR)
    /config/topics/<t>                        topic config overrides
    /admin/delete_topics/<t>                  topics being deleted
    /admin/preferred_replica_election         leader elections asked for (ElectLeaders), until the
                                              controller has acted on them
    /admin/reassign_partitions                partition reassignments asked for (AlterPartitionReassignments),
                                              until the controller has written them into the topics' znodes

A reassignment under way (KIP-455) is in the topic's assignment: a partition's replicas are then
the target and the original ones together, `adding` those of the target not in the original,
`removing` those of the original not in the target (reassignment.py).
"""
from __future__ import annotations

import types
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

NO_LEADER = -1


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One advertised listener of a broker (Kafka's `endpoints` entry `NAME://host:port`)."""
    name: str
    host: str
    port: int
    protocol: str = "PLAINTEXT"


@dataclass(frozen=True, slots=True)
class BrokerRegistration:
    broker_id: int
    host: str  # host and port: the inter-broker listener's endpoint
    port: int
    rack: str | None = None
    epoch: int = -1  # the czxid of the registration znode: a restarted broker has a new one
    endpoints: tuple[Endpoint, ...] = ()  # every advertised listener; empty: only host:port

    def endpoint(self, listener: str | None) -> tuple[str, int] | None:
        """Where clients of `listener` reach this broker (None: the inter-broker endpoint); None when
        the broker has no such listener (Kafka leaves it out of that client's Metadata)."""
        if listener is None or not self.endpoints:
            return self.host, self.port
        return next(((e.host, e.port) for e in self.endpoints if e.name == listener), None)


@dataclass(frozen=True, slots=True)
class PartitionState:
    leader: int
    leader_epoch: int
    isr: tuple[int, ...]
    controller_epoch: int
    version: int = -1  # the znode version every write is compared against; -1: not written yet


@dataclass(frozen=True, slots=True)
class TopicAssignment:
    name: str
    topic_id: uuid.UUID
    replicas: tuple[tuple[int, ...], ...]  # index: partition
    version: int = -1
    adding: Mapping[int, tuple[int, ...]] = field(default_factory=dict)  # partition -> replicas being added
    removing: Mapping[int, tuple[int, ...]] = field(default_factory=dict)  # partition -> replicas being removed

    @property
    def partition_count(self) -> int:
        return len(self.replicas)


def _frozen(mapping: Mapping) -> Mapping:
    return types.MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class ClusterImage:
    brokers: Mapping[int, BrokerRegistration] = field(default_factory=dict)
    controller_id: int = NO_LEADER
    topic_names: frozenset[str] = frozenset()  # every topic in the store, its assignment read or not
    topics: Mapping[str, TopicAssignment] = field(default_factory=dict)
    configs: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    states: Mapping[tuple[str, int], PartitionState] = field(default_factory=dict)
    deleting: frozenset[str] = frozenset()
    elections: Mapping[tuple[str, int], int] = field(default_factory=dict)  # -> election type (election.py)
    elections_version: int = -1  # the version of the znode that holds them; -1: none pending
    # -> the target replicas asked for; None: cancel the reassignment under way
    reassignments: Mapping[tuple[str, int], tuple[int, ...] | None] = field(default_factory=dict)
    reassignments_version: int = -1  # the version of /admin/reassign_partitions; -1: none pending

    @classmethod
    def of(cls, brokers: Mapping[int, BrokerRegistration], controller_id: int, topic_names: frozenset[str],
           topics: Mapping[str, TopicAssignment], configs: Mapping[str, Mapping[str, str]],
           states: Mapping[tuple[str, int], PartitionState], deleting: frozenset[str],
           elections: Mapping[tuple[str, int], int] | None = None, elections_version: int = -1,
           reassignments: Mapping[tuple[str, int], tuple[int, ...] | None] | None = None,
           reassignments_version: int = -1) -> ClusterImage:
        return cls(_frozen(brokers), controller_id, topic_names, _frozen(topics),
                   _frozen({name: _frozen(c) for name, c in configs.items()}), _frozen(states), deleting,
                   _frozen(elections or {}), elections_version, _frozen(reassignments or {}), reassignments_version)

    def leader_of(self, topic: str, partition: int) -> int:
        state = self.states.get((topic, partition))
        if state is None or state.leader not in self.brokers:
            return NO_LEADER
        return state.leader

    def fully_led(self, topic: str) -> bool:
        """Every partition of `topic` has a live leader (what CreateTopics waits for)."""
        assignment = self.topics.get(topic)
        return assignment is not None and all(
            self.leader_of(topic, p) != NO_LEADER for p in range(assignment.partition_count))
