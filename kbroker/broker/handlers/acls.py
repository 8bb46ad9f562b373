"""DescribeAcls, CreateAcls, DeleteAcls: the ACL bindings the authorizer decides by.

Describing needs DESCRIBE on the cluster, creating and deleting ALTER, as in Kafka. Without
`authorizer.class.name` every call answers SECURITY_DISABLED. Bindings are validated one by one
(INVALID_REQUEST for a filter-only value such as ANY in a binding); the valid ones of a request
are written to the store together (the data dir, or ZooKeeper in a cluster), then take effect at
once here (on the other brokers of a cluster once their ZooKeeper watches fire).
"""
from __future__ import annotations

from kbroker.broker.authorization import on_cluster
from kbroker.broker.dispatch import RequestContext
from kbroker.errors import ErrorCode
from kbroker.security.acls import AclBinding, AclFilter, Operation, PatternType, Permission, ResourceType
from kbroker.wire.messages.create_acls import AclCreationResult, CreateAclsRequest, CreateAclsResponse
from kbroker.wire.messages.delete_acls import (
    DeleteAclsFilterResult,
    DeleteAclsMatchingAcl,
    DeleteAclsRequest,
    DeleteAclsResponse,
)
from kbroker.wire.messages.describe_acls import (
    AclDescription,
    DescribeAclsRequest,
    DescribeAclsResource,
    DescribeAclsResponse,
)

_NO_AUTHORIZER = "No Authorizer is configured on the broker (authorizer.class.name)"


def _enum(kind, value: int):  # unknown numbers become UNKNOWN, which validation then refuses
    try:
        return kind(value)
    except ValueError:
        return kind.UNKNOWN


def _filter(request) -> AclFilter:
    return AclFilter(_enum(ResourceType, request.resource_type_filter), request.resource_name_filter,
                     _enum(PatternType, request.pattern_type_filter), request.principal_filter, request.host_filter,
                     _enum(Operation, request.operation), _enum(Permission, request.permission_type))


def _filter_problem(acl_filter: AclFilter) -> str | None:
    for field, value in (("resource type", acl_filter.resource_type), ("pattern type", acl_filter.pattern_type),
                         ("operation", acl_filter.operation), ("permission", acl_filter.permission)):
        if value == 0:  # UNKNOWN
            return f"unknown {field} in the filter"
    return None


def handle_describe_acls(ctx: RequestContext, request: DescribeAclsRequest) -> DescribeAclsResponse:
    refused = _refusal(ctx, Operation.DESCRIBE)
    if refused:
        return DescribeAclsResponse(error_code=refused, error_message=_NO_AUTHORIZER if
                                    refused == ErrorCode.SECURITY_DISABLED else None)
    authorizer = ctx.broker.authorizer
    acl_filter = _filter(request)
    problem = _filter_problem(acl_filter)
    if problem:
        return DescribeAclsResponse(error_code=ErrorCode.INVALID_REQUEST, error_message=problem)
    grouped: dict[tuple[int, str, int], list[AclDescription]] = {}
    for binding in sorted(authorizer.bindings, key=_order):
        if acl_filter.matches(binding):
            grouped.setdefault((binding.resource_type, binding.name, binding.pattern_type), []).append(
                AclDescription(principal=binding.principal, host=binding.host, operation=binding.operation,
                               permission_type=binding.permission))
    return DescribeAclsResponse(error_code=0, resources=[
        DescribeAclsResource(resource_type=kind, resource_name=name, pattern_type=pattern, acls=acls)
        for (kind, name, pattern), acls in grouped.items()])


def _refusal(ctx: RequestContext, operation: Operation) -> ErrorCode | None:
    """Why this request may not change or see the bindings, or None."""
    if ctx.broker.authorizer is None:
        return ErrorCode.SECURITY_DISABLED
    return None if on_cluster(ctx, operation) else ErrorCode.CLUSTER_AUTHORIZATION_FAILED


async def handle_create_acls(ctx: RequestContext, request: CreateAclsRequest) -> CreateAclsResponse:
    refused = _refusal(ctx, Operation.ALTER)
    if refused:
        return CreateAclsResponse(results=[AclCreationResult(error_code=refused) for _ in request.creations])
    bindings: set[AclBinding] = set()
    results = []
    for creation in request.creations:
        binding = AclBinding(_enum(ResourceType, creation.resource_type), creation.resource_name,
                             _enum(PatternType, creation.resource_pattern_type), creation.principal, creation.host,
                             _enum(Operation, creation.operation), _enum(Permission, creation.permission_type))
        problem = binding.problem() or ctx.broker.acl_store.problem(binding)
        if problem:
            results.append(AclCreationResult(error_code=ErrorCode.INVALID_REQUEST, error_message=problem))
        else:
            bindings.add(binding)
            results.append(AclCreationResult(error_code=0))
    await _store(ctx, bindings - ctx.broker.authorizer.bindings, set())
    return CreateAclsResponse(results=results)


async def handle_delete_acls(ctx: RequestContext, request: DeleteAclsRequest) -> DeleteAclsResponse:
    refused = _refusal(ctx, Operation.ALTER)
    if refused:
        return DeleteAclsResponse(filter_results=[DeleteAclsFilterResult(error_code=refused) for _ in request.filters])
    bindings = set(ctx.broker.authorizer.bindings)
    results = []
    for item in request.filters:
        acl_filter = _filter(item)
        problem = _filter_problem(acl_filter)
        if problem:
            results.append(DeleteAclsFilterResult(error_code=ErrorCode.INVALID_REQUEST, error_message=problem))
            continue
        matching = sorted((b for b in bindings if acl_filter.matches(b)), key=_order)
        bindings.difference_update(matching)
        results.append(DeleteAclsFilterResult(error_code=0, matching_acls=[
            DeleteAclsMatchingAcl(error_code=0, resource_type=b.resource_type, resource_name=b.name,
                                  pattern_type=b.pattern_type, principal=b.principal, host=b.host,
                                  operation=b.operation, permission_type=b.permission) for b in matching]))
    await _store(ctx, set(), ctx.broker.authorizer.bindings - bindings)
    return DeleteAclsResponse(filter_results=results)


async def _store(ctx: RequestContext, added: set[AclBinding], removed: set[AclBinding]) -> None:
    if added or removed:  # durable before anyone is told, then in force
        ctx.broker.authorizer.replace(await ctx.broker.acl_store.change(added, removed))


def _order(binding: AclBinding) -> tuple:
    return (binding.resource_type, binding.name, binding.pattern_type, binding.principal, binding.host,
            binding.operation, binding.permission)
