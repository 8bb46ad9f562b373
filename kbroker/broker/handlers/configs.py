"""DescribeConfigs, AlterConfigs, IncrementalAlterConfigs for topics and this broker.

A topic config's value comes from the topic's override (source TOPIC_CONFIG), else from
the broker setting it falls back to (STATIC_BROKER_CONFIG when the user set it, else
DEFAULT_CONFIG) — the synonyms list shows that chain, as Kafka does. Broker configs are
static in kbroker: they can be described, not altered at run time.
"""
from __future__ import annotations

from typing import Any

from kbroker.broker import authorization
from kbroker.broker.dispatch import RequestContext
from kbroker.config import BROKER_CONFIGS, BROKER_SYNONYMS, Config
from kbroker.errors import ErrorCode, KafkaError
from kbroker.security.acls import Operation
from kbroker.log.config import TOPIC_CONFIGS, ConfigType, LogConfig
from kbroker.wire.messages.alter_configs import AlterConfigsRequest, AlterConfigsResourceResponse, AlterConfigsResponse
from kbroker.wire.messages.describe_configs import (
    DescribeConfigsRequest,
    DescribeConfigsResourceResult,
    DescribeConfigsResponse,
    DescribeConfigsResult,
    DescribeConfigsSynonym,
)
from kbroker.wire.messages.incremental_alter_configs import (
    AlterConfigsResourceResponse as IncrementalResourceResponse,
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
)

TOPIC = 2
BROKER = 4

# ConfigSource in DescribeConfigs v1+
TOPIC_CONFIG = 1
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5

SET, DELETE, APPEND, SUBTRACT = 0, 1, 2, 3


def handle_describe_configs(ctx: RequestContext, request: DescribeConfigsRequest) -> DescribeConfigsResponse:
    results = []
    for resource in request.resources:
        wanted = None if resource.configuration_keys is None else set(resource.configuration_keys)
        try:
            _authorize(ctx, resource.resource_type, resource.resource_name, Operation.DESCRIBE_CONFIGS)
            if resource.resource_type == TOPIC:
                entries = _topic_entries(ctx, resource.resource_name)
            elif resource.resource_type == BROKER:
                _check_broker_name(ctx, resource.resource_name, allow_default=False)
                entries = _broker_entries(ctx.broker.config)
            else:
                raise KafkaError(ErrorCode.INVALID_REQUEST, f"unsupported resource type {resource.resource_type}")
        except KafkaError as exc:
            results.append(DescribeConfigsResult(error_code=exc.code, error_message=exc.message,
                                                 resource_type=resource.resource_type,
                                                 resource_name=resource.resource_name))
            continue
        configs = [_entry(request.include_synonyms, request.include_documentation, *e)
                   for e in entries if wanted is None or e[0] in wanted]
        results.append(DescribeConfigsResult(error_code=0, error_message=None, resource_type=resource.resource_type,
                                             resource_name=resource.resource_name, configs=configs))
    return DescribeConfigsResponse(results=results)


# An entry: name, value, source, type, documentation, synonyms.
_Entry = tuple[str, str | None, int, int, str, list[tuple[str, str | None, int]]]


def _topic_entries(ctx: RequestContext, name: str) -> list[_Entry]:
    topic = ctx.broker.logs.topic(name)
    if topic is None:
        raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {name} does not exist")
    config = ctx.broker.config
    effective = LogConfig.from_topic_configs(topic.configs, ctx.broker.logs.defaults).topic_configs()
    entries = []
    for key in sorted(set(effective) | set(topic.configs)):
        synonym, declared = BROKER_SYNONYMS.get(key), TOPIC_CONFIGS[key]
        broker_source = STATIC_BROKER_CONFIG if synonym in config.explicit else DEFAULT_CONFIG
        chain = [(key, topic.configs[key], TOPIC_CONFIG)] if key in topic.configs else []
        if synonym is not None:
            chain.append((synonym, config.value_text(synonym), broker_source))
        source = TOPIC_CONFIG if key in topic.configs else broker_source
        entries.append((key, topic.configs.get(key, effective.get(key)), source, declared.type.kind, declared.doc,
                        chain))
    return entries


def _broker_entries(config: Config) -> list[_Entry]:
    entries = []
    for key in BROKER_CONFIGS:
        source = STATIC_BROKER_CONFIG if key.name in config.explicit else DEFAULT_CONFIG
        value = config.value_text(key.name)
        entries.append((key.name, value, source, key.kind, key.doc, [(key.name, value, source)]))
    return entries


