"""The metadata store: the one narrow interface through which a broker reads and writes the
cluster's shared state. `zk_store.ZkMetaStore` implements it on ZooKeeper.

Reads are the latest `ClusterImage`, kept current by the store, which calls `on_change` on the
event loop after every change it sees. Writes are coroutines; each write that can race another
broker is conditional (a znode version, the controller epoch) and fails with `StaleWrite` when
it lost the race (`write_partition_states` instead leaves out the states it could not write).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from kbroker.cluster.image import BrokerRegistration, ClusterImage, PartitionState, TopicAssignment


class MetaStoreError(Exception):
    """The store cannot be reached or refused an operation."""


class StaleWrite(MetaStoreError):
    """A conditional write lost: the znode moved on, or this broker is no longer the controller."""


class BrokerIdInUse(MetaStoreError):
    """Another live broker is registered with this broker id."""


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

    def user_configs(self) -> Mapping[str, Mapping[str, str]]:
        """Each user's configs (`/config/users/<user>`): SCRAM credentials by mechanism name."""

    async def set_user_configs(self, name: str, configs: Mapping[str, str]) -> None: ...
