"""ACLs: bindings, filters and the authorizer's decision, as Kafka's AclAuthorizer makes it.

A binding allows or denies one principal (`User:alice`, or `User:*` for everyone) from one host
(or `*`) one operation (or ALL) on a resource pattern: a LITERAL name (`*` is every name of that
type) or a PREFIXED one. For a request, a DENY binding that matches wins; else an ALLOW binding
for the operation, or for one that implies it (READ, WRITE, DELETE and ALTER imply DESCRIBE;
ALTER_CONFIGS implies DESCRIBE_CONFIGS); else, when no binding names the resource at all,
`allow.everyone.if.no.acl.found` decides. `super.users` are always allowed.

Decisions are cached per (principal, host, operation, resource): the hot path asks about the
same few topics for every batch. Any change to the bindings drops the cache.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

WILDCARD = "*"
WILDCARD_PRINCIPAL = "User:*"
CLUSTER_NAME = "kafka-cluster"
MAX_CACHED_DECISIONS = 100_000


class ResourceType(IntEnum):
    UNKNOWN = 0
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5
    DELEGATION_TOKEN = 6
    USER = 7


class PatternType(IntEnum):
    UNKNOWN = 0
    ANY = 1  # filters only: literal or prefixed, the name compared as given
    MATCH = 2  # filters only: every pattern that would apply to the name
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    UNKNOWN = 0
    ANY = 1
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DELETE = 6
    ALTER = 7
    DESCRIBE = 8
    CLUSTER_ACTION = 9
    DESCRIBE_CONFIGS = 10
    ALTER_CONFIGS = 11
    IDEMPOTENT_WRITE = 12
    CREATE_TOKENS = 13
    DESCRIBE_TOKENS = 14


class Permission(IntEnum):
    UNKNOWN = 0
    ANY = 1
    DENY = 2
    ALLOW = 3


_IMPLIED_BY = {
    Operation.DESCRIBE: {Operation.DESCRIBE, Operation.READ, Operation.WRITE, Operation.DELETE, Operation.ALTER},
    Operation.DESCRIBE_CONFIGS: {Operation.DESCRIBE_CONFIGS, Operation.ALTER_CONFIGS},
}


@dataclass(frozen=True, slots=True)
class AclBinding:
    resource_type: ResourceType
    name: str
    pattern_type: PatternType
    principal: str
    host: str
    operation: Operation
    permission: Permission

    def problem(self) -> str | None:
        """Why Kafka would refuse to create this binding (INVALID_REQUEST), or None."""
        if self.resource_type in (ResourceType.UNKNOWN, ResourceType.ANY):
            return f"resource type {self.resource_type.name} is not a resource"
        if self.pattern_type not in (PatternType.LITERAL, PatternType.PREFIXED):
            return f"pattern type {self.pattern_type.name} is only for filters"
        if self.operation in (Operation.UNKNOWN, Operation.ANY):
            return f"operation {self.operation.name} is only for filters"
        if self.permission not in (Permission.ALLOW, Permission.DENY):
            return f"permission {self.permission.name} is only for filters"
        if not self.name or (self.pattern_type == PatternType.PREFIXED and self.name == WILDCARD):
            return f"resource name {self.name!r} is not valid for {self.pattern_type.name}"
        if self.resource_type == ResourceType.CLUSTER and self.name != CLUSTER_NAME:
            return f"the cluster resource is named {CLUSTER_NAME}"
        if ":" not in self.principal:
            return f"principal {self.principal!r} is not TYPE:NAME"
        return None


@dataclass(frozen=True, slots=True)
class AclFilter:
    """None in a string field, and ANY in an enum field, match everything."""
    resource_type: ResourceType = ResourceType.ANY
    name: str | None = None
    pattern_type: PatternType = PatternType.ANY
    principal: str | None = None
    host: str | None = None
    operation: Operation = Operation.ANY
    permission: Permission = Permission.ANY

    def matches(self, binding: AclBinding) -> bool:
        if self.resource_type not in (ResourceType.ANY, binding.resource_type):
            return False
        if self.pattern_type == PatternType.MATCH:
            if self.name is not None and not _applies(binding, self.name):
                return False
        else:
            if self.pattern_type not in (PatternType.ANY, binding.pattern_type):
                return False
            if self.name is not None and self.name != binding.name:
                return False
        return (self.principal in (None, binding.principal) and self.host in (None, binding.host)
                and self.operation in (Operation.ANY, binding.operation)
                and self.permission in (Permission.ANY, binding.permission))


def _applies(binding: AclBinding, name: str) -> bool:
    """Whether the binding's resource pattern covers a resource of that name."""
    if binding.pattern_type == PatternType.PREFIXED:
        return name.startswith(binding.name)
    return binding.name in (name, WILDCARD)


class Authorizer:
    def __init__(self, bindings: Iterable[AclBinding], super_users: Iterable[str] = (),
                 allow_if_no_acl: bool = False) -> None:
        self._bindings: set[AclBinding] = set(bindings)
        self._super_users = frozenset(super_users)
        self._allow_if_no_acl = allow_if_no_acl
        self._decisions: dict[tuple[str, str, Operation, ResourceType, str], bool] = {}

    @property
    def bindings(self) -> frozenset[AclBinding]:
        return frozenset(self._bindings)

    def replace(self, bindings: Iterable[AclBinding]) -> None:
        self._bindings = set(bindings)
        self._decisions.clear()

    def authorize(self, principal: str, host: str, operation: Operation, resource_type: ResourceType,
                  name: str) -> bool:
        key = (principal, host, operation, resource_type, name)
        decision = self._decisions.get(key)
        if decision is None:
            if len(self._decisions) >= MAX_CACHED_DECISIONS:  # many short-lived clients or topics
                self._decisions.clear()
            decision = self._decisions[key] = self._decide(principal, host, operation, resource_type, name)
        return decision

    def allows_on_any(self, principal: str, host: str, operation: Operation, resource_type: ResourceType) -> bool:
        """Whether some binding lets the principal do the operation on some resource of the type
        (KIP-679: an idempotent producer needs WRITE on any topic, not IDEMPOTENT_WRITE)."""
        if principal in self._super_users:
            return True
        allowing = _IMPLIED_BY.get(operation, {operation}) | {Operation.ALL}
        return any(b.resource_type == resource_type and b.permission == Permission.ALLOW and b.operation in allowing
                   and b.principal in (principal, WILDCARD_PRINCIPAL) and b.host in (host, WILDCARD)
                   for b in self._bindings)

    def _decide(self, principal: str, host: str, operation: Operation, resource_type: ResourceType,
                name: str) -> bool:
        if principal in self._super_users:
            return True
        relevant = [b for b in self._bindings if b.resource_type == resource_type and _applies(b, name)]
        if not relevant:
            return self._allow_if_no_acl
        mine = [b for b in relevant if b.principal in (principal, WILDCARD_PRINCIPAL) and b.host in (host, WILDCARD)]
        if any(b.permission == Permission.DENY and b.operation in (operation, Operation.ALL) for b in mine):
            return False
        allowing = _IMPLIED_BY.get(operation, {operation})
        return any(b.permission == Permission.ALLOW and (b.operation in allowing or b.operation == Operation.ALL)
                   for b in mine)