def _entry(with_synonyms: bool, with_documentation: bool, name: str, value: str | None, source: int, kind: int,
           doc: str, chain: list[tuple[str, str | None, int]]) -> DescribeConfigsResourceResult:
    synonyms = [DescribeConfigsSynonym(name=n, value=v, source=s) for n, v, s in chain] if with_synonyms else []
    return DescribeConfigsResourceResult(
        name=name, value=value, read_only=False, is_default=source == DEFAULT_CONFIG,
        config_source=source, is_sensitive=False, synonyms=synonyms, config_type=kind,
        documentation=doc if with_documentation else None)


def _authorize(ctx: RequestContext, resource_type: int, name: str, operation: Operation) -> None:
    """Topic configs need the operation on the topic, broker configs on the cluster."""
    if resource_type == TOPIC and not authorization.on_topic(ctx, operation, name):
        raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
    if resource_type == BROKER and not authorization.on_cluster(ctx, operation):
        raise KafkaError(ErrorCode.CLUSTER_AUTHORIZATION_FAILED)


def _check_broker_name(ctx: RequestContext, name: str, allow_default: bool) -> None:
    if name == str(ctx.broker.node_id) or (allow_default and name == ""):
        return
    raise KafkaError(ErrorCode.INVALID_REQUEST, f"unknown broker {name!r}; this is broker {ctx.broker.node_id}")


async def handle_alter_configs(ctx: RequestContext, request: AlterConfigsRequest) -> AlterConfigsResponse:
    """Replace a topic's whole set of overrides (non-incremental, deprecated in Kafka)."""
    responses = []
    for resource in request.resources:
        configs = {c.name: c.value for c in resource.configs if c.value is not None}
        error = await _apply(ctx, resource.resource_type, resource.resource_name, lambda _old: configs,
                       request.validate_only)
        responses.append(AlterConfigsResourceResponse(error_code=error.code if error else 0,
                                                      error_message=error.message if error else None,
                                                      resource_type=resource.resource_type,
                                                      resource_name=resource.resource_name))
    return AlterConfigsResponse(responses=responses)


async def handle_incremental_alter_configs(ctx: RequestContext,
                                     request: IncrementalAlterConfigsRequest) -> IncrementalAlterConfigsResponse:
    responses = []
    for resource in request.resources:
        def change(old: dict[str, str], ops: Any = resource.configs) -> dict[str, str]:
            return _incremental(old, ops)

        error = await _apply(ctx, resource.resource_type, resource.resource_name, change, request.validate_only)
        responses.append(IncrementalResourceResponse(error_code=error.code if error else 0,
                                                     error_message=error.message if error else None,
                                                     resource_type=resource.resource_type,
                                                     resource_name=resource.resource_name))
    return IncrementalAlterConfigsResponse(responses=responses)


def _incremental(old: dict[str, str], ops: Any) -> dict[str, str]:
    new = dict(old)
    seen = set()
    for op in ops:
        if op.name in seen:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"config {op.name} appears more than once")
        seen.add(op.name)
        if op.config_operation == SET:
            if op.value is None:
                raise KafkaError(ErrorCode.INVALID_REQUEST, f"null value for config {op.name}")
            new[op.name] = op.value
        elif op.config_operation == DELETE:
            new.pop(op.name, None)
        elif op.config_operation in (APPEND, SUBTRACT):
            if op.name not in TOPIC_CONFIGS or TOPIC_CONFIGS[op.name].type.kind != ConfigType.LIST:
                raise KafkaError(ErrorCode.INVALID_CONFIG, f"config {op.name} is not a list")
            items = [x for x in new.get(op.name, "").split(",") if x]
            given = [x for x in (op.value or "").split(",") if x]
            items = items + [x for x in given if x not in items] if op.config_operation == APPEND \
                else [x for x in items if x not in given]
            new[op.name] = ",".join(items)
        else:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"unknown config operation {op.config_operation}")
    return new


async def _apply(ctx: RequestContext, resource_type: int, name: str, change: Any,
                 validate_only: bool) -> KafkaError | None:
    try:
        _authorize(ctx, resource_type, name, Operation.ALTER_CONFIGS)
        if resource_type == BROKER:
            _check_broker_name(ctx, name, allow_default=True)
            raise KafkaError(ErrorCode.INVALID_CONFIG,
                             "kbroker broker configs are static: set them in server.properties or with -o")
        if resource_type != TOPIC:
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"unsupported resource type {resource_type}")
        topic = ctx.broker.logs.topic(name)
        if topic is None:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {name} does not exist")
        if ctx.broker.cluster is not None:
            await ctx.broker.cluster.admin.alter_configs(name, change(dict(topic.configs)), validate_only=validate_only)
        else:
            ctx.broker.logs.alter_topic_configs(name, change(dict(topic.configs)), validate_only=validate_only)
    except KafkaError as exc:
        return exc
    return None
