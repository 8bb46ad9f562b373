"""DescribeClientQuotas and AlterClientQuotas: the byte-rate quotas of (user, client-id) entities.

Describing needs DESCRIBE_CONFIGS on the cluster, altering ALTER_CONFIGS, as in Kafka. kbroker
enforces producer_byte_rate, consumer_byte_rate and request_percentage; controller_mutation_rate
is refused (INVALID_REQUEST) rather than stored and silently ignored.
Changes are written to the store (the data dir, or ZooKeeper in a cluster), then apply to the next
request (on the other brokers of a cluster once their ZooKeeper watches fire).
"""
from __future__ import annotations

from kbroker.broker import authorization
from kbroker.broker.dispatch import RequestContext
from kbroker.errors import ErrorCode
from kbroker.security.acls import Operation
from kbroker.security.quotas import QUOTA_KEYS, QuotaEntity
from kbroker.wire.messages.alter_client_quotas import (
    AlterClientQuotasRequest,
    AlterClientQuotasResponse,
    EntryResult,
)
from kbroker.wire.messages.alter_client_quotas import EntityData as AlteredEntity
from kbroker.wire.messages.describe_client_quotas import (
    DescribeClientQuotasRequest,
    DescribeClientQuotasResponse,
    EntityData,
    EntryData,
    ValueData,
)

EXACT, DEFAULT_MATCH, ANY = 0, 1, 2


def handle_describe_client_quotas(ctx: RequestContext, request: DescribeClientQuotasRequest
                                  ) -> DescribeClientQuotasResponse:
    if not authorization.on_cluster(ctx, Operation.DESCRIBE_CONFIGS):
        return DescribeClientQuotasResponse(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED)
    wanted: dict[str, tuple[int, str | None]] = {}
    for component in request.components:
        if component.entity_type not in ("user", "client-id") or component.entity_type in wanted \
                or component.match_type not in (EXACT, DEFAULT_MATCH, ANY):
            return DescribeClientQuotasResponse(error_code=ErrorCode.INVALID_REQUEST,
                                                error_message=f"invalid filter component {component}")
        wanted[component.entity_type] = (component.match_type, component.match)
    entries = []
    for entity, quotas in ctx.broker.client_quotas.settings.items():
        present = dict(entity.components())
        if request.strict and set(present) != set(wanted):
            continue
        if all(kind in present and (match_type == ANY or (match_type == DEFAULT_MATCH and present[kind] is None)
                                    or (match_type == EXACT and present[kind] == name))
               for kind, (match_type, name) in wanted.items()) and quotas:
            entries.append(EntryData(entity=[EntityData(entity_type=k, entity_name=n) for k, n in present.items()],
                                     values=[ValueData(key=k, value=v) for k, v in sorted(quotas.items())]))
    return DescribeClientQuotasResponse(error_code=0, entries=entries)


async def handle_alter_client_quotas(ctx: RequestContext, request: AlterClientQuotasRequest
                                     ) -> AlterClientQuotasResponse:
    permitted = authorization.on_cluster(ctx, Operation.ALTER_CONFIGS)
    store = ctx.broker.client_quotas
    results = []
    updated = dict(store.settings)
    for entry in request.entries:
        named = [AlteredEntity(entity_type=e.entity_type, entity_name=e.entity_name) for e in entry.entity]
        if not permitted:
            results.append(EntryResult(error_code=ErrorCode.CLUSTER_AUTHORIZATION_FAILED, entity=named))
            continue
        try:
            entity = QuotaEntity.of((e.entity_type, e.entity_name) for e in entry.entity)
            quotas = dict(updated.get(entity, {}))
            for op in entry.ops:
                if op.key not in QUOTA_KEYS:
                    raise ValueError(f"quota {op.key!r} is not enforced by kbroker ({', '.join(QUOTA_KEYS)})")
                if op.remove:
                    quotas.pop(op.key, None)
                elif op.value <= 0:
                    raise ValueError(f"{op.key} must be positive, got {op.value}")
                else:
                    quotas[op.key] = op.value
        except ValueError as exc:
            results.append(EntryResult(error_code=ErrorCode.INVALID_REQUEST, error_message=str(exc), entity=named))
            continue
        if not request.validate_only:
            updated[entity] = quotas
        results.append(EntryResult(error_code=0, entity=named))
    if updated != store.settings:
        await store.replace(updated)  # durable first, then in force
    return AlterClientQuotasResponse(entries=results)
