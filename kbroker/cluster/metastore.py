"""The metadata store: the one narrow interface through which a broker reads and writes the
cluster's shared state. `zk_store.ZkMetaStore` implements it on ZooKeeper.

Reads are the latest `ClusterImage`, kept current by the store, which calls `on_change` on the
event loop after every change it sees. Writes are coroutines; each write that can race another
broker is conditional (a znode version, the controller epoch) and fails with `StaleWrite` when
it lost the race (`write_partition_states` instead leaves out the states it could not write).

Besides the image the store follows what every broker's security needs, read from its cache and
changed by read-modify-writes it retries on the znode version (so brokers writing at once lose
nothing), `on_change` hearing of those too: each ACL resource's entries (`acls`) and each
`/config/users` / `/config/clients` entity's configs (`entity_configs`: SCRAM credentials, quotas).
"""
from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from kbroker.cluster.image import BrokerRegistration, ClusterImage, PartitionState, TopicAssignment


class MetaStoreError(Exception):
    """The store cannot be reached or refused an operation."""


class StaleWrite(MetaStoreError):
    """A conditional write lost: the znode moved on, or this broker is no longer the controller."""


class BrokerIdInUse(MetaStoreError):
    """Another live broker is registered with this broker id."""


@dataclass(frozen=True, slots=True, order=True)
class AclResource:
    """A resource pattern, in Kafka's words: LITERAL ones in `/kafka-acl/<resource_type>/<name>`,
    PREFIXED ones in `/kafka-acl-extended/prefixed/<resource_type>/<name>`."""
    pattern_type: str  # LITERAL or PREFIXED
    resource_type: str  # Topic, Group, Cluster, TransactionalId, DelegationToken, User
    name: str


@dataclass(frozen=True, slots=True, order=True)
class AclEntry:
    """One entry of a resource's znode, in Kafka's JSON words (`"permissionType":"Allow"`, `"operation":"Read"`)."""
    principal: str
    permission_type: str
    operation: str
    host: str


class MetaStore(Protocol):
    @property
    def image(self) -> ClusterImage: ...

    async def start(self) -> None: ...

    async def watch(self, on_change: Callable[[], None], on_session_lost: Callable[[], None]) -> None: ...

    async def close(self) -> None: ...

    async def cluster_id(self, proposed: str) -> str: ...

    async def register_broker(self, registration: BrokerRegistration) -> int: ...

    async def confirm_session(self, broker_id: int) -> bool: ...

    async def unregister_broker(self, broker_id: int) -> None:
        """Remove this session's registration, keeping the session (a controlled shutdown)."""

    async def elect_controller(self, broker_id: int) -> int | None: ...

    async def write_partition_states(self, states: Mapping[tuple[str, int], PartitionState],
                                     controller_epoch: int) -> dict[tuple[str, int], int]: ...

    async def update_partition_state(self, topic: str, partition: int, state: PartitionState) -> int: ...

    async def create_topic(self, assignment: TopicAssignment, configs: Mapping[str, str]) -> None: ...

    async def add_partitions(self, name: str, replicas: Sequence[Sequence[int]], expected_version: int) -> None: ...

    async def set_topic_configs(self, name: str, configs: Mapping[str, str]) -> None: ...

    async def request_topic_deletion(self, name: str) -> None: ...

    async def delete_topic(self, name: str, controller_epoch: int) -> None: ...

    async def request_leader_elections(self, elections: Mapping[tuple[str, int], int]) -> None: ...

    async def complete_leader_elections(self, version: int) -> None: ...

    async def request_reassignments(self, reassignments: Mapping[tuple[str, int], tuple[int, ...] | None]) -> None: ...

    async def write_reassignments(self, assignments: Mapping[str, TopicAssignment], controller_epoch: int,
                                  requests_version: int) -> None: ...

    async def claim_producer_id_block(self, broker_id: int, size: int) -> int: ...

    def acls(self) -> Mapping[AclResource, frozenset[AclEntry]]:
        """Every resource pattern that has ACL entries, with them."""

    async def update_acls(self, resource: AclResource, add: Collection[AclEntry],
                          remove: Collection[AclEntry]) -> None:
        """Add and remove entries of one resource (its znode is removed once it has none left)."""

    def entity_configs(self) -> Mapping[str, Mapping[str, str]]:
        """Each config entity's configs by its path below /config: `users/<user>`, `clients/<client id>`,
        `users/<user>/clients/<client id>`, `brokers/<broker id>`, names sanitized as Kafka's (`<default>`
        the default entity)."""

    async def alter_entity_configs(self, entity: str, changes: Mapping[str, str | None]) -> None:
        """Set (or, for None, remove) these keys of the entity's configs, keeping the others."""
