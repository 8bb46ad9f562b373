"""An in-memory twin of `ZkMetaStore` (kbroker/cluster/zk_store.py), for unit tests of the cluster logic.

`MemoryZooKeeper` is what ZooKeeper holds for one cluster; each `MemoryMetaStore` on it is one
broker's session. The semantics are ZkMetaStore's:
- ephemeral znodes (a broker registration, /controller) belong to the session that created them
  and vanish when it ends: `close()`, or `MemoryZooKeeper.expire(store)`, after which the store
  goes on with a new session, as kazoo does; either way it hears `on_session_lost`;
- every znode has a version (0 when created, +1 per write), and the conditional writes compare it;
- a store that won /controller remembers the version of /controller_epoch it set, and every
  partition state write is conditional on it: once another store is elected, StaleWrite;
- `write_partition_states` leaves out the states whose znode moved on (or exists already when it
  is to be created, or whose topic is gone);
- `delete_topic` is not fenced by the controller epoch (ZkMetaStore's is not either);
- the pending leader elections are one znode: `request_leader_elections` creates it (version 0)
  or merges into it (+1), `complete_leader_elections` removes it if its version is still the one
  given (StaleWrite otherwise);
- the pending reassignments are one znode too: `request_reassignments` creates or merges into it;
  `write_reassignments` writes topic assignments, each conditional on its version, and removes
  that znode if its version is still the one given, all or nothing, fenced by the controller epoch;
- ACL resources and config entities are read-modify-written at once (nothing runs in between), so
  writes from several stores all land, as ZkMetaStore's version-checked writes make them; a
  resource left without entries is gone; a user's client entity makes its user entity, empty.

Watches: after each change the store publishes the image of that moment through `loop.call_soon`,
in order. `hold()` stops delivering them (a broker whose watches lag behind, as after a network
partition) until `release()`, which can deliver them one at a time.
"""
from __future__ import annotations

import asyncio
import dataclasses
import itertools
import types
from collections.abc import Callable, Collection, Mapping, Sequence

from kbroker.cluster.config_entities import is_entity
from kbroker.cluster.image import NO_LEADER, BrokerRegistration, ClusterImage, PartitionState, TopicAssignment
from kbroker.cluster.metastore import AclEntry, AclResource, BrokerIdInUse, MetaStoreError, StaleWrite
from kbroker.errors import ErrorCode, KafkaError


class MemoryZooKeeper:
    def __init__(self) -> None:
        self.cluster_id: str | None = None
        self.brokers: dict[int, tuple[BrokerRegistration, int]] = {}  # registration, owner session
        self.controller: tuple[int, int] | None = None  # broker id, owner session
        self.controller_epoch = 0
        self.controller_epoch_version = -1  # -1: /controller_epoch does not exist yet
        self.topics: dict[str, TopicAssignment] = {}
        self.configs: dict[str, dict[str, str]] = {}
        self.acls: dict[AclResource, frozenset[AclEntry]] = {}
        self.entities: dict[str, dict[str, str]] = {}  # by path below /config
        self.states: dict[tuple[str, int], PartitionState] = {}
        self.deleting: set[str] = set()
        self.elections: dict[tuple[str, int], int] = {}
        self.elections_version = -1  # -1: the znode does not exist
        self.reassignments: dict[tuple[str, int], tuple[int, ...] | None] = {}
        self.reassignments_version = -1  # -1: the znode does not exist
        self.next_producer_id = 0
        self._zxids = itertools.count(1)
        self._sessions = itertools.count(1)
        self._watchers: list[MemoryMetaStore] = []

    def new_session(self) -> int:
        return next(self._sessions)

    def zxid(self) -> int:
        return next(self._zxids)

    def image(self) -> ClusterImage:
        return ClusterImage.of({b: r for b, (r, _) in self.brokers.items()},
                               NO_LEADER if self.controller is None else self.controller[0],
                               frozenset(self.topics), self.topics, self.configs, self.states, frozenset(self.deleting),
                               self.elections, self.elections_version, self.reassignments,
                               self.reassignments_version)

    def changed(self) -> None:
        image = self.image()
        for store in self._watchers:
            store.notify(image)

    def watch(self, store: MemoryMetaStore) -> None:
        self._watchers.append(store)

    def _end_session(self, store: MemoryMetaStore) -> None:
        """The session's ephemeral znodes vanish with it."""
        self.brokers = {b: (r, s) for b, (r, s) in self.brokers.items() if s != store.session}
        if self.controller is not None and self.controller[1] == store.session:
            self.controller = None
        self.changed()

    def expire(self, store: MemoryMetaStore) -> None:
        """Expire `store`'s session (as ZooKeeper does after its timeout); kazoo starts a new one."""
        self._end_session(store)
        store.session_expired(self.new_session())

    def close(self, store: MemoryMetaStore) -> None:
        if store in self._watchers:
            self._watchers.remove(store)
        self._end_session(store)

    def set_state(self, key: tuple[str, int], state: PartitionState) -> None:
        """Write a partition state unconditionally, as an operator's tool would; its version moves on."""
        current = self.states.get(key)
        self.states[key] = PartitionState(state.leader, state.leader_epoch, state.isr, state.controller_epoch,
                                          0 if current is None else current.version + 1)
        self.changed()


