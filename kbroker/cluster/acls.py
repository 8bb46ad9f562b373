"""ACL bindings of a cluster: in ZooKeeper, in Kafka's AclAuthorizer layout and words, so a binding
created or deleted through any broker decides on every broker (zk_store.py has the znodes).

A binding is one entry (`{"principal":"User:alice","permissionType":"Allow","operation":"Read",
"host":"*"}`) of its resource pattern's znode. Each resource is changed by a version-checked
read-modify-write in the store, so CreateAcls on two brokers at once both land. Every broker
follows the znodes and puts what it sees in force (`refresh`, on each change the store reports).
"""
from __future__ import annotations

import logging
import re

from kbroker.cluster.metastore import AclEntry, AclResource, MetaStore
from kbroker.security.acls import AclBinding, Authorizer, Operation, PatternType, Permission, ResourceType

log = logging.getLogger("kbroker.cluster")

STORED_PATTERNS = (PatternType.LITERAL, PatternType.PREFIXED)


def _kafka_word(member: ResourceType | Operation | Permission) -> str:
    """Kafka's SecurityUtils names: TRANSACTIONAL_ID -> TransactionalId, IDEMPOTENT_WRITE -> IdempotentWrite."""
    return "".join(part.capitalize() for part in member.name.split("_"))


def _from_kafka_word(kind: type, word: str):
    return kind[re.sub(r"(?<=[a-z])(?=[A-Z])", "_", word).upper()]


def resource_of(binding: AclBinding) -> AclResource:
    return AclResource(binding.pattern_type.name, _kafka_word(binding.resource_type), binding.name)


def entry_of(binding: AclBinding) -> AclEntry:
    return AclEntry(binding.principal, _kafka_word(binding.permission), _kafka_word(binding.operation), binding.host)


def binding_of(resource: AclResource, entry: AclEntry) -> AclBinding | None:
    """None (logged) for words Kafka would not have written."""
    try:
        binding = AclBinding(_from_kafka_word(ResourceType, resource.resource_type), resource.name,
                             PatternType[resource.pattern_type], entry.principal, entry.host,
                             _from_kafka_word(Operation, entry.operation),
                             _from_kafka_word(Permission, entry.permission_type))
    except KeyError:
        binding = None
    if binding is None or binding.problem() is not None:
        log.error("ignoring an ACL in ZooKeeper that is not valid: %s %s", resource, entry)
        return None
    return binding


class ClusterAclStore:
    def __init__(self, store: MetaStore) -> None:
        self._store = store
        self._seen: object = None  # the store's mapping last put in force

    @staticmethod
    def problem(binding: AclBinding) -> str | None:
        """A name that cannot be a znode's (a group or transactional id may hold a `/`): Kafka's
        ZooKeeper write would fail, here it is INVALID_REQUEST."""
        if "/" in binding.name or "\0" in binding.name or binding.name in (".", ".."):
            return f"resource name {binding.name!r} cannot be a ZooKeeper znode name"
        return None

    def load(self) -> set[AclBinding]:
        return {binding for resource, entries in self._store.acls().items() for entry in entries
                if (binding := binding_of(resource, entry)) is not None}

    async def change(self, added: set[AclBinding], removed: set[AclBinding]) -> set[AclBinding]:
        """Write the changes, resource by resource; every binding the cluster has then."""
        by_resource: dict[AclResource, tuple[set[AclEntry], set[AclEntry]]] = {}
        for index, bindings in ((0, added), (1, removed)):
            for binding in bindings:
                by_resource.setdefault(resource_of(binding), (set(), set()))[index].add(entry_of(binding))
        for resource, (add, remove) in sorted(by_resource.items()):
            await self._store.update_acls(resource, add, remove)
        return self.load()

    def refresh(self, authorizer: Authorizer) -> None:
        """Put the bindings in force if the store has seen them change since the last time."""
        current = self._store.acls()
        if current is not self._seen:
            self._seen = current
            authorizer.replace(self.load())
