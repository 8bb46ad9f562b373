"""Asking the authorizer from a handler: is this connection's principal allowed this operation?

With no `authorizer.class.name` the broker has no authorizer and everything is allowed, at the
cost of one attribute check. Handlers answer a refusal the way Kafka's KafkaApis does: the
resource's *_AUTHORIZATION_FAILED code where it was named, and resources a principal may not
even describe left out of lists (Metadata for all topics, ListGroups).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from kbroker.security.acls import CLUSTER_NAME, Operation, ResourceType

if TYPE_CHECKING:
    from kbroker.broker.dispatch import RequestContext


def allowed(ctx: RequestContext, operation: Operation, resource_type: ResourceType, name: str) -> bool:
    authorizer = ctx.broker.authorizer
    return authorizer is None or authorizer.authorize(ctx.connection.principal, ctx.connection.peer_host,
                                                      operation, resource_type, name)


def on_topic(ctx: RequestContext, operation: Operation, topic: str) -> bool:
    return allowed(ctx, operation, ResourceType.TOPIC, topic)


def on_group(ctx: RequestContext, operation: Operation, group: str) -> bool:
    return allowed(ctx, operation, ResourceType.GROUP, group)


def on_cluster(ctx: RequestContext, operation: Operation) -> bool:
    return allowed(ctx, operation, ResourceType.CLUSTER, CLUSTER_NAME)


# The operations each resource type supports (Kafka's AclEntry.supportedOperations).
SUPPORTED_OPERATIONS = {
    ResourceType.TOPIC: (Operation.READ, Operation.WRITE, Operation.CREATE, Operation.DELETE, Operation.ALTER,
                         Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS, Operation.ALTER_CONFIGS),
    ResourceType.GROUP: (Operation.READ, Operation.DELETE, Operation.DESCRIBE, Operation.DESCRIBE_CONFIGS,
                         Operation.ALTER_CONFIGS),
    ResourceType.CLUSTER: (Operation.CREATE, Operation.CLUSTER_ACTION, Operation.DESCRIBE_CONFIGS,
                           Operation.ALTER_CONFIGS, Operation.IDEMPOTENT_WRITE, Operation.ALTER, Operation.DESCRIBE),
}
NOT_REQUESTED = -(2**31)  # authorized_operations when the request did not ask for them


def authorized_operations(ctx: RequestContext, resource_type: ResourceType, name: str, requested: bool = True) -> int:
    """The `authorized_operations` bit field: each supported operation the principal may do (all of
    them without an authorizer, as Kafka reports)."""
    if not requested:
        return NOT_REQUESTED
    return sum(1 << op for op in SUPPORTED_OPERATIONS[resource_type] if allowed(ctx, op, resource_type, name))


def may_write_idempotently(ctx: RequestContext) -> bool:
    """IDEMPOTENT_WRITE on the cluster, or WRITE on any topic (KIP-679)."""
    authorizer = ctx.broker.authorizer
    return (authorizer is None or on_cluster(ctx, Operation.IDEMPOTENT_WRITE)
            or authorizer.allows_on_any(ctx.connection.principal, ctx.connection.peer_host, Operation.WRITE,
                                        ResourceType.TOPIC))


def may_create_topic(ctx: RequestContext, topic: str) -> bool:
    """CREATE on the cluster or on the topic (auto-creation needs it as much as CreateTopics)."""
    return on_cluster(ctx, Operation.CREATE) or on_topic(ctx, Operation.CREATE, topic)