class MemoryMetaStore:
    def __init__(self, zookeeper: MemoryZooKeeper) -> None:
        self._zk = zookeeper
        self.session = zookeeper.new_session()
        self._image = ClusterImage()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_change: Callable[[], None] = lambda: None
        self._on_session_lost: Callable[[], None] = lambda: None
        self._pending: list[ClusterImage] = []
        self._delivery_scheduled = False
        self._held = False
        self._controller_epoch_version = -1
        self._closed = False

    @property
    def image(self) -> ClusterImage:
        return self._image

    # -- watches -------------------------------------------------------------------------------

    def notify(self, image: ClusterImage) -> None:
        self._pending.append(image)
        self._schedule()

    def _schedule(self) -> None:
        if not self._held and not self._delivery_scheduled and self._pending:
            self._delivery_scheduled = True
            self._loop.call_soon(self._deliver)

    def _deliver(self) -> None:
        self._delivery_scheduled = False
        if not self._held:
            self._apply(len(self._pending))

    def _apply(self, count: int) -> None:
        if self._closed or not self._pending:
            return
        count = min(count, len(self._pending))
        self._image = self._pending[count - 1]
        del self._pending[:count]
        self._on_change()

    def hold(self) -> None:
        """Stop delivering changes: the image stays as it is."""
        self._held = True

    def release(self, count: int | None = None) -> None:
        """Deliver every held change and hold no more; or, with `count`, only the next `count` ones."""
        if count is None:
            self._held = False
            self._schedule()
        else:
            self._loop.call_soon(self._apply, count)

    def session_expired(self, session: int) -> None:
        self.session = session
        if self._loop is not None:
            self._loop.call_soon(self._on_session_lost)

    # -- the MetaStore protocol ----------------------------------------------------------------

    async def start(self) -> None:
        self._check_open()

    async def watch(self, on_change: Callable[[], None], on_session_lost: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_session_lost = on_session_lost
        self._image = self._zk.image()  # whole from the start, as ZkMetaStore's is once watch returns
        self._on_change = on_change
        self._zk.watch(self)

    async def close(self) -> None:
        self._closed = True
        self._zk.close(self)
        if self._loop is not None:  # kazoo reports a session it closes as LOST too
            self._loop.call_soon(self._on_session_lost)

    def _check_open(self) -> None:
        if self._closed:
            raise MetaStoreError("the session is closed")

    async def cluster_id(self, proposed: str) -> str:
        self._check_open()
        if self._zk.cluster_id is None:
            self._zk.cluster_id = proposed
        return self._zk.cluster_id

    async def register_broker(self, registration: BrokerRegistration) -> int:
        self._check_open()
        existing = self._zk.brokers.get(registration.broker_id)
        if existing is not None:
            if existing[1] == self.session:
                return existing[0].epoch
            raise BrokerIdInUse(f"broker id {registration.broker_id} is already registered by another session")
        epoch = self._zk.zxid()
        self._zk.brokers[registration.broker_id] = (
            dataclasses.replace(registration, epoch=epoch),
            self.session)
        self._zk.changed()
        return epoch

    async def unregister_broker(self, broker_id: int) -> None:
        self._check_open()
        existing = self._zk.brokers.get(broker_id)
        if existing is not None and existing[1] == self.session:
            del self._zk.brokers[broker_id]
            self._zk.changed()

    async def confirm_session(self, broker_id: int) -> bool:
        self._check_open()
        existing = self._zk.brokers.get(broker_id)
        return existing is not None and existing[1] == self.session

    async def elect_controller(self, broker_id: int) -> int | None:
        self._check_open()
        if self._zk.controller is not None:
            return None
        self._zk.controller = (broker_id, self.session)
        self._zk.controller_epoch += 1
        self._zk.controller_epoch_version += 1
        self._controller_epoch_version = self._zk.controller_epoch_version
        self._zk.changed()
        return self._zk.controller_epoch

    async def write_partition_states(self, states: Mapping[tuple[str, int], PartitionState],
                                     controller_epoch: int) -> dict[tuple[str, int], int]:
        self._check_open()
        if self._controller_epoch_version != self._zk.controller_epoch_version:
            raise StaleWrite("the controller epoch moved on: another broker is the controller")
        versions = {}
        for (name, partition), state in sorted(states.items()):
            current = self._zk.states.get((name, partition))
            assignment = self._zk.topics.get(name)
            if assignment is None or partition >= assignment.partition_count:
                continue
            if state.version < 0:
                if current is not None:
                    continue
                version = 0
            else:
                if current is None or current.version != state.version:
                    continue
                version = current.version + 1
            self._zk.states[(name, partition)] = PartitionState(state.leader, state.leader_epoch, state.isr,
                                                                state.controller_epoch, version)
            versions[(name, partition)] = version
        if versions:
            self._zk.changed()
        return versions

    async def update_partition_state(self, topic: str, partition: int, state: PartitionState) -> int:
        """A leader's ISR change: conditional on the state's version only, as ZkMetaStore's."""
        self._check_open()
        current = self._zk.states.get((topic, partition))
        if current is None or current.version != state.version:
            raise StaleWrite(f"the state of {topic}-{partition} changed")
        self._zk.states[(topic, partition)] = PartitionState(state.leader, state.leader_epoch, state.isr,
                                                             state.controller_epoch, state.version + 1)
        self._zk.changed()
        return state.version + 1

    async def create_topic(self, assignment: TopicAssignment, configs: Mapping[str, str]) -> None:
        self._check_open()
        if assignment.name in self._zk.topics or assignment.name in self._zk.configs:
            raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{assignment.name}' already exists.")
        self._zk.topics[assignment.name] = TopicAssignment(assignment.name, assignment.topic_id, assignment.replicas, 0)
        self._zk.configs[assignment.name] = dict(configs)
        self._zk.changed()

    async def add_partitions(self, name: str, replicas: Sequence[Sequence[int]], expected_version: int) -> None:
        self._check_open()
        current = self._image.topics.get(name)
        if current is None:
            raise StaleWrite(f"topic {name} is gone")
        stored = self._zk.topics.get(name)
        if stored is None:
            raise MetaStoreError(f"ZooKeeper: NoNodeError /brokers/topics/{name}")
        if stored.version != expected_version:
            raise StaleWrite("the znode changed")
        self._zk.topics[name] = TopicAssignment(name, current.topic_id, tuple(tuple(r) for r in replicas),
                                                stored.version + 1)
        self._zk.changed()

    async def set_topic_configs(self, name: str, configs: Mapping[str, str]) -> None:
        self._check_open()
        if name not in self._zk.configs:
            raise MetaStoreError(f"ZooKeeper: NoNodeError /config/topics/{name}")
        self._zk.configs[name] = dict(configs)
        self._zk.changed()

    async def request_topic_deletion(self, name: str) -> None:
        self._check_open()
        if name not in self._zk.deleting:
            self._zk.deleting.add(name)
            self._zk.changed()

    async def delete_topic(self, name: str, controller_epoch: int) -> None:
        self._check_open()
        if self._controller_epoch_version != self._zk.controller_epoch_version:
            raise StaleWrite("the controller epoch moved on: another broker is the controller")
        self._zk.topics.pop(name, None)
        self._zk.configs.pop(name, None)
        self._zk.deleting.discard(name)
        self._zk.states = {key: s for key, s in self._zk.states.items() if key[0] != name}
        self._zk.changed()

    async def request_leader_elections(self, elections: Mapping[tuple[str, int], int]) -> None:
        self._check_open()
        self._zk.elections = {**self._zk.elections, **elections}
        self._zk.elections_version += 1
        self._zk.changed()

    async def complete_leader_elections(self, version: int) -> None:
        self._check_open()
        if self._zk.elections_version == -1:
            return
        if self._zk.elections_version != version:
            raise StaleWrite("the znode changed")
        self._zk.elections = {}
        self._zk.elections_version = -1
        self._zk.changed()

    async def request_reassignments(self, reassignments: Mapping[tuple[str, int], tuple[int, ...] | None]) -> None:
        self._check_open()
        self._zk.reassignments = {**self._zk.reassignments, **reassignments}
        self._zk.reassignments_version += 1
        self._zk.changed()

    async def write_reassignments(self, assignments: Mapping[str, TopicAssignment], controller_epoch: int,
                                  requests_version: int) -> None:
        self._check_open()
        if self._controller_epoch_version != self._zk.controller_epoch_version:
            raise StaleWrite("the controller epoch moved on: another broker is the controller")
        for name, assignment in assignments.items():
            stored = self._zk.topics.get(name)
            if stored is None or stored.version != assignment.version:
                raise StaleWrite(f"reassigning partitions of {name}: its znode changed meanwhile")
        if requests_version >= 0 and self._zk.reassignments_version != requests_version:
            raise StaleWrite("the reassignments asked for changed meanwhile")
        for name, assignment in assignments.items():
            self._zk.topics[name] = TopicAssignment(name, assignment.topic_id, assignment.replicas,
                                                    assignment.version + 1, dict(assignment.adding),
                                                    dict(assignment.removing))
        if requests_version >= 0:
            self._zk.reassignments = {}
            self._zk.reassignments_version = -1
        self._zk.changed()

    async def claim_producer_id_block(self, broker_id: int, size: int) -> int:
        self._check_open()
        start = self._zk.next_producer_id
        self._zk.next_producer_id += size
        return start

    def acls(self) -> Mapping[AclResource, frozenset[AclEntry]]:
        return types.MappingProxyType(dict(self._zk.acls))

    async def update_acls(self, resource: AclResource, add: Collection[AclEntry],
                          remove: Collection[AclEntry]) -> None:
        self._check_open()
        updated = (self._zk.acls.get(resource, frozenset()) - frozenset(remove)) | frozenset(add)
        if updated:
            self._zk.acls[resource] = updated
        else:
            self._zk.acls.pop(resource, None)
        self._zk.changed()

    def entity_configs(self) -> Mapping[str, Mapping[str, str]]:
        return types.MappingProxyType({entity: types.MappingProxyType(dict(configs))
                                       for entity, configs in self._zk.entities.items()})

    async def alter_entity_configs(self, entity: str, changes: Mapping[str, str | None]) -> None:
        self._check_open()
        if not is_entity(entity):
            raise MetaStoreError(f"{entity!r} is not a config entity")
        if "/clients/" in entity:
            self._zk.entities.setdefault(entity.split("/clients/")[0], {})
        configs = {**self._zk.entities.get(entity, {}), **changes}
        self._zk.entities[entity] = {key: value for key, value in configs.items() if value is not None}
        self._zk.changed()
