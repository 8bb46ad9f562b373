"""DescribeConfigs, AlterConfigs, IncrementalAlterConfigs for topics and this broker.

A broker config's value comes, first found, from this broker's dynamic setting
(DYNAMIC_BROKER_CONFIG), the cluster's dynamic default (DYNAMIC_DEFAULT_BROKER_CONFIG), the static
config (STATIC_BROKER_CONFIG) or the declared default (DEFAULT_CONFIG); a topic config's from the
topic's override (TOPIC_CONFIG), else from the broker config it falls back to. The synonyms list
shows that chain, as Kafka's ConfigHelper does. Altering a BROKER resource (a broker id, or "" for
the cluster default) changes dynamic keys only (kbroker/broker/dynamic_config.py); a read-only key,
or a value that does not parse, is INVALID_REQUEST as in Kafka.
"""
from __future__ import annotations

from typing import Any

from kbroker.broker import authorization
from kbroker.broker.dispatch import RequestContext
from kbroker.cluster.config_entities import DEFAULT_ENTITY
from kbroker.config import BROKER_CONFIGS, BROKER_KEYS, BROKER_SYNONYMS, Config, ConfigError
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
DYNAMIC_BROKER_CONFIG = 2
DYNAMIC_DEFAULT_BROKER_CONFIG = 3
STATIC_BROKER_CONFIG = 4
DEFAULT_CONFIG = 5

# Broker keys that set one value in several units, most precise first (Kafka's brokerConfigSynonyms).
_UNIT_SYNONYMS = {name: names for names in (("log.roll.ms", "log.roll.hours"),
                                            ("log.retention.ms", "log.retention.minutes", "log.retention.hours"))
                  for name in names}

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
                entity = _broker_entity(ctx, resource.resource_name)
                entries = _broker_entries(ctx.broker.config, per_broker=entity != DEFAULT_ENTITY)
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


# An entry: name, value, source, type, documentation, read-only, synonyms.
_Synonym = tuple[str, str | None, int]
_Entry = tuple[str, str | None, int, int, str, bool, list[_Synonym]]


def _topic_entries(ctx: RequestContext, name: str) -> list[_Entry]:
    topic = ctx.broker.logs.topic(name)
    if topic is None:
        raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"topic {name} does not exist")
    config = ctx.broker.config
    effective = LogConfig.from_topic_configs(topic.configs, ctx.broker.logs.defaults).topic_configs()
    entries = []
    for key in sorted(set(effective) | set(topic.configs)):
        synonym, declared = BROKER_SYNONYMS.get(key), TOPIC_CONFIGS[key]
        chain = [(key, topic.configs[key], TOPIC_CONFIG)] if key in topic.configs else []
        if synonym is not None:
            chain += _broker_synonyms(config, synonym, per_broker=True)
        source = chain[0][2] if chain else DEFAULT_CONFIG
        entries.append((key, topic.configs.get(key, effective.get(key)), source, declared.type.kind, declared.doc,
                        False, chain))
    return entries


def _broker_entries(config: Config, per_broker: bool) -> list[_Entry]:
    """This broker's keys, or (not `per_broker`) the cluster default's: only the keys it sets, as Kafka."""
    entries = []
    for key in BROKER_CONFIGS:
        if not per_broker and key.name not in config.dynamic_default:
            continue
        chain = _broker_synonyms(config, key.name, per_broker)
        value = config.value_text(key.name) if per_broker else config.dynamic_default[key.name]
        entries.append((key.name, value, chain[0][2] if chain else DEFAULT_CONFIG, key.kind, key.doc, not key.dynamic,
                        chain))
    return entries


def _broker_synonyms(config: Config, name: str, per_broker: bool) -> list[_Synonym]:
    """Where a broker key's value may come from, in Kafka's order: every unit synonym's dynamic
    per-broker value, then the dynamic defaults, the static values, the declared defaults; the
    entries before the first one of `name` itself are dropped (Kafka's ConfigHelper.configSynonyms:
    log.retention.hours does not list a log.retention.ms set dynamically)."""
    names = _UNIT_SYNONYMS.get(name, (name,))
    defaults = {n: text for n in names if (text := BROKER_KEYS[n].text(BROKER_KEYS[n].default)) is not None}
    layers = [(config.dynamic_broker, DYNAMIC_BROKER_CONFIG)] if per_broker else []
    layers += [(config.dynamic_default, DYNAMIC_DEFAULT_BROKER_CONFIG), (config.explicit, STATIC_BROKER_CONFIG),
               (defaults, DEFAULT_CONFIG)]
    chain = [(n, layer[n], source) for layer, source in layers for n in names if n in layer]
    while chain and chain[0][0] != name:
        chain.pop(0)
    return chain


def _entry(with_synonyms: bool, with_documentation: bool, name: str, value: str | None, source: int, kind: int,
           doc: str, read_only: bool, chain: list[_Synonym]) -> DescribeConfigsResourceResult:
    synonyms = [DescribeConfigsSynonym(name=n, value=v, source=s) for n, v, s in chain] if with_synonyms else []
    return DescribeConfigsResourceResult(
        name=name, value=value, read_only=read_only, is_default=source == DEFAULT_CONFIG,
        config_source=source, is_sensitive=False, synonyms=synonyms, config_type=kind,
        documentation=doc if with_documentation else None)


def _authorize(ctx: RequestContext, resource_type: int, name: str, operation: Operation) -> None:
    """Topic configs need the operation on the topic, broker configs on the cluster."""
    if resource_type == TOPIC and not authorization.on_topic(ctx, operation, name):
        raise KafkaError(ErrorCode.TOPIC_AUTHORIZATION_FAILED)
    if resource_type == BROKER and not authorization.on_cluster(ctx, operation):
        raise KafkaError(ErrorCode.CLUSTER_AUTHORIZATION_FAILED)


def _broker_entity(ctx: RequestContext, name: str) -> str:
    """The dynamic config entity a BROKER resource names: this broker's id, or "" for the cluster default."""
    if name == "":
        return DEFAULT_ENTITY
    if name == str(ctx.broker.node_id):
        return name
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
            try:
                await ctx.broker.dynamic_config.alter(_broker_entity(ctx, name), change, validate_only)
            except ConfigError as exc:
                raise KafkaError(ErrorCode.INVALID_REQUEST,
                                 f"Invalid config value for resource ConfigResource(type=BROKER, name='{name}'): {exc}"
                                 ) from None
            return None
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
